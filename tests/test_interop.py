"""Interop never drops a gradient silently: NumPy functions record (or raise naming the fix),
plain JAX/optax raise fluxjax's own TypeError, PyTorch habits get a hint.

Oracles: NumPy itself for values, ``jax.grad`` of a ``jax.numpy`` twin for gradients.
"""

import jax
import jax.numpy as jnp
import numpy as np
import optax
import pytest

import fluxjax as fj
from fluxjax.tracker import Tracked
from fluxjax.tracker._interop import TrackedTypeError

A = np.array([[0.5, -1.25], [2.0, 0.75]], np.float32)
B = np.array([[1.5, 0.25], [-0.5, 1.0]], np.float32)
FIXES = ("fluxjax.numpy", "fluxjax.track(fn)", "data(x)")


def check(np_fn, jnp_fn, *arrays):
    """``np_fn`` on params stays tracked, has NumPy's value and ``jax.grad``'s gradient."""
    ps = [fj.param(a) for a in arrays]
    out = np_fn(*ps)
    assert isinstance(out, Tracked), f"{np_fn} returned {type(out).__name__}: tracking lost"
    np.testing.assert_allclose(np.asarray(out), np_fn(*arrays), rtol=1e-5, atol=1e-6)
    fj.back_(out.sum())
    want = jax.grad(lambda *xs: jnp.sum(jnp_fn(*xs)), argnums=tuple(range(len(arrays))))(
        *[jnp.asarray(a) for a in arrays]
    )
    for p, w in zip(ps, want):
        np.testing.assert_allclose(np.asarray(fj.grad(p)), np.asarray(w), rtol=1e-5, atol=1e-6)


def names_every_fix(message):
    return all(fix in message for fix in FIXES)


# -- NumPy: each function family records itself -----------------------------------------
FAMILIES = {
    "ufunc unary exp": (np.exp, jnp.exp, (A,)),
    "ufunc unary tanh": (np.tanh, jnp.tanh, (A,)),
    "ufunc unary abs": (np.abs, jnp.abs, (A,)),
    "ufunc binary multiply": (lambda w, v: np.multiply(w, v), jnp.multiply, (A, B)),
    "ufunc binary maximum": (lambda w, v: np.maximum(w, v), jnp.maximum, (A, B)),
    "ufunc scalar": (lambda w: w * np.float32(2) + np.float32(3) * w, lambda w: 5 * w, (A,)),
    "ndarray operator": (lambda w: B @ w - B * w, lambda w: B @ w - B * w, (A,)),
    "ufunc method reduce": (lambda w: np.add.reduce(w, axis=0), lambda w: jnp.sum(w, axis=0), (A,)),
    "reduction sum": (lambda w: np.sum(w**2, axis=1), lambda w: jnp.sum(w**2, axis=1), (A,)),
    "reduction mean/max": (
        lambda w: np.mean(w) + np.max(w),
        lambda w: jnp.mean(w) + jnp.max(w),
        (A,),
    ),
    "linalg dot": (lambda w: np.dot(w, w), lambda w: jnp.dot(w, w), (A,)),
    "linalg norm": (np.linalg.norm, jnp.linalg.norm, (A,)),
    "linalg det/inv": (
        lambda w: np.linalg.det(w) * np.linalg.inv(w),
        lambda w: jnp.linalg.det(w) * jnp.linalg.inv(w),
        (A,),
    ),
    "where": (lambda w: np.where(w > 1, w, 0), lambda w: jnp.where(w > 1, w, 0), (A,)),
    "clip": (lambda w: np.clip(w, 0, 1), lambda w: jnp.clip(w, 0, 1), (A,)),
    "concatenate": (
        lambda w, v: np.concatenate([w, v, B]),
        lambda w, v: jnp.concatenate([w, v, B]),
        (A, B),
    ),
    "stack": (
        lambda w, v: np.stack([w, v], axis=-1),
        lambda w, v: jnp.stack([w, v], axis=-1),
        (A, B),
    ),
}


@pytest.mark.parametrize("family", sorted(FAMILIES))
def test_numpy_function_families_stay_tracked(family):
    np_fn, jnp_fn, arrays = FAMILIES[family]
    check(np_fn, jnp_fn, *arrays)


def test_numpy_results_without_a_gradient_are_plain():
    W = fj.param(A)
    for result in (np.greater(W, 1), W == B, B == W, np.argmax(W), np.isfinite(W)):
        assert not isinstance(result, Tracked)
    np.testing.assert_array_equal(np.greater(W, 1), A > 1)
    assert np.shape(W) == (2, 2) and np.ndim(W) == 2


NO_EQUIVALENT = {
    "numpy.real_if_close": lambda w: np.real_if_close(w),
    "numpy.fft.fft": lambda w: np.fft.fft(w),
    "numpy.copyto": lambda w: np.copyto(np.zeros((2, 2)), w),
    "numpy.add.at": lambda w: np.add.at(w, [0], 1.0),
}


@pytest.mark.parametrize("name", sorted(NO_EQUIVALENT))
def test_numpy_function_without_equivalent_raises_naming_the_fix(name):
    W = fj.param(A)
    with pytest.raises(TypeError, match=name.replace(".", r"\.")) as info:
        NO_EQUIVALENT[name](W)
    assert "data(x)" in str(info.value) and "fluxjax.numpy" in str(info.value)
    np.testing.assert_array_equal(np.asarray(W), A)  # nothing changed
    np.testing.assert_array_equal(np.asarray(fj.grad(W)), np.zeros_like(A))


