"""State has one owner: a recurrent carry advances the same way on every path (eager,
``fluxjax.jit``, ``train_`` compiled/scan/eager/explicit), ``truncate_``, and the error
of a ``back_`` loop over a freed carry. Oracle: pure ``jax.numpy`` twins of Flux v0.9's
cells, trained with ``jax.grad``."""

from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from _tol import assert_close
from _twins import gru_step, lstm_step, rnn_step

import fluxjax as fj

KINDS = {
    "rnn": (fj.RNN, rnn_step, 1),
    "lstm": (fj.LSTM, lambda w, h, x: lstm_step(w, h, x), 2),
    "gru": (fj.GRU, gru_step, 1),
}


def twin_outputs(kind, w, xs, h=None):
    """Outputs of successive steps from ``h`` (default: the initial state in ``w[3:]``)."""
    _, step, nstate = KINDS[kind]
    h = (tuple(w[3:5]) if nstate == 2 else w[3]) if h is None else h
    ys = []
    for x in xs:
        h = step(w, h, x)
        ys.append(h[0] if nstate == 2 else h)
    return ys, h


def make(kind, seed=0):
    m = KINDS[kind][0](3, 4, key=jax.random.PRNGKey(seed))
    rng = np.random.default_rng(seed)
    for p in fj.params(m):  # random initial states too, so they matter
        p.data = jnp.asarray(rng.normal(size=p.shape).astype(np.float32))
    return m, [p.data for p in fj.params(m)]


@pytest.mark.parametrize("kind", ["rnn", "lstm", "gru"])
def test_fluxjax_jit_one_step_function_advances_the_carry_as_eager(rng, kind):
    m, w = make(kind)
    step = fj.jit(lambda x: m(x))
    xs = [rng.normal(size=(4, 3)).astype(np.float32) for _ in range(3)]
    want, _ = twin_outputs(kind, w, xs)
    for x, y in zip(xs, want):  # the first compiled call after construction included
        assert_close(np.asarray(step(x)), np.asarray(y))
    fj.reset_(m)  # and after reset_, on a batch of a new size
    xs2 = [rng.normal(size=(2, 3)).astype(np.float32) for _ in range(3)]
    want2, _ = twin_outputs(kind, w, xs2)
    for x, y in zip(xs2, want2):
        assert_close(np.asarray(step(x)), np.asarray(y))


@pytest.mark.parametrize("kind", ["lstm", "gru"])
def test_sequences_under_fluxjax_jit_without_reset_continue_the_carry(rng, kind):
    m, w = make(kind)
    run = fj.jit(lambda x: m(x))
    xs = rng.normal(size=(2, 3, 3)).astype(np.float32)
    steps = [xs[:, t] for t in range(3)]
    want, h = twin_outputs(kind, w, steps)
    for _ in range(3):
        assert_close(np.asarray(run(xs)), np.stack([np.asarray(y) for y in want], 1))
        want, h = twin_outputs(kind, w, steps, h)


def test_truncate_keeps_the_value_and_lets_a_back_loop_run(rng):
    m, w = make("lstm")
    xs = [rng.normal(size=(2, 3)).astype(np.float32) for _ in range(3)]
    want, _ = twin_outputs("lstm", w, xs)
    for x, y in zip(xs, want):
        out = m(x)
        assert_close(np.asarray(out.data), np.asarray(y))  # truncation keeps the values
        fj.back_(fj.numpy.sum(out))
        assert fj.truncate_(m) is m
    # the last back_ only reached the last step: d/dWi of the last output from the
    # carry as a constant
    hc = twin_outputs("lstm", w, xs[:2])[1]
    g = jax.grad(lambda Wi: jnp.sum(lstm_step([Wi, *w[1:3]], hc, xs[2])[0]))(w[0])
    Wi = list(fj.params(m))[0]
    fj.reset_(m)
    Wi.grad = None
    for x in xs:
        out = m(x)
        Wi.grad = None
        fj.back_(fj.numpy.sum(out))
        fj.truncate_(m)
    assert_close(np.asarray(Wi.grad), np.asarray(g))


def test_a_back_loop_over_a_freed_carry_names_reset_and_truncate(rng):
    m, _ = make("lstm")
    x = rng.normal(size=(2, 3)).astype(np.float32)
    fj.back_(fj.numpy.sum(m(x)))
    with pytest.raises(RuntimeError, match=r"truncate_.*reset_"):
        m(x)
    fj.truncate_(m)
    fj.back_(fj.numpy.sum(m(x)))  # fine again


def twin_train(w, data, lr):
    """Descent on Chain(LSTM, Dense) with mse, the carry truncated at each step (from the
    initial state, with its gradient, at step 0)."""
    carry, losses = None, []
    for x, y in data:

        def loss(w, carry, x=x, y=y):
            hc = tuple(w[3:5]) if carry is None else carry
            h, c = lstm_step(w, hc, x)
            return jnp.mean((h @ w[5].T + w[6] - y) ** 2), (h, c)

        (l, new), g = jax.value_and_grad(loss, has_aux=True)(w, carry)
        carry = jax.lax.stop_gradient(new)
        losses.append(l)
        w = [a - lr * b for a, b in zip(w, g)]
    return np.asarray(losses), w, carry


def _chain():
    fj.seed(3)
    return fj.Chain(fj.LSTM(3, 6), fj.Dense(6, 2))


def _data(rng, n=3):
    return [
        (rng.normal(size=(4, 3)).astype(np.float32), rng.normal(size=(4, 2)).astype(np.float32))
        for _ in range(n)
    ]


