"""fluxjax's ways of training the benchmark MLP, registered for `benchmarks/run.py`.

Same model, data, loss and optimisers as the peers in `_peers.py`:
`Chain(Dense(in, h, relu), Dense(h, h, relu), Dense(h, out))`, `mse`, `Descent(0.01)` for
"sgd" and `ADAM(1e-3)` for "adam".

- "fluxjax train_": one `train_` call over `PER_CALL` copies of the batch given as a plain
  list, i.e. the per-step compiled path (one compiled call per batch), timed per step.
- "fluxjax train_ scan": one `train_` call over a `DataLoader` of `size.scan_steps`
  batches in memory: the whole-epoch `lax.scan` path, timed per step.
- "fluxjax eager": the seed's loop, `l = loss(x, y); back_(l)` then
  `update_(p, -η * grad(p))` for every param (SGD) or `update_(opt, ps, grads)` (Adam).
- "fluxjax.jit": the same seed-style SGD step wrapped in `fluxjax.jit` (SGD only: an
  optimiser's state lives outside the params, so the Adam form is `train_`'s job).
"""

from __future__ import annotations

import jax.numpy as jnp

import fluxjax as fj
from benchmarks._harness import Step
from benchmarks._peers import ADAM_LR, SGD_LR, Size, batches

PER_CALL = {"tiny": 100, "small": 50, "medium": 5}


def _model(size: Size):
    fj.seed(0)
    return fj.Chain(
        fj.Dense(size.n_in, size.hidden, fj.relu),
        fj.Dense(size.hidden, size.hidden, fj.relu),
        fj.Dense(size.hidden, size.n_out),
    )


def _optimiser(opt: str):
    return fj.Descent(SGD_LR) if opt == "sgd" else fj.ADAM(ADAM_LR)


def _batch(size: Size):
    x, y = batches(size)
    return jnp.asarray(x[0]), jnp.asarray(y[0])


def make_train(size: Size, opt: str) -> Step:
    m, optimiser = _model(size), _optimiser(opt)
    x, y = _batch(size)
    ps, data = fj.params(m), [(x, y)] * PER_CALL[size.name]

    def loss(x, y):
        return fj.mse(m(x), y)

    return Step(lambda: fj.train_(loss, ps, data, optimiser, progress=False), steps=len(data))


def make_train_scan(size: Size, opt: str) -> Step:
    m, optimiser = _model(size), _optimiser(opt)
    xs, ys = batches(size, size.scan_steps)
    loader = fj.DataLoader((xs.reshape(-1, size.n_in), ys.reshape(-1, size.n_out)), size.batch)
    ps = fj.params(m)

    def loss(x, y):
        return fj.mse(m(x), y)

    return Step(lambda: fj.train_(loss, ps, loader, optimiser, progress=False), size.scan_steps)


def _seed_step(size: Size, opt: str):
    m = _model(size)
    x, y = _batch(size)
    ps = list(fj.params(m))
    optimiser = _optimiser(opt)

    def step():
        l = fj.mse(m(x), y)
        fj.back_(l)
        if opt == "sgd":
            for p in ps:
                fj.update_(p, -SGD_LR * fj.grad(p))
        else:
            fj.update_(optimiser, ps, [p.grad for p in ps])
        return l.data

    return step


def make_eager(size: Size, opt: str) -> Step:
    return Step(_seed_step(size, opt))


def make_jit(size: Size, opt: str) -> Step | None:
    return Step(fj.jit(_seed_step(size, opt))) if opt == "sgd" else None


CONTENDERS = {
    "fluxjax train_": make_train,
    "fluxjax train_ scan": make_train_scan,
    "fluxjax eager": make_eager,
    "fluxjax.jit": make_jit,
}
