"""The contenders of `epochs.py`: each `make(task)` returns a `Step` whose `run()` trains
one epoch of the workload (`_workloads.py`) with Adam (lr 1e-3) and returns something to
wait on. Hand-written JAX, fluxjax's `train_` in both styles and each strategy, Equinox,
Flax NNX and PyTorch eager on 1 and 2 threads."""

from __future__ import annotations

import os
import sys

import jax
import jax.numpy as jnp
import optax

import fluxjax as fj
from benchmarks import _workload_models as models
from benchmarks._harness import Step
from benchmarks._workloads import B, jax_forward, jax_init, task_data

LR = 1e-3
BASELINE = "jax.jit loop"


def _xent(logits, y):
    return optax.softmax_cross_entropy(logits, y).mean()


def _device_batches(task):
    X, Y = task_data(task)
    return [(jnp.asarray(X[i : i + B]), jnp.asarray(Y[i : i + B])) for i in range(0, len(X), B)]


# ---- hand-written JAX ---------------------------------------------------------------------


def _jax_step(task, tx):
    def step(p, s, x, y):
        l, g = jax.value_and_grad(lambda p: _xent(jax_forward(task, p, x), y))(p)
        u, s = tx.update(g, s, p)
        return optax.apply_updates(p, u), s, l

    return step


def _stepping(step, state, batches):
    """An epoch as a Python loop of ``step(params, opt_state, x, y) -> (params, opt_state,
    loss)`` over ``batches``, ``state`` updated in place; the last loss."""

    def run():
        for x, y in batches:
            state[0], state[1], l = step(*state, x, y)
        return l

    return Step(run, steps=len(batches))


def make_jax_loop(task):
    tx, batches = optax.adam(LR), _device_batches(task)
    p = jax_init(task)
    state = [p, tx.init(p)]
    step = jax.jit(_jax_step(task, tx), donate_argnums=(0, 1))

    return _stepping(step, state, batches)


def make_jax_scan(task):
    tx, batches = optax.adam(LR), _device_batches(task)
    xs, ys = jnp.stack([x for x, _ in batches]), jnp.stack([y for _, y in batches])
    p = jax_init(task)
    state = [p, tx.init(p)]
    step = _jax_step(task, tx)

    @jax.jit
    def epoch(p, s, xs, ys):
        def body(carry, xy):
            p, s, l = step(*carry, *xy)
            return (p, s), l

        (p, s), ls = jax.lax.scan(body, (p, s), (xs, ys))
        return p, s, ls

    def run():
        state[0], state[1], ls = epoch(*state, xs, ys)
        return ls

    return Step(run, steps=len(batches))


# ---- fluxjax ------------------------------------------------------------------------------


def make_fluxjax(task, strategy="auto", explicit=False):
    m, loader = models.fluxjax_model(task), fj.DataLoader(task_data(task), B)

    def loss(model, x, y):
        if task == "lstm":
            fj.reset_(model)
        return fj.logitcrossentropy(model(x), y)

    if explicit:  # modern Flux: train_(loss, model, data, setup(opt, model))
        args = (loss, m, loader, fj.setup(fj.ADAM(LR), m))
    else:  # Flux v0.9: train_(loss, params(model), data, opt)
        args = (lambda x, y: loss(m, x, y), fj.params(m), loader, fj.ADAM(LR))
    run = lambda: fj.train_(*args, progress=False, strategy=strategy)  # noqa: E731
    return Step(run, steps=len(loader))


def make_jax_scan_fluxjax_model(task):
    """Diagnostic (not run by default): ``make_jax_scan``'s epoch over fluxjax's model as a
    plain pytree, its params differentiated (Adam on them only) and its other leaves
    passed along, with ``make_fluxjax``'s loss: ``train_`` less this is its machinery's
    cost, this less ``make_jax_scan`` the model's."""
    m, tx, batches = models.fluxjax_model(task), optax.adam(LR), _device_batches(task)
    xs, ys = jnp.stack([x for x, _ in batches]), jnp.stack([y for _, y in batches])
    leaves, treedef = jax.tree.flatten(m)
    trained = {id(p.data) for p in fj.params(m)}
    mask = [id(v) in trained for v in leaves]
    p, rest = [v for v, k in zip(leaves, mask) if k], [v for v, k in zip(leaves, mask) if not k]

    def loss(p, rest, x, y):
        ps, others = iter(p), iter(rest)
        model = jax.tree.unflatten(treedef, [next(ps) if k else next(others) for k in mask])
        if task == "lstm":
            fj.reset_(model)
        return fj.logitcrossentropy(model(x), y)

    @jax.jit
    def epoch(p, s, rest, xs, ys):
        def body(carry, xy):
            p, s = carry
            l, g = jax.value_and_grad(loss)(p, rest, *xy)
            u, s = tx.update(g, s, p)
            return (optax.apply_updates(p, u), s), l

        (p, s), ls = jax.lax.scan(body, (p, s), (xs, ys))
        return p, s, ls

    state = [p, tx.init(p)]

    def run():
        state[0], state[1], ls = epoch(*state, rest, xs, ys)
        return ls

    return Step(run, steps=len(batches))