def _train(how, data):
    m = _chain()
    loss = lambda x, y: fj.mse(m(x), y)  # noqa: E731
    if how in ("compiled", "eager"):
        losses = fj.train_(loss, m, data, fj.Descent(0.1), jit=how == "compiled")
    elif how == "scan":
        xs, ys = (np.concatenate(t) for t in zip(*data))
        losses = fj.train_(loss, m, fj.DataLoader((xs, ys), batchsize=4), fj.Descent(0.1))
    else:
        st = fj.setup(fj.Descent(0.1), m)
        explicit = lambda m, x, y: fj.mse(m(x), y)  # noqa: E731
        losses = fj.train_(explicit, m, data, st, jit=how == "explicit-compiled")
    return m, np.asarray(losses)


@pytest.mark.parametrize("how", ["compiled", "eager", "scan", "explicit-compiled", "explicit"])
def test_train_on_an_lstm_chain_truncates_the_carry_the_same_way_on_every_path(rng, how):
    data = _data(rng)
    m0 = _chain()
    w = [p.data for p in fj.params(m0)]
    want_losses, want_w, want_carry = twin_train(w, data, 0.1)
    m, losses = _train(how, data)
    assert_close(losses, want_losses)
    for p, q in zip(fj.params(m), want_w):
        assert_close(np.asarray(p.data), np.asarray(q))
    for s, q in zip(m[0].state, want_carry):
        assert_close(np.asarray(s.data), np.asarray(q))
    # a second train_ call continues from the carry (no reset_): the twin says the same
    m2_losses = fj.train_(lambda x, y: fj.mse(m(x), y), m, data[:1], fj.Descent(0.0))
    h, _ = lstm_step(want_w, want_carry, data[0][0])
    assert_close(
        np.asarray(m2_losses), [float(jnp.mean((h @ want_w[5].T + want_w[6] - data[0][1]) ** 2))]
    )


@pytest.mark.parametrize("then_reset", [False, True])
def test_a_used_recurrent_model_loads_into_a_freshly_built_one(tmp_path, rng, then_reset):
    m = fj.Chain(fj.LSTM(3, 6), fj.BatchNorm(6), fj.GRU(6, 2))
    m(rng.normal(size=(5, 3)).astype(np.float32))  # batch-shaped carries, moved statistics
    if then_reset:
        fj.reset_(m)
    fj.save(tmp_path / "m.safetensors", m)
    fresh = fj.Chain(fj.LSTM(3, 6), fj.BatchNorm(6), fj.GRU(6, 2))
    fj.load(tmp_path / "m.safetensors", fresh)
    for a, b in zip(fj.params(fresh), fj.params(m)):
        assert_close(np.asarray(a.data), np.asarray(b.data))
    assert_close(np.asarray(fresh[1].μ.data), np.asarray(m[1].μ.data))  # persistent state
    assert fresh[0].state[0].shape == (6,)  # the carry stays the fresh one
    fj.reset_(m)
    x = rng.normal(size=(2, 3)).astype(np.float32)
    fj.testmode_(m), fj.testmode_(fresh)
    assert_close(np.asarray(fresh(x)), np.asarray(m(x)))


def _bn_model():
    fj.seed(1)
    return fj.Chain(fj.Dense(3, 4), fj.BatchNorm(4), fj.Dense(4, 1))


@pytest.mark.parametrize("jit", [True, False])
def test_a_refused_step_restores_running_statistics(rng, jit):
    x = rng.normal(size=(6, 3)).astype(np.float32)
    y = rng.normal(size=(6, 1)).astype(np.float32)
    bad_y = np.full_like(y, np.nan)  # finite batch, NaN loss: the forward pass ran
    ref = _bn_model()
    fj.train_(lambda x, y: fj.mse(ref(x), y), ref, [(x, y)], fj.Descent(0.1), jit=jit)
    m = _bn_model()
    with pytest.raises(FloatingPointError, match="step 1"):
        fj.train_(lambda x, y: fj.mse(m(x), y), m, [(x, y), (x, bad_y)], fj.Descent(0.1), jit=jit)
    assert_close(np.asarray(m[1].μ.data), np.asarray(ref[1].μ.data))
    assert_close(np.asarray(m[1].σ2.data), np.asarray(ref[1].σ2.data))
    for a, b in zip(fj.params(m), fj.params(ref)):
        assert_close(np.asarray(a.data), np.asarray(b.data))


@pytest.mark.parametrize("layer", [fj.BatchNorm(3), fj.InstanceNorm(3), fj.GroupNorm(4, 2)])
def test_normalisation_refuses_a_nan_batch_in_train_mode_on_every_path(rng, layer):
    c = layer.β.shape[0]
    x = rng.normal(size=(4, 5, c)).astype(np.float32)
    x[1, 2, 0] = np.nan
    before = [np.asarray(s.data) for s in fj.states(layer)]
    step = fj.jit(lambda x: layer(x))
    calls = [
        lambda: layer(x),
        lambda: step(x),
        lambda: fj.gradient(lambda: layer(x).sum(), fj.params(layer)),
    ]
    for call in calls:
        with pytest.raises(FloatingPointError, match="NaN or Inf"):
            call()
        for s, b in zip(fj.states(layer), before):
            np.testing.assert_array_equal(np.asarray(s.data), b)
    fj.testmode_(layer)
    assert np.isnan(np.asarray(layer(x))).any()  # test mode: no statistics to protect
