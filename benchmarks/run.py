"""Run the MLP training-step benchmark: peers (and fluxjax, once registered) side by side.

    python -m benchmarks.run                       # all sizes; writes README.md, results.*
    python -m benchmarks.run --sizes tiny --quick  # a fast look; writes nothing by default
    python benchmarks/run.py --sizes small --rounds 30 --no-write

For each size, every (contender, optimiser) pair runs interleaved in one process (see
`_harness.interleave`); the table gives the median µs per training step over the rounds and
its ratio to the pure `jax.jit` step with the same optimiser (> 1 means slower).
"""

from __future__ import annotations

import argparse
import datetime as dt
import importlib.metadata
import json
import os
import platform
import sys
import time
from pathlib import Path

if __package__ in (None, ""):  # run as a script: make `benchmarks` importable
    sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from benchmarks import _peers  # noqa: E402
from benchmarks._harness import Result, Step, interleave, ratios  # noqa: E402
from benchmarks._peers import BASELINE, OPTIMISERS, PEERS, SIZES  # noqa: E402

HERE = Path(__file__).resolve().parent
README = HERE / "README.md"
PNG = HERE / "results.png"
JSON = HERE / "results.json"
BEGIN, END = "<!-- results:begin -->", "<!-- results:end -->"

# Rounds and seconds per block for each size: a full run takes about
# rounds x contenders x block_s per size, 3-4 minutes in all on 2 CPU cores.
# `--quick` uses the short schedule; `--rounds` overrides the rounds.
SCHEDULE = {"tiny": (30, 0.1), "small": (25, 0.2), "medium": (11, 0.5)}
QUICK_SCHEDULE = {"tiny": (3, 0.03), "small": (3, 0.05), "medium": (2, 0.1)}


def registry() -> dict:
    """Contender name -> factory(size, opt) -> Step | None. The baseline comes first."""
    contenders = dict(PEERS)
    try:
        from benchmarks._fluxjax_contenders import CONTENDERS
    except Exception as err:  # fluxjax is being written concurrently: never block the peers
        print(f"note: fluxjax contenders not loaded ({type(err).__name__}: {err})")
    else:
        for name in CONTENDERS:
            if name in contenders:
                raise ValueError(f"fluxjax contender {name!r} clashes with a peer's name")
        contenders.update(CONTENDERS)
    return contenders


def build(contenders: dict, size, opts) -> dict[tuple[str, str], Step]:
    steps = {}
    for name, factory in contenders.items():
        for opt in opts:
            try:
                step = factory(size, opt)
            except Exception as err:
                print(f"  skipped {name} [{opt}]: {type(err).__name__}: {err}")
                continue
            if step is not None:
                steps[(name, opt)] = step
    return steps


def bench_size(contenders: dict, size, opts, rounds: int, block_s: float) -> list[dict]:
    steps = build(contenders, size, opts)
    for opt in opts:
        if (BASELINE, opt) not in steps:
            raise RuntimeError(f"the baseline {BASELINE} [{opt}] could not be built")
    keyed = {f"{name} [{opt}]": step for (name, opt), step in steps.items()}
    results: dict[str, Result] = interleave(keyed, rounds=rounds, block_s=block_s)
    rows = []
    for opt in opts:
        mine = {name: results[f"{name} [{opt}]"] for name, o in steps if o == opt}
        rel = ratios(mine, BASELINE)
        for name, res in mine.items():
            rows.append(
                dict(
                    size=size.name,
                    opt=opt,
                    contender=name,
                    us=res.median,
                    ratio=rel[name],
                    best=res.best,
                    spread=res.spread,
                    rounds=rounds,
                    block_s=block_s,
                )
            )
    return rows


# --------------------------------------------------------------------------- reporting


def _fmt_us(us: float) -> str:
    return f"{us:,.0f}" if us >= 100 else f"{us:.1f}"


