"""``gradient(f, model)`` on models holding state leaves (BatchNorm statistics, Dropout's
key, Recur's state): param gradients as the Params path and a pure ``jax.grad`` twin give,
state written back once (as after one eager forward), untouched when ``f`` raises, and
``None`` at the state positions of the gradient tree, as ``withgradient`` gives."""

from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np
import pytest

import fluxjax as fj

TOL = dict(rtol=1e-5, atol=1e-6)


def _x(rng, n=6):
    return rng.normal(size=(n, 3)).astype(np.float32)


def _dropout_model():
    fj.seed(3)
    return fj.Chain(fj.Dense(3, 4, fj.tanh), fj.Dropout(0.5, key=11), fj.Dense(4, 1))


def _dropout_twin(ws, key, x):
    """The Dropout model as a pure function of its weights and its key data."""
    (W1, b1), (W2, b2) = ws
    new, use = jax.random.split(jax.random.wrap_key_data(key))
    h = jnp.tanh(x @ W1.T + b1)
    h = h * jnp.where(jax.random.uniform(use, h.shape) >= 0.5, 2.0, 0.0)
    return jnp.sum((h @ W2.T + b2) ** 2), jax.random.key_data(new)


def _weights(m, *at):
    return [(m[i].W.data, m[i].b.data) for i in at]


def _loss(m, x):
    return fj.numpy.sum(m(x) ** 2)


def test_dropout_model_gradient_matches_twin_and_advances_the_key_once(rng):
    x = _x(rng)
    m = _dropout_model()
    k0 = np.asarray(m[1].key.data)
    want, k1 = jax.grad(_dropout_twin, has_aux=True)(_weights(m, 0, 2), k0, x)
    (g,) = fj.gradient(lambda m: _loss(m, x), m)
    np.testing.assert_array_equal(np.asarray(m[1].key.data), np.asarray(k1))
    for i, (gW, gb) in zip((0, 2), want):
        np.testing.assert_allclose(np.asarray(g[i].W), np.asarray(gW), **TOL)
        np.testing.assert_allclose(np.asarray(g[i].b), np.asarray(gb), **TOL)
    assert g[1].key is None  # a state position carries no gradient


def test_dropout_model_gradient_equals_the_params_path_and_withgradient(rng):
    x = _x(rng)
    m = _dropout_model()
    k0 = m[1].key.data
    (g,) = fj.gradient(lambda m: _loss(m, x), m)
    k1 = np.asarray(m[1].key.data)
    m[1].key.data = k0
    gs = fj.gradient(lambda: _loss(m, x=x), fj.params(m))
    np.testing.assert_array_equal(np.asarray(m[1].key.data), k1)  # the same one step
    m[1].key.data = k0
    _, gw = fj.withgradient(_loss, m, x)
    np.testing.assert_array_equal(np.asarray(m[1].key.data), k1)
    for i in (0, 2):
        for name in ("W", "b"):
            want = np.asarray(gs[getattr(m[i], name)])
            np.testing.assert_allclose(np.asarray(getattr(g[i], name)), want, **TOL)
            np.testing.assert_allclose(np.asarray(getattr(gw[i], name)), want, **TOL)
    assert g[1].key is None and gw[1].key is None


def _bn_model():
    fj.seed(5)
    return fj.Chain(fj.Dense(3, 4), fj.BatchNorm(4))


def _bn_twin(ws, x):
    W, b, γ, β = ws
    h = x @ W.T + b
    μ, σ2 = h.mean(0), ((h - h.mean(0)) ** 2).mean(0)
    return jnp.sum(((h - μ) / jnp.sqrt(σ2 + 1e-5) * γ + β) ** 2 * jnp.arange(1.0, 5.0))


def test_batchnorm_model_gradient_moves_running_stats_once(rng):
    x = _x(rng)
    m = _bn_model()
    μ0, σ20 = np.asarray(m[1].μ.data), np.asarray(m[1].σ2.data)
    ws = (m[0].W.data, m[0].b.data, m[1].γ.data, m[1].β.data)
    (g,) = fj.gradient(lambda m: fj.numpy.sum(m(x) ** 2 * jnp.arange(1.0, 5.0)), m)
    want = jax.grad(_bn_twin)(ws, x)
    h = x.astype(np.float64) @ np.asarray(ws[0], np.float64).T + np.asarray(ws[1], np.float64)
    np.testing.assert_allclose(np.asarray(m[1].μ.data), 0.9 * μ0 + 0.1 * h.mean(0), **TOL)
    σ2 = 0.9 * σ20 + 0.1 * h.var(0, ddof=1)  # Flux v0.9: the unbiased batch variance
    np.testing.assert_allclose(np.asarray(m[1].σ2.data), σ2, **TOL)
    got = (g[0].W, g[0].b, g[1].γ, g[1].β)
    for a, b in zip(got, want):
        np.testing.assert_allclose(np.asarray(a), np.asarray(b), rtol=1e-4, atol=1e-5)
    assert g[1].μ is None and g[1].σ2 is None


