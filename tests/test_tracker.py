"""Tracked values: param, operators and array methods, back_, update_, data and grad.

Every gradient is checked against ``jax.grad`` (or ``jax.vjp``) of a pure-JAX twin of
the same computation, never against numbers taken from fluxjax itself.
"""

from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from _tol import assert_close

import fluxjax.numpy as fnp
from fluxjax import Tracked, TrackedArray, TrackedReal, back_, data, grad, param, update_


def uniform(rng, *shape, lo=-1.0, hi=1.0):
    return rng.uniform(lo, hi, shape).astype(np.float32)


def check_op(f, *xs, rtol=1e-5, atol=1e-6):
    """``f`` on params: tracked, same value as on plain arrays, and ``back_`` of a random
    weighting of it gives ``jax.grad`` of the pure twin."""
    ps = [param(x) for x in xs]
    out = f(*ps)
    assert isinstance(out, Tracked)
    plain = [jnp.asarray(x) for x in xs]
    want = f(*plain)
    assert out.shape == jnp.shape(want) and out.dtype == jnp.result_type(want)
    np.testing.assert_allclose(np.asarray(data(out)), np.asarray(want), rtol=rtol, atol=atol)
    w = np.random.default_rng(7).normal(size=out.shape).astype(np.float32)
    back_((out * w).sum())
    expected = jax.grad(lambda *v: (f(*v) * w).sum(), argnums=tuple(range(len(xs))))(*plain)
    for p, e in zip(ps, expected):
        np.testing.assert_allclose(np.asarray(p.grad), np.asarray(e), rtol=rtol, atol=atol)


# -- param ---------------------------------------------------------------------------------
@pytest.mark.parametrize("x", [2, 2.5, -1, True, np.float32(1.5), np.array(3), jnp.array(4.0)])
def test_param_of_a_number_or_0d_value_is_a_tracked_real(x):
    p = param(x)
    assert type(p) is TrackedReal and isinstance(p, Tracked)
    assert p.shape == () and p.ndim == 0
    assert p.dtype == jnp.float32
    assert float(p) == float(x)
    assert p.grad.shape == () and float(p.grad) == 0.0
    assert p.is_leaf


@pytest.mark.parametrize(
    "x",
    [[1, 2], [[1.5, 2.0, 3.0]], np.arange(6).reshape(2, 3), np.ones(3), jnp.ones((2, 2, 2))],
)
def test_param_of_an_array_is_a_tracked_array_of_floats(x):
    p = param(x)
    assert type(p) is TrackedArray
    assert p.shape == np.shape(x)
    assert jnp.issubdtype(p.dtype, jnp.floating)
    np.testing.assert_array_equal(np.asarray(p.data), np.asarray(x, np.float32))
    assert p.grad.shape == p.shape and p.grad.dtype == p.dtype
    assert not np.asarray(p.grad).any()


def test_integer_params_become_float():
    assert param(np.arange(3, dtype=np.int64)).dtype == jnp.float32
    assert param(3).dtype == jnp.float32
    assert jnp.issubdtype(param([True, False]).dtype, jnp.floating)


def test_param_copies_its_input(rng):
    src = uniform(rng, 3)
    p = param(src)
    kept = src.copy()
    src[:] = 100.0
    np.testing.assert_array_equal(np.asarray(p.data), kept)


# -- operators -----------------------------------------------------------------------------
BINARY = {
    "add": lambda a, b: a + b,
    "sub": lambda a, b: a - b,
    "mul": lambda a, b: a * b,
    "truediv": lambda a, b: a / b,
    "pow": lambda a, b: a**b,
}


@pytest.mark.parametrize("op", sorted(BINARY))
def test_binary_operators_between_tracked_values(op, rng):
    a, b = uniform(rng, 3, 4, lo=0.5, hi=1.5), uniform(rng, 3, 4, lo=0.5, hi=1.5)
    check_op(BINARY[op], a, b)


@pytest.mark.parametrize("op", sorted(BINARY))
def test_binary_operators_broadcast(op, rng):
    a, b = uniform(rng, 3, 4, lo=0.5, hi=1.5), uniform(rng, 4, lo=0.5, hi=1.5)
    check_op(BINARY[op], a, b)
    check_op(BINARY[op], b, a)