def table(rows: list[dict], size_name: str, opts) -> str:
    """A Markdown table for one size: contenders down, optimisers across."""
    mine = [r for r in rows if r["size"] == size_name]
    names = list(dict.fromkeys(r["contender"] for r in mine))
    by_key = {(r["contender"], r["opt"]): r for r in mine}
    head = "| contender |" + "".join(
        f" {o} µs/step | {o} × jax.jit | {o} best µs | {o} spread |" for o in opts
    )
    lines = [head, "|---|" + "---:|---:|---:|---:|" * len(opts)]
    for name in names:
        cells = []
        for o in opts:
            r = by_key.get((name, o))
            cells += (
                ["–"] * 4
                if r is None
                else [
                    _fmt_us(r["us"]),
                    f"{r['ratio']:.2f}",
                    _fmt_us(r["best"]),
                    f"{100 * r['spread']:.0f}%",
                ]
            )
        lines.append(f"| {name} | " + " | ".join(cells) + " |")
    return "\n".join(lines)


def environment() -> dict:
    versions = {}
    for pkg in ("jax", "jaxlib", "optax", "equinox", "flax", "torch", "numpy"):
        try:
            versions[pkg] = importlib.metadata.version(pkg)
        except importlib.metadata.PackageNotFoundError:
            versions[pkg] = "not installed"
    cpu = platform.processor() or platform.machine()
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    cores = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count()
    return dict(
        date=dt.date.today().isoformat(),
        machine=f"{cores} CPU cores ({cpu}), no GPU; {platform.system()} {platform.release()}",
        python=platform.python_version(),
        versions=versions,
    )


def markdown(rows: list[dict], env: dict, sizes, opts, command: str, seconds: float) -> str:

    vers = ", ".join(f"{k} {v}" for k, v in env["versions"].items())
    out = [
        f"Measured {env['date']} on {env['machine']}.",
        f"Python {env['python']}; {vers}; PyTorch on {env['torch_threads']} threads.",
        f"Command: `{command}` ({seconds:.0f} s in all); 1-minute load average "
        f"{env['load_before']:.2f} before, {env['load_after']:.2f} after.",
        "",
        "Median µs per training step over the rounds; `× jax.jit` is that median divided by "
        "the pure `jax.jit` step's with the same optimiser (> 1 is slower); `best` is the "
        "fastest round; `spread` is the interquartile range / median over the rounds.",
    ]
    for name in sizes:
        s = SIZES[name]
        r0 = next(r for r in rows if r["size"] == name)
        out += [
            "",
            f"**{name}**: batch {s.batch}, {s.n_in}→{s.hidden}→{s.hidden}→{s.n_out}; "
            f"{r0['rounds']} rounds of ~{r0['block_s']} s blocks; "
            f"lax.scan does {s.scan_steps} steps per call.",
            "",
            table(rows, name, opts),
        ]
    out += ["", "![ratio to jax.jit per size and contender](results.png)"]
    return "\n".join(out)


def write_readme(section: str) -> None:
    text = README.read_text() if README.exists() else f"# Benchmarks\n\n{BEGIN}\n{END}\n"
    if BEGIN not in text or END not in text:
        text = text.rstrip() + f"\n\n## Results\n\n{BEGIN}\n{END}\n"
    head, rest = text.split(BEGIN, 1)
    _, tail = rest.split(END, 1)
    README.write_text(f"{head}{BEGIN}\n{section}\n{END}{tail}")


