"""Initial weights drawn on the host: the distributions Flux documents, no compile per shape.

The distributions are checked against their formulas with Kolmogorov–Smirnov tests on
large seeded samples (deterministic: the same seed gives the same statistic every run).
"""

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from scipy import stats

from fluxjax.layers import Chain, Dense, glorot_normal, glorot_uniform, seed, σ
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


def test_initialisers_refuse_a_non_float_dtype():
    with pytest.raises(TypeError, match="floating-point"):
        glorot_uniform(jax.random.key(0), (2, 2), jnp.int32)


def test_float64_without_x64_mode_warns_and_gives_float32():
    with pytest.warns(UserWarning, match="64-bit mode"):
        w = glorot_uniform(jax.random.key(0), (2, 2), jnp.float64)
    assert w.dtype == jnp.float32
    with jax.enable_x64(True):
        assert glorot_normal(jax.random.key(0), (2, 2), jnp.float64).dtype == jnp.float64
