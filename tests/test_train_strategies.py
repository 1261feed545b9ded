"""``train_(..., strategy=)``: every way of running a ``DataLoader`` epoch gives the same
training as Flux's eager loop, and compiles once per step signature.

The oracle is ``train_(..., jit=False)``: Python runs the loss on concrete values at every
step, over the same batches in the same (shuffled) order. Each strategy must end with its
params, its state (running statistics, dropout keys, recurrent carry) and its per-step
losses. A 22-row set in batches of 4 gives 5 full batches and a partial one per epoch.
"""

import numpy as np
import pytest

import fluxjax as fj
from tests._compiles import Compiles as _Compiles
from tests._tol import assert_close

STRATEGIES = ["step", "scan", "unroll", "auto"]
N, B, EPOCHS = 22, 4, 2


def mlp():
    m = fj.Chain(fj.Dense(3, 8, fj.relu), fj.Dense(8, 2))
    return m, (N, 3), lambda x, y: fj.mse(m(x), y)


def cnn():
    m = fj.Chain(
        fj.Conv((3, 3), 1, 4, fj.relu, pad=1), fj.BatchNorm(4), fj.MaxPool((2, 2)),
        fj.Dropout(0.3), lambda h: h.reshape(h.shape[0], -1), fj.Dense(16, 2),
    )  # fmt: skip
    return m, (N, 4, 4, 1), lambda x, y: fj.mse(m(x), y)


def lstm():
    m = fj.Chain(fj.LSTM(3, 5), lambda h: h[:, -1], fj.Dense(5, 2))

    def loss(x, y):
        fj.reset_(m)
        return fj.mse(m(x), y)

    return m, (N, 6, 3), loss


MODELS = {"mlp": mlp, "cnn": cnn, "lstm": lstm}


def train(make, **kw):
    """A fresh model (same seed) trained for EPOCHS over a shuffled DataLoader: losses,
    params and state leaves."""
    fj.seed(0)
    m, xshape, loss = make()
    rng = np.random.default_rng(1)
    X = rng.normal(size=xshape).astype("float32")
    Y = rng.normal(size=(N, 2)).astype("float32")
    loader = fj.DataLoader((X, Y), B, shuffle=True, key=3)
    losses = fj.train_(loss, fj.params(m), loader, fj.ADAM(0.01), epochs=EPOCHS, **kw)
    values = lambda leaves: [np.asarray(leaf.data) for leaf in leaves]  # noqa: E731
    return {"losses": [np.asarray(losses)], "params": values(fj.params(m)),
            "states": values(fj.states(m))}  # fmt: skip


def assert_same(got, want, name, parts=("losses", "params", "states")):
    assert got["losses"][0].shape == (EPOCHS * 6,)
    for part in parts:
        assert len(got[part]) == len(want[part])
        for i, (a, b) in enumerate(zip(got[part], want[part])):
            assert a.dtype == b.dtype
            assert_close(a, b, rtol=1e-4, atol=1e-6, err_msg=f"{name}: {part} {i}")


@pytest.mark.parametrize("model", MODELS)
def test_every_strategy_trains_as_the_eager_loop_does(model):
    runs = {s: train(MODELS[model], strategy=s) for s in STRATEGIES}
    for s in STRATEGIES:
        assert_same(runs[s], runs["scan"], s)
    eager = train(MODELS[model], jit=False)
    for s in STRATEGIES:
        assert_same(runs[s], eager, f"{s} against eager")


@pytest.mark.parametrize("strategy", STRATEGIES)
def test_callbacks_see_the_same_params_whatever_the_strategy(strategy):
    seen = {}
    for s in ("scan", strategy):
        fj.seed(0)
        m, _, loss = mlp()
        X, Y = np.ones((N, 3), np.float32), np.zeros((N, 2), np.float32)
        record = seen[s] = []
        cb = lambda: record.append(np.asarray(m[0].W.data))  # noqa: B023, E731
        fj.train_(loss, m, fj.DataLoader((X, Y), B), fj.Descent(0.1), cb=cb, strategy=s)
    assert len(seen[strategy]) == len(seen["scan"]) == 6  # five chunks of one step, then the last
    for a, b in zip(seen[strategy], seen["scan"]):
        assert_close(a, b)


@pytest.mark.parametrize("strategy", STRATEGIES)
def test_a_nan_names_the_same_step_and_keeps_the_same_params(strategy):
    def run(s):
        fj.seed(0)
        m, _, loss = mlp()
        X = np.ones((N, 3), np.float32)
        X[13] = np.nan  # batch 3 of the epoch (rows 12..15)
        with pytest.raises(FloatingPointError, match="step 3 "):
            fj.train_(loss, m, fj.DataLoader((X, X[:, :2]), B), fj.ADAM(0.1), strategy=s)
        return [np.asarray(p.data) for p in fj.params(m)]

    for a, b in zip(run(strategy), _eager_until_nan()):
        assert_close(a, b)


