"""Every layer block of the seed page ("Model-Building Basics"), reproduced in fluxjax."""

import dataclasses
import functools
from typing import Any

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from _tol import assert_close

from fluxjax.layers import Chain, Dense, compose, fmap, gpu, params, softmax, treelike, σ
from fluxjax.tracker import Params, Tracked, back_, data, grad, gradient, param, update_

KEYS = iter(jax.random.split(jax.random.key(42), 1000))


def rand(*shape):
    return jax.random.uniform(next(KEYS), shape)


def randn(*shape):
    return jax.random.normal(next(KEYS), shape)


def test_two_layers_by_hand():
    W1, b1 = param(rand(3, 5)), param(rand(3))
    W2, b2 = param(rand(2, 3)), param(rand(2))

    def layer1(x):
        return W1 @ x + b1

    def layer2(x):
        return W2 @ x + b2

    def model(x):
        return layer2(σ(layer1(x)))

    assert model(rand(5)).shape == (2,)


def linear(n_in, n_out):
    W = param(randn(n_out, n_in))
    b = param(randn(n_out))

    def f(x):
        return W @ x + b

    f.W, f.b = W, b  # Julia closures expose their fields; here we attach them
    return f


def test_closure_linear_layers_are_trainable_through_params():
    linear1, linear2 = linear(5, 3), linear(3, 2)

    def predict(x):
        return linear2(linear1(x))

    x, y = rand(5), rand(2)

    def loss(x, y):
        return ((predict(x) - y) ** 2).sum()

    assert predict(x).shape == (2,)
    ps = Params([linear1.W, linear1.b, linear2.W, linear2.b])
    # the closures are walked too
    assert list(map(id, params(linear1, linear2))) == list(map(id, ps))
    gs = gradient(lambda: loss(x, y), ps)

    def pure(W1, b1, W2, b2):
        return jnp.sum((W2 @ (W1 @ x + b1) + b2 - y) ** 2)

    ref = jax.grad(pure, argnums=(0, 1, 2, 3))(*[p.data for p in ps])
    for p, r in zip(ps, ref, strict=True):
        np.testing.assert_allclose(gs[p], r, rtol=1e-5, atol=1e-6)
    before = float(data(loss(x, y)))
    for p in ps:
        update_(p, -0.01 * gs[p])
    assert float(data(loss(x, y))) < before


def test_closure_params_found_without_attributes():
    W = param(jnp.ones((2, 2)))
    f = lambda x: W @ x  # noqa: E731
    assert list(map(id, params(f))) == [id(W)]


@dataclasses.dataclass
class Affine:
    W: Any
    b: Any

    def __init__(self, n_in, n_out):  # the seed's outer constructor Affine(in, out)
        self.W = param(randn(n_out, n_in))
        self.b = param(randn(n_out))

    def __call__(self, x):
        return self.W @ x + self.b


class PlainAffine:
    def __init__(self, n_in, n_out):
        self.W = param(randn(n_out, n_in))
        self.b = param(randn(n_out))

    def __call__(self, x):
        return self.W @ x + self.b


@pytest.mark.parametrize("cls", [Affine, PlainAffine])
def test_affine_struct_and_treelike(cls):
    a = cls(10, 5)
    x = rand(10)
    assert len(a(x)) == 5
    assert treelike(cls) is cls
    assert treelike(cls) is cls  # a second call is harmless
    ps = list(params(a))
    assert len(ps) == 2 and ps[0] is a.W and ps[1] is a.b
    doubled = fmap(lambda w: w * 2, a)
    assert type(doubled) is cls and doubled is not a
    assert isinstance(doubled.W, Tracked) and doubled.W.is_leaf and doubled.W is not a.W
    assert_close(doubled.W.data, 2 * a.W.data)
    np.testing.assert_allclose(data(doubled(x)), 2 * data(a(x)), rtol=1e-5)
    moved = gpu(a)
    assert type(moved) is cls and len(moved(x)) == 5
    assert isinstance(moved.W, Tracked)
    assert_close(moved.W.data, a.W.data)
    (g,) = gradient(lambda a: (a(x) ** 2).sum(), a)
    ref = jax.grad(lambda W, b: jnp.sum((W @ x + b) ** 2))(a.W.data, a.b.data)
    np.testing.assert_allclose(data(g.W), ref, rtol=1e-5)
    assert jax.jit(lambda a, x: a(x))(a, x).shape == (5,)


def test_foldl_over_a_list_of_layers():
    layers = [Dense(10, 5, σ), Dense(5, 2), softmax]

    def model(x):
        return functools.reduce(lambda x, m: m(x), layers, x)

    y = model(rand(10))
    assert y.shape == (2,)
    assert float(data(y).sum()) == pytest.approx(1.0, abs=1e-6)
    assert len(params(layers)) == 4


def test_chain_of_the_seed():
    model2 = Chain(Dense(10, 5, σ), Dense(5, 2), softmax)
    y = model2(rand(10))
    assert y.shape == (2,)
    assert float(data(y).sum()) == pytest.approx(1.0, abs=1e-6)


def test_composition_of_the_seed():
    m = compose(Dense(5, 2), Dense(10, 5, σ))
    assert m(rand(10)).shape == (2,)


def test_chain_of_julia_functions():
    assert Chain(lambda x: x**2, lambda x: x + 1)(5) == 26


def test_imperative_training_of_the_seed_chain():
    m = Chain(Dense(10, 5, σ), Dense(5, 2), softmax)
    x, y = rand(10), jnp.array([0.0, 1.0])
    back_(((m(x) - y) ** 2).sum())
    assert grad(m[0].W).shape == (5, 10) and float(jnp.abs(grad(m[0].W)).sum()) > 0
