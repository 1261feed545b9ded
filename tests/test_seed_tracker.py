"""The seed documents' code blocks that need only the tracker, translated to Python.

Flux.jl "Model-Building Basics" (seed 000) and the notebook reproducing it (seed 003):
`W*x .+ b` is `W @ x + b`, `sum(x.^2)` is `(x ** 2).sum()`, `back!`/`update!` are
`back_`/`update_`, indices are 0-based. `σ` is lifted locally with `track` (activations
belong to the layers package). Expected gradients come from `jax.grad` of pure-JAX twins.
"""

from __future__ import annotations

from dataclasses import dataclass

import jax
import jax.numpy as jnp
import numpy as np
import pytest

import fluxjax as fj
from fluxjax import (
    Params,
    Tracked,
    TrackedArray,
    TrackedReal,
    back_,
    grad,
    gradient,
    param,
    update_,
)

σ = fj.track(jax.nn.sigmoid)


def close(a, b, rtol=1e-5, atol=1e-6):
    np.testing.assert_allclose(np.asarray(a), np.asarray(b), rtol=rtol, atol=atol)


# -- seed 000: Taking Gradients ------------------------------------------------------------
def test_taking_gradients_linear_regression(rng):
    W = rng.random((2, 5))
    b = rng.random(2)

    def predict(x):
        return W @ x + b

    def loss(x, y):
        return ((predict(x) - y) ** 2).sum()

    x, y = rng.random(5), rng.random(2)  # Dummy data
    plain_loss = loss(x, y)

    W0, b0 = jnp.asarray(W, jnp.float32), jnp.asarray(b, jnp.float32)
    W = param(W)
    b = param(b)
    l = loss(x, y)
    assert isinstance(l, TrackedReal)
    assert float(l) == pytest.approx(plain_loss, rel=1e-5)  # the same number, now tracked

    back_(l)

    def twin(W, b):
        return ((W @ x + b - y) ** 2).sum()

    gW, gb = jax.grad(twin, argnums=(0, 1))(W0, b0)
    Δ = grad(W)
    close(Δ, gW)
    close(grad(b), gb)

    # Update the parameter and reset the gradient
    update_(W, -0.1 * Δ)
    assert not np.asarray(grad(W)).any()
    new_loss = loss(x, y)
    assert float(new_loss) < float(l)  # the loss has decreased a little
    assert float(new_loss) == pytest.approx(float(twin(W0 - 0.1 * gW, b0)), rel=1e-5)


def test_training_the_linear_regression_keeps_descending(rng):
    W, b = param(rng.random((2, 5))), param(rng.random(2))
    x, y = rng.random(5), rng.random(2)
    losses = []
    for _ in range(5):
        l = ((W @ x + b - y) ** 2).sum()
        back_(l)
        losses.append(float(l))
        update_(W, -0.1 * grad(W))
        update_(b, -0.1 * grad(b))
    assert all(a > b for a, b in zip(losses, losses[1:]))


# -- seed 000: Building Layers -------------------------------------------------------------
def _two_layer_twin(W1, b1, W2, b2, x):
    return W2 @ jax.nn.sigmoid(W1 @ x + b1) + b2


def test_two_layers_with_a_nonlinearity(rng):
    W1 = param(rng.random((3, 5)))
    b1 = param(rng.random(3))

    def layer1(x):
        return W1 @ x + b1

    W2 = param(rng.random((2, 3)))
    b2 = param(rng.random(2))

    def layer2(x):
        return W2 @ x + b2

    def model(x):
        return layer2(σ(layer1(x)))

    x = rng.random(5)
    out = model(x)  # => 2-element vector
    assert isinstance(out, TrackedArray) and out.shape == (2,)
    ps = [W1, b1, W2, b2]
    values = [jnp.asarray(p.data) for p in ps]
    close(out.data, _two_layer_twin(*values, x))

    back_(out.sum())
    want = jax.grad(lambda *v: _two_layer_twin(*v, x).sum(), argnums=(0, 1, 2, 3))(*values)
    for p, w in zip(ps, want):
        close(p.grad, w)


