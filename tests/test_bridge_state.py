"""State leaves (``fluxjax.state``): non-trainable, threaded through every path.

The oracle is a pure JAX twin of a layer that counts its calls and draws a dropout mask
from a key it carries: each path (eager ``back_``, ``gradient``, compiled ``train_`` per
step and over a ``DataLoader`` scan, ``fluxjax.jit``) must end with the twin's weights,
count and key, which it only reaches with one fresh mask per step.
"""

import jax
import jax.numpy as jnp
import numpy as np
import pytest

import fluxjax as fj

η, N, B = 0.1, 4, 3


@fj.treelike
class Noisy:
    """Dense-like layer that counts its calls and drops half its outputs with its own key."""

    def __init__(self, W, b, seed):
        self.W, self.b = fj.param(W), fj.param(b)
        self.n = fj.state(0)
        self.key = fj.state(jax.random.key_data(jax.random.PRNGKey(seed)))

    def __call__(self, x):
        self.n.data = self.n.data + 1
        key, sub = jax.random.split(self.key.data)
        self.key.data = key
        mask = jax.random.bernoulli(sub, 0.5, (x.shape[0], self.W.shape[0]))
        return (x @ self.W.T + self.b) * mask


def problem():
    rng = np.random.default_rng(0)
    W = rng.normal(size=(2, 3)).astype("float32")
    b = rng.normal(size=(2,)).astype("float32")
    X = rng.normal(size=(N * B, 3)).astype("float32")
    Y = rng.normal(size=(N * B, 2)).astype("float32")
    return W, b, X, Y


def twin():
    """Plain JAX: N SGD steps, one split of the key and one count per step."""
    W, b, X, Y = problem()
    key, n = jax.random.PRNGKey(7), 0
    for i in range(N):
        x, y = X[i * B : (i + 1) * B], Y[i * B : (i + 1) * B]
        key, sub = jax.random.split(key)
        mask = jax.random.bernoulli(sub, 0.5, (B, 2))

        def loss(W, b, x=x, y=y, mask=mask):
            return jnp.mean(((x @ W.T + b) * mask - y) ** 2)

        gW, gb = jax.grad(loss, (0, 1))(W, b)
        W, b, n = W - η * gW, b - η * gb, n + 1
    return W, b, n, key


def fresh():
    W, b, X, Y = problem()
    m = Noisy(W, b, 7)
    batches = [(X[i * B : (i + 1) * B], Y[i * B : (i + 1) * B]) for i in range(N)]
    return m, fj.Params([m.W, m.b]), batches, lambda x, y: fj.mse(m(x), y)


def check(m):
    W, b, n, key = twin()
    np.testing.assert_allclose(m.W.data, W, rtol=1e-5, atol=1e-6)
    np.testing.assert_allclose(m.b.data, b, rtol=1e-5, atol=1e-6)
    assert int(m.n.data) == n == N
    np.testing.assert_array_equal(m.key.data, key)
    assert m.key.data.dtype == jnp.uint32 and m.n.data.dtype == jnp.int32


def test_state_leaf_basics():
    s = fj.state(jnp.arange(3, dtype=jnp.uint32))
    assert s.is_leaf and not s.trainable and fj.param(1.0).trainable
    assert s.dtype == jnp.uint32 and s.grad is None and fj.grad(s) is None
    s.data = [4, 5, 6.7]  # cast to its dtype
    np.testing.assert_array_equal(s.data, [4, 5, 6])
    with pytest.raises(ValueError, match="shape"):
        s.data = [1, 2]
    with pytest.raises(TypeError, match="param"):
        fj.Params([s])
    with pytest.raises(TypeError, match="param"):
        fj.update_(s, 1)
    f = fj.state(jnp.ones(2))
    W = fj.param(jnp.ones(2))
    fj.back_((W * f).sum())  # a constant for back_
    np.testing.assert_allclose(W.grad, [1.0, 1.0])
    assert f.grad is None


def test_eager_back():
    m, ps, batches, loss = fresh()
    for x, y in batches:
        fj.back_(loss(x, y))
        for p in ps:
            fj.update_(p, -η * fj.grad(p))
    check(m)


def test_gradient_of_params():
    m, ps, batches, loss = fresh()
    for x, y in batches:
        gs = fj.gradient(lambda: loss(x, y), ps)  # noqa: B023
        for p in ps:
            fj.update_(p, -η * gs[p])
    check(m)


def test_forward_writes_state_once():
    m, ps, batches, loss = fresh()
    x, y = batches[0]
    l, back = fj.forward(lambda: loss(x, y), ps)
    assert int(m.n.data) == 1
    assert isinstance(back(1.0), fj.Grads)


def test_train_per_step():
    m, ps, batches, loss = fresh()
    fj.train_(loss, ps, batches, fj.Descent(η))
    check(m)


def test_train_scan_over_a_dataloader():
    m, ps, batches, loss = fresh()
    _, _, X, Y = problem()
    fj.train_(loss, ps, fj.DataLoader((X, Y), batchsize=B), fj.Descent(η))
    check(m)


def test_fluxjax_jit():
    m, ps, batches, loss = fresh()

    @fj.jit
    def step(x, y):
        fj.back_(loss(x, y))
        for p in ps:
            fj.update_(p, -η * fj.grad(p))

    for x, y in batches:
        step(x, y)
    check(m)
