"""One model, both styles: imperative (back_, Params) and functional (jax.jit, jax.grad, optax).

Every gradient is compared with jax.grad of a pure-JAX twin of the model, and the twin's
gradient with central finite differences.
"""

import jax
import jax.numpy as jnp
import numpy as np
import optax
import pytest

from fluxjax.layers import Chain, Dense, loadparams_, params, softmax, σ
from fluxjax.tracker import Tracked, back_, data, grad, gradient


def mse(ŷ, y):
    return ((ŷ - y) ** 2).mean()


def twin(ws, x):
    """The same model written in plain JAX."""
    W1, b1, W2, b2 = ws
    h = jax.nn.sigmoid(x @ W1.T + b1)
    return jax.nn.softmax(h @ W2.T + b2, axis=-1)


def twin_loss(ws, x, y):
    return jnp.mean((twin(ws, x) - y) ** 2)


@pytest.fixture
def setup():
    m = Chain(Dense(10, 5, σ), Dense(5, 2), softmax)
    x = jax.random.normal(jax.random.key(0), (8, 10))
    y = jax.nn.one_hot(jnp.arange(8) % 2, 2)
    ws = [p.data for p in params(m)]
    return m, x, y, ws, jax.grad(twin_loss)(ws, x, y)


def test_twin_gradient_matches_finite_differences(setup):
    m, x, y, ws, ref = setup
    with jax.enable_x64(True):
        ws64 = [w.astype(jnp.float64) for w in ws]
        exact = jax.grad(twin_loss)(ws64, x.astype(jnp.float64), y)
        eps = 1e-6
        for k, index in [(0, (1, 3)), (1, (4,)), (2, (0, 2)), (3, (1,))]:
            up = [w.at[index].add(eps) if i == k else w for i, w in enumerate(ws64)]
            down = [w.at[index].add(-eps) if i == k else w for i, w in enumerate(ws64)]
            fd = (twin_loss(up, x, y) - twin_loss(down, x, y)) / (2 * eps)
            assert float(exact[k][index]) == pytest.approx(float(fd), rel=1e-5, abs=1e-10)
    for r, e in zip(ref, exact, strict=True):
        np.testing.assert_allclose(r, e, rtol=1e-4, atol=1e-7)


def test_forward_matches_twin(setup):
    m, x, y, ws, _ = setup
    np.testing.assert_allclose(data(m(x)), twin(ws, x), rtol=1e-5, atol=1e-7)


def test_imperative_back_fills_grads(setup):
    m, x, y, ws, ref = setup
    l = mse(m(x), y)
    assert isinstance(l, Tracked)
    assert float(data(l)) == pytest.approx(float(twin_loss(ws, x, y)), rel=1e-6)
    back_(l)
    for p, r in zip(params(m), ref, strict=True):
        np.testing.assert_allclose(grad(p), r, rtol=1e-4, atol=1e-7)
    assert grad(m[0].W).shape == (5, 10)


def test_gradient_with_params(setup):
    m, x, y, _, ref = setup
    gs = gradient(lambda: mse(m(x), y), params(m))
    for p, r in zip(params(m), ref, strict=True):
        np.testing.assert_allclose(gs[p], r, rtol=1e-4, atol=1e-7)
        assert not np.any(np.asarray(p.grad))  # pure: no .grad touched


def test_gradient_with_model_argument(setup):
    m, x, y, _, ref = setup
    (g,) = gradient(lambda m: mse(m(x), y), m)
    assert isinstance(g, Chain)
    got = [g[0].W, g[0].b, g[1].W, g[1].b]
    for a, r in zip(got, ref, strict=True):
        np.testing.assert_allclose(data(a), r, rtol=1e-4, atol=1e-7)


def test_jax_grad_of_model(setup):
    m, x, y, _, ref = setup
    g = jax.grad(lambda m: mse(m(x), y))(m)
    got = [data(l) for l in jax.tree_util.tree_leaves(g)]
    for a, r in zip(got, ref, strict=True):
        np.testing.assert_allclose(a, r, rtol=1e-4, atol=1e-7)


def test_jit_runs_and_sees_new_param_values(setup):
    m, x, _, ws, _ = setup
    traces = []

    @jax.jit
    def run(m, x):
        traces.append(1)
        assert not isinstance(m[0].W, Tracked)  # fields are plain tracers inside
        return m(x)

    y = run(m, x)
    assert not isinstance(y, Tracked)
    np.testing.assert_allclose(y, twin(ws, x), rtol=1e-5, atol=1e-7)
    new = [w * 0.5 for w in ws]
    loadparams_(m, new)
    np.testing.assert_allclose(run(m, x), twin(new, x), rtol=1e-5, atol=1e-7)
    assert len(traces) == 1  # same structure: no retrace


def test_vmap_over_batch(setup):
    m, x, _, ws, _ = setup
    np.testing.assert_allclose(jax.vmap(lambda v: data(m(v)))(x), twin(ws, x), rtol=1e-5)
    ys = jax.vmap(lambda m, v: data(m(v)), in_axes=(None, 0))(m, x)
    np.testing.assert_allclose(ys, twin(ws, x), rtol=1e-5, atol=1e-7)


def test_optax_training_on_the_model_pytree(setup):
    m, x, y, ws, ref = setup
    tx = optax.sgd(0.5)
    state = tx.init(m)

    @jax.jit
    def step(m, state):
        l, g = jax.value_and_grad(lambda m: mse(m(x), y))(m)
        updates, state = tx.update(g, state, m)
        return optax.apply_updates(m, updates), state, l

    m2, state, l0 = step(m, state)
    assert isinstance(m2, Chain) and isinstance(m2[0].W, Tracked) and m2[0].W.is_leaf
    expected = [w - 0.5 * g for w, g in zip(ws, ref, strict=True)]
    for p, e in zip(params(m2), expected, strict=True):
        np.testing.assert_allclose(p.data, e, rtol=1e-5, atol=1e-7)
    for _ in range(20):
        m2, state, l = step(m2, state)
    assert float(l) < float(l0)
    assert float(data(mse(m2(x), y))) < float(l0)  # the result still runs imperatively


def test_mixed_styles_value_and_grad_inside_jit(setup):
    m, x, y, _, ref = setup
    gs = jax.jit(lambda m: jax.grad(lambda m: mse(m(x), y))(m))(m)
    np.testing.assert_allclose(data(gs[0].W), ref[0], rtol=1e-4, atol=1e-7)
