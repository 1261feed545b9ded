"""train_: the compiled, whole-epoch and eager paths agree; callbacks, stop, NaN, progress."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from _tol import assert_close

from fluxjax.layers import Chain, Dense, loadparams_, params, relu
from fluxjax.tracker import Params, param
from fluxjax.train import (
    ADAM,
    DataLoader,
    Descent,
    Momentum,
    logitcrossentropy,
    mse,
    stop,
    throttle,
    train_,
)


def make_data(n=103, seed=0):
    rng = np.random.default_rng(seed)
    X = rng.standard_normal((n, 4)).astype(np.float32)
    Y = np.eye(3, dtype=np.float32)[(X[:, 0] > 0).astype(int) + (X[:, 1] > 1)]
    return X, Y


def make_model(seed=1):
    return Chain(Dense(4, 8, relu, key=jax.random.key(seed)), Dense(8, 3, key=jax.random.key(9)))


def state(model):
    return [np.asarray(p.data) for p in params(model)]


def assert_same(a, b, rtol=1e-5, atol=1e-6):
    for x, y in zip(state(a), state(b), strict=True):
        np.testing.assert_allclose(x, y, rtol=rtol, atol=atol)


def classifier_loss(model):
    return lambda x, y: logitcrossentropy(model(x), y)


def test_train_fits_and_returns_per_step_losses():
    X, Y = make_data()
    m = make_model()
    losses = train_(classifier_loss(m), params(m), DataLoader((X, Y), 16), ADAM(0.01), epochs=20)
    assert losses.ndim == 1 and losses.shape == (7 * 20,)
    assert float(losses[-10:].mean()) < 0.5 * float(losses[:7].mean())


def test_items_are_splatted_only_when_tuples():
    W = param(jnp.zeros(2))
    seen = []

    def loss(x):
        seen.append(type(x))
        return ((x - W) ** 2).sum()

    train_(loss, Params([W]), [jnp.ones(2)] * 3, Descent(0.1), jit=False)
    assert seen == [jax.Array] * 3 or all(issubclass(t, jax.Array) for t in seen)
    train_(lambda a, b: ((a + b - W) ** 2).sum(), Params([W]), [(1.0, 2.0)] * 3, Descent(0.1))


@pytest.mark.parametrize("opt", [ADAM(0.01), Momentum(0.05)], ids=repr)
def test_jit_and_eager_paths_give_the_same_params_after_50_steps(opt):
    X, Y = make_data()
    batches = [(X[i : i + 8], Y[i : i + 8]) for i in range(0, 96, 8)] * 5  # 60 steps
    a, b = make_model(), make_model()
    la = train_(classifier_loss(a), params(a), batches[:50], opt)
    opt_b = type(opt)(*opt._hyper.values())
    lb = train_(classifier_loss(b), params(b), batches[:50], opt_b, jit=False)
    assert la.shape == lb.shape == (50,)
    np.testing.assert_allclose(la, lb, rtol=1e-5, atol=1e-6)
    assert_same(a, b)


@pytest.mark.parametrize("with_callback", [False, True])
def test_whole_epoch_scan_equals_the_per_step_path(with_callback):
    X, Y = make_data(103)
    a, b = make_model(), make_model()
    calls = []
    cb = (lambda: calls.append(1)) if with_callback else None
    la = train_(
        classifier_loss(a),
        params(a),
        DataLoader((X, Y), 8, shuffle=True, key=5),  # 12 full batches + one of 7
        ADAM(0.01),
        epochs=3,
        cb=cb,
    )
    same = DataLoader((X, Y), 8, shuffle=True, key=5)
    batches = [batch for _ in range(3) for batch in same]
    lb = train_(classifier_loss(b), params(b), batches, ADAM(0.01))
    assert la.shape == lb.shape == (39,)
    np.testing.assert_allclose(la, lb, rtol=1e-5, atol=1e-6)
    assert_same(a, b)
    if with_callback:
        # chunks of ceil(12 / 10) = 2 steps: 6 chunks, then the partial batch, per epoch
        assert len(calls) == 3 * 7


def test_scan_path_single_array_and_no_partial_batch():
    X = np.random.default_rng(3).standard_normal((50, 3)).astype(np.float32)
    a, b = param(jnp.zeros(3)), param(jnp.zeros(3))
    loss_a = lambda x: mse(x @ a, x.sum(-1))  # noqa: E731
    loss_b = lambda x: mse(x @ b, x.sum(-1))  # noqa: E731
    la = train_(loss_a, Params([a]), DataLoader(X, 16, partial=False), Descent(0.1), epochs=2)
    lb = train_(loss_b, Params([b]), list(DataLoader(X, 16, partial=False)) * 2, Descent(0.1))
    assert la.shape == (6,)
    assert_close(la, lb)
    assert_close(a.data, b.data)


def test_callbacks_list_called_after_every_step_and_see_current_params():
    W = param(jnp.zeros(2))
    target = jnp.array([1.0, -1.0])
    seen, count = [], [0]

    def record():
        seen.append(np.asarray(W.data))

    def counter():
        count[0] += 1

    train_(lambda: mse(W, target), Params([W]), [()] * 5, Descent(0.5), cb=[record, counter])
    assert count[0] == 5
    # Descent(0.5) on mse: W ← W - 0.5 · (W - target), so W = (1 - 0.5^k) · target
    for k, w in enumerate(seen, start=1):
        assert_close(w, (1 - 0.5**k) * np.asarray(target))


def test_values_read_in_a_callback_stay_valid():
    """The compiled loop donates its buffers; the params' own values are never donated."""
    W = param(jnp.ones(3))
    kept = []
    train_(
        lambda: (W * W).sum(), Params([W]), [()] * 4, Descent(0.1), cb=lambda: kept.append(W.data)
    )
    assert [float(k[0]) for k in kept] == pytest.approx([0.8, 0.64, 0.512, 0.4096], rel=1e-5)


