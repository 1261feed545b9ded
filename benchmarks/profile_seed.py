"""Where one step of a seed idiom spends its time, at the public API's boundaries.

    python -m benchmarks.profile_seed                        # back_ loop, tiny: phases
    python -m benchmarks.profile_seed --idiom gradient --tool cprofile
    python -m benchmarks.profile_seed --idiom back --tool pyinstrument --size small

Idioms (SGD, lr 0.01, the benchmark MLP of `_peers.py`):

- `back`: `l = mse(m(x), y)`, `back_(l)`, `d = -η * grad(p)` for each param, then
  `update_(p, d)` for each param;
- `gradient`: `gs = gradient(lambda: mse(m(x), y), ps)`, `d = -η * gs[p]`, `update_(p, d)`;
- `gradient_opt`: the same `gradient`, then `update_(Descent(η), ps, gs)`.

`--tool phases` times each phase with `time.perf_counter` over `--steps` steps (the
garbage collector off, after a warm-up) and prints medians and the 10th/90th percentiles;
`cprofile` and `pyinstrument` profile the whole loop. Only public names are called, so the
script measures any version of fluxjax.
"""

from __future__ import annotations

import argparse
import cProfile
import gc
import io
import pstats
import statistics
import time

import fluxjax as fj
from benchmarks._fluxjax_contenders import _batch, _model
from benchmarks._peers import SGD_LR as ETA
from benchmarks._peers import SIZES


def _phases_back(m, x, y, ps, mark):
    l = fj.mse(m(x), y)
    mark("record the loss")
    fj.back_(l)
    mark("back_(l)")
    ds = [-ETA * fj.grad(p) for p in ps]
    mark(f"{len(ps)} × -η * grad(p)")
    for p, d in zip(ps, ds, strict=True):
        fj.update_(p, d)
    mark(f"{len(ps)} × update_(p, d)")


def _phases_gradient(m, x, y, ps, mark, opt=None):
    gs = fj.gradient(lambda: fj.mse(m(x), y), ps)
    mark("gradient(lambda: loss, ps)")
    if opt is not None:
        fj.update_(opt, ps, gs)
        mark("update_(opt, ps, gs)")
        return
    ds = [-ETA * gs[p] for p in ps]
    mark(f"{len(ps)} × -η * gs[p]")
    for p, d in zip(ps, ds, strict=True):
        fj.update_(p, d)
    mark(f"{len(ps)} × update_(p, d)")


def make_step(idiom: str, size_name: str):
    """A function `step(mark)` running one step; `mark(name)` ends a phase."""
    size = SIZES[size_name]
    m, (x, y) = _model(size), _batch(size)
    ps = fj.params(m)
    opt = fj.Descent(ETA)
    if idiom == "back":
        return lambda mark: _phases_back(m, x, y, list(ps), mark)
    if idiom == "gradient":
        return lambda mark: _phases_gradient(m, x, y, ps, mark)
    return lambda mark: _phases_gradient(m, x, y, ps, mark, opt)


def phases(step, steps: int) -> dict[str, list[float]]:
    """µs per phase, one sample per step, run in blocks of 100 with the collector off."""
    out: dict[str, list[float]] = {}
    t = 0.0

    def mark(name):
        nonlocal t
        now = time.perf_counter()
        out.setdefault(name, []).append(1e6 * (now - t))
        t = now

    for _ in range(20):
        t = time.perf_counter()
        step(mark)
    out.clear()
    for _ in range(max(1, steps // 100)):
        gc.collect()
        gc.disable()
        for _ in range(100):
            t = time.perf_counter()
            step(mark)
        gc.enable()
    return out


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--idiom", choices=("back", "gradient", "gradient_opt"), default="back")
    parser.add_argument("--size", choices=("tiny", "small"), default="tiny")
    parser.add_argument("--tool", choices=("phases", "cprofile", "pyinstrument"), default="phases")
    parser.add_argument("--steps", type=int, default=2000)
    parser.add_argument("--top", type=int, default=40, help="rows of the cProfile listing")
    args = parser.parse_args(argv)
    step = make_step(args.idiom, args.size)
    if args.tool == "phases":
        res = phases(step, args.steps)
        total = sum(statistics.median(v) for v in res.values())
        for name, v in res.items():
            q = statistics.quantiles(v, n=10)
            print(f"{statistics.median(v):9.1f} µs  (p10 {q[0]:.1f}, p90 {q[-1]:.1f})  {name}")
        print(f"{total:9.1f} µs  sum of the medians ({len(next(iter(res.values())))} steps)")
        return 0

    def nothing(name):
        return None

    for _ in range(20):
        step(nothing)
    if args.tool == "cprofile":
        prof = cProfile.Profile()
        prof.runcall(lambda: [step(nothing) for _ in range(args.steps)])
        buf = io.StringIO()
        pstats.Stats(prof, stream=buf).sort_stats("tottime").print_stats(args.top)
        print(buf.getvalue())
        return 0
    from pyinstrument import Profiler

    prof = Profiler(interval=1e-4)
    prof.start()
    for _ in range(args.steps):
        step(nothing)
    prof.stop()
    print(prof.output_text(unicode=True, color=False))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
