"""A first ``train_`` call over a ``DataLoader`` compiles its epoch function and nothing
else (issue 21: no compile of its own for the optimiser's fresh state, the start copy,
the start finiteness check or a recurrent carry's resize); a second call compiles nothing.
Also: params already non-finite when a call begins are not judged (only the loss is), on
every path alike, the eager loop being the oracle.
"""

import numpy as np
import pytest

import fluxjax as fj
from fluxjax.train import _steps
from fluxjax.train._opt_arrays import named_state
from tests._compiles import Compiles as _Compiles
from tests._tol import assert_close

N, B = 16, 4  # every batch full: no per-item step for a partial one


def _cnn():
    return fj.Chain(
        fj.Conv((3, 3), 1, 4, fj.relu, pad=1), fj.MaxPool((2, 2)),
        lambda h: h.reshape(h.shape[0], -1), fj.Dense(16, 2),
    ), (N, 4, 4, 1)  # fmt: skip


def _lstm():
    return fj.Chain(fj.LSTM(3, 5), lambda h: h[:, -1], fj.Dense(5, 2)), (N, 6, 3)


@pytest.mark.parametrize(
    ("make", "epoch_fn"), [(_cnn, "jit(epoch_step)"), (_lstm, "jit(epoch_scan)")]
)
@pytest.mark.parametrize("style", ["implicit", "explicit"])
def test_a_first_call_compiles_its_epoch_function_only(make, epoch_fn, style):
    fj.seed(0)
    m, xshape = make()
    rng = np.random.default_rng(0)
    data = (rng.normal(size=xshape).astype(np.float32), np.ones((N, 2), np.float32))
    loader = fj.DataLoader(data, B)

    def loss(model, x, y):
        fj.reset_(model)
        return fj.mse(model(x), y)

    if style == "explicit":
        state = fj.setup(fj.ADAM(), m)
        args = (loss, m, loader, state)
    else:
        args = (lambda x, y: loss(m, x, y), fj.params(m), loader, fj.ADAM())
    with _Compiles() as first:
        fj.train_(*args)
    with _Compiles() as second:
        fj.train_(*args)
    assert first.names == [epoch_fn]
    assert second.names == []


def _with_a_nan_param(strategy):
    """A model whose unused param is NaN from the start: the loss stays finite."""
    fj.seed(0)
    m = fj.Dense(3, 2)
    dead = fj.param(np.array([np.nan, 1.0], np.float32))
    X = np.linspace(-1, 1, 3 * N, dtype=np.float32).reshape(N, 3)
    loader = fj.DataLoader((X, np.ones((N, 2), np.float32)), B)
    ps = fj.Params([*fj.params(m), dead])  # trained; the loss does not read it: gradient 0
    losses = fj.train_(
        lambda x, y: fj.mse(m(x), y), ps, loader, fj.Descent(0.1),
        jit=strategy is not None, **({"strategy": strategy} if strategy else {}),
    )  # fmt: skip
    return np.asarray(losses), [np.asarray(p.data) for p in ps]


@pytest.fixture(params=["host", "device"])
def guard(request, monkeypatch):
    """Both ways a call checks its params at the start, and both ways its carry is copied:
    on the host, copied when first donated (a CPU), and on the device (elsewhere)."""
    monkeypatch.setattr(_steps, "_on_cpu", lambda: request.param == "host")


@pytest.mark.parametrize("strategy", ["step", "scan"])
def test_params_non_finite_as_a_call_begins_are_not_judged(strategy, guard):
    eager_losses, eager_params = _with_a_nan_param(None)
    losses, params = _with_a_nan_param(strategy)
    assert len(losses) == len(eager_losses) == N // B
    assert_close(losses, eager_losses)
    for got, want in zip(params, eager_params):
        np.testing.assert_array_equal(np.isnan(got), np.isnan(want))
        assert_close(np.nan_to_num(got), np.nan_to_num(want))


def _nan_at_the_third_step(strategy):
    """Params after a call whose third step meets a NaN, and the optimiser state before
    and after it."""
    fj.seed(0)
    m = fj.Dense(3, 2)
    X = np.linspace(-1, 1, 3 * N, dtype=np.float32).reshape(N, 3)
    X[2 * B + 1, 0] = np.nan  # in the third batch
    loader = fj.DataLoader((X, np.ones((N, 2), np.float32)), B)
    opt, ps = fj.ADAM(0.1), fj.params(m)
    kw = {"strategy": strategy} if strategy else {"jit": False}
    before = named_state(opt, list(ps))
    with pytest.raises(FloatingPointError, match="step 2 "):
        fj.train_(lambda x, y: fj.mse(m(x), y), ps, loader, opt, **kw)
    return [np.asarray(p.data) for p in ps], before, named_state(opt, list(ps))


@pytest.mark.parametrize("strategy", ["step", "scan"])
def test_a_refused_step_keeps_the_last_finite_params(strategy, guard):
    eager_params, _, _ = _nan_at_the_third_step(None)
    params, before, after = _nan_at_the_third_step(strategy)
    for got, want in zip(params, eager_params):
        assert_close(got, want)
    # a compiled call that saw a bad step keeps the optimiser state it began with
    assert sorted(after) == sorted(before)
    for name in before:
        np.testing.assert_array_equal(after[name], before[name])


def _lstm_trained(reset, **kw):
    """Params after one epoch of the LSTM workload, and how many times its loss ran."""
    fj.seed(0)
    m, xshape = _lstm()
    rng = np.random.default_rng(1)
    data = (rng.normal(size=xshape).astype(np.float32), np.ones((N, 2), np.float32))
    runs = []

    def loss(x, y):
        runs.append(1)
        if reset:
            fj.reset_(m)
        return fj.mse(m(x), y)

    fj.train_(loss, fj.params(m), fj.DataLoader(data, B), fj.ADAM(0.01), **kw)
    return [np.asarray(p.data) for p in fj.params(m)], len(runs)


@pytest.mark.parametrize("reset", [True, False])
@pytest.mark.parametrize("strategy", ["step", "scan"])
def test_a_first_call_traces_a_recurrent_loss_twice(strategy, reset):
    """The trace that finds the LSTM's carry (not threaded yet, of another shape than the
    batch) threads it and fits it to the batch in one retrace: two traces, not three.
    Params: the eager loop's."""
    want, _ = _lstm_trained(reset, jit=False)
    got, runs = _lstm_trained(reset, strategy=strategy)
    assert runs == 2
    for g, w in zip(got, want):
        assert_close(g, w)