# ---- Equinox, Flax NNX, PyTorch -----------------------------------------------------------


def make_equinox(task):
    import equinox as eqx

    model, one = models.equinox_model(task)
    tx, batches = optax.adam(LR), _device_batches(task)
    state = [model, tx.init(eqx.filter(model, eqx.is_inexact_array))]

    @eqx.filter_jit
    def step(m, s, x, y):
        l, g = eqx.filter_value_and_grad(lambda m: _xent(jax.vmap(lambda v: one(m, v))(x), y))(m)
        u, s = tx.update(g, s, eqx.filter(m, eqx.is_inexact_array))
        return eqx.apply_updates(m, u), s, l

    return _stepping(step, state, batches)


def make_flax_nnx(task):
    from flax import nnx

    model, batches = models.nnx_model(task), _device_batches(task)
    opt = nnx.Optimizer(model, optax.adam(LR), wrt=nnx.Param)

    @nnx.jit(donate_argnames=("model", "opt"))
    def step(model, opt, x, y):
        l, g = nnx.value_and_grad(lambda m: _xent(m(x), y))(model)
        opt.update(model, g)
        return l

    def run():
        for x, y in batches:
            l = step(model, opt, x, y)
        return l

    return Step(run, steps=len(batches))


def make_torch(task, threads):
    """PyTorch eager on ``threads`` threads (set at every epoch: both settings interleave).
    OpenMP threads wait passively (``OMP_WAIT_POLICY=PASSIVE`` unless set): on a shared
    machine spinning threads made a 2-thread epoch up to 20× slower than a 1-thread one."""
    os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")  # read when torch is first imported
    import torch

    model, forward, to_torch = models.torch_model(task)
    X, Y = task_data(task)
    labels = torch.from_numpy(Y.argmax(1))
    batches = [(to_torch(X[i : i + B]), labels[i : i + B]) for i in range(0, len(X), B)]
    opt = torch.optim.Adam(model.parameters(), lr=LR)

    def run():
        torch.set_num_threads(threads)
        for x, y in batches:
            opt.zero_grad()
            l = torch.nn.functional.cross_entropy(forward(x), y)
            l.backward()
            opt.step()
        return l

    return Step.eager(run, steps=len(batches))


CONTENDERS = {
    BASELINE: make_jax_loop,
    "jax lax.scan": make_jax_scan,
    "fluxjax train_": make_fluxjax,
    "fluxjax explicit train_": lambda task: make_fluxjax(task, explicit=True),
    "train_ step": lambda task: make_fluxjax(task, "step"),
    "train_ scan": lambda task: make_fluxjax(task, "scan"),
    "equinox": make_equinox,
    "flax nnx": make_flax_nnx,
    "torch, 1 thread": lambda task: make_torch(task, 1),
    "torch, 2 threads": lambda task: make_torch(task, 2),
}


DIAGNOSTICS = {"jax lax.scan, fluxjax model": make_jax_scan_fluxjax_model}
"""Contenders ``build`` knows but ``epochs.py`` does not run: name them to time them."""


# XLA:CPU runs the ~1M-param CNN's step inside a rolled `lax.scan` ~40× slower than per
# call (one epoch of 20 batches: 140 s against 3.5 s, measured once): not run by default.
SKIP = {"cnn32": ("jax lax.scan", "train_ scan")}


def build(task, names, skip=True):
    """name -> `Step` for each of ``names`` whose library imports (the others are skipped)."""
    steps = {}
    for name in names:
        if skip and name in SKIP.get(task, ()):
            print(f"  skipped {name} for {task} (SKIP: too slow on XLA:CPU)", file=sys.stderr)
            continue
        try:
            steps[name] = {**CONTENDERS, **DIAGNOSTICS}[name](task)
        except ImportError as err:
            print(f"  skipped {name}: {type(err).__name__}: {err}", file=sys.stderr)
    return steps
