"""The seed's eager loop (``back_`` then ``update_``), timed before and after a change, paired.

    python -m benchmarks.paired --before DIR [--after DIR] [--pairs 3] [--rounds 9]

``DIR`` is a checkout holding ``fluxjax/`` and ``benchmarks/`` (e.g. ``git archive`` of the
old commit). Each pair runs one process per checkout, one after the other, in alternating
order, so both see the same machine load; each process times the "fluxjax eager"
contender of ``benchmarks.tracker_eager`` (tiny and small) with ``_harness.interleave``
and prints its medians. The table gives, per size, the median over pairs of each side
and the after/before ratio.
"""

from __future__ import annotations

import argparse
import json
import statistics
import subprocess
import sys
from pathlib import Path

CHILD = """
import json, sys
from benchmarks import _peers
from benchmarks._fluxjax_contenders import make_eager
from benchmarks._harness import interleave
out = {}
for name in ("tiny", "small"):
    step = make_eager(_peers.SIZES[name], "sgd")
    res = interleave({"eager": step}, rounds=int(sys.argv[1]), block_s=0.2)
    out[name] = res["eager"].median
print(json.dumps(out))
"""


def _time(root: Path, rounds: int) -> dict:
    done = subprocess.run(
        [sys.executable, "-c", CHILD, str(rounds)],
        cwd=root,
        env={"PYTHONPATH": str(root), "PATH": "/usr/bin:/bin"},
        capture_output=True,
        text=True,
        check=True,
    )
    return json.loads(done.stdout.strip().splitlines()[-1])


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--before", required=True)
    parser.add_argument("--after", default=".")
    parser.add_argument("--pairs", type=int, default=3)
    parser.add_argument("--rounds", type=int, default=9)
    args = parser.parse_args(argv)
    sides = {"before": Path(args.before).resolve(), "after": Path(args.after).resolve()}
    runs: dict[str, list] = {"before": [], "after": []}
    for i in range(args.pairs):
        order = list(sides) if i % 2 == 0 else list(reversed(sides))
        for side in order:
            runs[side].append(_time(sides[side], args.rounds))
            print(side, runs[side][-1], flush=True)
    print("\n| size | before µs/step | after µs/step | after/before |\n|---|---|---|---|")
    for size in ("tiny", "small"):
        b, a = (statistics.median(r[size] for r in runs[s]) for s in ("before", "after"))
        print(f"| {size} | {b:,.1f} | {a:,.1f} | {a / b:.2f} |")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
