"""``train_(..., jit=False)``: a refused eager step puts back everything it wrote.

Each step runs inside a transaction that notes the leaves it *writes* (reads change
nothing to put back, and cost nothing). These tests write leaves the step never read
before, reach a param that is not among the trained ones, change a carry's shape, and
write a leaf from inside a raw ``jax.jit``: after the refusal every leaf is as before.
The oracle is the state before the call.
"""

from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from _tol import assert_close

import fluxjax as fj


def _nan_data(n_good, x):
    return [(x, jnp.float32(1.0))] * n_good + [(x, jnp.float32(np.nan))]


def test_a_refused_step_puts_back_leaves_it_wrote_without_reading():
    W = fj.param(jnp.array([1.0, -2.0]))
    V = fj.param(jnp.array([0.5, 0.5]))  # reached by the loss, not trained
    s = fj.state(jnp.zeros(2))  # written, never read, by the loss
    W.grad, V.grad = jnp.array([3.0, 3.0]), jnp.array([7.0, 7.0])

    def loss(x, scale):
        s.data = x * 2
        return ((W * x).sum() + (V * x).sum()) * scale

    x = jnp.array([1.0, 2.0])
    with pytest.raises(FloatingPointError, match="step 0"):
        fj.train_(loss, fj.Params([W]), _nan_data(0, x), fj.Descent(0.1), jit=False)
    np.testing.assert_array_equal(np.asarray(W.data), [1.0, -2.0])
    np.testing.assert_array_equal(np.asarray(s.data), [0.0, 0.0])
    np.testing.assert_array_equal(np.asarray(W.grad), [3.0, 3.0])
    np.testing.assert_array_equal(np.asarray(V.grad), [7.0, 7.0])


def test_a_refused_step_after_good_ones_keeps_their_writes():
    W = fj.param(jnp.array([1.0, -2.0]))
    s = fj.state(jnp.zeros(2))
    seen = []

    def loss(x, scale):
        seen.append(len(seen))
        s.data = jnp.full(2, float(len(seen)))  # step i writes i + 1
        return (W * x).sum() * scale

    x = jnp.array([1.0, 2.0])
    with pytest.raises(FloatingPointError, match="step 2"):
        fj.train_(loss, fj.Params([W]), _nan_data(2, x), fj.Descent(0.1), jit=False)
    np.testing.assert_array_equal(np.asarray(s.data), [2.0, 2.0])  # step 1's write
    assert_close(np.asarray(W.data), np.array([1.0, -2.0]) - 2 * 0.1 * np.array([1.0, 2.0]))


def test_a_refused_step_with_a_non_finite_gradient_puts_back_grads_and_state():
    W = fj.param(jnp.array([0.0, 1.0]))
    s = fj.state(jnp.zeros(2))
    W.grad = jnp.array([4.0, 4.0])

    def loss():
        s.data = jnp.ones(2)
        return fj.numpy.sqrt(fj.numpy.abs(W)).sum()  # finite, its gradient at 0 is not

    with pytest.raises(FloatingPointError, match="gradient"):
        fj.train_(loss, fj.Params([W]), [()], fj.Descent(0.1), jit=False)
    np.testing.assert_array_equal(np.asarray(W.data), [0.0, 1.0])
    np.testing.assert_array_equal(np.asarray(W.grad), [4.0, 4.0])
    np.testing.assert_array_equal(np.asarray(s.data), [0.0, 0.0])


def test_a_refused_step_puts_back_a_carry_it_reshaped():
    fj.seed(0)
    m = fj.Chain(fj.RNN(2, 3), fj.Dense(3, 1))

    def loss(x, y):
        return fj.mse(m(x), y)

    fj.train_(loss, m, [(jnp.ones((4, 2)), jnp.ones((4, 1)))], fj.Descent(0.1), jit=False)
    fj.reset_(m)  # the next batch may have another size: the carry takes its shape
    before = [np.asarray(s.data) for s in fj.states(m)]
    bad = (jnp.ones((3, 2)), jnp.full((3, 1), jnp.nan))
    with pytest.raises(FloatingPointError, match="step 0"):
        fj.train_(loss, m, [bad], fj.Descent(0.1), jit=False)
    for s, b in zip(fj.states(m), before):
        assert s.shape == b.shape  # the leaf's shape follows its value back
        np.testing.assert_array_equal(np.asarray(s.data), b)
    assert m(jnp.ones((4, 2))).shape == (4, 1)


def test_an_eager_step_refuses_a_tracer_written_to_a_leaf():
    W = fj.param(jnp.array([1.0, 2.0]))
    s = fj.state(jnp.zeros(2))

    def loss(x):
        @jax.jit
        def f(a):
            s.data = a * 2  # the leaf would keep the tracer after the trace
            return a.sum()

        f(x)
        return (W * x).sum()

    with pytest.raises(RuntimeError, match="tracer"):
        fj.train_(loss, fj.Params([W]), [jnp.ones(2)], fj.Descent(0.1), jit=False)
    np.testing.assert_array_equal(np.asarray(s.data), [0.0, 0.0])
    np.testing.assert_array_equal(np.asarray(W.data), [1.0, 2.0])
