"""Tracker's forward-mode pair: ``forwarddiff`` and ``forward_jacobian`` (Tracker.jl's
test/tracker.jl "Forward" testset, plus gradients against ``jax.grad`` and finite
differences on every path)."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from _tol import assert_close

import fluxjax as fj
from fluxjax.tracker import forward_jacobian, forwarddiff


def test_tracker_jl_forward_testset():
    # @test forward_jacobian(x -> [sum(x)], rand(5,5), Val(12))[2] == reshape(ones(25), :, 1)
    y, J = forward_jacobian(lambda x: jnp.array([x.sum()]), jnp.asarray(np.random.rand(5, 5)))
    assert J.shape == (25, 1)
    np.testing.assert_array_equal(J, np.ones((25, 1)))
    # @test gradient([2, 3]) do x; forwarddiff(x) do x; x[1]*x[2] end end == ([3, 2],)
    (g,) = fj.gradient(lambda x: forwarddiff(lambda x: x[0] * x[1], x), jnp.array([2.0, 3.0]))
    np.testing.assert_array_equal(g, [3.0, 2.0])


def test_forward_jacobian_layout_is_tracker_jl_s():
    x = jnp.array([1.0, 2.0, 3.0])
    y, J = forward_jacobian(lambda v: jnp.stack([v[0] * v[1], v[2] ** 2]), x)
    assert_close(y, [2.0, 9.0])
    # J[i, j] = ∂y[j] / ∂x[i]: the transpose of fj.jacobian's
    assert_close(J, np.asarray(fj.jacobian(lambda v: jnp.stack([v[0] * v[1], v[2] ** 2]), x)).T)
    y, J = forward_jacobian(jnp.sin, 0.5)  # a number: one row
    assert_close(y, np.sin(0.5)) and None
    assert J.shape == (1, 1)
    assert_close(J[0, 0], np.cos(0.5))


def _doubling(x):
    """Reverse mode cannot go through a while loop; forward mode can."""

    def body(c):
        return c[0] * 2.0, c[1] + 1

    return jax.lax.while_loop(lambda c: c[1] < 3, body, (x, 0))[0]


def f(x):
    return jnp.sum(jnp.sin(_doubling(x)) * x)


def twin(x):
    return jnp.sum(jnp.sin(8.0 * x) * x)


X = jnp.array([0.3, -0.2, 0.5])


def test_forwarddiff_differentiates_by_forward_mode():
    with pytest.raises(Exception):  # noqa: B017  (JAX: reverse mode of a while loop)
        jax.grad(f)(X)
    (g,) = fj.gradient(lambda x: forwarddiff(f, x), X)
    assert_close(g, jax.grad(twin)(X), rtol=1e-5)
    assert_close(forwarddiff(f, X), twin(X))


def test_forwarddiff_on_a_param_with_back_():
    p = fj.param(X)
    y = forwarddiff(f, p)
    assert isinstance(y, fj.TrackedReal)
    fj.back_(y * 2)
    assert_close(fj.grad(p), 2 * jax.grad(twin)(X), rtol=1e-5)


def test_forwarddiff_array_output_inside_a_larger_graph():
    W = fj.param(jnp.array([[1.0, 2.0, -1.0], [0.5, 0.0, 3.0]]))
    x = jnp.array([0.1, 0.4])
    out = forwarddiff(lambda v: jnp.tanh(_doubling(v)), x @ W)  # (3,) in, (3,) out
    assert out.shape == (3,)
    fj.back_((out**2).sum())

    def pure(W):
        return (jnp.tanh(8.0 * (x @ W)) ** 2).sum()

    assert_close(fj.grad(W), jax.grad(pure)(W.data), rtol=1e-5)


def test_forwarddiff_reaches_params_that_f_reads_itself():
    W = fj.param(jnp.array([1.5, -0.5, 2.0]))
    x = fj.param(X)
    fj.back_(forwarddiff(lambda v: jnp.sum(fj.numpy.sin(W * v)), x))

    def pure(W, x):
        return jnp.sum(jnp.sin(W * x))

    gW, gx = jax.grad(pure, argnums=(0, 1))(W.data, X)
    assert_close(fj.grad(x), gx, rtol=1e-5)
    assert_close(fj.grad(W), gW, rtol=1e-5)


def test_forwarddiff_under_gradient_of_params_train_and_jit():
    W = fj.param(jnp.array([0.2, 0.1, -0.3]))
    loss = lambda: forwarddiff(f, W * 1.0)  # noqa: E731
    gs = fj.gradient(loss, fj.Params([W]))
    assert_close(gs[W], jax.grad(twin)(W.data), rtol=1e-5)
    assert_close(jax.jit(jax.grad(lambda x: forwarddiff(f, x)))(X), jax.grad(twin)(X), rtol=1e-5)
    before = W.data
    fj.train_(lambda: loss(), fj.Params([W]), [()], fj.Descent(0.1))
    assert_close(W.data, before - 0.1 * jax.grad(twin)(before), rtol=1e-5)


def test_forwarddiff_matches_finite_differences_and_nests():
    g = lambda x: forwarddiff(lambda v: jnp.sum(v**3), x)  # noqa: E731
    assert fj.gradcheck(g, jnp.array([0.5, -1.0]))
    d2 = fj.gradient(lambda x: fj.gradient(g, x)[0].sum(), jnp.array([0.5, -1.0]))[0]
    assert_close(d2, [3.0, -6.0], rtol=1e-5)  # d/dx Σ 3x² = 6x


def test_plain_input_gives_the_plain_value():
    y = forwarddiff(jnp.sin, jnp.array([0.1, 0.2]))
    assert not isinstance(y, fj.Tracked)
    assert_close(y, np.sin([0.1, 0.2]))


def test_lists_and_ints_are_taken_as_floats():
    y, J = forward_jacobian(lambda v: v * v, [2, 3])
    assert_close(y, [4.0, 9.0])
    assert_close(J, [[4.0, 0.0], [0.0, 6.0]])


def test_a_plain_x_with_a_param_read_by_f_gives_a_tracked_result():
    W = fj.param(jnp.array([1.0, -2.0]))
    y = forwarddiff(lambda v: jnp.sum(fj.numpy.sin(W * v)), jnp.array([0.5, 0.25]))
    assert isinstance(y, fj.TrackedReal)  # never a silently detached W
    fj.back_(y)
    assert_close(fj.grad(W), np.cos([0.5, -0.5]) * [0.5, 0.25], rtol=1e-5)


def test_forward_jacobian_of_a_tracked_input_is_differentiable():
    x = jnp.array([0.5, -1.0, 2.0])
    (g,) = fj.gradient(lambda v: forward_jacobian(lambda u: u**3, v)[1].sum(), x)
    assert_close(g, 6 * x, rtol=1e-5)  # J = diag(3x²)
    p = fj.param(x)
    y, J = forward_jacobian(lambda u: u**3, p)
    assert isinstance(J, fj.TrackedArray) and J.shape == (3, 3)