@pytest.mark.parametrize("op", sorted(BINARY))
@pytest.mark.parametrize("kind", ["numpy", "jax", "python"])
def test_operators_with_plain_values_on_either_side(op, kind, rng):
    a = uniform(rng, 3, 4, lo=0.5, hi=1.5)
    c = {"numpy": uniform(rng, 4, lo=0.5, hi=1.5), "python": 1.5}.get(kind)
    if kind == "jax":
        c = jnp.asarray(uniform(rng, 3, 4, lo=0.5, hi=1.5))
    f = BINARY[op]
    check_op(lambda x: f(x, c), a)
    check_op(lambda x: f(c, x), a)  # reflected: numpy and JAX arrays defer to the tracker
    assert isinstance(f(c, param(a)), Tracked)


def test_python_int_operands(rng):
    a = uniform(rng, 3, lo=0.5, hi=1.5)
    check_op(lambda x: 3 * x**2 + 2 * x + 1, a)
    check_op(lambda x: 2**x - 1 / x, a)


@pytest.mark.parametrize(
    "shapes", [((3, 4), (4, 2)), ((3, 4), (4,)), ((4,), (4, 2)), ((4,), (4,)), ((2, 3, 4), (4, 5))]
)
def test_matmul(shapes, rng):
    a, b = uniform(rng, *shapes[0]), uniform(rng, *shapes[1])
    check_op(lambda x, y: x @ y, a, b)
    check_op(lambda x: x @ b, a)
    check_op(lambda y: a @ y, b)  # numpy @ tracked
    check_op(lambda y: jnp.asarray(a) @ y, b)  # jax @ tracked


def test_unary_operators(rng):
    a = uniform(rng, 3, 4)
    check_op(lambda x: -x, a)
    check_op(lambda x: abs(x), a)
    check_op(lambda x: -abs(x) * x, a)
    assert isinstance(-param(2.0), TrackedReal)
    assert float(abs(param(-2.0))) == 2.0


INDICES = [
    1,
    -1,
    slice(1, 3),
    slice(None, None, 2),
    slice(None, None, -1),
    slice(-3, -1),
    (slice(None), 1),
    (1, -2),
    (-1, slice(None, None, -2)),
    (Ellipsis, slice(1, None, 2)),
    (None, slice(None), 0),
    np.array([0, 2]),
    (np.array([0, 2]), np.array([1, 3])),
]


@pytest.mark.parametrize("index", INDICES, ids=repr)
def test_indexing_and_slicing(index, rng):
    a = uniform(rng, 3, 4)
    check_op(lambda x: x[index], a)


def test_indexing_a_vector_and_iterating(rng):
    v = param(uniform(rng, 4))
    assert isinstance(v[0], TrackedReal)
    assert [float(e) for e in v] == [float(x) for x in np.asarray(v.data)]
    total = sum(v[i] * (i + 1) for i in range(len(v)))
    back_(total)
    np.testing.assert_array_equal(np.asarray(v.grad), [1.0, 2.0, 3.0, 4.0])


def test_shape_properties(rng):
    a = uniform(rng, 3, 5)
    t = param(a)
    assert t.shape == (3, 5) and t.ndim == 2 and len(t) == 3 and t.size == 15
    assert t.dtype == jnp.float32
    assert t.T.shape == (5, 3) and isinstance(t.T, TrackedArray)
    np.testing.assert_array_equal(np.asarray(t.T.data), a.T)
    check_op(lambda x: x.T, a)
    with pytest.raises(TypeError):
        len(param(1.0))


METHODS = {
    "sum": lambda x: x.sum(),
    "sum0": lambda x: x.sum(axis=0),
    "sum_pos": lambda x: x.sum(1),
    "sum_tuple": lambda x: x.sum(axis=(0, 1)),
    "sum_keepdims": lambda x: x.sum(axis=-1, keepdims=True),
    "mean": lambda x: x.mean(),
    "mean1": lambda x: x.mean(axis=1),
    "max": lambda x: x.max(),
    "max0": lambda x: x.max(axis=0),
    "min": lambda x: x.min(),
    "min1": lambda x: x.min(axis=1),
    "prod": lambda x: x.prod(),
    "prod1": lambda x: x.prod(axis=1),
    "reshape_tuple": lambda x: x.reshape((4, 3)),
    "reshape_varargs": lambda x: x.reshape(2, 6),
    "reshape_flat": lambda x: x.reshape(-1),
    "reshape_one": lambda x: x.reshape(12),
    "transpose": lambda x: x.transpose(),
    "transpose_tuple": lambda x: x.transpose((1, 0)),
}


@pytest.mark.parametrize("method", sorted(METHODS))
def test_array_methods(method, rng):
    check_op(METHODS[method], uniform(rng, 3, 4, lo=0.5, hi=1.5))


