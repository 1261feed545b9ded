"""Recurrent cells and Recur against pure jax.numpy twins of Flux v0.9's formulas; state
carried between calls, reset_, and the same numbers eagerly and compiled."""

from __future__ import annotations

import jax
import jax.extend
import jax.numpy as jnp
import numpy as np
import pytest
from _twins import gru_step, lstm_step, rnn_step

import fluxjax as fj

TOL = dict(rtol=1e-5, atol=1e-5)


def twin_run(kind, w, xs):
    """Outputs of the whole sequence from the initial state held in ``w[3:]``."""
    step = {"rnn": rnn_step, "lstm": lstm_step, "gru": gru_step}[kind]
    h = (w[3], w[4]) if kind == "lstm" else w[3]
    ys = []
    for x in xs:
        h = step(w, h, x)
        ys.append(h[0] if kind == "lstm" else h)
    return ys


MAKE = {"rnn": fj.RNN, "lstm": fj.LSTM, "gru": fj.GRU}


def _model(kind, rng):
    m = MAKE[kind](3, 2)
    for p in fj.params(m):  # random initial states too, so they matter
        p.data = jnp.asarray(rng.normal(size=p.shape).astype(np.float32))
    return m, [p.data for p in fj.params(m)]


@pytest.mark.parametrize("kind", ["rnn", "lstm", "gru"])
def test_sequences_match_the_twin_and_state_carries_over(rng, kind):
    m, w = _model(kind, rng)
    xs = [rng.normal(size=(4, 3)).astype(np.float32) for _ in range(5)]
    want = twin_run(kind, w, xs)
    got = m(xs[:2]) + [m(x) for x in xs[2:]]  # a list, then single steps: the state carries
    for a, b in zip(got, want):
        np.testing.assert_allclose(np.asarray(a), np.asarray(b), **TOL)
    fj.reset_(m)
    y = m(np.stack(xs, axis=1))  # one array (n, time, features)
    assert y.shape == (4, 5, 2)
    np.testing.assert_allclose(np.asarray(y), np.stack([np.asarray(v) for v in want], 1), **TOL)


@pytest.mark.parametrize("kind", ["rnn", "lstm", "gru"])
def test_bptt_gradients_match_jax_grad_including_the_initial_state(rng, kind):
    m, w = _model(kind, rng)
    xs = [rng.normal(size=(2, 3)).astype(np.float32) for _ in range(4)]
    m(xs[0])  # some state from before, then reset_ as a loss would

    def loss():
        fj.reset_(m)
        return fj.numpy.sum(fj.numpy.sin(m(xs)[-1]))

    def loss_array():  # one (n, time, in) array: the steps run as a lax.scan in a trace
        fj.reset_(m)
        return fj.numpy.sum(fj.numpy.sin(m(np.stack(xs, 1))[:, -1]))

    want = jax.grad(lambda w: jnp.sum(jnp.sin(twin_run(kind, w, xs)[-1])))(w)
    for f in (loss, loss_array):
        gs = fj.gradient(f, fj.params(m))
        for p, g in zip(fj.params(m), want):
            np.testing.assert_allclose(np.asarray(gs[p]), np.asarray(g), **TOL)


def test_cells_follow_flux_layouts():
    c = fj.LSTMCell(3, 2)
    assert [tuple(p.shape) for p in fj.params(c)] == [(8, 3), (8, 2), (8,), (2,), (2,)]
    assert np.asarray(c.b.data)[2:4].tolist() == [1.0, 1.0]  # forget gate
    assert [tuple(p.shape) for p in fj.params(fj.GRUCell(3, 2))] == [(6, 3), (6, 2), (6,), (2,)]
    assert repr(fj.RNN(3, 2, fj.relu)) == "Recur(RNNCell(3, 2, relu))"
    assert repr(fj.LSTM(3, 2)) == "Recur(LSTMCell(3, 2))"
    with pytest.raises(ValueError, match=r"LSTMCell\(3, 2\).*size 3"):
        fj.LSTM(3, 2)(jnp.ones((4, 5)))


def test_reset_restores_the_initial_state(rng):
    m, _ = _model("lstm", rng)
    x = rng.normal(size=(3, 3)).astype(np.float32)
    first = np.asarray(m(x))
    assert not np.allclose(np.asarray(m(x)), first)
    assert np.allclose(np.asarray(fj.reset_(fj.Chain(m))[0](x)), first, **TOL)


@pytest.mark.parametrize("kind", ["lstm", "gru"])
def test_train_compiled_equals_eager(rng, kind):
    xs = np.stack([rng.normal(size=(4, 3)).astype(np.float32) for _ in range(3)], 1)
    ys = rng.normal(size=(4, 2)).astype(np.float32)
    out = []
    for jit in (True, False):
        fj.seed(5)
        m = fj.Chain(MAKE[kind](3, 4), lambda h: h[:, -1], fj.Dense(4, 2))

        def loss(x, y, m=m):
            fj.reset_(m)
            return fj.mse(m(x), y)

        losses = fj.train_(loss, m, [(xs, ys)] * 4, fj.ADAM(0.01), jit=jit)
        out.append((np.asarray(losses), [np.asarray(p.data) for p in fj.params(m)]))
    np.testing.assert_allclose(out[0][0], out[1][0], **TOL)
    for a, b in zip(out[0][1], out[1][1]):
        np.testing.assert_allclose(a, b, **TOL)