def test_numpy_out_argument_is_refused():
    W = fj.param(A)
    with pytest.raises(TypeError, match="out="):
        np.exp(W, out=np.empty((2, 2), np.float32))
    total = np.zeros((2, 2), np.float32)
    with pytest.raises(TypeError, match=r"a = a \+ t"):
        total += W  # NumPy's in-place add writes into total: refused, total unchanged
    np.testing.assert_array_equal(total, np.zeros((2, 2)))
    assert isinstance(total + W, Tracked)


def test_explicit_numpy_conversions_give_the_data():
    W = fj.param(A)
    for plain in (np.asarray(W), np.array(W), np.asarray(W * 2) / 2):
        assert type(plain) is np.ndarray
        np.testing.assert_array_equal(plain, A)
    assert not isinstance(fj.data(W), Tracked)


# -- plain JAX and optax: fluxjax's own TypeError ----------------------------------------
PLAIN_JAX = {
    "jnp.sin": lambda t, y: jnp.sin(t),
    "jnp.add": lambda t, y: jnp.add(t, 1.0),
    "jnp.asarray": lambda t, y: jnp.asarray(t),
    "jax.nn.relu": lambda t, y: jax.nn.relu(t),
    "jax.nn.gelu": lambda t, y: jax.nn.gelu(t),
    "optax.l2_loss": lambda t, y: optax.l2_loss(t, y),
    "optax.softmax_cross_entropy": lambda t, y: optax.softmax_cross_entropy(t, y),
    "jax.jit": lambda t, y: jax.jit(lambda x: x * 2)(t),
}


@pytest.mark.parametrize("call", sorted(PLAIN_JAX))
def test_plain_jax_raises_fluxjax_error_naming_every_fix(call):
    W = fj.param(A)
    with pytest.raises(TrackedTypeError) as info:
        PLAIN_JAX[call](W, jnp.asarray(B))
    message = str(info.value)
    assert isinstance(info.value, TypeError)
    assert message.startswith("a fluxjax TrackedArray (2×2 float32)"), message
    assert names_every_fix(message) and "Error interpreting" not in message
    assert repr(type(W)) == "<class 'fluxjax.tracker._node.TrackedArray'>"  # no repr trick


def test_jax_lax_primitive_error_has_fluxjax_message_as_its_cause():
    with pytest.raises(TypeError) as info:
        jax.lax.sin(fj.param(A))
    cause = info.value.__cause__
    assert isinstance(cause, TrackedTypeError) and names_every_fix(str(cause))


def test_track_lifts_an_optax_loss_with_the_right_gradient():
    W = fj.param(A)
    fj.back_(fj.track(optax.l2_loss)(W, jnp.asarray(B)).sum())
    want = jax.grad(lambda w: optax.l2_loss(w, B).sum())(jnp.asarray(A))
    np.testing.assert_allclose(np.asarray(fj.grad(W)), np.asarray(want), rtol=1e-6)


def test_jax_array_operators_still_defer_to_tracked_values():
    W = fj.param(A)
    check(lambda w: jnp.asarray(B) @ w + jnp.asarray(B) * w, lambda w: B @ w + B * w, A)
    eq = jnp.asarray(A) == W
    assert not isinstance(eq, Tracked) and bool(np.all(eq))


# -- PyTorch habits ---------------------------------------------------------------------
def test_round_keeps_tracking_and_round_without_digits_gives_an_int():
    x = fj.param(1.23456)
    r = round(x * 2, 3)
    assert isinstance(r, Tracked) and float(r) == pytest.approx(2.469, abs=1e-6)
    assert round(x) == 1 and type(round(x)) is int
    W = fj.param(A)
    np.testing.assert_allclose(np.asarray(round(W, 1)), np.round(A, 1), rtol=1e-6)
    fj.back_(round(W * 3, 2).sum())  # rounding has a zero gradient, as in JAX
    np.testing.assert_array_equal(np.asarray(fj.grad(W)), np.zeros_like(A))


def test_backward_names_back_and_item_is_kept():
    loss = (fj.param(A) ** 2).sum()
    with pytest.raises(AttributeError, match=r"back_\(loss\)"):
        loss.backward()
    assert not hasattr(loss, "backward")
    assert loss.item() == pytest.approx(float((A**2).sum()), rel=1e-6)


@pytest.mark.parametrize("query", [np.shape, np.ndim, np.size, jnp.shape, jnp.ndim, jnp.size])
def test_shape_queries_do_not_compute_a_recorded_value(query):
    """``np.shape(l)`` of a value recorded lazily answers from its known shape: it does not
    run the graph (``train_(jit=False)`` asks it of every loss; it cost a compiled call)."""
    W = fj.param(A)
    l = (W @ B).sum(axis=0)
    assert l._value is None  # recorded, not yet computed
    assert query(l) == query(np.asarray(A @ B).sum(axis=0))
    assert l._value is None
    fj.back_(l.sum())
    np.testing.assert_allclose(fj.grad(W), np.ones((2, 2)) @ B.T, rtol=1e-6)
