"""Activations: values against jax.nn, stability at extremes, gradients plain and tracked."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from _tol import assert_close

from fluxjax.layers import (
    elu,
    gelu,
    leakyrelu,
    logsigmoid,
    logsoftmax,
    logσ,
    relu,
    sigmoid,
    softmax,
    softplus,
    swish,
    tanh,
    σ,
)
from fluxjax.tracker import Tracked, back_, grad, gradient, param

# (ours, an independent reference); jax.nn is the reference implementation.
ELEMENTWISE = [
    (σ, jax.nn.sigmoid),
    (logσ, jax.nn.log_sigmoid),
    (relu, jax.nn.relu),
    (leakyrelu, lambda x: jax.nn.leaky_relu(x, 0.01)),
    (elu, jax.nn.elu),
    (gelu, lambda x: jax.nn.gelu(x, approximate=True)),
    (swish, jax.nn.silu),
    (softplus, jax.nn.softplus),
    (tanh, lambda x: 2 * jax.nn.sigmoid(2 * x) - 1),  # an identity, not jnp.tanh again
]
IDS = [f.__name__ for f, _ in ELEMENTWISE]

# away from 0, where relu-like functions have a kink
POINTS = jnp.array([-30.0, -5.0, -1.3, -0.2, 0.1, 0.7, 2.5, 9.0, 40.0])
WEIGHTS = jnp.linspace(-1.0, 2.0, POINTS.size)


@pytest.mark.parametrize("f, ref", ELEMENTWISE, ids=IDS)
def test_values_match_reference(f, ref):
    np.testing.assert_allclose(f(POINTS), ref(POINTS), rtol=1e-5, atol=1e-6)


@pytest.mark.parametrize("f, ref", ELEMENTWISE, ids=IDS)
def test_plain_gradient_matches_reference(f, ref):
    ours = jax.grad(lambda x: (f(x) * WEIGHTS).sum())(POINTS)
    theirs = jax.grad(lambda x: (ref(x) * WEIGHTS).sum())(POINTS)
    np.testing.assert_allclose(ours, theirs, rtol=1e-5, atol=1e-6)


@pytest.mark.parametrize("f, ref", ELEMENTWISE, ids=IDS)
def test_tracked_gradient_matches_reference(f, ref):
    x = param(POINTS)
    y = f(x)
    assert isinstance(y, Tracked)
    back_((y * WEIGHTS).sum())
    theirs = jax.grad(lambda v: (ref(v) * WEIGHTS).sum())(POINTS)
    np.testing.assert_allclose(grad(x), theirs, rtol=1e-5, atol=1e-6)
    (g,) = gradient(lambda v: (f(v) * WEIGHTS).sum(), POINTS)
    np.testing.assert_allclose(g, theirs, rtol=1e-5, atol=1e-6)


@pytest.mark.parametrize("f", [f for f, _ in ELEMENTWISE], ids=IDS)
def test_gradient_matches_finite_differences(f):
    with jax.enable_x64(True):
        x = jnp.array([-2.3, -0.4, 0.3, 1.7], jnp.float64)
        eps = 1e-6
        fd = (f(x + eps) - f(x - eps)) / (2 * eps)
        exact = jax.vmap(jax.grad(f))(x)
        np.testing.assert_allclose(exact, fd, rtol=1e-6, atol=1e-8)


def test_derivatives_at_zero():
    # σ'(0) = 1/4, softplus'(0) = σ(0) = 1/2, logσ'(0) = 1/2, swish'(0) = 1/2, elu'(0-) = 1
    for f, expected in [(σ, 0.25), (softplus, 0.5), (logσ, 0.5), (swish, 0.5), (gelu, 0.5)]:
        assert float(jax.grad(f)(0.0)) == pytest.approx(expected, rel=1e-5), f.__name__
    assert float(jax.grad(relu)(0.0)) == 0.0  # as jax.nn.relu and Flux
    assert float(jax.grad(elu)(-1e-4)) == pytest.approx(1.0, rel=1e-3)


def test_extremes_are_finite_with_finite_gradients():
    x = jnp.array([-1e4, -100.0, 100.0, 1e4])
    for f, _ in ELEMENTWISE:
        y = f(x)
        g = jax.grad(lambda v, f=f: f(v).sum())(x)
        assert bool(jnp.isfinite(y).all()), f.__name__
        assert bool(jnp.isfinite(g).all()), f.__name__
    assert_close(σ(x), [0, 0, 1, 1])
    assert_close(softplus(x), [0, 0, 100, 1e4])
    assert_close(logσ(x), [-1e4, -100, 0, 0])


def test_leakyrelu_and_elu_parameters():
    x = jnp.array([-2.0, 3.0])
    assert_close(leakyrelu(x, 0.2), [-0.4, 3.0])
    assert_close(elu(x, 0.5), jax.nn.elu(x, 0.5))
    p = param(x)
    back_(leakyrelu(p, 0.2).sum())
    assert_close(grad(p), [0.2, 1.0])


def test_softmax_stable_and_normalised():
    assert_close(softmax(jnp.array([-1e5, -1e5])), [0.5, 0.5])
    assert_close(softmax(jnp.array([1e5, 1e5, 1e5])), [1 / 3] * 3)
    assert_close(logsoftmax(jnp.array([1.0, 2.0, 3000.0])), [-2999, -2998, 0])
    x = jax.random.normal(jax.random.key(0), (4, 3)) * 5
    for axis in (-1, 0):
        np.testing.assert_allclose(softmax(x, axis), jax.nn.softmax(x, axis=axis), rtol=1e-5)
        np.testing.assert_allclose(
            logsoftmax(x, axis=axis), jax.nn.log_softmax(x, axis=axis), rtol=1e-5, atol=1e-6
        )
        assert_close(softmax(x, axis).sum(axis), 1.0)


@pytest.mark.parametrize("f, ref", [(softmax, jax.nn.softmax), (logsoftmax, jax.nn.log_softmax)])
def test_softmax_gradients_tracked_and_plain(f, ref):
    x = jax.random.normal(jax.random.key(1), (3, 4))
    w = jax.random.normal(jax.random.key(2), (3, 4))
    for axis in (-1, 0):
        theirs = jax.grad(lambda v, axis=axis: (ref(v, axis=axis) * w).sum())(x)
        p = param(x)
        back_((f(p, axis=axis) * w).sum())
        np.testing.assert_allclose(grad(p), theirs, rtol=1e-5, atol=1e-6)
        ours = jax.grad(lambda v, axis=axis: (f(v, axis=axis) * w).sum())(x)
        np.testing.assert_allclose(ours, theirs, rtol=1e-5, atol=1e-6)


def test_names_and_aliases():
    assert sigmoid is σ and logsigmoid is logσ
    assert σ.__name__ == "σ" and logσ.__name__ == "logσ"
    assert softmax.__name__ == "softmax" and relu.__name__ == "relu"
    assert "1 / (1 + exp(-x))" in σ.__doc__


def test_plain_in_plain_out_and_odd_shapes():
    assert not isinstance(σ(jnp.ones(3)), Tracked)
    assert float(σ(0.0)) == 0.5
    assert relu(jnp.zeros((0,))).shape == (0,)
    assert tanh(jnp.ones((2, 0, 3))).shape == (2, 0, 3)
    assert relu(jnp.array([-1, 2])).tolist() == [0, 2]
    assert jax.jit(σ)(jnp.zeros(2)).tolist() == [0.5, 0.5]
