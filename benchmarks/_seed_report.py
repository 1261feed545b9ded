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
TORCHES, JIT = ("torch eager", "torch eager, 2 threads"), "jax.jit"
EPOCHS = "1 × train_(loss, ps, data, opt, epochs=10)"
NEW_ADAM = "10 × train_(loss, params(m), data, ADAM())"
CHAIN = "Chain(Dense(10, 5, σ), Dense(5, 2), softmax)"
STEP_TARGETS = {  # idiom -> {size: max ratio to PyTorch eager}, from issue 14
    "gradient + update_(p, -η·gs[p])": {"tiny": 1.0, "small": 1.0},
    "gradient + update_(opt, ps, gs)": {"tiny": 1.0, "small": 1.0},
    "back_ loop": {"tiny": 0.6, "small": 0.85},
}
BY_HAND = "jax, the seed's loop by hand"
"""The same loop in plain JAX (`seed_idioms._jax_seed_shaped`): the floor under the idioms."""


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


def _table(title: str, runs: dict, part, cols: dict) -> str:
    """Rows: the entries of `part(run)`; per label, one column per `cols` item.

    `cols` maps a header to `cell(entry, section) -> str`; a label lacking an entry gets "–".
    """
    names = list(dict.fromkeys(k for r in runs.values() for k in part(r) if k[0] != "_"))
    head = [title] + [f"{lb} {c}" for lb in runs for c in cols]
    rows = []
    for name in names:
        row = [name]
        for run in runs.values():
            sec = part(run)
            row += [cell(sec[name], sec) if name in sec else "–" for cell in cols.values()]
        rows.append(row)
    return _grid(head, rows)


def _ratio_to(key: str):
    return lambda e, sec: _x(e["median"] / sec[key]["median"]) if key in sec else "–"


def torch_us(sec: dict) -> float:
    """PyTorch's step at its faster thread setting (1 or 2) in this run: the stricter peer."""
    return min(sec[k]["median"] for k in TORCHES if k in sec)


STEP_COLS = {
    "µs": lambda e, sec: _num(e["median"]),
    "× torch": lambda e, sec: _x(e["median"] / torch_us(sec)),
    "× jax.jit": _ratio_to(JIT),
    "spread": lambda e, sec: f"{100 * e['spread']:.0f}%",
}
TRAIN_COLS = {
    "ms": lambda e, sec: _num(1e3 * e["median"]),
    "× epochs=10": _ratio_to(EPOCHS),
    "spread (n)": lambda e, sec: f"{100 * e['spread']:.0f}% ({e['n']})",
}
BUILD_COLS = {
    "µs": lambda e, sec: _num(e["median"]),
    "best µs": lambda e, sec: _num(e["best"]),
    "n": lambda e, sec: str(e["n"]),
}


def _ms(field: str):
    return lambda e, sec: _num(1e3 * e[field])


PHASE_COLS = {f"{k} ms": _ms(k) for k in ("median", "best", "worst")}


def _verdict(r: float | None, limit: float) -> str:
    return "–" if r is None else f"{_x(r)} ({'met' if r <= limit else 'missed'})"


def _by_hand_us(sec: dict) -> float | None:
    return sec[BY_HAND]["median"] if BY_HAND in sec else None


def _step_targets(runs: dict, against, what: str, limit_of) -> list[list[str]]:
    """One row per idiom and size: its median over ``against(section)``'s, each run."""
    rows = []
    for name, per_size in STEP_TARGETS.items():
        for size, limit in per_size.items():
            cells = []
            for run in runs.values():
                s = run["steps"].get(size, {})
                base = against(s) if name in s else None
                cells.append(_verdict(base and s[name]["median"] / base, limit_of(limit)))
            rows.append([f"{name} ≤ {limit_of(limit)}× {what} ({size})", *cells])
    return rows


def _targets(runs: dict) -> list[list[str]]:
    rows = _step_targets(runs, torch_us, "PyTorch", lambda limit: limit)
    rows += _step_targets(runs, _by_hand_us, "the same loop in plain JAX", lambda _: 1.0)
    cells = []
    for run in runs.values():
        t = run["train_calls"]
        cells.append(_verdict(t[NEW_ADAM]["median"] / t[EPOCHS]["median"], 1.5))
    rows.append(["10 × `train_(…, ADAM())` ≤ 1.5× one call with `epochs=10`", *cells])
    return rows


def render_seed_idioms(runs: dict) -> str:
    out = ["Runs (one process each; medians over interleaved rounds):", *_envs(runs), ""]
    for size in ("tiny", "small"):
        sched = next(r["steps"][size]["_schedule"] for r in runs.values() if size in r["steps"])
        out += [
            f"**{size}** ({sched['rounds']} rounds of ~{sched['block_s']} s blocks):",
            "",
            _table("µs per SGD step", runs, lambda r, s=size: r["steps"].get(s, {}), STEP_COLS),
            "",
        ]
    out += [
        _table("100 tiny Adam steps", runs, lambda r: r["train_calls"], TRAIN_COLS),
        "",
        _table(f"build `{CHAIN}`", runs, lambda r: r["build"], BUILD_COLS),
        "",
        "Targets of issues 14 and 21 (ratios of medians; the plain-JAX rows are the floor: the"
        " same loop written in JAX by hand, `jax, the seed's loop by hand`):",
        "",
        _grid(["target", *runs], _targets(runs)),
    ]
    return "\n".join(out)


def render_first_step(runs: dict) -> str:
    counts = ", ".join(f"{lb}: {run['samples']} processes" for lb, run in runs.items())
    table = _table("phase (fresh process)", runs, lambda r: r["phases"], PHASE_COLS)
    return "\n".join(
        ["Runs (one fresh process per sample):", *_envs(runs), "", f"Samples: {counts}.", "", table]
    )


RENDER = {"seed_idioms": render_seed_idioms, "first_step": render_first_step}
