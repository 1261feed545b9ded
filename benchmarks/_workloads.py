"""The epoch benchmark's workloads and each library's model for them (`epochs.py`,
`cnn_lstm.py`).

A feed-forward workload is a `Net`: an input shape, 3×3 `pad=1` convolutions (each followed
by relu and a 2×2 max-pool) and dense layers (relu between them): one description, built
for every library by one builder per library. The LSTM workload is `LSTM(8,64)` → last
output → `Dense(64,10)`. Labels are one-hot over 10 classes; every batch of 64 is full.

- **cnn**: scikit-learn's 8×8 digits (the first 1,792 of 1,797), Conv 1→16, 16→32, Dense
  128→10 (6,090 params).
- **lstm**: 1,280 random sequences of 20 steps of 8 features, labelled by a fixed linear
  map of their mean (19,338 params as written by hand; fluxjax's `LSTM` adds its trainable
  initial state, 128, PyTorch's a second bias, 256).
- **mlp**: 3,200 random 784-vectors, labelled by a fixed linear map, Dense 784→256→256→10
  (269,322 params).
- **cnn32**: 320 random 32×32×3 images with random labels (5 batches: a step of the
  hand-written loop takes ~0.2–0.4 s on the shared 2-core machine), Conv 3→32, 32→64, 64→128,
  Dense 2048→448→10 (1,015,690 params).
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import jax
import jax.numpy as jnp
import numpy as np

B, HIDDEN, CLASSES = 64, 64, 10


@dataclass(frozen=True)
class Net:
    """A feed-forward network: `convs` (in, out) channel pairs, then `dense` widths."""

    shape: tuple[int, ...]  # one sample's input shape (H, W, C) or (features,)
    convs: tuple[tuple[int, int], ...]
    dense: tuple[int, ...]  # widths from the flattened input to the classes

    @property
    def params(self) -> int:
        conv = sum(9 * i * o + o for i, o in self.convs)
        return conv + sum(a * b + b for a, b in zip(self.dense, self.dense[1:]))


NETS = {
    "cnn": Net((8, 8, 1), ((1, 16), (16, 32)), (128, CLASSES)),
    "mlp": Net((784,), (), (784, 256, 256, CLASSES)),
    "cnn32": Net((32, 32, 3), ((3, 32), (32, 64), (64, 128)), (2048, 448, CLASSES)),
}
TASKS = ("cnn", "lstm", "mlp", "cnn32")
SIZES = {"lstm": 1280, "mlp": 3200, "cnn32": 320}


def _labelled(X, rng):
    """One-hot labels from a fixed linear map of each sample's flattened (or mean) input."""
    feats = X.mean(axis=1) if X.ndim == 3 else X.reshape(len(X), -1)
    labels = np.argmax(feats @ rng.standard_normal((feats.shape[1], CLASSES)), axis=1)
    return X, np.eye(CLASSES, dtype=np.float32)[labels]


def task_data(task):
    """``(X, Y)`` as NumPy float32 arrays: inputs, one-hot labels."""
    if task == "cnn":
        from sklearn.datasets import load_digits

        images, labels = load_digits(return_X_y=True)
        X = (images[:1792] / 16.0).astype(np.float32).reshape(-1, 8, 8, 1)
        return X, np.eye(CLASSES, dtype=np.float32)[labels[:1792]]
    rng = np.random.default_rng(0)
    if task == "lstm":
        return _labelled(rng.standard_normal((SIZES[task], 20, 8), np.float32), rng)
    X = rng.standard_normal((SIZES[task], *NETS[task].shape), np.float32)
    if task == "cnn32":
        return X, np.eye(CLASSES, dtype=np.float32)[rng.integers(0, CLASSES, len(X))]
    return _labelled(X, rng)


def params_of(task) -> int:
    lstm = 4 * HIDDEN * (8 + HIDDEN + 1) + HIDDEN * CLASSES + CLASSES
    return lstm if task == "lstm" else NETS[task].params


# ---- hand-written JAX ---------------------------------------------------------------------


def conv(x, w, b):
    dn = jax.lax.conv_dimension_numbers(x.shape, w.shape, ("NHWC", "HWIO", "NHWC"))
    return jax.nn.relu(jax.lax.conv_general_dilated(x, w, (1, 1), "SAME", dimension_numbers=dn) + b)


def pool(x):
    return jax.lax.reduce_window(x, -jnp.inf, jax.lax.max, (1, 2, 2, 1), (1, 2, 2, 1), "VALID")


def jax_init(task):
    """He-normal weights, zero biases: ``{"conv": [(w, b)], "dense": [(W, b)]}`` or the LSTM's."""
    keys = iter(jax.random.split(jax.random.key(0), 16))
    he = lambda *s: math.sqrt(2 / math.prod(s[:-1])) * jax.random.normal(next(keys), s)  # noqa: E731
    if task == "lstm":
        lstm = dict(Wi=he(8, 4 * HIDDEN), Wh=he(HIDDEN, 4 * HIDDEN), bl=jnp.zeros(4 * HIDDEN))
        return dict(**lstm, W=he(HIDDEN, CLASSES), b=jnp.zeros(CLASSES))
    net = NETS[task]
    pairs = zip(net.dense, net.dense[1:])
    return dict(
        conv=[(he(3, 3, i, o), jnp.zeros(o)) for i, o in net.convs],
        dense=[(he(a, b), jnp.zeros(b)) for a, b in pairs],
    )


def jax_forward(task, p, x):
    if task == "lstm":
        return _lstm_forward(p, x)
    for w, b in p["conv"]:
        x = pool(conv(x, w, b))
    x = x.reshape(x.shape[0], -1)
    for i, (W, b) in enumerate(p["dense"]):
        x = x @ W + b
        x = jax.nn.relu(x) if i < len(p["dense"]) - 1 else x
    return x


def _lstm_forward(p, x):
    def cell(hc, xt):
        h, c = hc
        i, f, g, o = jnp.split(xt @ p["Wi"] + h @ p["Wh"] + p["bl"], 4, axis=-1)
        c = jax.nn.sigmoid(f) * c + jax.nn.sigmoid(i) * jnp.tanh(g)
        return (jax.nn.sigmoid(o) * jnp.tanh(c), c), None

    zeros = jnp.zeros((x.shape[0], HIDDEN))
    (h, _), _ = jax.lax.scan(cell, (zeros, zeros), jnp.swapaxes(x, 0, 1))
    return h @ p["W"] + p["b"]
