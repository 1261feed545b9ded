"""``Embedding``: Flux's trainable lookup table, batch first.

Flux's ``(dim, batch…)`` output is ``(batch…, dim)`` here: the feature axis is appended.
Indices count from 0.
"""

from __future__ import annotations

import numbers
from dataclasses import dataclass
from typing import Any

import jax
import jax.numpy as jnp
import numpy as np

from .. import tracker
from ..tracker import Tracked, param, track
from ._checks import sizes
from ._random import _on_device, draw, host_rng
from ._treelike import register


def randn32(key, shape, dtype=jnp.float32):
    """Standard normal initial weights (Flux's ``randn32``), drawn on the host."""
    return _on_device(host_rng(key).standard_normal(shape), dtype)


randn32.on_host = True


@track
def _gather(W, idx):
    return jnp.take(W.T, idx, axis=0, mode="fill", fill_value=jnp.nan)


@track
def _onehot(W, x):
    return x.astype(W.dtype) @ W.T


@dataclass(eq=False, repr=False, init=False)
class Embedding:
    """Embedding(vocab, dim; init=randn32, key=None)
    Embedding(weight)

    A trainable lookup table: ``weight`` is ``(dim, vocab)`` (Flux's layout) and index
    ``i`` (counting from 0) gives column ``weight[:, i]``. Integer input of any shape
    gives ``shape + (dim,)``, a Python int ``(dim,)``; a float or bool array is one-hot
    (or soft) with the vocabulary on its last axis, ``(…, vocab) → (…, dim)``. An index
    outside ``0..vocab-1`` raises ``IndexError`` (in a compiled step, after it).

    >>> import jax.numpy as jnp
    >>> e = Embedding(26, 4)
    >>> e, e(2).shape, e(jnp.array([[3, 1, 20], [14, 4, 15]])).shape
    (Embedding(26, 4), (4,), (2, 3, 4))
    >>> bool((e(jnp.eye(26)[jnp.array([3, 1])]) == e(jnp.array([3, 1]))).all())
    True
    """

    weight: Any

    def __init__(self, vocab, dim=None, *, init=randn32, key=None):
        if hasattr(vocab, "shape") and dim is None:
            weight = vocab if isinstance(vocab, Tracked) else param(vocab)
            if len(weight.shape) != 2:
                raise ValueError(f"Embedding: weight must be (dim, vocab), got {weight.shape}")
        else:
            vocab, dim = sizes("Embedding", vocab=vocab, dim=dim)
            weight = param(draw(init, key, (dim, vocab), jnp.float32))
        self.weight = weight

    def __call__(self, x):
        dim, vocab = self.weight.shape
        if isinstance(x, numbers.Integral) and not isinstance(x, bool):
            x = np.asarray(x, np.int32)
        x = x if hasattr(x, "shape") else np.asarray(x)
        if jnp.issubdtype(x.dtype, jnp.integer):
            _check_indices(self, x, vocab)
            return _gather(self.weight, jnp.asarray(x))
        if len(x.shape) == 0 or x.shape[-1] != vocab:
            raise ValueError(
                f"{self!r}: a float or bool input is one-hot with the vocabulary ({vocab}) on "
                f"its last axis, got shape {tuple(x.shape)}; pass integer indices otherwise"
            )
        return _onehot(self.weight, x)

    def __repr__(self):
        dim, vocab = self.weight.shape
        return f"Embedding({vocab}, {dim})"


def _check_indices(layer, x, vocab):
    """Every index in ``0..vocab-1``: at once when known, else checked after the step."""
    message = f"{layer!r}: an index is out of range; indices run from 0 to {vocab - 1}"
    x = tracker.data(x)
    if isinstance(x, jax.core.Tracer):
        tracker.check(((x >= 0) & (x < vocab)).all(), message, IndexError)
        return
    x = np.asarray(x)
    if x.size and (x.min() < 0 or x.max() >= vocab):
        bad = x[(x < 0) | (x >= vocab)].ravel()[0]
        raise IndexError(f"{message}, got {bad}")


register(Embedding)


register(Embedding)
