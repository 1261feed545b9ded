"""Dense, Chain, compose, activations(): Flux's layer tests, translated to batch first."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from _tol import assert_close

from fluxjax.layers import (
    Chain,
    Dense,
    activations,
    compose,
    glorot_uniform,
    params,
    relu,
    seed,
    softmax,
    σ,
)
from fluxjax.tracker import Tracked, data

ones_init = jax.nn.initializers.ones


def rand(*shape, key=0):
    return jax.random.uniform(jax.random.key(key), shape)


# ---- Dense ---------------------------------------------------------------------------


def test_dense_with_ones_init_on_one_and_two_samples():
    assert data(Dense(10, 1, init=ones_init)(jnp.ones(10))).tolist() == [10.0]
    assert data(Dense(10, 1, init=ones_init)(jnp.ones((1, 10)))).tolist() == [[10.0]]
    assert data(Dense(10, 1, init=ones_init)(jnp.ones((2, 10)))).tolist() == [[10.0], [10.0]]
    assert data(Dense(10, 2, init=ones_init)(jnp.ones((2, 10)))).tolist() == [[10.0] * 2] * 2
    x = rand(3, 10)
    y = Dense(10, 2, init=ones_init)(x)
    assert_close(data(y), np.repeat(np.asarray(x).sum(1, keepdims=True), 2, 1))


def test_dense_computes_sigma_of_affine_map():
    d = Dense(4, 3, σ)
    x = rand(5, 4, key=1)
    W, b = np.asarray(d.W), np.asarray(d.b)
    expected = 1 / (1 + np.exp(-(np.asarray(x) @ W.T + b)))
    np.testing.assert_allclose(data(d(x)), expected, rtol=1e-5)
    np.testing.assert_allclose(data(d(x[0])), expected[0], rtol=1e-5)  # (in,) input
    assert d(rand(2, 5, 4)).shape == (2, 5, 3)  # (..., in) input


def test_dense_fields_shapes_and_dtype():
    d = Dense(10, 5)
    assert [p.shape for p in params(d)] == [(5, 10), (5,)]
    assert list(map(id, params(d))) == [id(d.W), id(d.b)]
    assert isinstance(d.W, Tracked) and d.W.is_leaf and d.W.dtype == jnp.float32
    assert np.all(np.asarray(d.b) == 0)
    assert d.W.grad.shape == (5, 10)


def test_dense_rejects_wrong_sizes_and_scalars():
    d = Dense(10, 5)
    with pytest.raises(ValueError, match=r"Dense\(10, 5\): expected input of size 10, got 1"):
        d(jnp.ones(1))
    with pytest.raises(ValueError, match=r"Dense\(10, 5\).*scalar"):
        d(jnp.asarray(1.0))
    with pytest.raises(ValueError, match="scalar"):
        d(3.0)
    with pytest.raises(ValueError, match=r"Dense\(10, 5, σ\): expected input of size 10, got 9"):
        Dense(10, 5, σ)(jnp.ones((2, 9)))


def test_dense_converts_inputs_to_weight_dtype():
    d = Dense(10, 5)
    assert d(np.ones(10, np.float64)).dtype == jnp.float32
    assert d(jnp.ones(10, jnp.int32)).dtype == jnp.float32
    with jax.enable_x64(True):
        x = jnp.ones(10, jnp.float64)
        assert x.dtype == jnp.float64
        assert d(x).dtype == jnp.float32


def test_dense_from_arrays_and_bias_false():
    W, b = jnp.arange(6.0).reshape(2, 3), jnp.array([1.0, -1.0])
    d = Dense(W, b, relu)
    assert isinstance(d.W, Tracked) and d.W.shape == (2, 3)
    assert_close(data(d(jnp.ones(3))), [4.0, 11.0])
    shared = Dense(d.W, d.b)
    assert shared.W is d.W and shared.b is d.b  # params are kept, not copied
    nob = Dense(W, False)
    assert nob.b is False and [p.shape for p in params(nob)] == [(2, 3)]
    assert_close(data(nob(jnp.ones(3))), [3.0, 12.0])
    assert Dense(3, 2, bias=False).b is False
    assert len(params(Dense(3, 2, bias=False))) == 1
    with pytest.raises(ValueError, match="shape"):
        Dense(jnp.ones((2, 3)), jnp.zeros(3))


def test_dense_repr():
    assert repr(Dense(10, 5, σ)) == "Dense(10, 5, σ)"
    assert repr(Dense(10, 5)) == "Dense(10, 5)"
    assert repr(Dense(3, 2, relu, bias=False)) == "Dense(3, 2, relu, bias=False)"
    assert repr(Dense(jnp.ones((2, 7)), jnp.ones(2))) == "Dense(7, 2)"


def test_dense_init_and_keys():
    seen = []

    def init(key, shape, dtype):
        seen.append((shape, dtype))
        return jnp.full(shape, 0.5, dtype)

    assert np.all(np.asarray(Dense(10, 5, init=init).W) == 0.5)
    assert seen == [((5, 10), jnp.float32)]
    k = jax.random.key(7)
    assert np.array_equal(Dense(4, 3, key=k).W, Dense(4, 3, key=k).W)
    assert np.array_equal(Dense(4, 3, key=7).W, Dense(4, 3, key=k).W)
    assert not np.array_equal(Dense(4, 3, key=k).W, Dense(4, 3, key=jax.random.key(8)).W)
    fanned = Dense(40, 30, init=jax.nn.initializers.lecun_normal(in_axis=-1, out_axis=-2))
    assert float(jnp.std(fanned.W.data)) == pytest.approx((1 / 40) ** 0.5, rel=0.2)


def test_seed_makes_constructors_reproducible():
    seed(3)
    a, a2 = Dense(4, 3), Dense(4, 3)
    seed(3)
    b = Dense(4, 3)
    assert np.array_equal(a.W, b.W)
    assert not np.array_equal(a.W, a2.W)


def test_glorot_uniform_bounds_and_variance():
    w = glorot_uniform(jax.random.key(0), (300, 500))
    limit = (6 / 800) ** 0.5
    assert float(jnp.abs(w).max()) <= limit
    assert float(jnp.abs(w).max()) > 0.99 * limit
    assert float(w.var()) == pytest.approx(2 / 800, rel=0.05)  # uniform: limit²/3


# ---- Chain and compose ---------------------------------------------------------------


def test_chain_of_functions():
    assert Chain(lambda x: x**2, lambda x: x + 1)(5) == 26
    assert Chain()(7) == 7


def test_chain_indexing_slicing_length_iteration():
    d1, d2 = Dense(10, 5, σ), Dense(5, 2)
    m = Chain(d1, d2, softmax)
    assert len(m) == 3 and list(m) == [d1, d2, softmax]
    assert m[0] is d1 and m[-1] is softmax
    head = m[:-1]
    assert isinstance(head, Chain) and list(head) == [d1, d2]
    assert m[1:2][0] is d2
    x = rand(10)
    assert_close(data(head(x)), data(d2(d1(x))))


def test_chain_softmax_output_sums_to_one():
    m = Chain(Dense(10, 5, σ), Dense(5, 2), softmax)
    y = m(rand(10))
    assert y.shape == (2,)
    assert float(data(y).sum()) == pytest.approx(1.0, abs=1e-6)
    ys = m(rand(4, 10))
    assert_close(data(ys).sum(-1), np.ones(4))


def test_chain_repr():
    m = Chain(Dense(10, 5, σ), Dense(5, 2), softmax)
    assert repr(m) == "Chain(Dense(10, 5, σ), Dense(5, 2), softmax)"
    assert repr(Chain(Chain(Dense(2, 2)), relu)) == "Chain(Chain(Dense(2, 2)), relu)"


def test_mismatched_chain_names_the_layer_position():
    with pytest.raises(ValueError) as info:
        Chain(Dense(10, 4), Dense(5, 2))(rand(10))
    assert str(info.value) == "Chain layer 1, Dense(5, 2): expected input of size 5, got 4"
    with pytest.raises(ValueError, match=r"Chain layer 0, Dense\(3, 2\)"):
        Chain(Dense(3, 2))(rand(4))


def test_chain_errors_of_other_layers():
    def bad(x):
        raise TypeError("not this kind of input")

    class Special(ValueError):
        def __init__(self):
            super().__init__("special")

    def worse(x):
        raise Special()

    with pytest.raises(TypeError, match="Chain layer 1, bad: not this kind of input"):
        Chain(relu, bad)(jnp.ones(2))
    with pytest.raises(Special):  # a subclass is passed through untouched
        Chain(worse)(1)


def test_activations_of_empty_and_full_chain():
    assert activations(Chain(), rand(10)) == []
    m = Chain(Dense(10, 5, σ), Dense(5, 2), softmax)
    x = rand(10)
    outs = activations(m, x)
    assert [y.shape for y in outs] == [(5,), (2,), (2,)]
    assert_close(data(outs[0]), data(m[0](x)))
    assert_close(data(outs[-1]), data(m(x)))


def test_compose_applies_right_to_left():
    f, g = Dense(5, 2), Dense(10, 5, σ)
    m = compose(f, g)
    x = rand(10)
    assert m(x).shape == (2,)
    assert_close(data(m(x)), data(f(g(x))))
    assert list(map(id, params(m))) == list(map(id, [f.W, f.b, g.W, g.b]))
    assert compose(lambda x: x + 1, lambda x: x * 2)(5) == 11
    assert repr(m) == "compose(Dense(5, 2), Dense(10, 5, σ))"


def test_params_of_shared_layers():
    d = Dense(10, 10)
    assert len(params(Chain(d, d))) == 2
    assert len(params(Chain(d, Dense(10, 10)))) == 4
