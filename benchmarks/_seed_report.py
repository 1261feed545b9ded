"""Keeping and rendering the runs of `seed_idioms.py` and `first_step.py`.

Each script's runs live in `benchmarks/<kind>.json` as `{label: run}` ("before", "after",
...), so runs made on different code (before and after a change) sit side by side. The
README section between `<!-- <kind>:begin -->` and `<!-- <kind>:end -->` is rendered from
all labels of that file.
"""

from __future__ import annotations

import json
from pathlib import Path

HERE = Path(__file__).resolve().parent
README = HERE / "README.md"
TORCH, JIT, EPOCHS = "torch eager", "jax.jit", "1 × train_(loss, ps, data, opt, epochs=10)"
STEP_TARGETS = {  # idiom -> {size: max ratio to PyTorch eager}, from issue 14
    "gradient + update_(p, -η·gs[p])": {"tiny": 1.0, "small": 1.0},
    "gradient + update_(opt, ps, gs)": {"tiny": 1.0, "small": 1.0},
    "back_ loop": {"tiny": 0.6, "small": 0.85},
}


def save_run(kind: str, label: str, run: dict) -> dict:
    """Add `run` under `label` to `<kind>.json` (replacing a run of that label); all runs."""
    path = HERE / f"{kind}.json"
    runs = json.loads(path.read_text()) if path.exists() else {}
    runs[label] = run
    path.write_text(json.dumps(runs, indent=1, ensure_ascii=False) + "\n")
    return runs


def write_section(kind: str, runs: dict) -> None:
    """Render `runs` and put the text between the kind's markers in README.md."""
    begin, end = f"<!-- {kind}:begin -->", f"<!-- {kind}:end -->"
    body = RENDER[kind](runs)
    text = README.read_text()
    if begin not in text:
        text = text.rstrip() + f"\n\n{begin}\n{end}\n"
    head, rest = text.split(begin, 1)
    README.write_text(f"{head}{begin}\n{body}\n{end}{rest.split(end, 1)[1]}")


def _num(v: float, unit: str = "") -> str:
    text = f"{v:,.0f}" if v >= 100 else f"{v:.1f}" if v >= 1 else f"{v:.2f}"
    return text + unit


def _x(r: float) -> str:
    """A ratio: two decimals below 10, one below 100, none above."""
    return f"{r:.2f}" if r < 10 else f"{r:.1f}" if r < 100 else f"{r:,.0f}"


def _grid(head: list[str], rows: list[list[str]]) -> str:
    lines = ["| " + " | ".join(head) + " |", "|---|" + "---:|" * (len(head) - 1)]
    return "\n".join(lines + ["| " + " | ".join(r) + " |" for r in rows])


def _envs(runs: dict) -> list[str]:
    out = []
    for label, run in runs.items():
        e = run["env"]
        vers = ", ".join(f"{k} {v}" for k, v in e["versions"].items() if v != "not installed")
        out.append(
            f"- **{label}**: {e['date']}, {e['machine']}; Python {e['python']}; "
            f"{vers}; {e['seconds']:.0f} s; 1-minute load average "
            f"{e['load_before']:.2f} before, {e['load_after']:.2f} after."
        )
    return out


def _step_rows(runs: dict, size: str) -> list[list[str]]:
    names = list(
        dict.fromkeys(
            k for r in runs.values() for k in r["steps"].get(size, {}) if not k.startswith("_")
        )
    )
    rows = []
    for name in names:
        row = [name]
        for run in runs.values():
            s = run["steps"].get(size, {})
            if name not in s or TORCH not in s:
                row += ["–"] * 4
                continue
            med = s[name]["median"]
            row += [
                _num(med),
                _x(med / s[TORCH]["median"]),
                _x(med / s[JIT]["median"]),
                f"{100 * s[name]['spread']:.0f}%",
            ]
        rows.append(row)
    return rows


