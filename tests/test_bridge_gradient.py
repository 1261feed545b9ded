"""``gradient(f, ps)`` / ``forward(f, ps)`` run as one cached compiled replay of the
recorded graph (like ``back_``): same values as ``jax.grad`` of a pure twin, pure (no
``.grad`` changes), fresh values each call, and still nesting and composing with
``jax.jit`` / ``jax.vmap`` (which take the ``jax.grad`` path)."""

import jax
import jax.numpy as jnp
import numpy as np

import fluxjax as fj

rng = np.random.default_rng(0)
X = jnp.asarray(rng.normal(size=(5, 3)), jnp.float32)
Y = jnp.asarray(rng.normal(size=(5, 2)), jnp.float32)


def setup():
    d = fj.Dense(3, 2, fj.tanh, key=jax.random.PRNGKey(1))
    return d, fj.params(d)


def twin(W, b, x=X, y=Y):
    return jnp.mean((jnp.tanh(x @ W.T + b) - y) ** 2)


def test_gradient_of_params_equals_the_pure_twin_every_call():
    d, ps = setup()
    extra = fj.param(1.0)  # in ps, never reached: zeros
    ps.add(extra)
    for _ in range(3):  # the second call replays a compiled graph: values must be fresh
        gs = fj.gradient(lambda: fj.mse(d(X), Y), ps)
        gW, gb = jax.grad(twin, (0, 1))(d.W.data, d.b.data)
        np.testing.assert_allclose(gs[d.W], gW, rtol=1e-5, atol=1e-7)
        np.testing.assert_allclose(gs[d.b], gb, rtol=1e-5, atol=1e-7)
        assert float(gs[extra]) == 0.0
        assert float(jnp.abs(d.W.grad).sum()) == 0.0  # pure: .grad untouched
        fj.update_(d.W, -0.5 * gs[d.W])


def test_forward_of_params_equals_the_pure_vjp():
    d, ps = setup()
    y, back = fj.forward(lambda: d(X), ps)
    ty, pull = jax.vjp(lambda W, b: jnp.tanh(X @ W.T + b), d.W.data, d.b.data)
    np.testing.assert_allclose(y, ty, rtol=1e-6)
    Δ = jnp.asarray(rng.normal(size=(5, 2)), jnp.float32)
    gs, (gW, gb) = back(Δ), pull(Δ)
    np.testing.assert_allclose(gs[d.W], gW, rtol=1e-5, atol=1e-7)
    np.testing.assert_allclose(gs[d.b], gb, rtol=1e-5, atol=1e-7)


def test_nested_and_under_jax_transformations():
    d, ps = setup()

    def g_of(x):
        return fj.gradient(lambda: fj.mse(d(x), Y), ps)[d.W]

    eager = g_of(X)
    np.testing.assert_allclose(jax.jit(g_of)(X), eager, rtol=1e-5, atol=1e-7)
    each = jax.vmap(lambda x: g_of(x[None]))(X)
    for i in range(2):
        np.testing.assert_allclose(each[i], g_of(X[i : i + 1]), rtol=1e-5, atol=1e-7)
    # a gradient of a gradient: d/dx of sum(∂L/∂W) through the inner gradient
    outer = jax.grad(lambda x: g_of(x).sum())(X)
    pure = jax.grad(lambda x: jax.grad(twin)(d.W.data, d.b.data, x).sum())(X)
    np.testing.assert_allclose(outer, pure, rtol=1e-4, atol=1e-6)