def test_transpose_with_axes_as_varargs_like_numpy(rng):
    """NumPy's ``a.transpose(1, 0)`` (axes as separate arguments)."""
    a = uniform(rng, 2, 3, 4)
    check_op(lambda x: x.transpose(2, 0, 1), a)
    check_op(lambda x: x.transpose(1, 0, 2), a)


def test_float_format_and_conversions(rng):
    l = param(2.0) * 1.25
    assert isinstance(l, TrackedReal)
    assert float(l) == 2.5 and isinstance(float(l), float)
    assert format(l, ".2f") == "2.50" and f"{l:.3f}" == "2.500"
    a = uniform(rng, 3, 4)
    t = param(a)
    arr = np.asarray(t)
    assert type(arr) is np.ndarray
    np.testing.assert_array_equal(arr, a)
    np.testing.assert_array_equal(np.asarray(t * 2), a * 2)
    with pytest.raises(TypeError, match="fluxjax.numpy"):  # optax losses call jnp.asarray
        jnp.asarray(t)


def test_reading_a_result_that_uses_one_value_twice(rng):
    a = uniform(rng, 3)
    x, v = param(3.0), param(a)
    assert float(x * x) == 9.0
    assert repr(x * x) == "9.0 (tracked)"
    assert_close(np.asarray(data(v * v)), a * a)
    assert_close(float(fnp.dot(v, v)), float(a @ a))
    np.testing.assert_array_equal(np.asarray(data(fnp.stack([v, v]))), np.stack([a, a]))
    h = fnp.sin(v)
    assert_close(np.asarray(data(h + h)), 2 * np.sin(a))


def test_every_result_with_a_tracked_input_is_tracked(rng):
    t = param(uniform(rng, 3, 4))
    results = [
        t + 1, 1 + t, t - t, t * np.ones(4), np.ones(4) * t, t / 2, 2 / t, t**2, 2**t,
        t @ np.ones(4), np.ones(3) @ t, -t, abs(t), t[0], t[:, 1:], t.T, t.sum(), t.mean(0),
        t.max(), t.min(), t.prod(), t.reshape(-1), t.transpose(), fnp.sin(t), fnp.sum(t),
    ]  # fmt: skip
    assert all(isinstance(r, Tracked) for r in results)
    assert all(not r.is_leaf for r in results)


COMPARISONS = {
    "lt": lambda a, b: a < b,
    "le": lambda a, b: a <= b,
    "gt": lambda a, b: a > b,
    "ge": lambda a, b: a >= b,
    "eq": lambda a, b: a == b,
    "ne": lambda a, b: a != b,
}


@pytest.mark.parametrize("op", sorted(COMPARISONS))
def test_comparisons_return_plain_boolean_arrays(op, rng):
    a, b = uniform(rng, 3, 4), uniform(rng, 3, 4)
    b[0, 0] = a[0, 0]  # one tie, so == and != see both outcomes
    f = COMPARISONS[op]
    for x, y in [(param(a), param(b)), (param(a), b), (a, param(b)), (param(a), 0.0)]:
        r = f(x, y)
        assert not isinstance(r, Tracked)
        assert r.dtype == jnp.bool_
        want = f(a, b if not isinstance(y, float) else y)
        np.testing.assert_array_equal(np.asarray(r), want)
    assert isinstance(bool(param(1.0) < 2), bool) and param(1.0) < 2


PLAIN_JAX = {
    "jnp.sin": lambda t: jnp.sin(t),
    "jnp.exp": lambda t: jnp.exp(t),
    "jnp.sum": lambda t: jnp.sum(t),
    "jnp.add": lambda t: jnp.add(t, 1.0),
    "jnp.concatenate": lambda t: jnp.concatenate([t, t]),
    "jnp.stack": lambda t: jnp.stack([t, t]),
    "jnp.dot": lambda t: jnp.dot(t, t),
    "jnp.matmul": lambda t: jnp.matmul(t, t),
    "jnp.where": lambda t: jnp.where(True, t, 0.0),
    "jax.nn.sigmoid": lambda t: jax.nn.sigmoid(t),
    "jax.jit": lambda t: jax.jit(lambda x: x * 2)(t),
}


@pytest.mark.parametrize("call", sorted(PLAIN_JAX))
def test_plain_jax_numpy_rejects_tracked_values_naming_fluxjax_numpy(call, rng):
    t = param(uniform(rng, 3, 3))
    with pytest.raises(TypeError, match="fluxjax.numpy"):
        PLAIN_JAX[call](t)


def test_numpy_ufuncs_never_silently_drop_the_tracking(rng):
    t = param(uniform(rng, 3))
    assert isinstance(np.sin(t), Tracked)  # recorded as fluxjax.numpy.sin (tests/test_interop.py)


