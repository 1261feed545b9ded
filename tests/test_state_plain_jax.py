"""Plain JAX on stateful models: ``jax.grad(loss)(model)`` on every model holding no
random key (recurrent ones included: no integer flags), ``allow_int=True`` plus
``update_`` for Dropout, and ``fj.partition``/``fj.combine`` + optax for every layer
family. The oracle is ``fj.gradient`` of the same loss (its params' gradients)."""

from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np
import optax
import pytest
from _tol import assert_close

import fluxjax as fj

FAMILIES = {
    "Dense": lambda: fj.Dense(4, 4, fj.relu),
    "BatchNorm": lambda: fj.BatchNorm(4),
    "Dropout": lambda: fj.Dropout(0.3),
    "RNN": lambda: fj.RNN(4, 4),
    "LSTM": lambda: fj.LSTM(4, 4),
    "GRU": lambda: fj.GRU(4, 4),
}
X = np.random.default_rng(0).normal(size=(2, 5, 3)).astype(np.float32)
Y = np.ones((2, 5, 1), np.float32)


def model(name):
    fj.seed(1)
    return fj.Chain(fj.Dense(3, 4), FAMILIES[name](), fj.Dense(4, 1))


def loss(m):
    return jnp.mean((m(X) - Y) ** 2)


def oracle(m):
    """The gradient of each param, in ``params(m)`` order, from fluxjax's own path."""
    gs = fj.gradient(lambda: fj.mse(m(X), Y), fj.params(m))
    return [np.asarray(gs[p]) for p in fj.params(m)]


@pytest.mark.parametrize("name", [n for n in FAMILIES if n != "Dropout"])
def test_jax_grad_of_a_whole_model_works_without_a_random_key(name):
    m = model(name)
    g = jax.grad(loss)(m)
    want = oracle(m)
    got = [np.asarray(g_) for g_, o in zip(jax.tree_util.tree_leaves(g), fj.layers.leaf_owners(m))
           if o is not None and o.trainable]  # fmt: skip
    assert len(got) == len(want)
    for a, b in zip(got, want):
        assert_close(a, b)


def test_dropout_needs_allow_int_and_update_skips_its_key():
    m = model("Dropout")
    with pytest.raises(TypeError):
        jax.grad(loss)(m)
    g = jax.grad(loss, allow_int=True)(m)
    want = oracle(model("Dropout"))  # same key: same mask
    before = [np.asarray(p.data) for p in fj.params(m)]
    fj.update_(fj.setup(fj.Descent(0.1), m), m, g)
    for p, b, w in zip(fj.params(m), before, want):
        assert_close(np.asarray(p.data), b - 0.1 * w)


@pytest.mark.parametrize("name", list(FAMILIES))
def test_partition_and_combine_with_optax(name):
    m = model(name)
    params, rest = fj.partition(m)
    g = jax.grad(lambda p: loss(fj.combine(p, rest)))(params)
    want = oracle(model(name))
    got = jax.tree_util.tree_leaves(g)
    assert len(got) == len(want)
    for a, b in zip(got, want):
        assert_close(np.asarray(a), b)
    tx = optax.sgd(0.1)
    updates, _ = tx.update(g, tx.init(params))
    new = fj.combine(optax.apply_updates(params, updates), rest)
    for p, q, w in zip(fj.params(new), fj.params(m), want):
        assert_close(np.asarray(p.data), np.asarray(q.data) - 0.1 * w)
