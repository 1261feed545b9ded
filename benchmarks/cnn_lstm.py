"""A CNN and an LSTM: fluxjax against a hand-written `jax.jit` loop, Equinox, Flax NNX and
PyTorch, in steady state: `epochs.py`'s `cnn` and `lstm` workloads and contenders, without
the first-epoch processes.

    python -m benchmarks.cnn_lstm [--rounds 7] [--block 0.2]

Same as ``python -m benchmarks.epochs --tasks cnn,lstm --first 0``; the models, data and
contenders live in `_workloads.py`, `_workload_models.py` and `_epoch_contenders.py`.
"""

from __future__ import annotations

import argparse

from benchmarks import epochs


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=7)
    parser.add_argument("--block", type=float, default=0.2, help="seconds per block")
    args = parser.parse_args(argv)
    rest = ["--rounds", str(args.rounds), "--block", str(args.block)]
    return epochs.main(["--tasks", "cnn,lstm", "--first", "0", *rest])


if __name__ == "__main__":
    raise SystemExit(main())
