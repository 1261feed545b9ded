"""Normalisation and dropout: Flux v0.9's own test values, NumPy/jax twins, and state that
changes the same way eagerly, under ``gradient``, ``train_`` and ``fluxjax.jit``."""

from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np
import pytest

import fluxjax as fj

TOL = dict(rtol=1e-5, atol=1e-5)


def julia(sizes):
    """Flux's ``reshape(1:prod(sizes), sizes)`` (WHCN, column-major) in our layout (NWHC)."""
    x = np.arange(1, np.prod(sizes) + 1, dtype=np.float32).reshape(sizes, order="F")
    return np.moveaxis(x, -1, 0)


# ---- Flux v0.9 test/layers/normalisation.jl ---------------------------------------------


def test_flux_batchnorm_values():
    m = fj.BatchNorm(2)
    x = np.array([[1.0, 2.0], [3.0, 4.0], [5.0, 6.0]], np.float32)  # Flux's [1 3 5; 2 4 6]
    assert m.active and m.β.data.tolist() == [0, 0] and m.γ.data.tolist() == [1, 1]
    m(fj.param(x))
    np.testing.assert_allclose(np.asarray(m.μ.data), [0.3, 0.4], **TOL)
    np.testing.assert_allclose(np.asarray(m.σ2.data), 0.1 * x.var(0) * 3 / 2 + 0.9, **TOL)
    fj.testmode_(m)
    assert not m.active
    assert float(m(x)[0, 0]) == pytest.approx((1 - 0.3) / np.sqrt(1.3), abs=1e-5)
    s = fj.BatchNorm(2, fj.σ)
    s(x)
    fj.testmode_(s)
    want = 1 / (1 + np.exp(-(x - np.asarray(s.μ.data)) / np.sqrt(np.asarray(s.σ2.data) + 1e-5)))
    np.testing.assert_allclose(np.asarray(s(x)), want, **TOL)


@pytest.mark.parametrize("sizes", [(3, 2, 1), (2, 3, 2, 1)])
def test_flux_batchnorm_any_rank_is_batchnorm_of_the_flattened_batch(sizes):
    x = julia(sizes)
    a, b = fj.BatchNorm(2), fj.BatchNorm(2)
    flat = np.asarray(b(x.reshape(-1, 2))).reshape(x.shape)
    np.testing.assert_allclose(np.asarray(a(x)), flat, **TOL)
    np.testing.assert_allclose(np.asarray(a.σ2.data), np.asarray(b.σ2.data), **TOL)


def test_flux_instancenorm_values():
    m = fj.InstanceNorm(2)
    x = julia((3, 2, 2))
    m(x)
    np.testing.assert_allclose(np.asarray(m.μ.data), [0.5, 0.8], **TOL)
    np.testing.assert_allclose(np.asarray(m.σ2.data), [1.0, 1.0], **TOL)
    fj.testmode_(m)
    assert float(m(x)[0, 0, 0]) == pytest.approx((1 - 0.5) / np.sqrt(1 + 1e-5), abs=1e-5)
    big = julia((5, 5, 3, 4, 2, 6))  # Flux: instance norm is batch norm over (c, n) squashed
    squashed = np.moveaxis(big, 0, -2).reshape(1, 5, 5, 3, 4, 12)
    want = np.moveaxis(np.asarray(fj.BatchNorm(12)(squashed)).reshape(5, 5, 3, 4, 6, 2), -2, 0)
    np.testing.assert_allclose(np.asarray(fj.InstanceNorm(2)(big)), want, rtol=1e-4, atol=1e-4)


def test_flux_groupnorm_values():
    m = fj.GroupNorm(4, 2)
    x = julia((3, 4, 2))
    m(x)
    np.testing.assert_allclose(np.asarray(m.μ.data), [0.95, 1.55], **TOL)
    np.testing.assert_allclose(np.asarray(m.σ2.data), [1.25, 1.25], **TOL)
    fj.testmode_(m)
    assert float(m(x)[0, 0, 0]) == pytest.approx((1 - 0.95) / np.sqrt(1.25 + 1e-5), abs=1e-5)
    x = julia((2, 2, 3, 4, 5))  # Flux: with one channel per group it is instance norm
    np.testing.assert_allclose(
        np.asarray(fj.GroupNorm(4, 4)(x)), np.asarray(fj.InstanceNorm(4)(x)), **TOL
    )
    with pytest.raises(ValueError, match="divide"):
        fj.GroupNorm(4, 3)


