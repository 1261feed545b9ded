"""Functional derivatives: gradient, forward, jacobian, hessian, gradcheck, hook,
checkpoint, track, and the Params / Grads collections.

Every expected gradient comes from ``jax.grad`` / ``jax.vjp`` / ``jax.jacrev`` /
``jax.hessian`` of a pure-JAX twin, or from finite differences.
"""

from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np
import pytest

import fluxjax.numpy as fnp
from fluxjax import (
    Grads,
    Params,
    Tracked,
    back_,
    checkpoint,
    data,
    forward,
    gradcheck,
    gradient,
    hessian,
    hook,
    jacobian,
    param,
    track,
)


def uniform(rng, *shape, lo=-1.0, hi=1.0):
    return rng.uniform(lo, hi, shape).astype(np.float32)


def close(a, b, rtol=1e-5, atol=1e-6):
    np.testing.assert_allclose(np.asarray(a), np.asarray(b), rtol=rtol, atol=atol)


# -- gradient(f, *xs) ----------------------------------------------------------------------
def test_gradient_of_positional_arguments_is_a_tuple(rng):
    a, b = uniform(rng, 3, 4), uniform(rng, 4)

    def f(x, y):
        return (fnp.tanh(x @ y) ** 2).sum()

    def twin(x, y):
        return (jnp.tanh(x @ y) ** 2).sum()

    gs = gradient(f, a, b)
    assert type(gs) is tuple and len(gs) == 2
    want = jax.grad(twin, argnums=(0, 1))(a, b)
    for g, w in zip(gs, want):
        assert not isinstance(g, Tracked)
        close(g, w)
    assert gradient(f, a, b)[0].shape == (3, 4)


def test_gradient_accepts_python_numbers_and_ints():
    (g,) = gradient(lambda x: 3 * x**2 + 2 * x + 1, 2)
    assert float(g) == 14.0 and jnp.issubdtype(jnp.result_type(g), jnp.floating)
    gx, gy = gradient(lambda x, y: x * y + y, 3, 4.0)
    assert (float(gx), float(gy)) == (4.0, 4.0)
    (gi,) = gradient(lambda v: (v * v).sum(), np.arange(3))
    close(gi, [0.0, 2.0, 4.0])


def test_gradient_of_a_param_argument_uses_its_value(rng):
    a = uniform(rng, 3)
    W = param(a)
    (g,) = gradient(lambda w: (fnp.exp(w) * w).sum(), W)
    close(g, jax.grad(lambda w: (jnp.exp(w) * w).sum())(a))


def test_gradient_is_pure(rng):
    a, b = uniform(rng, 3), uniform(rng, 3)
    x = a.copy()
    W = param(b)
    back_((W * 2).sum())
    grad_before, data_before = np.asarray(W.grad).copy(), np.asarray(W.data).copy()

    def f(v):
        return (W * v * v).sum()  # closes over a param too

    (g,) = gradient(f, x)
    close(g, 2 * b * a)
    np.testing.assert_array_equal(x, a)
    np.testing.assert_array_equal(np.asarray(W.grad), grad_before)
    np.testing.assert_array_equal(np.asarray(W.data), data_before)
    gradient(lambda w: (w * w).sum(), W)
    np.testing.assert_array_equal(np.asarray(W.grad), grad_before)


def test_gradient_of_a_non_scalar_raises(rng):
    with pytest.raises(ValueError, match="scalar"):
        gradient(lambda x: x * 2, uniform(rng, 3))
    with pytest.raises(ValueError, match="scalar"):
        gradient(lambda x: fnp.sin(x), param(uniform(rng, 3)))


def test_gradient_of_an_untracked_or_constant_scalar():
    (g,) = gradient(lambda x: 5.0, 2.0)
    assert float(g) == 0.0
    (g,) = gradient(lambda x: jnp.sum(x**3), jnp.array([1.0, 2.0]))
    close(g, [3.0, 12.0])


def test_nested_derivatives_need_no_flag():
    def f(x):
        return 3 * x**2 + 2 * x + 1

    def df(x):
        return gradient(f, x)[0]

    def d2f(x):
        return gradient(df, x)[0]

    def twin(x):
        return 3 * x**2 + 2 * x + 1

    for x in [2.0, -0.5]:
        assert float(df(x)) == pytest.approx(float(jax.grad(twin)(x)), rel=1e-5)
        assert float(d2f(x)) == pytest.approx(float(jax.grad(jax.grad(twin))(x)), rel=1e-5)


