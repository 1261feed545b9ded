"""The seed's own idioms, timed against PyTorch eager and a hand-written `jax.jit` step.

    python -m benchmarks.seed_idioms                    # label "before"; writes README + JSON
    python -m benchmarks.seed_idioms --label after      # a second column, same method
    python -m benchmarks.seed_idioms --quick --no-write # a fast look

Three measurements, each in this one process (issue 14, "Benchmark"):

1. **One SGD step** (lr 0.01) of the benchmark MLP (in→h→relu→h→relu→out, MSE) at tiny and
   small, written the ways a reader of the seed writes it, next to PyTorch eager and the
   `jax.jit` step of `_peers.py`, interleaved with `_harness.interleave`, medians:
   - `gs = gradient(lambda: mse(m(x), y), ps)` then `update_(p, -η * gs[p])` per param
     (the lambda is written inside the loop, as in the seed; a step returns `gs` and a
     block ends waiting on every `p.data`, so each `update_` is added inside the next
     step's compiled call, as in a real loop, and the last one is timed too);
   - the same `gradient`, then `update_(opt, ps, gs)` with `opt = Descent(η)`;
   - `l = mse(m(x), y); back_(l)` then `update_(p, -η * grad(p))` per param;
   - `train_` per step (one call over 100 / 50 copies of the batch, time per step);
   - the `back_` loop's floor in plain JAX (`_jax_seed_shaped`): a jitted `value_and_grad`,
     the loss read on the host, six eager `-η * g` and six eager `p + d`.
2. **`train_` called again and again**: 10 calls of `train_(loss, params(m), data, ADAM())`
   over 10 tiny batches (a new `ADAM()` and a new `Params` each call: Flux's
   `for epoch in 1:10` habit), the same with a new loss lambda each call, with one reused
   optimiser, against one call with `epochs=10`; every form has run once before (so the
   first compile is not timed), then a few interleaved rounds, median seconds for 100 steps.
3. **Building** `Chain(Dense(10, 5, σ), Dense(5, 2), softmax)` again (shapes seen before)
   and with a new input size each time (`Dense(n, 5, σ)`, n never seen in this process).
   The fresh-process figure is `first_step.py`'s.
"""

from __future__ import annotations

import argparse
import itertools
import os
import time

import jax
import jax.numpy as jnp
import numpy as np

import fluxjax as fj
from benchmarks import _peers
from benchmarks._fluxjax_contenders import _batch, _model, make_eager, make_train
from benchmarks._harness import Result, Step, interleave
from benchmarks._seed_report import save_run, write_section
from benchmarks.run import environment

ETA = _peers.SGD_LR
SIZES = ("tiny", "small")
SCHEDULE = {"tiny": (30, 0.1), "small": (25, 0.2)}  # rounds, seconds per block
QUICK = {"tiny": (3, 0.05), "small": (3, 0.05)}


def _gradient_loop(size: _peers.Size, with_opt: bool) -> Step:
    m, (x, y) = _model(size), _batch(size)
    ps, opt = fj.params(m), fj.Descent(ETA)

    def run():
        gs = fj.gradient(lambda: fj.mse(m(x), y), ps)
        if with_opt:
            fj.update_(opt, ps, gs)
        else:
            for p in ps:
                fj.update_(p, -ETA * gs[p])
        return gs

    # A step returns its gradients: reading every p.data would settle each pending update_
    # on its own (one dispatch per param) instead of in the next step's compiled call. A
    # block waits on the params themselves, so its last step's updates are timed too.
    return Step(run, sync=lambda _: jax.block_until_ready([p.data for p in ps]))


def _torch(size: _peers.Size, threads: int) -> Step:
    """PyTorch eager (`_peers.make_torch`, SGD) on `threads` threads, set at every step."""
    import torch

    step = _peers.make_torch(size, "sgd")

    def run():
        torch.set_num_threads(threads)
        return step.run()

    return Step.eager(run)


def _jax_seed_shaped(size: _peers.Size) -> Step:
    """The seed's loop written in plain JAX, the floor under fluxjax's `back_` loop: one
    `jax.jit(value_and_grad)` call, the loss read on the host (as `back_` reads it to
    raise on NaN), then the user's six eager `-η * g` and six eager `p + d`. fluxjax does
    the same JAX work minus the six adds (each `update_` is added inside the next step's
    compiled call), so neither fluxjax nor any library built on a JAX array per `grad(p)`
    can run this idiom in fewer dispatches."""

    params = _peers._init_flat(size)
    x, y = (jnp.asarray(a[0]) for a in _peers.batches(size))
    value_and_grad = jax.jit(jax.value_and_grad(_peers._flat_loss))

    def run():
        nonlocal params
        loss, gs = value_and_grad(params, x, y)
        if not np.isfinite(float(loss)):
            raise FloatingPointError(loss)
        params = [p + (-ETA * g) for p, g in zip(params, gs)]
        return loss

    return Step(run, sync=lambda _: jax.block_until_ready(params))


IDIOMS = {
    "gradient + update_(p, -η·gs[p])": lambda s: _gradient_loop(s, with_opt=False),
    "gradient + update_(opt, ps, gs)": lambda s: _gradient_loop(s, with_opt=True),
    "back_ loop": lambda s: make_eager(s, "sgd"),
    "train_ per step": lambda s: make_train(s, "sgd"),
    "torch eager": lambda s: _torch(s, 1),
    "torch eager, 2 threads": lambda s: _torch(s, 2),
    "jax.jit": lambda s: _peers.make_jax_jit(s, "sgd"),
    "jax, the seed's loop by hand": _jax_seed_shaped,
}