def test_stop_from_a_throttled_callback_ends_training_cleanly():
    W = param(jnp.zeros(2))
    target = jnp.array([1.0, 2.0])
    t, fired = [0], []

    def tick():
        t[0] += 1

    def maybe_stop():
        fired.append(t[0])
        if len(fired) == 3:
            stop()

    cb = [tick, throttle(maybe_stop, 2, clock=lambda: t[0])]
    losses = train_(lambda: mse(W, target), Params([W]), [()] * 100, Descent(0.5), cb=cb)
    assert fired == [1, 3, 5]  # after steps 0, 2 and 4
    assert losses.shape == (5,)
    assert_close(W.data, (1 - 0.5**5) * np.asarray(target))


@pytest.mark.parametrize("jit", [False, True])
def test_stop_on_the_eager_path_and_the_scan_path(jit):
    X = np.ones((40, 2), np.float32)
    data = DataLoader(X, 4) if jit else [X[:4]] * 10  # scan: 10 batches, chunks of 1 step
    W = param(jnp.zeros(2))
    calls = []

    def cb():
        calls.append(1)
        if len(calls) == 2:
            stop()

    losses = train_(lambda x: mse(x @ W, 1.0), Params([W]), data, Descent(0.1), cb=cb, jit=jit)
    assert len(calls) == 2
    assert losses.shape == (2,)


def test_stop_outside_train_raises():
    with pytest.raises(Exception, match="outside train_"):
        stop()


def nan_data():
    scales = [1.0, 1.0, 1.0, float("nan"), 1.0, 1.0]
    return [(jnp.ones(2), jnp.asarray(s, jnp.float32)) for s in scales]


@pytest.mark.parametrize("jit", [True, False])
@pytest.mark.parametrize("with_callback", [False, True])
def test_nan_loss_names_the_step_and_keeps_the_last_finite_params(jit, with_callback):
    W, ref = param(jnp.zeros(2)), param(jnp.zeros(2))
    cb = (lambda: None) if with_callback else None

    def loss_of(p):
        return lambda x, s: mse(x * p, 3.0) * s

    with pytest.raises(FloatingPointError, match="step 3"):
        train_(loss_of(W), Params([W]), nan_data(), ADAM(0.1), jit=jit, cb=cb)
    train_(loss_of(ref), Params([ref]), nan_data()[:3], ADAM(0.1))
    assert_close(W.data, ref.data)