def test_third_derivative():
    def f(x):
        return fnp.sin(x) * x**3

    def twin(x):
        return jnp.sin(x) * x**3

    def d(g):
        return lambda x: gradient(g, x)[0]

    d3 = d(d(d(f)))
    for x in [0.3, 1.7]:
        want = jax.grad(jax.grad(jax.grad(twin)))(x)
        assert float(d3(x)) == pytest.approx(float(want), rel=1e-4)


def test_gradient_composes_with_jit_vmap_and_grad():
    def f(x):
        return fnp.exp(x) * x**2

    def df(x):
        return gradient(f, x)[0]

    twin = jax.grad(lambda x: jnp.exp(x) * x**2)
    xs = jnp.linspace(-1.0, 1.0, 5)
    close(jax.jit(df)(0.7), twin(0.7))
    close(jax.vmap(df)(xs), jax.vmap(twin)(xs))
    close(jax.grad(df)(0.7), jax.grad(twin)(0.7))
    close(jax.jit(jax.vmap(jax.grad(df)))(xs), jax.vmap(jax.grad(twin))(xs), rtol=1e-4)


def test_gradient_without_arguments_raises():
    with pytest.raises(TypeError):
        gradient(lambda: 1.0)


# -- gradient(f, Params) -------------------------------------------------------------------
def test_gradient_of_params_gives_grads(rng):
    Wv, bv, x, y = uniform(rng, 2, 5), uniform(rng, 2), uniform(rng, 5), uniform(rng, 2)
    W, b, unused = param(Wv), param(bv), param(uniform(rng, 4))

    def loss():
        return ((W @ x + b - y) ** 2).sum()

    def twin(W, b):
        return ((W @ x + b - y) ** 2).sum()

    gs = gradient(loss, Params([W, b, unused]))
    assert isinstance(gs, Grads)
    gW, gb = jax.grad(twin, argnums=(0, 1))(Wv, bv)
    close(gs[W], gW)
    close(gs[b], gb)
    assert gs[unused].shape == (4,) and not np.asarray(gs[unused]).any()
    # pure: no .grad changed, no value changed
    for p in (W, b, unused):
        assert not np.asarray(p.grad).any()
    np.testing.assert_array_equal(np.asarray(W.data), Wv)


def test_gradient_of_params_reaches_values_recorded_before_the_call(rng):
    """As in Flux, ``f`` may use tracked values computed earlier from the params."""
    a, x = uniform(rng, 3), uniform(rng, 3)
    W = param(a)
    h = W * 2  # recorded outside f
    gs = gradient(lambda: (h * x).sum(), Params([W]))
    close(gs[W], jax.grad(lambda w: (w * 2 * x).sum())(a))


def test_gradient_of_params_nests_and_jits(rng):
    a = uniform(rng, 3)
    W = param(a)
    ps = Params([W])
    g = jax.jit(lambda: gradient(lambda: (fnp.sin(W) ** 2).sum(), ps)[W])()
    close(g, jax.grad(lambda w: (jnp.sin(w) ** 2).sum())(a))


# -- gradient(f, pytree) -------------------------------------------------------------------
def test_gradient_of_a_dict_of_arrays(rng):
    tree = {"W": uniform(rng, 2, 3), "b": uniform(rng, 2)}
    x = uniform(rng, 3)

    def f(m):
        return fnp.tanh(m["W"] @ x + m["b"]).sum()

    def twin(m):
        return jnp.tanh(m["W"] @ x + m["b"]).sum()

    (g,) = gradient(f, tree)
    want = jax.grad(twin)(tree)
    assert set(g) == {"W", "b"}
    close(g["W"], want["W"])
    close(g["b"], want["b"])


def test_gradient_of_a_tuple_of_arrays_and_params(rng):
    a, b = uniform(rng, 3), uniform(rng, 3)
    (g,) = gradient(lambda t: (t[0] * t[1] ** 2).sum(), (param(a), b))
    want = jax.grad(lambda t: (t[0] * t[1] ** 2).sum())((a, b))
    assert isinstance(g, tuple) and len(g) == 2
    close(g[0], want[0])
    close(g[1], want[1])