def time_steps(size_name: str, rounds: int, block_s: float) -> dict[str, Result]:
    size = _peers.SIZES[size_name]
    return interleave({k: make(size) for k, make in IDIOMS.items()}, rounds=rounds, block_s=block_s)


# --------------------------------------------------------------------------- train_ calls


def _train_forms() -> dict[str, callable]:
    size = _peers.SIZES["tiny"]
    m = _model(size)
    xs, ys = _peers.batches(size, 10)
    data = [(jnp.asarray(a), jnp.asarray(b)) for a, b in zip(xs, ys, strict=True)]
    kept = fj.ADAM()

    def loss(x, y):
        return fj.mse(m(x), y)

    def ten(new_lambda=False, new_opt=True):
        for _ in range(10):
            f = (lambda x, y: fj.mse(m(x), y)) if new_lambda else loss
            fj.train_(f, fj.params(m), data, fj.ADAM() if new_opt else kept, progress=False)

    return {
        "10 × train_(loss, params(m), data, ADAM())": ten,
        "10 × train_(new lambda, params(m), data, ADAM())": lambda: ten(new_lambda=True),
        "10 × train_(loss, params(m), data, opt) (one opt)": lambda: ten(new_opt=False),
        "1 × train_(loss, ps, data, opt, epochs=10)": lambda: fj.train_(
            loss, fj.params(m), data, kept, epochs=10, progress=False
        ),
    }


def _rotated(names: list[str], rounds: int):
    for r in range(rounds):
        k = r % len(names)
        yield from names[k:] + names[:k]


def time_train_calls(rounds: int, block_s: float = 0.3) -> dict[str, Result]:
    """Seconds per form (100 steps each), after one untimed call of every form.

    In each round a form runs K times in a row (K = 1 for a form slower than `block_s`,
    else about `block_s` worth of calls, from its last round) and the mean is one sample.
    """
    forms = _train_forms()
    calls = {}
    for name, f in forms.items():
        t0 = time.perf_counter()
        f()
        calls[name] = max(1, round(block_s / (time.perf_counter() - t0)))
    out = {k: Result() for k in forms}
    for name in _rotated(list(forms), rounds):
        t0 = time.perf_counter()
        for _ in range(calls[name]):
            forms[name]()
        seconds = (time.perf_counter() - t0) / calls[name]
        out[name].samples.append(seconds)
        calls[name] = max(1, round(block_s / seconds))
    return out


# --------------------------------------------------------------------------- building


def _chain(n_in: int = 10):
    c = fj.Chain(fj.Dense(n_in, 5, fj.σ), fj.Dense(5, 2), fj.softmax)
    return [p.data for p in fj.params(c)]


def time_build(rounds: int, new_shapes: int) -> dict[str, Result]:
    """µs per build: repeated shapes (harness medians), and new input sizes (one each)."""
    _chain()
    res = interleave({"same shapes": Step(_chain)}, rounds=rounds, block_s=0.05)
    fresh = Result()
    for n in itertools.islice(itertools.count(1000), new_shapes):
        t0 = time.perf_counter()
        jax.block_until_ready(_chain(n))
        fresh.samples.append(1e6 * (time.perf_counter() - t0))
    res["new input size"] = fresh
    return res


# --------------------------------------------------------------------------- CLI


def _summary(res: dict[str, Result]) -> dict[str, dict]:
    return {
        k: dict(median=r.median, best=r.best, spread=r.spread, n=len(r.samples), samples=r.samples)
        for k, r in res.items()
    }


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--label", default="before", help="column name of this run")
    parser.add_argument("--sizes", default=",".join(SIZES))
    parser.add_argument("--rounds", type=int, default=None, help="rounds of the step table")
    parser.add_argument("--train-rounds", type=int, default=4)
    parser.add_argument("--quick", action="store_true", help="few rounds, short blocks")
    parser.add_argument("--write", action=argparse.BooleanOptionalAction, default=None)
    args = parser.parse_args(argv)
    write = (not args.quick) if args.write is None else args.write
    env = dict(environment(), load_before=os.getloadavg()[0], label=args.label)
    t0 = time.perf_counter()
    run = dict(env=env, steps={})
    for name in args.sizes.split(","):
        rounds, block_s = (QUICK if args.quick else SCHEDULE)[name]
        rounds = args.rounds or rounds
        run["steps"][name] = _summary(time_steps(name, rounds, block_s))
        run["steps"][name]["_schedule"] = dict(rounds=rounds, block_s=block_s)
        print(
            name,
            {
                k: round(v["median"], 1)
                for k, v in run["steps"][name].items()
                if not k.startswith("_")
            },
            flush=True,
        )
    run["train_calls"] = _summary(time_train_calls(1 if args.quick else args.train_rounds))
    print({k: round(v["median"], 2) for k, v in run["train_calls"].items()}, flush=True)
    run["build"] = _summary(time_build(3 if args.quick else 15, 2 if args.quick else 5))
    print({k: round(v["median"], 1) for k, v in run["build"].items()}, flush=True)
    env.update(load_after=os.getloadavg()[0], seconds=time.perf_counter() - t0)
    if write:
        write_section("seed_idioms", save_run("seed_idioms", args.label, run))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