# -- data and grad -------------------------------------------------------------------------
def test_data_gives_the_plain_value(rng):
    a = uniform(rng, 2, 3)
    t = param(a)
    for x, want in [(t, a), (t * 2, a * 2), (param(3), 3.0)]:
        d = data(x)
        assert isinstance(d, jax.Array) and not isinstance(d, Tracked)
        assert_close(np.asarray(d), want)
        assert d is x.data or np.array_equal(np.asarray(d), np.asarray(x.data))
    for plain in [a, 3, 2.5, jnp.ones(2), "text", None]:
        assert data(plain) is plain


def test_grad_of_untracked_is_none_and_of_a_param_is_zeros_then_accumulated(rng):
    for plain in [1.0, 3, np.ones(3), jnp.ones(3)]:
        assert grad(plain) is None
    W = param(uniform(rng, 2, 3))
    assert isinstance(grad(W), jax.Array) and not np.asarray(grad(W)).any()
    back_((W * 3).sum())
    np.testing.assert_array_equal(np.asarray(grad(W)), np.full((2, 3), 3.0))
    assert grad(W) is W.grad or np.array_equal(grad(W), W.grad)
    r = param(2.0)
    back_(r * r)
    assert grad(r).shape == () and float(grad(r)) == 4.0


# -- back_ ---------------------------------------------------------------------------------
def loss_twin(W, b, x, y):
    return ((W @ x + b - y) ** 2).sum()


def test_back_accumulates_over_two_calls(rng):
    Wv, bv, x, y = uniform(rng, 2, 5), uniform(rng, 2), uniform(rng, 5), uniform(rng, 2)
    W, b = param(Wv), param(bv)
    assert back_(loss_twin(W, b, x, y)) is None
    gW, gb = jax.grad(loss_twin, argnums=(0, 1))(Wv, bv, x, y)
    np.testing.assert_allclose(np.asarray(W.grad), gW, rtol=1e-5)
    back_(loss_twin(W, b, x, y))  # a fresh graph: adds again
    np.testing.assert_allclose(np.asarray(W.grad), 2 * gW, rtol=1e-5)
    np.testing.assert_allclose(np.asarray(b.grad), 2 * gb, rtol=1e-5)


def test_back_of_a_non_scalar_needs_delta(rng):
    a, d = uniform(rng, 3, 4), uniform(rng, 3, 4)
    W = param(a)
    with pytest.raises(ValueError, match="scalar"):
        back_(fnp.sin(W) * 2)
    back_(fnp.sin(W) * 2, d)
    _, pull = jax.vjp(lambda v: jnp.sin(v) * 2, jnp.asarray(a))
    np.testing.assert_allclose(np.asarray(W.grad), pull(jnp.asarray(d))[0], rtol=1e-5)
    with pytest.raises(ValueError):
        back_(fnp.sin(W), np.ones(4))  # Δ of the wrong shape


def test_back_of_a_scalar_accepts_an_explicit_delta():
    W = param(3.0)
    back_(W * W, 0.5)
    assert float(W.grad) == 3.0


def test_back_into_a_param_itself():
    W = param(np.ones(3))
    back_(W, np.arange(3.0))
    np.testing.assert_array_equal(np.asarray(W.grad), [0.0, 1.0, 2.0])


def test_back_of_an_untracked_value_raises():
    with pytest.raises(TypeError):
        back_(jnp.ones(()))


@pytest.mark.parametrize("bad", ["nan", "inf", "-inf"])
def test_back_of_a_nan_or_infinite_loss_raises_and_leaves_grads_alone(bad, rng):
    W = param(uniform(rng, 3, lo=0.5, hi=1.0))
    back_((W * 2).sum())
    before = np.asarray(W.grad).copy()
    losses = {
        "nan": lambda: fnp.log(W - 2).sum(),
        "inf": lambda: (W / 0.0).sum(),
        "-inf": lambda: fnp.log(W * 0.0).sum(),
    }
    with pytest.raises(FloatingPointError):
        back_(losses[bad]())
    np.testing.assert_array_equal(np.asarray(W.grad), before)


def test_back_twice_through_one_graph_raises_already(rng):
    W = param(uniform(rng, 3))
    l = (W**2).sum()
    back_(l)
    with pytest.raises(RuntimeError, match="already"):
        back_(l)
    h = W * 3  # a graph sharing nothing with l is fine
    back_(h.sum())


def test_back_through_a_freed_subgraph_raises(rng):
    W = param(uniform(rng, 3))
    h = fnp.tanh(W)
    back_(h.sum())
    with pytest.raises(RuntimeError, match="already"):
        back_((h * 2).sum())


