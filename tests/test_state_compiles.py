"""State has one owner: ``reset_``, ``testmode_`` and ``trainmode_`` never empty compiled
caches; an epoch loop with evaluation between epochs compiles nothing after the first
epoch, and a recurrent model's second ``train_`` call compiles nothing. Counts XLA
compilations from JAX's own compile log (no timing)."""

from __future__ import annotations

import contextlib
import logging

import jax
import numpy as np
from _tol import assert_close

import fluxjax as fj


@contextlib.contextmanager
def compilations():
    """Yields the list of 'Compiling ...' messages JAX logs inside the block."""
    found: list = []

    class Count(logging.Handler):
        def emit(self, record):
            if record.getMessage().startswith("Compiling"):
                found.append(record.getMessage()[:100])

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


def _data(rng, n=32):
    x = rng.normal(size=(n, 3)).astype(np.float32)
    return x, (x @ np.ones((3, 1), np.float32)).astype(np.float32)


def test_an_epoch_loop_with_evaluation_compiles_nothing_after_the_first_epoch(rng):
    fj.seed(0)
    m = fj.Chain(fj.Dense(3, 8), fj.BatchNorm(8), fj.Dropout(0.2), fj.Dense(8, 1))
    x, y = _data(rng)
    loader, opt = fj.DataLoader((x, y), batchsize=8), fj.ADAM(0.01)
    loss = lambda x, y: fj.mse(m(x), y)  # noqa: E731
    evaluate = fj.jit(lambda x: fj.mse(m(x), y))
    counts = []
    for _ in range(3):
        with compilations() as found:
            fj.train_(loss, m, loader, opt)
            fj.train_(loss, m, [(x[:8], y[:8])], opt)  # a list: the per-step path too
            fj.testmode_(m)
            evaluate(x)
            fj.trainmode_(m)
        counts.append(len(found))
    assert counts[0] > 0 and counts[1:] == [0, 0], counts


def test_compiled_steps_follow_the_mode_without_being_dropped(rng):
    fj.seed(0)
    m = fj.Chain(fj.Dense(3, 4), fj.BatchNorm(4), fj.Dropout(0.5))
    x, _ = _data(rng, 8)
    f = fj.jit(lambda x: m(x))
    f(x)
    fj.testmode_(m)
    assert_close(np.asarray(f(x)), np.asarray(m(x)))  # running statistics, no dropout
    μ = np.asarray(m[1].μ.data)
    fj.trainmode_(m)
    with compilations() as found:
        y = np.asarray(f(x))
    assert found == []  # the train-mode variant was kept
    assert (y == 0).any()  # dropout is on again
    assert not np.allclose(np.asarray(m[1].μ.data), μ)  # and the statistics move


def test_reset_on_a_new_batch_size_keeps_compiled_code(rng):
    fj.seed(0)
    r = fj.Chain(fj.LSTM(3, 6), fj.Dense(6, 1))
    other = fj.Dense(3, 1)
    g = fj.jit(lambda x: other(x))
    x, y = _data(rng, 16)
    g(x)
    r(x)
    fj.reset_(r)
    r(x[:4])  # a new batch size after reset_
    with compilations() as found:
        g(x)
    assert found == []


def test_a_recurrent_models_second_train_call_compiles_nothing(rng):
    fj.seed(0)
    r = fj.Chain(fj.LSTM(3, 6), fj.Dense(6, 1))
    x, y = _data(rng, 16)
    opt, loss = fj.ADAM(0.01), (lambda x, y: fj.mse(r(x), y))
    data = [(x, y)] * 3
    fj.train_(loss, r, data, opt)
    with compilations() as found:
        fj.train_(loss, r, data, opt)
    assert found == []
