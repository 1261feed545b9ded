"""Training epochs over a DataLoader: fluxjax `train_` against hand-written JAX (a `jax.jit`
step in a Python loop, and one `lax.scan` per epoch), Equinox, Flax NNX and PyTorch eager.

    python -m benchmarks.epochs [--tasks cnn,lstm,mlp,cnn32] [--rounds 7] [--first 3]
    python -m benchmarks.epochs --quick --tasks cnn        # a fast look, writes nothing
    python -m benchmarks.epochs --json benchmarks/epochs.json --label final --plot

Workloads (`_workloads.py`; batch 64, Adam lr 1e-3, logit cross-entropy, no shuffling,
every batch full): **cnn** (8×8 digits), **lstm**, **mlp** (784→256→256→10) and **cnn32**
(32×32×3 images, ~1M params). Every contender runs whole epochs: the hand-written ones
over batches already on the device; fluxjax over a `DataLoader` of NumPy arrays, as a
user writes it; PyTorch over tensors made once. Steady state: `_harness.interleave` (one
epoch per call, medians over interleaved rounds, one process). First epoch: each
contender's first call (tracing, compiling and one epoch) in a fresh process of its own,
`--first` processes per contender, alternated; median seconds. A contender whose library
is missing is skipped with a message.
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

import jax
import jax.numpy as jnp

from benchmarks import _epoch_contenders as ec
from benchmarks._harness import interleave
from benchmarks._workloads import TASKS, params_of

BASELINE = ec.BASELINE
TORCH = ("torch, 1 thread", "torch, 2 threads")
TORCH_BEST = "torch (best of 1/2 threads)"
HERE = Path(__file__).parent


def first_epoch(task, name):
    """Seconds of ``name``'s first call (one epoch, compiling included), in this process.
    XLA's first compile in a process also starts its compiler: a trivial one runs first,
    so that no contender pays that (the hand-written ones would otherwise pay it while
    building their params, outside the timing)."""
    jax.jit(lambda x: x + 1)(jnp.ones(3)).block_until_ready()
    step = ec.build(task, [name], skip=False)[name]
    t0 = time.perf_counter()
    step.sync(step.run())
    return time.perf_counter() - t0


def first_epochs(task, names, repeats):
    """name -> median seconds of the first epoch, over ``repeats`` fresh processes each."""
    seconds = {name: [] for name in names}
    for _ in range(repeats):
        for name in names:
            cmd = [sys.executable, "-m", "benchmarks.epochs", "--first-of", task, name]
            out = subprocess.run(cmd, capture_output=True, text=True, check=True).stdout
            seconds[name].append(float(out.split()[-1]))
    return {name: statistics.median(s) for name, s in seconds.items()}


def measure(task, rounds, block_s, first, first_names=None):
    """One workload's figures: ms per epoch, spread, best-round ms, first-epoch seconds (of
    ``first_names``, else of every contender)."""
    steps = ec.build(task, ec.CONTENDERS)
    res = interleave(steps, rounds=rounds, block_s=block_s, warmup=2)
    n = {name: steps[name].steps / 1e3 for name in res}
    fig = dict(
        params=params_of(task),
        batches=next(iter(steps.values())).steps,
        epoch_ms={k: r.median * n[k] for k, r in res.items()},
        best_ms={k: r.best * n[k] for k, r in res.items()},
        spread={k: r.spread for k, r in res.items()},
        rounds=rounds,
    )
    names = [n for n in steps if first_names is None or n in first_names]
    fig["first_s"] = first_epochs(task, names, first) if first else {}
    return fig


def with_torch_best(values):
    """``values`` with the faster of the two PyTorch thread settings added."""
    torch = [values[k] for k in TORCH if k in values]
    return {**values, TORCH_BEST: min(torch)} if torch else dict(values)


def report(task, fig):
    """Markdown rows: ms per epoch (× the jax.jit loop), first epoch s (× its first)."""
    ms, first = with_torch_best(fig["epoch_ms"]), with_torch_best(fig["first_s"])
    cols = "ms/epoch | × jax.jit loop | best round ms | spread | first epoch s | × its first"
    print(f"\n| **{task}** ({fig['params']:,} params, {fig['batches']} batches) | {cols} |")
    print("|---|---:|---:|---:|---:|---:|---:|")
    best = with_torch_best(fig["best_ms"])
    for name in ms:
        cells = [f"{ms[name]:,.1f}", f"{ms[name] / ms[BASELINE]:.2f}", f"{best[name]:,.1f}"]
        cells.append(f"{fig['spread'][name]:.0%}" if name in fig["spread"] else "–")
        f = first.get(name)
        cells += [f"{f:.2f}", f"{f / first[BASELINE]:.2f}"] if f else ["–", "–"]
        print(f"| {name} | " + " | ".join(cells) + " |", flush=True)


def plot(figures, path):
    """Bars: each contender's median epoch over the jax.jit loop's, per workload; log scale."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    tasks = list(figures)
    seen = {n for t in tasks for n in with_torch_best(figures[t]["epoch_ms"])}
    names = [n for n in [*ec.CONTENDERS, TORCH_BEST] if n in seen and n not in (*TORCH, BASELINE)]
    width = 0.8 / len(names)
    fig, ax = plt.subplots(figsize=(12, 4.8))
    shown = []
    for j, name in enumerate(names):
        ys = [with_torch_best(figures[t]["epoch_ms"]) for t in tasks]
        ys = [y.get(name, float("nan")) / y[BASELINE] for y in ys]
        shown += [y for y in ys if y == y]
        ax.bar([i + (j - len(names) / 2 + 0.5) * width for i in range(len(tasks))], ys, width,
               label=name, color=plt.cm.tab10(j % 10))  # fmt: skip
    ax.axhline(1.0, color="black", lw=1.2, ls="--", label="jax.jit loop (1.0)")
    ax.set_yscale("log")
    ticks = [0.1, 0.2, 0.3, 0.5, 0.75, 1, 1.5, 2, 3, 5, 10, 20]
    ax.set_yticks(ticks, [f"{t:g}" for t in ticks])
    ax.yaxis.set_minor_formatter(matplotlib.ticker.NullFormatter())
    ax.set_ylim(min(0.5, min(shown) / 1.3), max(2.0, max(shown) * 1.3))
    labels = [f"{t}\n{figures[t]['params']:,} params" for t in tasks]
    ax.set_xticks(range(len(tasks)), labels)
    ax.set_ylabel("median ms per epoch ÷ jax.jit loop's (log)")
    ax.set_title(
        "One epoch over a DataLoader, batch 64, Adam: ratio to a hand-written jax.jit loop"
    )
    ax.legend(fontsize=8, loc="upper left", bbox_to_anchor=(1.01, 1))
    fig.tight_layout()
    fig.savefig(path, dpi=110)