def test_nan_on_the_scan_path():
    X = np.ones((40, 2), np.float32)
    S = np.ones(40, np.float32)
    S[21] = np.inf  # in batch 5 of size 4
    W, ref = param(jnp.zeros(2)), param(jnp.zeros(2))
    with pytest.raises(FloatingPointError, match="step 5"):
        train_(lambda x, s: mse(x @ W, 1.0) * s.mean(), Params([W]), DataLoader((X, S), 4), ADAM())
    train_(lambda x: mse(x @ ref, 1.0), Params([ref]), DataLoader(X[:20], 4), ADAM())
    assert_close(W.data, ref.data)


def test_optimiser_state_carries_over_between_calls():
    X, Y = make_data()
    batches = [(X[i : i + 8], Y[i : i + 8]) for i in range(0, 96, 8)]
    a, b = make_model(), make_model()
    opt_a, opt_b = ADAM(0.01), ADAM(0.01)
    train_(classifier_loss(a), params(a), batches, opt_a)
    train_(classifier_loss(a), params(a), batches, opt_a)
    train_(classifier_loss(b), params(b), batches * 2, opt_b)
    assert_same(a, b)


def test_a_model_can_stand_for_its_params():
    X, Y = make_data()
    a, b = make_model(), make_model()
    train_(classifier_loss(a), a, [(X, Y)] * 3, Descent(0.1))
    train_(classifier_loss(b), params(b), [(X, Y)] * 3, Descent(0.1))
    assert_same(a, b)


def test_errors():
    W = param(jnp.zeros(2))
    with pytest.raises(ValueError, match="iterated again"):
        train_(lambda: W.sum(), Params([W]), iter([()] * 3), Descent(), epochs=2)
    for jit in (True, False):
        with pytest.raises(ValueError, match="scalar"):
            train_(lambda: W * 2, Params([W]), [()], Descent(), jit=jit)


def test_a_loss_needing_concrete_values_says_to_use_jit_false():
    W = param(jnp.ones(2))

    def loss():
        l = (W * W).sum()
        return l if float(l) > 0 else -l

    with pytest.raises(TypeError) as info:
        train_(loss, Params([W]), [()], Descent())
    assert "jit=False" in "".join(getattr(info.value, "__notes__", [])) + str(info.value)
    train_(loss, Params([W]), [()], Descent(), jit=False)  # fine in Python
    assert_close(W.data, [0.8, 0.8])


def test_progress_bar_shows_steps(capfd):
    W = param(jnp.zeros(2))
    train_(lambda: mse(W, 1.0), Params([W]), [()] * 5, Descent(0.1), progress=True)
    err = capfd.readouterr().err
    assert "train_" in err and "5/5" in err


def test_progress_bar_comes_from_tqdm_auto(monkeypatch):
    """tqdm.auto picks the notebook widget or the terminal bar; train_ asks it for one."""
    import tqdm.auto

    made = []

    class Recording(tqdm.auto.tqdm):
        def __init__(self, *args, **kwargs):
            made.append(kwargs)
            super().__init__(*args, disable=True, **kwargs)

    monkeypatch.setattr(tqdm.auto, "tqdm", Recording)
    W = param(jnp.zeros(2))
    train_(lambda: mse(W, 1.0), Params([W]), [()] * 3, Descent(0.1), progress=True)
    assert made == [dict(total=3, desc="train_", unit="step")]


def test_params_untouched_by_loading_model_copies():
    """loadparams_ between runs is seen by the next train_ (nothing cached across calls)."""
    X, Y = make_data()
    a = make_model()
    train_(classifier_loss(a), params(a), [(X, Y)] * 2, Descent(0.1))
    b = make_model()
    loadparams_(a, params(b))
    assert_same(a, b)