def _targets(runs: dict) -> list[list[str]]:
    rows = []
    for name, per_size in STEP_TARGETS.items():
        for size, limit in per_size.items():
            cells = []
            for run in runs.values():
                s = run["steps"].get(size, {})
                r = s[name]["median"] / s[TORCH]["median"] if name in s else None
                cells.append("–" if r is None else f"{_x(r)} ({'met' if r <= limit else 'missed'})")
            rows.append([f"{name} ≤ {limit}× PyTorch ({size})", *cells])
    cells = []
    for run in runs.values():
        t = run["train_calls"]
        r = t["10 × train_(loss, params(m), data, ADAM())"]["median"] / t[EPOCHS]["median"]
        cells.append(f"{_x(r)} ({'met' if r <= 1.5 else 'missed'})")
    rows.append(["10 × `train_(…, ADAM())` ≤ 1.5× one call with `epochs=10`", *cells])
    return rows


def render_seed_idioms(runs: dict) -> str:
    labels = list(runs)
    out = ["Runs (one process each; medians over interleaved rounds):", *_envs(runs), ""]
    for size in ("tiny", "small"):
        sched = next(r["steps"][size]["_schedule"] for r in runs.values() if size in r["steps"])
        head = ["µs per SGD step"] + [
            f"{lb} {c}" for lb in labels for c in ("µs", "× torch", "× jax.jit", "spread")
        ]
        out += [
            f"**{size}** ({sched['rounds']} rounds of ~{sched['block_s']} s blocks):",
            "",
            _grid(head, _step_rows(runs, size)),
            "",
        ]
    head = ["100 tiny Adam steps"] + [
        f"{lb} {c}" for lb in labels for c in ("ms", "× epochs=10", "spread (n)")
    ]
    rows = []
    for name in next(iter(runs.values()))["train_calls"]:
        row = [name]
        for run in runs.values():
            t = run["train_calls"]
            row += [
                _num(1e3 * t[name]["median"]),
                _x(t[name]["median"] / t[EPOCHS]["median"]),
                f"{100 * t[name]['spread']:.0f}% ({t[name]['n']})",
            ]
        rows.append(row)
    out += [_grid(head, rows), ""]
    head = ["build `Chain(Dense(10, 5, σ), Dense(5, 2), softmax)`"] + [
        f"{lb} {c}" for lb in labels for c in ("µs", "best µs", "n")
    ]
    rows = [
        [name]
        + [
            c
            for run in runs.values()
            for c in (
                _num(run["build"][name]["median"]),
                _num(run["build"][name]["best"]),
                str(run["build"][name]["n"]),
            )
        ]
        for name in next(iter(runs.values()))["build"]
    ]
    out += [
        _grid(head, rows),
        "",
        "Targets of issue 14 (ratios of medians):",
        "",
        _grid(["target", *labels], _targets(runs)),
    ]
    return "\n".join(out)


def render_first_step(runs: dict) -> str:
    labels = list(runs)
    head = ["phase (fresh process)"] + [
        f"{lb} {c}" for lb in labels for c in ("median ms", "best ms", "worst ms")
    ]
    names = list(dict.fromkeys(k for r in runs.values() for k in r["phases"]))
    rows = [
        [name]
        + [
            c
            for run in runs.values()
            for c in (
                (
                    _num(1e3 * run["phases"][name]["median"]),
                    _num(1e3 * run["phases"][name]["best"]),
                    _num(1e3 * run["phases"][name]["worst"]),
                )
                if name in run["phases"]
                else ("–",) * 3
            )
        ]
        for name in names
    ]
    counts = ", ".join(f"{lb}: {run['samples']} processes" for lb, run in runs.items())
    return "\n".join(
        [
            "Runs (one fresh process per sample):",
            *_envs(runs),
            "",
            f"Samples: {counts}.",
            "",
            _grid(head, rows),
        ]
    )


RENDER = {"seed_idioms": render_seed_idioms, "first_step": render_first_step}