def plot(rows: list[dict], sizes, opts, path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    import numpy as np

    names = list(dict.fromkeys(r["contender"] for r in rows))
    by_key = {(r["size"], r["opt"], r["contender"]): r["ratio"] for r in rows}
    fig, axes = plt.subplots(1, len(opts), figsize=(6 * len(opts), 4.5), squeeze=False, sharey=True)
    width = 0.8 / len(names)
    x = np.arange(len(sizes))
    for ax, opt in zip(axes[0], opts, strict=True):
        for i, name in enumerate(names):
            vals = [by_key.get((s, opt, name), np.nan) for s in sizes]
            bars = ax.bar(x + (i - (len(names) - 1) / 2) * width, vals, width, label=name)
            labels = ["" if v != v else f"{v:.2g}" if v < 10 else f"{v:.0f}" for v in vals]
            ax.bar_label(bars, labels=labels, fontsize=7, padding=1)
        ax.axhline(1.0, color="black", linewidth=0.8)
        ax.set_yscale("log")
        ax.set_xticks(x, sizes)
        ax.set_title(f"{opt}: time per step / pure jax.jit (log scale, lower is faster)")
        ax.title.set_fontsize(9)
    axes[0][0].set_ylabel("ratio to jax.jit")
    axes[0][-1].legend(fontsize=8, loc="upper left", bbox_to_anchor=(1.0, 1.0))
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    plt.close(fig)


# --------------------------------------------------------------------------- CLI


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument(
        "--sizes", default="tiny,small,medium", help=f"comma-separated, from {','.join(SIZES)}"
    )
    parser.add_argument(
        "--opts", default=",".join(OPTIMISERS), help=f"comma-separated, from {','.join(OPTIMISERS)}"
    )
    parser.add_argument(
        "--rounds", type=int, default=None, help="rounds per size (default: per-size schedule)"
    )
    parser.add_argument("--quick", action="store_true", help="few rounds, short blocks")
    parser.add_argument(
        "--only",
        default="",
        help="comma-separated contender names to run (the baseline always runs)",
    )
    parser.add_argument(
        "--torch-threads",
        type=int,
        default=_peers.TORCH_THREADS,
        help="torch.set_num_threads for the PyTorch peer (default: %(default)s)",
    )
    parser.add_argument(
        "--write",
        action=argparse.BooleanOptionalAction,
        default=None,
        help="update README.md, results.png and results.json (default: yes, except with --quick)",
    )
    args = parser.parse_args(argv)

    sizes = [s.strip() for s in args.sizes.split(",") if s.strip()]
    opts = [o.strip() for o in args.opts.split(",") if o.strip()]
    for s in sizes:
        if s not in SIZES:
            parser.error(f"unknown size {s!r}; choose from {', '.join(SIZES)}")
    for o in opts:
        if o not in OPTIMISERS:
            parser.error(f"unknown optimiser {o!r}; choose from {', '.join(OPTIMISERS)}")
    write = (not args.quick) if args.write is None else args.write

    _peers.TORCH_THREADS = args.torch_threads
    contenders = registry()
    if args.only:
        wanted = {BASELINE} | {n.strip() for n in args.only.split(",") if n.strip()}
        unknown = wanted - set(contenders)
        if unknown:
            parser.error(f"unknown contender(s) {sorted(unknown)}; have {list(contenders)}")
        contenders = {n: f for n, f in contenders.items() if n in wanted}
    env = environment()
    env["torch_threads"] = args.torch_threads
    print(f"{env['date']} | {env['machine']}")
    print("versions: " + ", ".join(f"{k} {v}" for k, v in env["versions"].items()))
    env["load_before"] = os.getloadavg()[0]
    if env["load_before"] > 0.5:
        print(
            f"warning: load average {env['load_before']:.2f}: other work shares the CPU, "
            "expect noisy figures"
        )
    t0 = time.perf_counter()
    rows: list[dict] = []
    for name in sizes:
        rounds, block_s = (QUICK_SCHEDULE if args.quick else SCHEDULE)[name]
        rounds = args.rounds or rounds
        size = SIZES[name]
        print(
            f"\n== {name}: batch {size.batch}, {size.n_in}→{size.hidden}→{size.hidden}→"
            f"{size.n_out}; {rounds} rounds × ~{block_s} s blocks"
        )
        t = time.perf_counter()
        rows += bench_size(contenders, size, opts, rounds, block_s)
        print(table(rows, name, opts))
        print(f"({time.perf_counter() - t:.0f} s)")
    seconds = time.perf_counter() - t0
    env["load_after"] = os.getloadavg()[0]
    print(f"load average: {env['load_before']:.2f} before, {env['load_after']:.2f} after")

    if write:
        command = "python -m benchmarks.run " + " ".join(sys.argv[1:] if argv is None else argv)
        write_readme(markdown(rows, env, sizes, opts, command.strip(), seconds))
        plot(rows, sizes, opts, PNG)
        JSON.write_text(json.dumps(dict(env, seconds=seconds, rows=rows), indent=1) + "\n")
        print(f"\nwrote {README.name}, {PNG.name}, {JSON.name} in {HERE}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