def linear(in_, out, rng):
    W = param(rng.standard_normal((out, in_)))
    b = param(rng.standard_normal(out))

    def layer(x):
        return W @ x + b

    layer.W, layer.b = W, b  # "we can access linear1.W etc"
    return layer


def test_a_function_that_returns_linear_layers(rng):
    linear1 = linear(5, 3, rng)
    linear2 = linear(3, 2, rng)
    assert linear1.W.shape == (3, 5) and linear2.b.shape == (2,)

    def model(x):
        return linear2(σ(linear1(x)))

    x = rng.random(5)
    out = model(x)  # => 2-element vector
    assert isinstance(out, TrackedArray) and out.shape == (2,)
    values = [jnp.asarray(p.data) for p in (linear1.W, linear1.b, linear2.W, linear2.b)]
    close(out.data, _two_layer_twin(*values, x))


@dataclass
class Affine:
    W: Tracked
    b: Tracked

    @classmethod
    def create(cls, in_, out, rng):
        return cls(param(rng.standard_normal((out, in_))), param(rng.standard_normal(out)))

    # Overload call, so the object can be used as a function
    def __call__(self, x):
        return self.W @ x + self.b


def test_a_struct_for_the_affine_layer(rng):
    a = Affine.create(10, 5, rng)
    x = rng.random(10)
    out = a(x)  # => 5-element vector
    assert isinstance(out, TrackedArray) and out.shape == (5,)
    Wv, bv = jnp.asarray(a.W.data), jnp.asarray(a.b.data)
    close(out.data, Wv @ x + bv, rtol=1e-5, atol=1e-5)
    back_((out**2).sum())
    gW, gb = jax.grad(lambda W, b: ((W @ x + b) ** 2).sum(), argnums=(0, 1))(Wv, bv)
    close(a.W.grad, gW, rtol=1e-5, atol=1e-5)
    close(a.b.grad, gb, rtol=1e-5, atol=1e-5)


# -- seed 003: the notebook ----------------------------------------------------------------
def test_gradient_and_second_derivative():
    def f(x):
        return 3 * x**2 + 2 * x + 1

    def df(x):
        return gradient(f, x)[0]

    def d2f(x):
        return gradient(df, x)[0]

    assert df(2) == 14
    assert d2f(2) == 6
    twin = lambda x: 3 * x**2 + 2 * x + 1  # noqa: E731
    assert float(df(2)) == float(jax.grad(twin)(2.0))
    assert float(d2f(2)) == float(jax.grad(jax.grad(twin))(2.0))


def test_gradient_of_params_for_a_zero_argument_function():
    W = param(2)
    b = param(3)

    def f(x):
        return W * x + b

    params = Params([W, b])
    grads = gradient(lambda: f(4), params)
    assert grads[W] == 4
    assert grads[b] == 1
    assert float(grads[W]) == float(jax.grad(lambda w: w * 4 + 3.0)(2.0))


def test_stacked_linear_layers_and_their_gradients(rng):
    linear1 = linear(5, 3, rng)
    linear2 = linear(3, 2, rng)

    def predict(x):
        return linear2(linear1(x))

    x, y = rng.random(5), rng.random(2)  # random test data

    def loss(x, y):
        return ((predict(x) - y) ** 2).sum()

    params = Params([linear1.W, linear1.b, linear2.W, linear2.b])
    grads = gradient(lambda: loss(x, y), params)

    assert grads[linear1.W].shape == (3, 5)

    def twin(W1, b1, W2, b2):
        return ((W2 @ (W1 @ x + b1) + b2 - y) ** 2).sum()

    values = [jnp.asarray(p.data) for p in params]
    want = jax.grad(twin, argnums=(0, 1, 2, 3))(*values)
    for p, w in zip(params, want):
        close(grads[p], w, rtol=1e-4, atol=1e-5)
    for p in params:  # gradient is pure: nothing was accumulated
        assert not np.asarray(p.grad).any()
