"""The warm call paths of the core, timed before and after a change, paired.

    python -m benchmarks.paired_paths --before DIR [--after DIR] [--pairs 3]

``DIR`` is a checkout holding ``fluxjax/`` and ``benchmarks/`` (e.g. ``git archive`` of the
old commit). Each pair runs one process per checkout, in alternating order, so both see
the same machine load. Each process times, in CPU time (``time.process_time``: time spent
waiting for a core is not counted), the fastest of 5 blocks of each path after 3 warm-up
calls:

- the seed's eager loop (``back_`` then ``update_`` per param) at tiny;
- ``gradient(() -> loss, ps)``, ``forward(() -> loss, ps)``;
- ``gradient(f, x)`` of a plain function and ``gradient(f, model)`` of a model with state
  (the bridge);
- ``train_`` compiled over a list of 50 batches, over a ``DataLoader`` of 50 batches, and
  eagerly (``jit=False``, 10 batches), per step;
- a ``fluxjax.jit`` step (``back_`` and ``update_`` inside);
- the seed's three idioms (``gradient`` then ``update_(p, -η * gs[p])``, ``gradient`` then
  ``update_(opt, ps, gs)``, ``back_`` then ``update_(p, -η * grad(p))``) at tiny and small,
  a block of steps ending on every ``p.data``, so pending updates are timed too (written
  here, so both checkouts run the same code).

The table gives the median over pairs of each side (µs per call or step) and the
after/before ratio.
"""

from __future__ import annotations

import argparse
import json
import statistics
import subprocess
import sys
from pathlib import Path

JIT_STEP = r"""
import numpy as np
import fluxjax as fj

def jit_step(rng):  # the fluxjax.jit row: back_ and update_ inside the compiled step
    W = fj.param(rng.normal(size=(16,)).astype(np.float32))

    @fj.jit
    def jitted(a):
        l = (W * a).sum()
        fj.back_(l)
        fj.update_(W, -0.1 * fj.grad(W))
        return l

    return jitted
"""
"""The ``fluxjax.jit`` row's step, shared with ``instructions.py``'s child."""