def _save(path, label, run):
    """Add ``run`` to ``label`` in the JSON file: its tasks merged, its conditions listed."""
    data = json.loads(Path(path).read_text()) if Path(path).exists() else {}
    entry = data.setdefault(label, {"tasks": {}, "runs": []})
    entry["tasks"].update(run.pop("tasks"))
    entry["runs"].append(run)
    Path(path).write_text(json.dumps(data, indent=1) + "\n")


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--tasks", nargs="+", default=[",".join(TASKS)], help="e.g. cnn,lstm")
    parser.add_argument("--rounds", type=int, default=7)
    parser.add_argument("--block", type=float, default=0.3, help="seconds per block")
    parser.add_argument("--first", type=int, default=3, help="fresh processes per contender")
    parser.add_argument("--first-tasks", default=",".join(TASKS), help="first epochs of these")
    parser.add_argument("--first-names", help="first epochs of these contenders only (commas)")
    parser.add_argument("--quick", action="store_true", help="3 rounds, no first epochs")
    parser.add_argument("--json", help="add the figures to this file, under --label")
    parser.add_argument("--label", default="run")
    parser.add_argument("--plot", action="store_true", help="write benchmarks/epochs.png")
    parser.add_argument("--first-of", nargs=2, metavar=("TASK", "NAME"), help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.first_of:
        print(first_epoch(*args.first_of))
        return 0
    tasks = [t for arg in args.tasks for t in arg.split(",") if t]
    rounds, first = (3, 0) if args.quick else (args.rounds, args.first)
    run = dict(
        load_before=os.getloadavg()[0], started=time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime())
    )
    t0, figures = time.perf_counter(), {}
    for task in tasks:
        n_first = first if task in args.first_tasks.split(",") else 0
        names = args.first_names.split(",") if args.first_names else None
        figures[task] = measure(task, rounds, args.block, n_first, names)
        report(task, figures[task])
    run.update(load_after=os.getloadavg()[0], seconds=time.perf_counter() - t0, argv=sys.argv[1:])
    run["tasks"] = figures
    print(f"\n{run['seconds']:.0f} s; 1-minute load average {run['load_before']:.2f} before, "
          f"{run['load_after']:.2f} after")  # fmt: skip
    if args.json:
        _save(args.json, args.label, run)
    if args.plot:  # every task of the label when the figures were saved
        saved = json.loads(Path(args.json).read_text())[args.label]["tasks"] if args.json else {}
        plot({**saved, **figures}, HERE / "epochs.png")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
