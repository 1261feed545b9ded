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

Two tools look below Python (they reach into JAX's and the tracker's internals):
`--tool dispatches` counts the compiled executions per step of each idiom (JAX's C++ fast
path is turned off so every execution passes a counted Python call); `--tool xla` times
the compiled replay of `back_` alone (`tracker/_graph.py::_backward_fn`, as cached) next to
`jax.jit(jax.value_and_grad(loss))` written by hand on the same shapes, and compares
their compiled HLO (ops, inputs, outputs).
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


def dispatches(size_name: str, steps: int = 5) -> dict[str, dict[str, float]]:
    """Compiled executions per step of each idiom, by executable name."""
    from collections import Counter

    import jax
    from jax._src import pjit
    from jax._src.interpreters import pxla

    counts, on = Counter(), [False]
    call = pxla.ExecuteReplicated.__call__

    def counted(self, *args):
        if on[0]:
            counts[self.name] += 1
        return call(self, *args)

    pjit._get_fastpath_data = lambda *a, **k: None  # every call through the Python path
    pxla.ExecuteReplicated.__call__ = counted
    jax.clear_caches()
    out = {}
    for idiom in ("back", "gradient", "gradient_opt"):
        step = make_step(idiom, size_name)
        for _ in range(3):
            step(lambda name: None)
        counts.clear()
        on[0] = True
        for _ in range(steps):
            step(lambda name: None)
        on[0] = False
        out[idiom] = {k: v / steps for k, v in counts.items()}
    return out


def xla(size_name: str, n: int = 200) -> None:
    """Print the compiled replay's time and HLO next to a hand-written value_and_grad's."""
    import jax
    import jax.numpy as jnp

    from fluxjax.tracker import _graph

    size = SIZES[size_name]
    m, (x, y) = _model(size), _batch(size)
    ps = list(fj.params(m))
    for _ in range(3):
        _phases_back(m, x, y, ps, lambda name: None)
    tape = _graph.plan(fj.mse(m(x), y))
    seen, cached = {}, _graph.cached

    def spy(key, build):
        seen["fn"] = fn = cached(key, build)
        return lambda *a: fn(*seen.setdefault("args", a))

    _graph.cached = spy
    try:
        tape.backward()
    finally:
        _graph.cached = cached
    W = [p.data for p in ps]

    def loss(W, x, y):
        h = jax.nn.relu(x @ W[0].T + W[1])
        h = jax.nn.relu(h @ W[2].T + W[3])
        return jnp.mean((h @ W[4].T + W[5] - y) ** 2)

    _compare("compiled replay", seen["fn"], seen["args"], n)
    _compare("hand value_and_grad", jax.jit(jax.value_and_grad(loss)), (W, x, y), n)


def _compare(name, fn, args, n):
    import timeit

    import jax

    jax.block_until_ready(fn(*args))
    waited = min(timeit.repeat(lambda: jax.block_until_ready(fn(*args)), number=n, repeat=5))
    dispatched = min(timeit.repeat(lambda: fn(*args), number=n, repeat=5))
    text = fn.lower(*args).compile().as_text()
    ops = {k: text.count(f" {k}(") for k in ("dot", "fusion", "transpose", "copy")}
    print(
        f"{name:20s} {1e6 * waited / n:8.1f} µs waited, {1e6 * dispatched / n:8.1f} µs "
        f"dispatched; {len(jax.tree.leaves(args))} inputs, "
        f"{len(jax.tree.leaves(fn(*args)))} outputs; HLO {ops}; f64: {'f64' in text}"
    )


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--idiom", choices=("back", "gradient", "gradient_opt"), default="back")
    parser.add_argument("--size", choices=("tiny", "small"), default="tiny")
    tools = ("phases", "cprofile", "pyinstrument", "dispatches", "xla")
    parser.add_argument("--tool", choices=tools, default="phases")
    parser.add_argument("--steps", type=int, default=2000)
    parser.add_argument("--top", type=int, default=40, help="rows of the cProfile listing")
    args = parser.parse_args(argv)
    if args.tool == "dispatches":
        for idiom, counts in dispatches(args.size).items():
            print(f"{idiom:13s} {sum(counts.values()):4.1f} per step: {counts}")
        return 0
    if args.tool == "xla":
        xla(args.size)
        return 0
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