def test_state_carries_through_fluxjax_jit_and_plain_jax_jit(rng):
    m, w = _model("rnn", rng)
    xs = [rng.normal(size=(2, 3)).astype(np.float32) for _ in range(4)]
    want = twin_run("rnn", w, xs)
    m(xs[0])  # eager first step: the stored state now has the batch's shape
    step = fj.jit(lambda x: m(x))
    for x, y in zip(xs[1:], want[1:]):
        np.testing.assert_allclose(np.asarray(step(x)), np.asarray(y), **TOL)
    np.testing.assert_allclose(np.asarray(m.state.data), np.asarray(want[-1]), **TOL)
    fresh = fj.RNN(3, 2)
    fj.loadparams_(fresh, w)
    y = jax.jit(lambda m, x: m(x))(fresh, xs[0])  # a pytree: starts from the initial state
    np.testing.assert_allclose(np.asarray(y), np.asarray(rnn_step(w, w[3], xs[0])), **TOL)


def test_reset_inside_a_compiled_loss_after_a_batch_of_another_size(rng):
    m = fj.Chain(fj.GRU(3, 2), lambda h: h[:, -1])
    m(np.ones((5, 4, 3), np.float32))  # eager: the stored state is now (5, 2)
    x = rng.normal(size=(2, 4, 3)).astype(np.float32)

    def loss(x):
        fj.reset_(m)
        return fj.numpy.sum(m(x))

    losses = fj.train_(loss, m, [x] * 2, fj.Descent(0.0))
    fj.reset_(m)
    np.testing.assert_allclose(np.asarray(losses), float(fj.numpy.sum(m(x))), **TOL)


def test_a_state_from_another_batch_size_needs_reset(rng):
    m = fj.RNN(3, 2)
    m(np.ones((5, 3), np.float32))
    with pytest.raises(ValueError, match="call reset_ first"):
        m(np.ones((2, 3), np.float32))
    p = fj.param(0.0)
    fj.reset_(m)  # eager reset_ before a compiled step that does not reset
    losses = fj.train_(
        lambda x: fj.numpy.sum(m(x)) + p, [p], [np.ones((2, 3), np.float32)], fj.Descent(0.0)
    )
    fresh = fj.RNN(3, 2)
    fj.loadparams_(fresh, [q.data for q in fj.params(m)])
    np.testing.assert_allclose(
        np.asarray(losses), [float(fj.numpy.sum(fresh(np.ones((2, 3)))))], **TOL
    )


def _top_level_dots(jaxpr):
    """dot_general equations outside any scan (inside pjit/remat/custom calls too)."""
    n = 0
    for eqn in jaxpr.eqns:
        if eqn.primitive.name == "dot_general":
            n += 1
        elif eqn.primitive.name != "scan":
            for sub in jax.extend.core.jaxprs_in_params(eqn.params):
                n += _top_level_dots(sub)
    return n


@pytest.mark.parametrize("reset_inside", [False, True])
@pytest.mark.parametrize("kind", ["rnn", "lstm", "gru"])
def test_a_compiled_sequence_runs_every_step_in_the_scan(rng, kind, reset_inside):
    """Inside a trace that computes tracked steps as plain JAX (a compiled ``train_`` step,
    ``gradient`` of a model: the bridge, ``tracker.Pure``), the whole ``(n, time, in)``
    sequence is one ``lax.scan``: no time step is unrolled before it (that made the LSTM
    step's compile ~1.6x, 13 dot products against 8), also when the traced function
    calls ``reset_`` itself (the steps start from the initial state's params). Outputs:
    the twin's."""
    from fluxjax import tracker

    m, w = _model(kind, rng)
    xs = rng.normal(size=(4, 5, 3)).astype(np.float32)
    fj.reset_(m)
    m(xs)  # the carry takes the batch's shape (a compiled step's setup does this)
    fj.reset_(m)
    leaves = [*fj.params(m), *fj.states(m)]
    call = (lambda x: fj.reset_(m)(x)) if reset_inside else (lambda x: m(x))
    bridge = tracker.Pure(call, leaves, compiled=True, write_leaves=True)

    def run(values, x):
        out, _ = bridge(values, x)
        return out

    values = [np.asarray(p.data) for p in leaves]
    assert _top_level_dots(jax.make_jaxpr(run)(values, xs).jaxpr) == 0
    got = jax.jit(run)(values, xs)
    want = twin_run(kind, w, list(xs.swapaxes(0, 1)))
    np.testing.assert_allclose(got, np.stack(want, 1), **TOL)
