"""Initial weights drawn on the host: the distributions Flux documents, no compile per shape.

The distributions are checked against their formulas with Kolmogorov–Smirnov tests on
large seeded samples (deterministic: the same seed gives the same statistic every run).
"""

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from scipy import stats

from fluxjax.layers import (
    GRU,
    LSTM,
    RNN,
    Chain,
    Conv,
    ConvTranspose,
    CrossCor,
    Dense,
    DepthwiseConv,
    glorot_normal,
    glorot_uniform,
    seed,
    σ,
)
from fluxjax.tracker import data


def limit(out, n_in):
    return np.sqrt(6.0 / (out + n_in))


def ks_pvalue(sample, dist):
    return stats.kstest(np.asarray(sample, np.float64).ravel(), dist.cdf).pvalue


def test_glorot_uniform_follows_its_formula():
    w = glorot_uniform(jax.random.key(0), (200, 300))
    l = limit(200, 300)
    assert w.dtype == jnp.float32 and w.shape == (200, 300)
    assert float(jnp.abs(w).max()) <= l
    assert ks_pvalue(w, stats.uniform(-l, 2 * l)) > 1e-3
    assert ks_pvalue(w, stats.uniform(-0.9 * l, 1.8 * l)) < 1e-6  # the test can tell


def test_glorot_normal_follows_its_formula():
    w = glorot_normal(jax.random.key(1), (100, 300))
    std = np.sqrt(2.0 / 400)
    assert ks_pvalue(w, stats.norm(0, std)) > 1e-3
    assert ks_pvalue(w, stats.norm(0, 1.1 * std)) < 1e-6


def test_dense_from_the_seed_stream_has_glorot_weights_and_zero_bias():
    seed(3)
    d = Dense(300, 200)
    l = limit(200, 300)
    assert ks_pvalue(data(d.W), stats.uniform(-l, 2 * l)) > 1e-3
    np.testing.assert_array_equal(np.asarray(data(d.b)), np.zeros(200, np.float32))
    assert data(d.b).dtype == jnp.float32


def test_seed_and_keys_fix_the_values():
    seed(5)
    a = Dense(4, 3)
    seed(5)
    b, c = Dense(4, 3), Dense(4, 3)
    np.testing.assert_array_equal(np.asarray(a.W.data), np.asarray(b.W.data))
    assert not np.array_equal(np.asarray(b.W.data), np.asarray(c.W.data))
    k = Dense(4, 3, key=jax.random.key(9))
    i = Dense(4, 3, key=9)  # an int is jax.random.key(int)
    np.testing.assert_array_equal(np.asarray(k.W.data), np.asarray(i.W.data))


def test_any_jax_initializer_gets_a_jax_key():
    init = jax.nn.initializers.lecun_normal(in_axis=-1, out_axis=-2)
    d = Dense(50, 40, init=init, key=jax.random.key(2))
    expected = init(jax.random.key(2), (40, 50), jnp.float32)
    np.testing.assert_array_equal(np.asarray(d.W.data), np.asarray(expected))
    seen = []

    def zeros(key, shape, dtype):
        seen.append(jax.dtypes.issubdtype(key.dtype, jax.dtypes.prng_key))
        return jnp.zeros(shape, dtype)

    Dense(3, 2, init=zeros)
    assert seen == [True]


def test_building_layers_of_new_shapes_compiles_nothing():
    compiles = []

    def listen(event, duration, **kw):
        if event == "/jax/core/compile/backend_compile_duration":
            compiles.append(event)

    jax.monitoring.register_event_duration_secs_listener(listen)
    try:
        Chain(Dense(17, 13, σ), Dense(13, 11), Dense(11, 7, bias=False))
        glorot_normal(None, (19, 23))
    finally:
        jax.monitoring.unregister_event_duration_listener(listen)
    assert compiles == []


def _compiles(build):
    """The backend compiles ``build()`` triggers."""
    compiles = []

    def listen(event, duration, **kw):
        if event == "/jax/core/compile/backend_compile_duration":
            compiles.append(event)

    jax.monitoring.register_event_duration_secs_listener(listen)
    try:
        build()
    finally:
        jax.monitoring.unregister_event_duration_listener(listen)
    return compiles


def test_conv_and_recurrent_layers_of_new_shapes_compile_nothing():
    def build():
        Conv((3, 3), 1, 8)
        CrossCor((2,), 3, 5, key=4)
        ConvTranspose((3, 1), 2, 7, bias=False)
        DepthwiseConv((2, 2), 3, 9)
        RNN(5, 7), LSTM(6, 3), GRU(4, 9, key=jax.random.key(1))

    assert _compiles(build) == []


def test_conv_kernels_are_glorot_uniform_with_kernel_fans():
    seed(4)
    for layer, (k, n_in, n_out) in [
        (Conv((5, 5), 30, 40), (25, 30, 40)),
        (ConvTranspose((3, 3), 20, 30), (9, 20, 30)),  # layout (k…, out, in): same sum
        (DepthwiseConv((5, 5), 50, 200), (25, 4, 50)),  # (k…, out ÷ in, in)
    ]:
        l = np.sqrt(6.0 / (k * n_in + k * n_out))
        w = data(layer.weight)
        assert w.dtype == jnp.float32 and float(jnp.abs(w).max()) <= l
        assert ks_pvalue(w, stats.uniform(-l, 2 * l)) > 1e-3
        assert ks_pvalue(w, stats.uniform(-0.9 * l, 1.8 * l)) < 1e-6
        assert not np.asarray(data(layer.bias)).any()


def test_conv_keys_fix_the_weights_and_any_jax_initializer_still_works():
    a, b = Conv((3, 3), 2, 4, key=5), Conv((3, 3), 2, 4, key=jax.random.key(5))
    np.testing.assert_array_equal(np.asarray(data(a.weight)), np.asarray(data(b.weight)))
    init = jax.nn.initializers.lecun_normal()
    c = Conv((3, 3), 2, 4, init=init, key=jax.random.key(2))
    want = init(jax.random.key(2), (3, 3, 2, 4), jnp.float32)
    np.testing.assert_array_equal(np.asarray(data(c.weight)), np.asarray(want))


def test_lstm_cell_weights_are_glorot_and_the_forget_bias_is_one():
    seed(6)
    c = LSTM(200, 100).cell
    l = limit(400, 200)
    assert ks_pvalue(data(c.Wi), stats.uniform(-l, 2 * l)) > 1e-3
    b = np.asarray(data(c.b))
    np.testing.assert_array_equal(b[100:200], np.ones(100, np.float32))
    lb = np.sqrt(6.0 / 400)  # a vector's fan sum is its length (Flux v0.9)
    assert np.abs(np.r_[b[:100], b[200:]]).max() <= lb


def test_initialisers_refuse_a_non_float_dtype():
    with pytest.raises(TypeError, match="floating-point"):
        glorot_uniform(jax.random.key(0), (2, 2), jnp.int32)


def test_float64_without_x64_mode_warns_and_gives_float32():
    with pytest.warns(UserWarning, match="64-bit mode"):
        w = glorot_uniform(jax.random.key(0), (2, 2), jnp.float64)
    assert w.dtype == jnp.float32
    with jax.enable_x64(True):
        assert glorot_normal(jax.random.key(0), (2, 2), jnp.float64).dtype == jnp.float64
