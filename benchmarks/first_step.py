"""Time to first step: what a new user waits for in a fresh Python process.

    python -m benchmarks.first_step                  # 5 fresh processes, label "before"
    python -m benchmarks.first_step --label after --samples 7
    python -m benchmarks.first_step --child          # one sample, printed as JSON

Every sample is a new interpreter (`subprocess`), so nothing is cached in memory (JAX's
persistent compilation cache is off unless the user turns it on). The child runs the seed's
model-building page, phase by phase, each phase waited on (`jax.block_until_ready`):

    import jax / import fluxjax / jax.devices() (the backend starts)
    m = Chain(Dense(10, 5, σ), Dense(5, 2), softmax)
    loss(x, y) = sum((m(x) - y) ** 2)      x, y = rand(10), rand(2)
    l = loss(x, y); back_(l); update_(p, -0.1 * grad(p)) for p in params(m)   (twice)
    train_(loss, params(m), [(x, y)], Descent(0.1))                             (twice)

The parent reports the median, fastest and slowest sample of each phase and of the whole
process (interpreter start to exit, timed from outside).
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent


def _child() -> dict[str, float]:
    """One sample: seconds per phase, in order."""
    t, phases = time.perf_counter(), {}

    def mark(name):
        nonlocal t
        now = time.perf_counter()
        phases[name] = now - t
        t = now

    import jax

    mark("import jax")
    import numpy as np

    import fluxjax as fj

    mark("import fluxjax")
    jax.devices()
    mark("backend start (jax.devices())")
    m = fj.Chain(fj.Dense(10, 5, fj.σ), fj.Dense(5, 2), fj.softmax)
    jax.block_until_ready([p.data for p in fj.params(m)])
    mark("build Chain(Dense(10, 5, σ), Dense(5, 2), softmax)")
    rng = np.random.default_rng(0)
    x, y = rng.random(10, np.float32), rng.random(2, np.float32)

    def loss(x, y):
        return ((m(x) - y) ** 2).sum()

    for n in ("first", "second"):
        l = loss(x, y)
        mark(f"{n} loss(x, y) (recorded)")
        fj.back_(l)
        jax.block_until_ready([p.grad for p in fj.params(m)])
        mark(f"{n} back_(l)")
        for p in fj.params(m):
            fj.update_(p, -0.1 * fj.grad(p))
        jax.block_until_ready([p.data for p in fj.params(m)])
        mark(f"{n} update_ of every param")
    opt = fj.Descent(0.1)
    for n in ("first", "second"):
        fj.train_(loss, fj.params(m), [(x, y)], opt, progress=False)
        jax.block_until_ready([p.data for p in fj.params(m)])
        mark(f"{n} train_ call (one step)")
    return phases


def sample() -> dict[str, float]:
    """Run one fresh child process; its phases plus the whole process's wall time."""
    t0 = time.perf_counter()
    proc = subprocess.run(
        [sys.executable, "-m", "benchmarks.first_step", "--child"],
        cwd=ROOT,
        capture_output=True,
        text=True,
        check=False,
        env=dict(os.environ, PYTHONPATH=str(ROOT)),
    )
    wall = time.perf_counter() - t0
    if proc.returncode != 0:
        raise RuntimeError(f"child failed ({proc.returncode}):\n{proc.stderr[-3000:]}")
    phases = json.loads(proc.stdout.strip().splitlines()[-1])
    return dict(phases, **{"whole process (outside view)": wall})


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--child", action="store_true", help="run one sample, print JSON")
    parser.add_argument("--samples", type=int, default=5)
    parser.add_argument("--label", default="before")
    parser.add_argument("--write", action=argparse.BooleanOptionalAction, default=True)
    args = parser.parse_args(argv)
    if args.child:
        print(json.dumps(_child()))
        return 0
    from benchmarks._seed_report import save_run, write_section
    from benchmarks.run import environment

    env = dict(environment(), load_before=os.getloadavg()[0], label=args.label)
    t0 = time.perf_counter()
    samples = []
    for i in range(args.samples):
        samples.append(sample())
        print(f"sample {i + 1}: {samples[-1]['whole process (outside view)']:.2f} s", flush=True)
    env.update(load_after=os.getloadavg()[0], seconds=time.perf_counter() - t0)
    phases = {
        k: dict(
            median=statistics.median(s[k] for s in samples),
            best=min(s[k] for s in samples),
            worst=max(s[k] for s in samples),
        )
        for k in samples[0]
    }
    for k, v in phases.items():
        print(f"{v['median']:8.3f} s  {k}")
    if args.write:
        run = dict(env=env, samples=len(samples), phases=phases)
        write_section("first_step", save_run("first_step", args.label, run))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