CHILD = (
    JIT_STEP
    + r"""
import json, time
import jax, jax.numpy as jnp, numpy as np
import fluxjax as fj
from benchmarks import _peers
from benchmarks._fluxjax_contenders import make_eager

def best(fn, n, per=1, rounds=5, sync=lambda r: r):
    for _ in range(3):
        jax.block_until_ready(sync(fn()))
    blocks = []
    for _ in range(rounds):
        t = time.process_time()
        for _ in range(n):
            r = fn()
        jax.block_until_ready(sync(r))
        blocks.append((time.process_time() - t) / n / per * 1e6)
    return min(blocks)

rng, out = np.random.default_rng(0), {}
step = make_eager(_peers.SIZES["tiny"], "sgd")
out["back_ + update_ loop, tiny"] = best(step.run, 50, per=step.steps)
m = fj.Chain(fj.Dense(8, 16, fj.tanh), fj.Dense(16, 2))
ps = fj.params(m)
x = jnp.asarray(rng.normal(size=(32, 8)), jnp.float32)
y = jnp.asarray(rng.normal(size=(32, 2)), jnp.float32)
loss = lambda: fj.mse(m(x), y)
out["gradient(() -> loss, ps)"] = best(lambda: fj.gradient(loss, ps)[m[0].W], 100)
out["forward(() -> loss, ps)"] = best(lambda: fj.forward(loss, ps)[0], 100)
v = jnp.ones(16)
out["gradient(f, x)"] = best(lambda: fj.gradient(lambda u: (fj.numpy.tanh(u) ** 2).sum(), v)[0], 10)
bn = fj.Chain(fj.Dense(8, 16), fj.BatchNorm(16), fj.Dense(16, 2))
grad_bn = lambda: jax.tree.leaves(fj.gradient(lambda mm: fj.mse(mm(x), y), bn))[0]
out["gradient(f, model with state)"] = best(grad_bn, 5)
lf, opt = (lambda a, b: fj.mse(m(a), b)), fj.Descent(0.01)
data = [(x, y)] * 50
out["train_ over a list, per step"] = best(lambda: fj.train_(lf, ps, data, opt), 4, per=50)
xs = np.asarray(rng.normal(size=(1600, 8)), np.float32)
ys = np.asarray(rng.normal(size=(1600, 2)), np.float32)
loader = fj.DataLoader((xs, ys), batchsize=32)
out["train_ over a DataLoader, per step"] = best(lambda: fj.train_(lf, ps, loader, opt), 4, per=50)
eager = lambda: fj.train_(lf, ps, data[:10], opt, jit=False)
out["train_(jit=False), per step"] = best(eager, 1, per=10)
jitted = jit_step(rng)
out["fluxjax.jit step"] = best(lambda: jitted(v), 100)

def seed_forms(size):  # the seed's three idioms, as benchmarks/seed_idioms.py writes them
    eta = 0.01
    sm = fj.Chain(fj.Dense(size.n_in, size.hidden, fj.relu),
                  fj.Dense(size.hidden, size.hidden, fj.relu), fj.Dense(size.hidden, size.n_out))
    sx = jnp.asarray(rng.normal(size=(size.batch, size.n_in)), jnp.float32)
    sy = jnp.asarray(rng.normal(size=(size.batch, size.n_out)), jnp.float32)
    sps, sopt = fj.params(sm), fj.Descent(eta)

    def by_param():
        gs = fj.gradient(lambda: fj.mse(sm(sx), sy), sps)
        for p in sps:
            fj.update_(p, -eta * gs[p])
        return sps

    def by_opt():
        gs = fj.gradient(lambda: fj.mse(sm(sx), sy), sps)
        fj.update_(sopt, sps, gs)
        return sps

    def by_back():
        l = fj.mse(sm(sx), sy)
        fj.back_(l)
        for p in sps:
            fj.update_(p, -eta * fj.grad(p))
        return sps

    return {"gradient + update_(p)": by_param, "gradient + update_(opt)": by_opt,
            "back_ + update_(p)": by_back}

for name, n in (("tiny", 50), ("small", 10)):
    for form, fn in seed_forms(_peers.SIZES[name]).items():
        out[f"seed {form}, {name}"] = best(fn, n, sync=lambda ps: [p.data for p in ps])
print(json.dumps(out))
"""
)


def _run(root: Path) -> dict:
    env = {"PYTHONPATH": str(root), "PATH": "/usr/bin:/bin", "JAX_PLATFORMS": "cpu"}
    done = subprocess.run(
        [sys.executable, "-c", CHILD], cwd=root, env=env, capture_output=True, text=True
    )
    if done.returncode:
        raise SystemExit(f"{root}: the timing process failed:\n{done.stderr[-3000:]}")
    return json.loads(done.stdout.strip().splitlines()[-1])


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--before", required=True, type=Path)
    parser.add_argument("--after", default=Path(__file__).resolve().parents[1], type=Path)
    parser.add_argument("--pairs", type=int, default=3)
    args = parser.parse_args(argv)
    sides = {"before": args.before.resolve(), "after": args.after.resolve()}
    runs: dict = {"before": [], "after": []}
    for i in range(args.pairs):
        for side in list(sides) if i % 2 == 0 else list(reversed(sides)):
            runs[side].append(_run(sides[side]))
            print(side, runs[side][-1], file=sys.stderr, flush=True)
    print("| path (CPU µs per call or step) | before | after | after / before |")
    print("|---|---:|---:|---:|")
    for key in runs["before"][0]:
        b, a = (statistics.median(r[key] for r in runs[s]) for s in ("before", "after"))
        print(f"| {key} | {b:,.1f} | {a:,.1f} | {a / b:.2f} |")


if __name__ == "__main__":
    main()