# -- Params ------------------------------------------------------------------------------
def test_params_is_an_insertion_ordered_identity_set():
    a, b, c = param([1.0, 2.0]), param([1.0, 2.0]), param(3.0)
    ps = Params([a, b, a])
    assert len(ps) == 2
    assert list(ps) == [a, b] and [p is q for p, q in zip(ps, [a, b])] == [True, True]
    assert a in ps and b in ps and c not in ps  # b equals a in value, yet is its own entry
    assert ps.add(a) is ps and len(ps) == 2
    ps.add(c)
    assert list(ps)[-1] is c and len(ps) == 3
    assert repr(ps).startswith("Params(")
    assert len(Params()) == 0 and list(Params()) == []
    assert Params(p for p in (a, c)).__len__() == 2


def test_params_has_no_positional_indexing():
    ps = Params([param(1.0)])
    with pytest.raises(TypeError):
        ps[0]


def test_params_membership_of_plain_values():
    ps = Params([param(1.0)])
    assert 1.0 not in ps and np.ones(2) not in ps


# -- Grads -------------------------------------------------------------------------------
def test_grads_is_a_mapping_keyed_by_param(rng):
    a, b = uniform(rng, 3), uniform(rng, 2)
    W, b_ = param(a), param(b)
    other = param(a)  # same value, different param
    gs = gradient(lambda: (W**2).sum() + (b_ * 3).sum(), Params([W, b_]))
    assert len(gs) == 2
    assert W in gs and b_ in gs and other not in gs
    assert list(gs.keys()) == [W, b_]
    close(gs[W], 2 * a)
    close(gs[b_], np.full(2, 3.0))
    values = list(gs.values())
    close(values[0], 2 * a)
    close(values[1], np.full(2, 3.0))
    items = list(gs.items())
    assert items[0][0] is W and items[1][0] is b_
    close(items[0][1], 2 * a)


def test_grads_lookup_errors_say_why(rng):
    W = param(uniform(rng, 3))
    gs = gradient(lambda: (W * 2).sum(), Params([W]))
    with pytest.raises(KeyError, match="not tracked"):
        gs[np.ones(3)]
    with pytest.raises(KeyError, match="not one of the Params"):
        gs[param(np.ones(3))]


# -- forward -------------------------------------------------------------------------------
def test_forward_gives_the_value_and_a_pullback(rng):
    a, b, d = uniform(rng, 3), uniform(rng, 3), uniform(rng, 3)
    y, back = forward(lambda x, z: fnp.sin(x) * z, a, b)
    y_want, pull = jax.vjp(lambda x, z: jnp.sin(x) * z, a, b)
    close(y, y_want)
    gs = back(d)
    assert type(gs) is tuple and len(gs) == 2
    for g, w in zip(gs, pull(jnp.asarray(d))):
        close(g, w)


def test_forward_of_params_gives_grads(rng):
    a, d = uniform(rng, 2, 3), uniform(rng, 2)
    x = uniform(rng, 3)
    W = param(a)
    y, back = forward(lambda: fnp.tanh(W @ x), Params([W]))
    y_want, pull = jax.vjp(lambda w: jnp.tanh(w @ x), a)
    close(y, y_want)
    gs = back(d)
    assert isinstance(gs, Grads)
    close(gs[W], pull(jnp.asarray(d))[0])
    assert not np.asarray(W.grad).any()


# -- hook and checkpoint -------------------------------------------------------------------
def test_hook_changes_only_the_gradient(rng):
    a = uniform(rng, 3)
    W = param(a)
    y = hook(lambda g: -3 * g, W * 2)
    close(data(y), 2 * a)
    back_(y.sum())
    close(W.grad, np.full(3, -6.0))


def test_hook_inside_gradient():
    def f(x):
        return hook(lambda g: g / 2, x**2)

    (g,) = gradient(f, 3.0)
    assert float(g) == pytest.approx(3.0, rel=1e-5)


def test_checkpoint_gives_the_same_value_and_gradient(rng):
    a = uniform(rng, 3, 4)
    x = uniform(rng, 4)

    def block(w, v):
        return fnp.tanh(w @ v) ** 2

    W1, W2 = param(a), param(a)
    y1 = checkpoint(block, W1, x)
    y2 = block(W2, x)
    assert isinstance(y1, Tracked)
    close(data(y1), data(y2))
    back_(y1.sum())
    back_(y2.sum())
    close(W1.grad, W2.grad)
    close(W1.grad, jax.grad(lambda w: (jnp.tanh(w @ x) ** 2).sum())(a))
    (g,) = gradient(lambda w: checkpoint(block, w, x).sum(), a)
    close(g, W2.grad)


