"""The same MLP training step written for each peer library.

Model: in -> h -> relu -> h -> relu -> out (two hidden layers, biases everywhere), float32.
Loss: mean squared error, averaged over batch and outputs, against random normal targets.
(MSE keeps every peer's loss identical with no label encoding to match up; the cost of the
loss is negligible next to the matmuls either way.)
Data: one random normal batch, made with NumPy from a fixed seed, so every peer trains on
the same numbers; the `lax.scan` contender gets `size.scan_steps` such batches stacked.
Optimisers: "sgd" is plain SGD with lr 0.01; "adam" is Adam with lr 1e-3 and default betas.

Each factory `make_*(size, opt)` builds its model, optimiser state and compiled step, and
returns a `Step` whose `run()` performs one training step (the scan contender: `scan_steps`
steps) and returns the loss. Weights are laid out the way each library prefers and are
initialised with each library's own default initialiser (pure JAX: He-normal), since the
timings do not depend on the values.

Third-party peers (equinox, flax, torch) are imported inside their factories, so a missing
package only removes that contender.
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import partial

import jax
import jax.numpy as jnp
import numpy as np
import optax

from benchmarks._harness import Step

SGD_LR = 0.01
ADAM_LR = 1e-3
TORCH_THREADS = 2  # `run.py --torch-threads` changes it


@dataclass(frozen=True)
class Size:
    name: str
    batch: int
    n_in: int
    hidden: int
    n_out: int
    scan_steps: int  # batches per compiled call for the lax.scan contender


SIZES = {
    "tiny": Size("tiny", batch=32, n_in=16, hidden=32, n_out=4, scan_steps=100),
    "small": Size("small", batch=128, n_in=64, hidden=256, n_out=10, scan_steps=100),
    "medium": Size("medium", batch=512, n_in=784, hidden=1024, n_out=10, scan_steps=10),
}

OPTIMISERS = ("sgd", "adam")


def batches(size: Size, n: int = 1, seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    """`n` random batches as float32 NumPy arrays of shape (n, batch, features)."""
    rng = np.random.default_rng(seed)
    x = rng.standard_normal((n, size.batch, size.n_in), dtype=np.float32)
    y = rng.standard_normal((n, size.batch, size.n_out), dtype=np.float32)
    return x, y


def optax_tx(opt: str) -> optax.GradientTransformation:
    if opt == "sgd":
        return optax.sgd(SGD_LR)
    if opt == "adam":
        return optax.adam(ADAM_LR)
    raise ValueError(f"unknown optimiser {opt!r}; expected one of {OPTIMISERS}")


# --------------------------------------------------------------------------- pure JAX


def _init_flat(size: Size, seed: int = 0) -> list[jax.Array]:
    """[W1, b1, W2, b2, W3, b3] with W of shape (in, out), He-normal, zero biases."""
    dims = [size.n_in, size.hidden, size.hidden, size.n_out]
    keys = jax.random.split(jax.random.key(seed), len(dims) - 1)
    params = []
    for key, d_in, d_out in zip(keys, dims[:-1], dims[1:], strict=True):
        w = jax.random.normal(key, (d_in, d_out), jnp.float32) * np.sqrt(2.0 / d_in)
        params += [w, jnp.zeros((d_out,), jnp.float32)]
    return params


def _flat_loss(params: list[jax.Array], x: jax.Array, y: jax.Array) -> jax.Array:
    w1, b1, w2, b2, w3, b3 = params
    h = jax.nn.relu(x @ w1 + b1)
    h = jax.nn.relu(h @ w2 + b2)
    return jnp.mean((h @ w3 + b3 - y) ** 2)


def _flat_update(tx, params, opt_state, x, y):
    loss, grads = jax.value_and_grad(_flat_loss)(params, x, y)
    updates, opt_state = tx.update(grads, opt_state, params)
    return optax.apply_updates(params, updates), opt_state, loss


def make_jax_jit(size: Size, opt: str) -> Step:
    """The baseline: one `jax.jit` call per step, params and optimiser state donated."""
    tx = optax_tx(opt)
    params = _init_flat(size)
    opt_state = tx.init(params)
    x, y = (jnp.asarray(a[0]) for a in batches(size))
    step = jax.jit(partial(_flat_update, tx), donate_argnums=(0, 1))

    def run():
        nonlocal params, opt_state
        params, opt_state, loss = step(params, opt_state, x, y)
        return loss

    return Step(run)


def make_jax_scan(size: Size, opt: str) -> Step:
    """`lax.scan` over `size.scan_steps` stacked batches inside one compiled call."""
    tx = optax_tx(opt)
    params = _init_flat(size)
    opt_state = tx.init(params)
    xs, ys = (jnp.asarray(a) for a in batches(size, size.scan_steps))

    def body(carry, batch):
        params, opt_state, loss = _flat_update(tx, *carry, *batch)
        return (params, opt_state), loss

    @partial(jax.jit, donate_argnums=(0, 1))
    def many_steps(params, opt_state, xs, ys):
        (params, opt_state), losses = jax.lax.scan(body, (params, opt_state), (xs, ys))
        return params, opt_state, losses

    def run():
        nonlocal params, opt_state
        params, opt_state, losses = many_steps(params, opt_state, xs, ys)
        return losses

    return Step(run, steps=size.scan_steps)


# --------------------------------------------------------------------------- Equinox


def make_equinox(size: Size, opt: str) -> Step:
    """`eqx.nn.MLP` (weights (out, in)), vmapped over the batch, `eqx.filter_jit` step.

    Uses `filter_jit`'s default (no donation), as in Equinox's own examples: its donation
    modes would also donate the input batch, which is reused every step here.
    """
    import equinox as eqx

    tx = optax_tx(opt)
    model = eqx.nn.MLP(
        size.n_in,
        size.n_out,
        size.hidden,
        depth=2,
        activation=jax.nn.relu,
        key=jax.random.key(0),
    )
    opt_state = tx.init(eqx.filter(model, eqx.is_inexact_array))
    x, y = (jnp.asarray(a[0]) for a in batches(size))

    def loss_fn(model, x, y):
        return jnp.mean((jax.vmap(model)(x) - y) ** 2)

    @eqx.filter_jit
    def step(model, opt_state, x, y):
        loss, grads = eqx.filter_value_and_grad(loss_fn)(model, x, y)
        updates, opt_state = tx.update(grads, opt_state, eqx.filter(model, eqx.is_inexact_array))
        return eqx.apply_updates(model, updates), opt_state, loss

    def run():
        nonlocal model, opt_state
        model, opt_state, loss = step(model, opt_state, x, y)
        return loss

    return Step(run)


# --------------------------------------------------------------------------- Flax NNX


def make_flax_nnx(size: Size, opt: str) -> Step:
    """`nnx.Linear` layers (kernels (in, out)), `nnx.Optimizer`, `nnx.jit` step mutating
    model and optimiser in place (default graph mode), both donated as flax's docs advise."""
    from flax import nnx

    class MLP(nnx.Module):
        def __init__(self, size: Size, rngs: nnx.Rngs):
            self.l1 = nnx.Linear(size.n_in, size.hidden, rngs=rngs)
            self.l2 = nnx.Linear(size.hidden, size.hidden, rngs=rngs)
            self.l3 = nnx.Linear(size.hidden, size.n_out, rngs=rngs)

        def __call__(self, x):
            x = jax.nn.relu(self.l1(x))
            x = jax.nn.relu(self.l2(x))
            return self.l3(x)

    model = MLP(size, nnx.Rngs(0))
    optimizer = nnx.Optimizer(model, optax_tx(opt), wrt=nnx.Param)
    x, y = (jnp.asarray(a[0]) for a in batches(size))

    @nnx.jit(donate_argnames=("model", "optimizer"))
    def step(model, optimizer, x, y):
        def loss_fn(model):
            return jnp.mean((model(x) - y) ** 2)

        loss, grads = nnx.value_and_grad(loss_fn)(model)
        optimizer.update(model, grads)
        return loss

    def run():
        return step(model, optimizer, x, y)

    return Step(run)