# ---- against pure twins, gradients included ---------------------------------------------


def _twin(x, γ, β, kind):
    """Batch/instance/group normalisation written out with jax.numpy (groups of 2)."""
    n, c = x.shape[0], x.shape[-1]
    if kind == "group":
        g = x.reshape(n, -1, c // 2, 2)
        μ, v = g.mean((1, 3), keepdims=True), g.var((1, 3), keepdims=True)
        x̂ = ((g - μ) / jnp.sqrt(v + 1e-5)).reshape(x.shape)
    else:
        axes = (0, 1, 2) if kind == "batch" else (1, 2)
        μ, v = x.mean(axes, keepdims=True), x.var(axes, keepdims=True)
        x̂ = (x - μ) / jnp.sqrt(v + 1e-5)
    return x̂ * γ + β


@pytest.mark.parametrize("kind", ["batch", "instance", "group"])
def test_norms_and_their_gradients_match_a_twin(rng, kind):
    x = rng.normal(size=(3, 2, 4, 4)).astype(np.float32)
    m = {"batch": fj.BatchNorm(4), "instance": fj.InstanceNorm(4), "group": fj.GroupNorm(4, 2)}[
        kind
    ]
    m.γ.data, m.β.data = (
        rng.normal(size=4).astype(np.float32),
        rng.normal(size=4).astype(np.float32),
    )
    γ, β = m.γ.data, m.β.data
    np.testing.assert_allclose(np.asarray(m(x)), np.asarray(_twin(x, γ, β, kind)), **TOL)
    loss = lambda y: jnp.sum(jnp.sin(y))  # noqa: E731
    gs = fj.gradient(lambda: fj.numpy.sum(fj.numpy.sin(m(x))), fj.params(m))
    want = jax.grad(lambda γ, β: loss(_twin(x, γ, β, kind)), argnums=(0, 1))(γ, β)
    np.testing.assert_allclose(np.asarray(gs[m.γ]), np.asarray(want[0]), **TOL)
    np.testing.assert_allclose(np.asarray(gs[m.β]), np.asarray(want[1]), **TOL)
    (gx,) = fj.gradient(lambda x: fj.numpy.sum(fj.numpy.sin(m(x))), x)
    np.testing.assert_allclose(
        np.asarray(gx), np.asarray(jax.grad(lambda x: loss(_twin(x, γ, β, kind)))(x)), **TOL
    )


def test_layernorm_is_diagonal_of_normalise(rng):
    m = fj.LayerNorm(3)
    m.diag.α.data = jnp.array([1.0, 2.0, 3.0])
    x = rng.normal(size=(4, 3)).astype(np.float32)
    want = (x - x.mean(-1, keepdims=True)) / (x.std(-1, keepdims=True) + 1e-5) * [1, 2, 3]
    np.testing.assert_allclose(np.asarray(m(x)), want, **TOL)
    assert [p.shape for p in fj.params(m)] == [(3,), (3,)] and repr(m) == "LayerNorm(3)"


# ---- running statistics through every path ----------------------------------------------


def _running(x, steps):
    """Flux v0.9's running mean/variance after ``steps`` calls on the same batch."""
    μ, σ2, m = np.zeros(2), np.ones(2), x.shape[0]
    for _ in range(steps):
        μ = 0.9 * μ + 0.1 * x.mean(0)
        σ2 = 0.9 * σ2 + 0.1 * x.var(0) * m / (m - 1)
    return μ, σ2


def test_running_statistics_are_the_same_on_every_path(rng):
    x = rng.normal(size=(5, 2)).astype(np.float32)
    μ, σ2 = _running(x, 3)
    runs = {
        "eager": lambda m: [m(x) for _ in range(3)],
        "gradient": lambda m: [
            fj.gradient(lambda: fj.numpy.sum(m(x)), fj.params(m)) for _ in range(3)
        ],
        "train_": lambda m: fj.train_(lambda a: fj.numpy.sum(m(a)), m, [x] * 3, fj.Descent(0.0)),
        "train_ scan": lambda m: fj.train_(
            lambda a: fj.numpy.sum(m(a)), m, fj.DataLoader(np.tile(x, (3, 1)), 5), fj.Descent(0.0)
        ),  # fmt: skip
        "fluxjax.jit": lambda m: [fj.jit(lambda a: m(a).sum())(x) for _ in range(3)],
        "train_ eager": lambda m: fj.train_(
            lambda a: fj.numpy.sum(m(a)), m, [x] * 3, fj.Descent(0.0), jit=False
        ),
    }
    for name, run in runs.items():
        m = fj.BatchNorm(2)
        run(m)
        np.testing.assert_allclose(np.asarray(m.μ.data), μ, **TOL, err_msg=name)
        np.testing.assert_allclose(np.asarray(m.σ2.data), σ2, **TOL, err_msg=name)


def test_testmode_freezes_statistics_and_train_sees_the_switch(rng):
    x = rng.normal(size=(4, 2)).astype(np.float32)
    m = fj.Chain(fj.Dense(2, 2), fj.BatchNorm(2), fj.Dropout(0.5))
    fj.train_(lambda a: fj.numpy.sum(m(a) ** 2), m, [x] * 2, fj.Descent(0.01))
    μ = np.asarray(m[1].μ.data)
    fj.testmode_(m)
    assert not m[1].active and not m[2].active
    fj.train_(lambda a: fj.numpy.sum(m(a) ** 2), m, [x] * 2, fj.Descent(0.01))
    np.testing.assert_array_equal(np.asarray(m[1].μ.data), μ)  # frozen: the trace saw testmode
    a, b = np.asarray(m(x)), np.asarray(m(x))
    np.testing.assert_allclose(a, b, atol=1e-6)  # deterministic (dropout would differ by O(1))
    fj.trainmode_(m)
    fj.train_(lambda a: fj.numpy.sum(m(a) ** 2), m, [x], fj.Descent(0.01))
    assert not np.allclose(np.asarray(m[1].μ.data), μ)
    d = fj.Dropout(0.5)
    step = fj.jit(lambda v: d(v))
    assert (np.asarray(step(jnp.ones(64))) == 0).any()
    fj.testmode_(d)  # fluxjax.jit traces again too
    np.testing.assert_array_equal(np.asarray(step(jnp.ones(64))), np.ones(64))


def test_an_error_leaves_the_running_statistics_alone():
    def bad(y):
        raise RuntimeError("boom")

    m = fj.BatchNorm(2, bad)
    with pytest.raises(RuntimeError, match="boom"):
        m(jnp.ones((3, 2)))
    assert m.μ.data.tolist() == [0, 0] and m.σ2.data.tolist() == [1, 1]


def test_single_value_per_channel_is_rejected_in_training():
    with pytest.raises(ValueError, match="at least two"):
        fj.BatchNorm(2)(jnp.ones((1, 2)))
    with pytest.raises(ValueError, match="2 channels"):
        fj.BatchNorm(2)(jnp.ones((4, 3)))


# ---- dropout ----------------------------------------------------------------------------


def test_flux_dropout():
    x = jnp.array([1.0, 2.0, 3.0])
    np.testing.assert_array_equal(np.asarray(fj.testmode_(fj.Dropout(0.1))(x)), x)
    np.testing.assert_array_equal(np.asarray(fj.Dropout(0)(x)), x)
    np.testing.assert_array_equal(np.asarray(fj.Dropout(1)(x)), np.zeros(3))
    m, x = fj.Dropout(0.9), jnp.asarray(np.random.rand(100).astype(np.float32))
    assert (np.asarray(m(x)) == 0).sum() > 50
    fj.testmode_(m)
    assert (np.asarray(m(x)) == 0).sum() == 0
    fj.testmode_(m, False)
    y = np.asarray(m(x))
    assert (y == 0).sum() > 50
    np.testing.assert_allclose(y[y != 0], np.asarray(x)[y != 0] / 0.1, rtol=1e-5)
    x = jnp.ones((100, 50))
    rows = (np.asarray(fj.Dropout(0.5, dims=0)(x)) == 0).sum(1)  # independent along axis 0 only
    assert rows.min() in (0, 50) and set(rows.tolist()) <= {0, 50}
    cols = (np.asarray(fj.Dropout(0.5, dims=-1)(x)) == 0).sum(0)
    assert set(cols.tolist()) <= {0, 100}


def test_dropout_stream_is_the_same_eager_and_compiled():
    fj.seed(1)
    a = fj.Dropout(0.5)
    fj.seed(1)
    b = fj.Dropout(0.5)
    x = jnp.ones(64)
    eager, keys = [], []
    for _ in range(6):
        eager.append(np.asarray(a(x)))
        keys.append(np.asarray(a.key.data))
    p = fj.param(1.0)
    fj.train_(lambda v: fj.numpy.sum(b(v) * p), [p], [x] * 3, fj.Descent(0.0))
    np.testing.assert_array_equal(np.asarray(b.key.data), keys[2])  # advanced once per step
    jitted = fj.jit(lambda v: b(v))
    compiled = [np.asarray(jitted(x)) for _ in range(3)]
    assert len({c.tobytes() for c in compiled}) == 3  # never a mask frozen at trace time
    for e, c in zip(eager[3:], compiled):
        np.testing.assert_array_equal(e, c)


def test_train_losses_show_real_dropout():
    fj.seed(2)
    m = fj.Chain(fj.Dense(4, 4), fj.Dropout(0.5))
    x = jnp.ones((8, 4))
    losses = fj.train_(lambda a: fj.numpy.sum(m(a) ** 2), m, [x] * 6, fj.Descent(0.0))
    assert len(set(np.asarray(losses).tolist())) == 6  # a fresh mask every step


def test_alphadropout_keeps_mean_and_variance_and_matches_its_formula():
    fj.seed(3)
    m = fj.AlphaDropout(0.2)
    x = jax.random.normal(jax.random.key(0), (200_000,))
    key = jax.random.wrap_key_data(m.key.data)
    y = np.asarray(m(x))
    assert abs(y.mean()) < 0.01 and abs(y.var() - 1) < 0.02
    use = jax.random.split(key)[1]
    keep = np.asarray(jax.random.uniform(use, x.shape)) >= 0.2
    α = -1.0507009873554804934193349852946 * 1.6732632423543772848170429916717
    A = ((1 - 0.2) * (1 + 0.2 * α**2)) ** -0.5
    want = A * np.where(keep, np.asarray(x), α) - A * α * 0.2
    np.testing.assert_allclose(y, want, rtol=1e-5, atol=1e-5)
    np.testing.assert_array_equal(np.asarray(fj.testmode_(m)(x)), np.asarray(x))


def test_state_leaves_stay_state_through_tree_maps():
    m = fj.Chain(fj.BatchNorm(2), fj.Dropout(0.5))
    copies = [jax.tree_util.tree_map(lambda a: a, m), fj.fmap(lambda a: a, m), fj.f32(m), fj.cpu(m)]
    for c in copies + [jax.jit(lambda m: m)(m)]:
        assert len(fj.params(c)) == 2 and len(fj.states(c)) == 3
        assert c[1].key.dtype == jnp.uint32 and not c[0].μ.trainable
    assert len(fj.params(m)) == 2 and [s.shape for s in fj.states(m)] == [(2,), (2,), (2,)]


def test_plain_jax_jit_and_grad_see_a_pytree_whose_state_leaves_are_leaves(rng):
    m = fj.Chain(fj.Dense(3, 3), fj.BatchNorm(3), fj.Dropout(0.5))
    x = rng.normal(size=(4, 3)).astype(np.float32)
    y, new = jax.jit(lambda m, x: (m(x), m))(m, x)  # pure: the new state comes out
    assert float(jnp.abs(m[1].μ.data).sum()) == 0  # the input model is untouched
    h = np.asarray(m[0](x).data)
    np.testing.assert_allclose(np.asarray(new[1].μ.data), 0.1 * h.mean(0), **TOL)
    assert not np.array_equal(np.asarray(new[2].key.data), np.asarray(m[2].key.data))
    g = jax.grad(lambda m: jnp.sum(m(x) ** 2), allow_int=True)(m)  # the key is an int leaf
    gs = fj.gradient(lambda: fj.numpy.sum(m(x) ** 2), fj.params(m))  # same key, same mask
    np.testing.assert_allclose(np.asarray(g[0].W.data), np.asarray(gs[m[0].W]), **TOL)
