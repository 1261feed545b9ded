"""Diagonal, Maxout, SkipConnection, normalise, the new activations and losses, against
Flux v0.9's tests, NumPy formulas and jax.grad."""

from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np
import pytest

import fluxjax as fj

TOL = dict(rtol=1e-5, atol=1e-6)


def test_flux_diagonal():
    assert fj.Diagonal(10)(np.random.randn(10)).shape == (10,)
    assert fj.Diagonal(10)(1.0).shape == (10,)
    assert fj.Diagonal(10)(np.random.randn(1)).shape == (10,)
    with pytest.raises(ValueError, match="size 10"):
        fj.Diagonal(10)(np.random.randn(2))
    x = np.array([[1.0, 2.0], [3.0, 4.0]])
    np.testing.assert_array_equal(np.asarray(fj.Diagonal(2)(x)), x)
    d = fj.Diagonal(jnp.array([2.0, 3.0]), jnp.array([1.0, -1.0]))
    np.testing.assert_allclose(np.asarray(d(x)), x * [2, 3] + [1, -1], **TOL)
    (g,) = fj.gradient(lambda d: fj.numpy.sum(d(x) ** 2), d)
    want = jax.grad(lambda a, b: jnp.sum((x * a + b) ** 2), argnums=(0, 1))(d.α.data, d.β.data)
    np.testing.assert_allclose(np.asarray(g.α), np.asarray(want[0]), **TOL)
    np.testing.assert_allclose(np.asarray(g.β), np.asarray(want[1]), **TOL)


def test_flux_maxout():
    x = np.random.rand(40).astype(np.float32)
    np.testing.assert_array_equal(np.asarray(fj.Maxout(lambda: fj.identity, 4)(x)), x)
    np.testing.assert_allclose(
        np.asarray(fj.Maxout((lambda v: v, lambda v: 2 * v, lambda v: 0.5 * v))(x)), 2 * x
    )
    mo = fj.Maxout((lambda v: v @ jnp.array([[0.5, 0.1]]), lambda v: v @ jnp.array([[0.2, 0.7]])))
    np.testing.assert_allclose(
        np.asarray(mo(jnp.array([[3.0], [2.0]]))), [[1.5, 0.7 * 3], [1.0, 1.4]], **TOL
    )
    assert len(fj.params(fj.Maxout(lambda: fj.Dense(32, 64), 4))) == 8


def test_maxout_gradient_goes_to_the_winner(rng):
    m = fj.Maxout(lambda: fj.Dense(3, 2), 3)
    x = rng.normal(size=(4, 3)).astype(np.float32)
    ws = [(d.W.data, d.b.data) for d in m.over]
    twin = lambda ws: jnp.sum(jnp.max(jnp.stack([x @ W.T + b for W, b in ws]), 0))  # noqa: E731
    want = jax.grad(twin)(ws)
    (g,) = fj.gradient(lambda m: fj.numpy.sum(m(x)), m)
    for gd, (gW, gb) in zip(g.over, want):
        np.testing.assert_allclose(np.asarray(gd.W), np.asarray(gW), **TOL)
        np.testing.assert_allclose(np.asarray(gd.b), np.asarray(gb), **TOL)


def test_flux_skipconnection():
    x = np.random.randn(10, 10, 10, 10).astype(np.float32)
    np.testing.assert_array_equal(
        np.asarray(fj.SkipConnection(jnp.zeros_like, lambda a, b: a + b)(x)), x
    )
    cat = fj.SkipConnection(fj.Dense(10, 10), lambda a, b: fj.numpy.concatenate([a, b], axis=0))
    assert cat(np.random.randn(2, 10)).shape == (4, 10)
    assert len(fj.params(cat)) == 2


def test_normalise_matches_numpy(rng):
    x = rng.normal(size=(3, 5)).astype(np.float32)
    for axis in (-1, 0):
        want = (x - x.mean(axis, keepdims=True)) / x.std(axis, keepdims=True)
        np.testing.assert_allclose(
            np.asarray(fj.normalise(x, axis=axis)), want, rtol=1e-5, atol=1e-5
        )
    assert fj.gradcheck(
        lambda v: fj.numpy.sum(fj.normalise(v) * jnp.arange(5.0)), x.astype(np.float64)
    )


def test_new_activations_match_their_formulas_and_nnlib_values():
    x = np.linspace(-5, 5, 11).astype(np.float32)
    λ, α = 1.0507009873554804934193349852946, 1.6732632423543772848170429916717
    np.testing.assert_allclose(
        np.asarray(fj.selu(x)), λ * np.where(x > 0, x, α * np.expm1(x)), **TOL
    )
    np.testing.assert_allclose(np.asarray(fj.softsign(x)), x / (1 + np.abs(x)), **TOL)
    np.testing.assert_allclose(np.asarray(fj.logcosh(x)), np.log(np.cosh(x)), **TOL)
    assert np.isfinite(np.asarray(fj.logcosh(jnp.array([1e4, -1e4])))).all()
    for f, df in ((fj.softsign, lambda v: 1 / (1 + abs(v)) ** 2), (fj.logcosh, np.tanh)):
        (g,) = fj.gradient(lambda v, f=f: fj.numpy.sum(f(v)), x)
        np.testing.assert_allclose(np.asarray(g), df(x), rtol=1e-5, atol=1e-5)


def test_flux_losses():
    """Flux's test/layers/stateless.jl (binarycrossentropy), and v0.10's kldivergence/hinge."""
    logŷ, y = np.random.randn(3), np.random.rand(3)
    p = 1 / (1 + np.exp(-logŷ))
    for i in range(3):
        want = -y[i] * np.log(p[i]) - (1 - y[i]) * np.log(1 - p[i])
        assert float(fj.binarycrossentropy(p[i], y[i], ε=0)) == pytest.approx(want, rel=1e-5)
        assert float(fj.binarycrossentropy(p[i], y[i], ϵ=0)) == pytest.approx(want, rel=1e-5)
        eps = np.finfo(np.float32).eps
        want = -y[i] * np.log(p[i] + eps) - (1 - y[i]) * np.log(1 - p[i] + eps)
        assert float(fj.binarycrossentropy(p[i], y[i])) == pytest.approx(want, rel=1e-5)
    ŷ = np.array([[0.1, 0.9], [0.9, 0.1], [0.9, 0.1], [0.1, 0.9]], np.float32)
    t = np.array([[0.0, 1.0], [0.0, 1.0], [1.0, 0.0], [1.0, 0.0]], np.float32)
    assert float(fj.kldivergence(ŷ, t)) == pytest.approx(1.203972804325936, rel=1e-5)  # entropy 0
    q = np.array([[0.3, 0.7], [0.6, 0.4]], np.float32)
    want = np.mean(np.sum(q * np.log(q / ŷ[:2]), -1))
    assert float(fj.kldivergence(ŷ[:2], q)) == pytest.approx(want, rel=1e-5)
    s = np.array([[1.0, -1.0], [-1.0, 1.0]], np.float32)
    h = np.array([[0.5, 0.5], [2.0, -3.0]], np.float32)
    assert float(fj.hinge(h, s)) == pytest.approx(np.sum(np.maximum(0, 1 - h * s)) / 2, rel=1e-6)