# --------------------------------------------------------------------------- PyTorch


def make_torch(size: Size, opt: str) -> Step:
    """PyTorch eager on CPU, `TORCH_THREADS` (2) threads: `nn.Linear` layers (weights (out, in)).

    "sgd" is the hand-written update `p -= lr * p.grad` under `torch.no_grad()`;
    "adam" is `torch.optim.Adam` with its defaults (on CPU: the per-parameter loop).
    """
    import torch

    torch.set_num_threads(TORCH_THREADS)
    torch.manual_seed(0)
    model = torch.nn.Sequential(
        torch.nn.Linear(size.n_in, size.hidden),
        torch.nn.ReLU(),
        torch.nn.Linear(size.hidden, size.hidden),
        torch.nn.ReLU(),
        torch.nn.Linear(size.hidden, size.n_out),
    )
    params = list(model.parameters())
    x, y = (torch.from_numpy(a[0]) for a in batches(size))
    loss_fn = torch.nn.functional.mse_loss

    if opt == "sgd":

        def run():
            model.zero_grad()
            loss = loss_fn(model(x), y)
            loss.backward()
            with torch.no_grad():
                for p in params:
                    p -= SGD_LR * p.grad
            return loss

    elif opt == "adam":
        optimizer = torch.optim.Adam(params, lr=ADAM_LR)

        def run():
            optimizer.zero_grad()
            loss = loss_fn(model(x), y)
            loss.backward()
            optimizer.step()
            return loss

    else:
        raise ValueError(f"unknown optimiser {opt!r}; expected one of {OPTIMISERS}")

    return Step.eager(run)


# Contender name -> factory. `run.py` puts the baseline first and adds fluxjax contenders.
PEERS = {
    "jax.jit": make_jax_jit,
    "jax lax.scan": make_jax_scan,
    "equinox": make_equinox,
    "flax.nnx": make_flax_nnx,
    "torch eager": make_torch,
}
BASELINE = "jax.jit"