# -- jacobian, hessian, gradcheck ----------------------------------------------------------
def test_jacobian_matches_jacrev(rng):
    a = uniform(rng, 3)
    M = uniform(rng, 2, 3)
    J = jacobian(lambda x: fnp.tanh(M @ x) * x[0], a)
    want = jax.jacrev(lambda x: jnp.tanh(M @ x) * x[0])(a)
    assert J.shape == (2, 3)
    close(J, want)
    close(jacobian(lambda x: x**2, param(a)), np.diag(2 * a))


def test_hessian_matches_jax_hessian(rng):
    a = uniform(rng, 4)
    H = hessian(lambda x: (fnp.sin(x) * x[::-1]).sum() ** 2, a)
    want = jax.hessian(lambda x: (jnp.sin(x) * x[::-1]).sum() ** 2)(a)
    assert H.shape == (4, 4)
    close(H, want, rtol=1e-4, atol=1e-5)


def test_gradcheck_accepts_correct_gradients(rng):
    a, b = uniform(rng, 3), uniform(rng, 2, 3)
    assert gradcheck(lambda x: (fnp.exp(x) * x).sum(), a)
    assert gradcheck(lambda x, w: fnp.tanh(w @ x).sum(), a, b)
    assert gradcheck(lambda x: x**3 - 2 * x, 1.5)


@jax.custom_vjp
def _square_wrong(x):
    return x**2


_square_wrong.defvjp(lambda x: (x**2, x), lambda x, g: (3.0 * x * g,))  # should be 2x


@jax.custom_vjp
def _clip_gradient(x):
    return x**2


_clip_gradient.defvjp(lambda x: (x**2, x), lambda x, g: (jnp.clip(2 * x * g, -1.0, 1.0),))


def test_gradcheck_rejects_a_wrong_custom_gradient(rng):
    bad = track(_square_wrong)
    a = uniform(rng, 3, lo=0.5, hi=1.0)
    assert not gradcheck(lambda x: bad(x).sum(), a)
    assert gradcheck(lambda x: (x**2).sum(), a)


def test_track_uses_the_custom_vjp_rule(rng):
    clipped = track(_clip_gradient)
    a = np.array([0.1, 2.0, -3.0], np.float32)
    x = param(a)
    y = clipped(x)
    assert isinstance(y, Tracked)
    close(data(y), a**2)
    back_(y.sum())
    want = jax.grad(lambda v: _clip_gradient(v).sum())(a)
    close(x.grad, want)
    close(x.grad, [0.2, 1.0, -1.0])
    (g,) = gradient(lambda v: clipped(v).sum(), a)
    close(g, want)


def test_track_lifts_any_jax_function(rng):
    a = uniform(rng, 3, 4)

    def softmax_rows(x, *, scale):
        z = x * scale
        return jnp.exp(z) / jnp.exp(z).sum(axis=-1, keepdims=True)

    lifted = track(softmax_rows)
    plain = lifted(jnp.asarray(a), scale=2.0)
    assert not isinstance(plain, Tracked)  # plain inputs: the function itself
    close(plain, softmax_rows(a, scale=2.0))
    W = param(a)
    w = uniform(rng, 3, 4)
    back_((lifted(W, scale=2.0) * w).sum())
    close(W.grad, jax.grad(lambda x: (softmax_rows(x, scale=2.0) * w).sum())(a))
    assert track(lifted)(W, scale=2.0).shape == (3, 4)  # lifting twice is harmless


def test_an_sgd_loop_of_gradient_and_update_fuses_each_update_into_the_next_call(rng):
    """``update_(p, -η·gs[p])`` after ``gradient`` is pending, added inside the next
    ``gradient``'s compiled call (no call of its own); the loop matches pure JAX."""
    from fluxjax import update_

    Wv, bv, x, y = uniform(rng, 2, 5), uniform(rng, 2), uniform(rng, 5), uniform(rng, 2)
    W, b = param(Wv), param(bv)
    ps, η = Params([W, b]), 0.1

    def twin(W, b):
        return ((W @ x + b - y) ** 2).sum()

    pure = (jnp.asarray(Wv), jnp.asarray(bv))
    for _ in range(3):
        gs = gradient(lambda: ((W @ x + b - y) ** 2).sum(), ps)
        assert all(p._cell.value is not None for p in ps)  # settled by that call
        for p in ps:
            update_(p, -η * gs[p])
        assert all(p._cell.value is None for p in ps)  # pending, nothing run yet
        g = jax.grad(twin, argnums=(0, 1))(*pure)
        pure = tuple(v - η * d for v, d in zip(pure, g))
    close(W.data, pure[0])
    close(b.data, pure[1])
