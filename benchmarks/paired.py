"""The seed's eager loop (``back_`` then ``update_``), timed before and after a change, paired.

    python -m benchmarks.paired --before DIR [--after DIR] [--pairs 3] [--rounds 15]

``DIR`` is a checkout holding ``fluxjax/`` and ``benchmarks/`` (e.g. ``git archive`` of the
old commit). Each pair runs one process per checkout, one after the other, in alternating
order, so both see the same machine load; each process times the "fluxjax eager"
contender of ``benchmarks.tracker_eager`` (tiny and small) in CPU time
(``time.process_time``, all its threads: on a shared machine, time spent waiting for a
core is not counted), ``--rounds`` blocks of ``--block`` steps, and keeps the fastest
block. The table gives, per size, the median over pairs of each side and the
after/before ratio.
"""

from __future__ import annotations

import argparse
import json
import statistics
import subprocess
import sys
from pathlib import Path

CHILD = """
import json, sys, time
import jax
from benchmarks import _peers
from benchmarks._fluxjax_contenders import make_eager
out = {}
for name in ("tiny", "small"):
    step = make_eager(_peers.SIZES[name], "sgd")
    for _ in range(20):
        jax.block_until_ready(step.run())
    blocks = []
    for _ in range(int(sys.argv[1])):
        t = time.process_time()
        for _ in range(int(sys.argv[2])):
            r = step.run()
        jax.block_until_ready(r)
        blocks.append((time.process_time() - t) / int(sys.argv[2]) / step.steps * 1e6)
    out[name] = min(blocks)
print(json.dumps(out))
"""


def _time(root: Path, rounds: int, block: int) -> dict:
    done = subprocess.run(
        [sys.executable, "-c", CHILD, str(rounds), str(block)],
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
    parser.add_argument("--rounds", type=int, default=15)
    parser.add_argument("--block", type=int, default=50)
    args = parser.parse_args(argv)
    sides = {"before": Path(args.before).resolve(), "after": Path(args.after).resolve()}
    runs: dict[str, list] = {"before": [], "after": []}
    for i in range(args.pairs):
        order = list(sides) if i % 2 == 0 else list(reversed(sides))
        for side in order:
            runs[side].append(_time(sides[side], args.rounds, args.block))
            print(side, runs[side][-1], flush=True)
    print("\n| size | before CPU µs/step | after CPU µs/step | after/before |\n|---|---|---|---|")
    for size in ("tiny", "small"):
        b, a = (statistics.median(r[size] for r in runs[s]) for s in ("before", "after"))
        print(f"| {size} | {b:,.1f} | {a:,.1f} | {a / b:.2f} |")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