def _eager_until_nan():
    """The params after the three finite steps of the eager loop."""
    fj.seed(0)
    m, _, loss = mlp()
    X = np.ones((N, 3), np.float32)
    fj.train_(loss, m, fj.DataLoader((X[:12], X[:12, :2]), B), fj.ADAM(0.1), jit=False)
    return [np.asarray(p.data) for p in fj.params(m)]


@pytest.mark.parametrize("strategy", STRATEGIES)
def test_explicit_style_follows_the_strategy(strategy):
    fj.seed(0)
    m, _, _ = mlp()
    X, Y = np.ones((N, 3), np.float32), np.zeros((N, 2), np.float32)
    loss = lambda model, x, y: fj.mse(model(x), y)  # noqa: E731
    state = fj.setup(fj.Descent(0.1), m)
    got = fj.train_(loss, m, fj.DataLoader((X, Y), B), state, strategy=strategy)
    implicit = train_mlp_implicit(X, Y)
    assert_close(np.asarray(got), np.asarray(implicit[0]))
    for p, want in zip(fj.params(m), implicit[1]):
        assert_close(np.asarray(p.data), want)


def train_mlp_implicit(X, Y):
    fj.seed(0)
    m, _, loss = mlp()
    losses = fj.train_(loss, fj.params(m), fj.DataLoader((X, Y), B), fj.Descent(0.1), jit=False)
    return losses, [np.asarray(p.data) for p in fj.params(m)]


@pytest.mark.parametrize(
    ("model", "strategy", "epoch_fn"),
    [("cnn", "auto", "jit(epoch_step)"), ("mlp", "auto", "jit(epoch_scan)"),
     ("lstm", "auto", "jit(epoch_scan)"), ("mlp", "step", "jit(epoch_step)"),
     ("cnn", "scan", "jit(epoch_scan)"), ("cnn", "unroll", "jit(epoch_scan)")],
)  # fmt: skip
def test_one_compile_per_step_signature(model, strategy, epoch_fn):
    fj.seed(0)
    m, xshape, loss = MODELS[model]()
    X = np.ones(xshape, np.float32)
    loader = fj.DataLoader((X, np.ones((N, 2), np.float32)), B, shuffle=True, key=0)
    with _Compiles() as first:
        fj.train_(loss, m, loader, fj.ADAM(), epochs=3, strategy=strategy, cb=lambda: None)
    with _Compiles() as second:
        fj.train_(loss, m, loader, fj.ADAM(), epochs=2, strategy=strategy)
    # auto on a CPU: a step that convolves runs one call per step, anything else scans;
    # chunks of one step (callbacks) over 3 epochs: one compiled epoch function, plus
    # the per-item step for the partial last batch
    epoch_fns = [n for n in first.names if n.startswith("jit(epoch_")]
    assert epoch_fns == [epoch_fn], first.names
    assert first.names.count("jit(step)") == 1
    # a second call (another optimiser object, equal settings; whole-epoch chunks for a
    # scan) compiles nothing but a scan of the new chunk length
    assert [n for n in second.names if n != "jit(epoch_scan)"] == []
    assert len(second.names) <= (epoch_fn == "jit(epoch_scan)")


def test_a_bad_strategy_is_rejected_before_anything_changes():
    fj.seed(0)
    m, _, loss = mlp()
    X = np.ones((N, 3), np.float32)
    before = [np.asarray(p.data) for p in fj.params(m)]
    loader = fj.DataLoader((X, X[:, :2]), B)
    with pytest.raises(ValueError, match="strategy must be one of"):
        fj.train_(loss, m, loader, fj.ADAM(), strategy="fast")
    with pytest.raises(ValueError, match="needs jit=True"):
        fj.train_(loss, m, loader, fj.ADAM(), strategy="scan", jit=False)
    with pytest.raises(ValueError, match="not a DataLoader"):
        fj.train_(loss, m, list(loader), fj.ADAM(), strategy="scan")
    for p, b in zip(fj.params(m), before):
        np.testing.assert_array_equal(np.asarray(p.data), b)


def test_step_strategy_on_a_list_of_batches_is_the_per_step_path():
    fj.seed(0)
    m, _, loss = mlp()
    X = np.ones((8, 3), np.float32)
    losses = fj.train_(loss, m, [(X, X[:, :2])] * 3, fj.Descent(0.1), strategy="step")
    assert losses.shape == (3,)
