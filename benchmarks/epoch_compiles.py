"""Compilations in an epoch loop with evaluation between epochs (State has one owner).

    python -m benchmarks.epoch_compiles            # 4 epochs of each model, a table

Each epoch: ``train_`` over a ``DataLoader`` (the ``lax.scan`` path) and over a list of
batches (the per-step path), then ``testmode_``, an evaluation through ``fluxjax.jit``,
and ``trainmode_``. Counted: the XLA compilations JAX logs during the epoch
(``jax.log_compiles``), and the epoch's wall time. Before round 3 ``testmode_`` emptied
every compiled cache, so every epoch compiled again; now epoch 2 onwards compiles nothing.
"""

from __future__ import annotations

import contextlib
import logging
import time

import jax
import numpy as np

import fluxjax as fj


@contextlib.contextmanager
def compilations():
    """Yields the list of 'Compiling ...' messages JAX logs inside the block."""
    found: list = []

    class Count(logging.Handler):
        def emit(self, record):
            if record.getMessage().startswith("Compiling"):
                found.append(record.getMessage())

    handler, logger = Count(), logging.getLogger("jax")
    old = logger.level
    logger.addHandler(handler)
    logger.setLevel(logging.DEBUG)
    try:
        with jax.log_compiles(True):
            yield found
    finally:
        logger.removeHandler(handler)
        logger.setLevel(old)


MODELS = {
    "MLP+BatchNorm+Dropout": lambda: fj.Chain(
        fj.Dense(8, 64, fj.relu), fj.BatchNorm(64), fj.Dropout(0.2), fj.Dense(64, 1)
    ),
    "LSTM": lambda: fj.Chain(fj.LSTM(8, 32), fj.Dense(32, 1)),
}


def epochs(name, n=4):
    """``[(compilations, seconds)]`` for ``n`` epochs of model ``name``."""
    fj.seed(0)
    rng = np.random.default_rng(0)
    x = rng.normal(size=(512, 8)).astype(np.float32)
    y = rng.normal(size=(512, 1)).astype(np.float32)
    m, opt = MODELS[name](), fj.ADAM(1e-3)
    loss = lambda x, y: fj.mse(m(x), y)  # noqa: E731
    loader = fj.DataLoader((x, y), batchsize=32)
    batches = [(x[i : i + 32], y[i : i + 32]) for i in range(0, 128, 32)]
    evaluate = fj.jit(lambda x, y: fj.mse(m(x), y))
    out = []
    for _ in range(n):
        t = time.perf_counter()
        with compilations() as found:
            fj.train_(loss, m, loader, opt)
            fj.train_(loss, m, batches, opt)
            fj.testmode_(m)
            jax.block_until_ready(evaluate(x[:32], y[:32]))
            fj.trainmode_(m)
        out.append((len(found), time.perf_counter() - t))
    return out


def main():
    print("| model | epoch | compilations | seconds |")
    print("|---|---|---|---|")
    for name in MODELS:
        for k, (count, seconds) in enumerate(epochs(name), 1):
            print(f"| {name} | {k} | {count} | {seconds:.2f} |")


if __name__ == "__main__":
    main()