def test_state_is_untouched_when_f_raises(rng):
    x = _x(rng)
    m = fj.Chain(fj.Dense(3, 4), fj.BatchNorm(4), fj.Dropout(0.5))
    before = [np.asarray(s.data) for s in fj.states(m)]
    W = np.asarray(m[0].W.data)

    def bad(m):
        m(x)  # the layers ran (and wrote their state) before the error
        raise RuntimeError("boom")

    with pytest.raises(RuntimeError, match="boom"):
        fj.gradient(bad, m)
    for s, b in zip(fj.states(m), before):
        np.testing.assert_array_equal(np.asarray(s.data), b)
    np.testing.assert_array_equal(np.asarray(m[0].W.data), W)


def test_plain_argument_gets_its_gradient_next_to_a_stateful_model(rng):
    x = _x(rng)
    m = _dropout_model()
    k0 = np.asarray(m[1].key.data)
    gm, gx = fj.gradient(_loss, m, x)
    want = jax.grad(lambda x: _dropout_twin(_weights(m, 0, 2), k0, x)[0])(x)
    np.testing.assert_allclose(np.asarray(gx), np.asarray(want), **TOL)
    assert gm[1].key is None and gm[0].W.shape == (4, 3)


def test_shared_dropout_advances_twice_as_in_eager_code(rng):
    fj.seed(2)
    d, drop = fj.Dense(3, 3), fj.Dropout(0.5, key=4)
    m = fj.Chain(d, drop, d, drop)
    x = _x(rng)
    k0 = drop.key.data
    m(x)  # eager: two draws from one stream
    k_eager = np.asarray(drop.key.data)
    drop.key.data = k0
    want = fj.gradient(lambda: _loss(m, x=x), fj.params(m))[d.W]
    drop.key.data = k0
    (g,) = fj.gradient(lambda m: _loss(m, x), m)
    np.testing.assert_array_equal(np.asarray(drop.key.data), k_eager)
    np.testing.assert_allclose(np.asarray(g[0].W) + np.asarray(g[2].W), want, **TOL)


def test_recur_state_advances_as_after_one_forward(rng):
    fj.seed(9)
    m = fj.Chain(fj.RNN(3, 2), fj.Dense(2, 1))
    x = _x(rng, 4)
    fj.reset_(m)
    m(x)
    after_eager = [np.asarray(s.data) for s in fj.states(m)]
    fj.reset_(m)
    gs = fj.gradient(lambda: _loss(m, x=x), fj.params(m))
    fj.reset_(m)
    (g,) = fj.gradient(lambda m: _loss(m, x), m)
    for s, want in zip(fj.states(m), after_eager):
        np.testing.assert_allclose(np.asarray(s.data), want, **TOL)
    cell = m[0].cell
    np.testing.assert_allclose(np.asarray(g[0].cell.Wi), np.asarray(gs[cell.Wi]), **TOL)
    assert g[0].state is None and g[0].fresh is None


def test_forward_on_a_stateful_model_writes_state_once_and_pulls_back(rng):
    x = _x(rng)
    m = fj.Chain(fj.Dense(3, 4), fj.BatchNorm(4), fj.Dropout(0.5, key=1))
    before = [s.data for s in fj.states(m)]
    gs = fj.gradient(lambda: _loss(m, x), fj.params(m))
    after = [np.asarray(s.data) for s in fj.states(m)]
    for s, b in zip(fj.states(m), before):
        s.data = b
    y, back = fj.forward(lambda m: _loss(m, x), m)
    for s, a in zip(fj.states(m), after):
        np.testing.assert_allclose(np.asarray(s.data), a, **TOL)
    (g2,) = back(2.0)
    (g2_again,) = back(2.0)  # back writes nothing: the state moved once
    for s, a in zip(fj.states(m), after):
        np.testing.assert_allclose(np.asarray(s.data), a, **TOL)
    np.testing.assert_allclose(np.asarray(g2[0].W), 2 * np.asarray(gs[m[0].W]), **TOL)
    np.testing.assert_allclose(np.asarray(g2_again[1].γ), 2 * np.asarray(gs[m[1].γ]), **TOL)
    assert g2[1].μ is None and g2[2].key is None


def test_explicit_update_takes_the_grads_of_a_stateful_model(rng):
    x = _x(rng)
    m = _bn_model()
    s = fj.setup(fj.Descent(0.5), m)
    f = lambda m: _loss(m, x)  # noqa: E731
    μ = m[1].μ.data
    want = fj.gradient(lambda: f(m), fj.params(m))
    m[1].μ.data = μ
    W, γ = np.asarray(m[0].W.data), np.asarray(m[1].γ.data)
    (g,) = fj.gradient(f, m)
    fj.update_(s, m, g)  # the None at μ, σ2 is skipped
    np.testing.assert_allclose(np.asarray(m[0].W.data), W - 0.5 * np.asarray(want[m[0].W]), **TOL)
    np.testing.assert_allclose(np.asarray(m[1].γ.data), γ - 0.5 * np.asarray(want[m[1].γ]), **TOL)
