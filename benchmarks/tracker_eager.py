"""The seed's imperative loop, timed against PyTorch eager and a pure `jax.jit` step.

    python -m benchmarks.tracker_eager [--rounds 9]

One SGD step (lr 0.01) of the benchmark MLP, written as the seed writes it:

    l = loss(x, y); back_(l)
    for p in ps: update_(p, -η * grad(p))

against the same loop in PyTorch eager (`loss.backward()`, `p -= lr * p.grad`) and the pure
`jax.jit` step, at tiny (batch 32, 16→32→32→4) and small (batch 128, 64→256→256→10), in
one process, interleaved (`_harness.interleave`), medians. The issue's targets: fluxjax
≤ 0.6× PyTorch at tiny, ≤ 0.85× at small, ≤ 1.2× the `jax.jit` step at small.
"""

from __future__ import annotations

import argparse

from benchmarks import _peers
from benchmarks._fluxjax_contenders import make_eager
from benchmarks._harness import interleave

CONTENDERS = {
    "jax.jit": _peers.make_jax_jit,
    "torch eager": _peers.make_torch,
    "fluxjax eager": make_eager,
}
TARGETS = {"tiny": ("torch eager", 0.6), "small": ("torch eager", 0.85)}


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=9)
    parser.add_argument("--block", type=float, default=0.2, help="seconds per block")
    args = parser.parse_args(argv)
    for name in ("tiny", "small"):
        size = _peers.SIZES[name]
        steps = {k: make(size, "sgd") for k, make in CONTENDERS.items()}
        res = interleave(steps, rounds=args.rounds, block_s=args.block)
        med = {k: r.median for k, r in res.items()}
        print(f"\n{name}: " + ", ".join(f"{k} {v:,.1f} µs" for k, v in med.items()))
        peer, target = TARGETS[name]
        ratio = med["fluxjax eager"] / med[peer]
        print(
            f"  fluxjax eager / {peer} = {ratio:.2f} (target ≤ {target}: "
            f"{'met' if ratio <= target else 'missed'})"
        )
        to_jit = med["fluxjax eager"] / med["jax.jit"]
        note = f" (target ≤ 1.2: {'met' if to_jit <= 1.2 else 'missed'})" if name == "small" else ""
        print(f"  fluxjax eager / jax.jit = {to_jit:.2f}{note}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