def test_back_once_false_keeps_the_graph(rng):
    a = uniform(rng, 3)
    W = param(a)
    l = (fnp.sin(W) * W).sum()
    back_(l, once=False)
    back_(l)
    g = jax.grad(lambda v: (jnp.sin(v) * v).sum())(jnp.asarray(a))
    np.testing.assert_allclose(np.asarray(W.grad), 2 * g, rtol=1e-5)


def test_back_reaches_every_param_by_every_path(rng):
    a, b = uniform(rng, 3), uniform(rng, 3)
    A, B = param(a), param(b)
    h = A * B
    l = (h * A + fnp.exp(h) - B).sum()
    back_(l)
    want = jax.grad(
        lambda x, y: (x * y * x + jnp.exp(x * y) - y).sum(), argnums=(0, 1)
    )(jnp.asarray(a), jnp.asarray(b))  # fmt: skip
    np.testing.assert_allclose(np.asarray(A.grad), want[0], rtol=1e-5)
    np.testing.assert_allclose(np.asarray(B.grad), want[1], rtol=1e-5)


# -- update_ -------------------------------------------------------------------------------
def test_update_adds_resets_the_grad_and_returns_x(rng):
    a, d = uniform(rng, 2, 3), uniform(rng, 2, 3)
    W = param(a)
    back_((W**2).sum())
    assert np.asarray(W.grad).any()
    assert update_(W, d) is W
    assert_close(np.asarray(W.data), a + d)
    assert not np.asarray(W.grad).any() and W.grad.shape == (2, 3)
    update_(W, param(d))  # a tracked Δ contributes its data
    update_(W, [[1.0] * 3] * 2)
    assert_close(np.asarray(W.data), a + 2 * d + 1)


def test_update_of_the_wrong_shape_raises(rng):
    W = param(uniform(rng, 2, 3))
    with pytest.raises(ValueError):
        update_(W, np.ones(4))
    with pytest.raises(ValueError):
        update_(W, np.ones((3, 2)))


def test_update_needs_a_param(rng):
    W = param(uniform(rng, 3))
    with pytest.raises(TypeError):
        update_(W * 2, np.ones(3))
    with pytest.raises(TypeError):
        update_(np.ones(3), np.ones(3))


def test_update_of_a_tracked_real():
    r = param(2)
    update_(r, -0.5)
    assert type(r) is TrackedReal and float(r) == 1.5


def test_values_recorded_before_update_keep_their_old_value(rng):
    a = uniform(rng, 3)
    W = param(a)
    before = W * 2  # recorded, not yet read
    update_(W, np.ones(3, np.float32))
    after = W * 2
    assert_close(np.asarray(before.data), 2 * a)
    assert_close(np.asarray(after.data), 2 * (a + 1))
    read = W.sum()
    float(read)
    update_(W, np.ones(3, np.float32))
    assert_close(float(read), (a + 1).sum())


def test_many_updates_without_reading_in_between():
    """Deferred updates must not pile up into a chain that breaks on read."""
    W = param(0.0)
    for _ in range(3000):
        update_(W, 1.0)
    assert float(W) == 3000.0


def test_a_numpy_array_changed_after_recording_does_not_change_the_result(rng):
    """``l`` is computed from the values at the time of the call, as NumPy or eager JAX
    would; a buffer refilled in place afterwards (a data loader) must not leak in."""
    x = uniform(rng, 4)
    W = param(np.ones(4))
    l = (W * x).sum()
    expected = float(x.sum())
    x[:] = 100.0
    assert float(l) == pytest.approx(expected, rel=1e-6)


def test_a_numpy_step_changed_after_update_does_not_change_the_param():
    W = param(np.zeros(3))
    step = np.ones(3, np.float32)
    update_(W, step)
    step[:] = 100.0
    np.testing.assert_array_equal(np.asarray(W.data), np.ones(3))


def test_boolean_mask_indexing_like_numpy(rng):
    a = uniform(rng, 3, 4)
    mask = a > 0
    check_op(lambda x: x[mask], a)


def test_numpy_integer_scalars_as_axes_shapes_and_slice_bounds(rng):
    """Sizes computed with NumPy are ``np.int64``; they index and reshape as ints do."""
    a = uniform(rng, 3, 4)
    check_op(lambda x: x.sum(axis=np.int64(0)), a)
    check_op(lambda x: x.reshape(np.prod(x.shape)), a)
    check_op(lambda x: x[np.int64(0) : np.int64(2)], a)
