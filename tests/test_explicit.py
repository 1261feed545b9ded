"""Modern Flux's explicit style: withgradient, setup, update_(state, model, grads) and
train_(loss, model, data, state), against jax.grad and optax run by hand."""

from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np
import optax
import pytest

import fluxjax as fj

TOL = dict(rtol=1e-5, atol=1e-6)


def _data(rng):
    return rng.normal(size=(6, 3)).astype(np.float32), rng.normal(size=(6, 2)).astype(np.float32)


def _model():
    fj.seed(7)
    return fj.Chain(fj.Dense(3, 4, fj.tanh), fj.Dense(4, 2))


def _twin(ws, x, y):
    (W1, b1), (W2, b2) = ws
    return jnp.mean((jnp.tanh(x @ W1.T + b1) @ W2.T + b2 - y) ** 2)


def _weights(m):
    return [(m[0].W.data, m[0].b.data), (m[1].W.data, m[1].b.data)]


def loss(m, x, y):
    return fj.mse(m(x), y)


def test_withgradient_gives_value_and_model_shaped_grads(rng):
    x, y = _data(rng)
    m = _model()
    v, g = fj.withgradient(loss, m, x, y)
    want_v, want_g = jax.value_and_grad(_twin)(_weights(m), x, y)
    assert float(v) == pytest.approx(float(want_v), rel=1e-6)
    assert isinstance(g, fj.Chain) and len(g) == 2
    for layer, (gW, gb) in zip(g, want_g):
        np.testing.assert_allclose(np.asarray(layer.W), np.asarray(gW), **TOL)
        np.testing.assert_allclose(np.asarray(layer.b), np.asarray(gb), **TOL)
    with pytest.raises(ValueError, match="scalar"):
        fj.withgradient(lambda m, x: m(x), m, x)


def test_setup_and_update_follow_optax_by_hand(rng):
    x, y = _data(rng)
    m = _model()
    ws = _weights(m)
    tx = optax.adam(0.01)
    opt_state = tx.init(ws)
    s = fj.setup(fj.ADAM(0.01), m)
    for _ in range(3):
        _, g = fj.withgradient(loss, m, x, y)
        assert fj.update_(s, m, g) is m
        updates, opt_state = tx.update(jax.grad(_twin)(ws, x, y), opt_state, ws)
        ws = optax.apply_updates(ws, updates)
    for got, want in zip(jax.tree_util.tree_leaves(_weights(m)), jax.tree_util.tree_leaves(ws)):
        np.testing.assert_allclose(np.asarray(got), np.asarray(want), **TOL)


def test_explicit_train_equals_implicit_train_and_keeps_its_state(rng):
    x, y = _data(rng)
    a, b = _model(), _model()
    sa = fj.setup(fj.ADAM(0.01), a)
    la = np.concatenate([np.asarray(fj.train_(loss, a, [(x, y)] * 3, sa)) for _ in range(2)])
    lb = fj.train_(lambda x, y: loss(b, x, y), fj.params(b), [(x, y)] * 6, fj.ADAM(0.01))
    np.testing.assert_allclose(la, np.asarray(lb), **TOL)  # the ADAM moments carried over
    for p, q in zip(fj.params(a), fj.params(b)):
        np.testing.assert_allclose(np.asarray(p.data), np.asarray(q.data), **TOL)
    fj.setup(sa.opt, a)  # a fresh state: the next step is a first ADAM step again
    assert "OptState(ADAM" in repr(sa)


def test_shared_layers_get_their_whole_gradient_once(rng):
    x = rng.normal(size=(2, 3)).astype(np.float32)
    d = fj.Dense(3, 3)
    m = fj.Chain(d, fj.tanh, d)
    _, g = fj.withgradient(lambda m: fj.numpy.sum(m(x) ** 2), m)
    gs = fj.gradient(lambda: fj.numpy.sum(m(x) ** 2), fj.params(m))
    np.testing.assert_allclose(np.asarray(g[0].W), np.asarray(gs[d.W]), **TOL)
    assert g[2] is g[0]  # the sharing is kept
    (parts,) = fj.gradient(lambda m: fj.numpy.sum(m(x) ** 2), m)  # one part per use
    W = np.asarray(d.W.data)
    s = fj.setup(fj.Descent(0.1), m)
    fj.update_(s, m, g)
    np.testing.assert_allclose(np.asarray(d.W.data), W - 0.1 * np.asarray(gs[d.W]), **TOL)
    fj.update_(s, m, parts)  # the parts add up to the same step
    np.testing.assert_allclose(np.asarray(d.W.data), W - 0.2 * np.asarray(gs[d.W]), **TOL)


def test_grads_from_gradient_of_the_model_work_too(rng):
    x, y = _data(rng)
    m = _model()
    s = fj.setup(fj.Descent(0.5), m)
    (g,) = fj.gradient(lambda m: loss(m, x, y), m)
    want = jax.grad(_twin)(_weights(m), x, y)
    W = np.asarray(m[1].W.data)
    fj.update_(s, m, g)
    np.testing.assert_allclose(np.asarray(m[1].W.data), W - 0.5 * np.asarray(want[1][0]), **TOL)
    with pytest.raises(ValueError, match="another model"):
        fj.update_(s, _model(), g)


def test_state_leaves_update_once_per_withgradient(rng):
    x, y = _data(rng)
    m = fj.Chain(fj.Dense(3, 2), fj.BatchNorm(2))
    _, g = fj.withgradient(loss, m, x, y)
    h = np.asarray(m[0](x).data)
    np.testing.assert_allclose(np.asarray(m[1].μ.data), 0.1 * h.mean(0), **TOL)
    assert g[1].μ is None and g[1].γ.shape == (2,)
