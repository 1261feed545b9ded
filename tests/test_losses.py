"""Losses: Flux's test values translated to batch-first, checked by hand with NumPy."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from fluxjax.tracker import Tracked, gradient, param
from fluxjax.train import (
    binarycrossentropy,
    crossentropy,
    logitbinarycrossentropy,
    logitcrossentropy,
    mse,
    onehotbatch,
)

# Flux: y = onehotbatch([1, 1, 0, 0], 0:1); ŷ = [.1 .9; .9 .1; .9 .1; .1 .9]' (columns
# are samples). Batch-first, the rows are the samples.
Y = np.array([[0.0, 1.0], [0.0, 1.0], [1.0, 0.0], [1.0, 0.0]])
Ŷ = np.array([[0.1, 0.9], [0.9, 0.1], [0.9, 0.1], [0.1, 0.9]])
V = np.log(0.1 / 0.9)
LOGŶ = np.array([[V, 0.0], [0.0, V], [0.0, V], [V, 0.0]])  # softmax(LOGŶ) == Ŷ


def by_hand(ŷ, y, weight=np.ones(2)):
    """-Σ y log ŷ weight / N, one sample at a time."""
    total = 0.0
    for row_ŷ, row_y in zip(ŷ, y, strict=True):
        for k in range(len(row_y)):
            if row_y[k]:
                total -= row_y[k] * np.log(row_ŷ[k]) * weight[k]
    return total / len(y)


def test_mse_matches_flux():
    assert float(mse(jnp.array([0.9, 0.1, 0.1, 0.9]), jnp.array([1.0, 1, 0, 0]))) == (
        pytest.approx((0.1**2 + 0.9**2) / 2, rel=1e-5)
    )
    assert float(mse(jnp.array([0.9, 0.1, 0.1, 0.9]), jnp.array([1.0, 1, 0, 0]))) == (
        pytest.approx(0.41, rel=1e-5)
    )


def test_onehotbatch_gives_the_flux_targets():
    np.testing.assert_array_equal(onehotbatch([1, 1, 0, 0], range(2)), Y)


def test_crossentropy_matches_flux_and_hand_computation():
    assert by_hand(Ŷ, Y) == pytest.approx(1.203972804325936, rel=1e-12)
    assert float(crossentropy(jnp.asarray(Ŷ), jnp.asarray(Y))) == pytest.approx(
        by_hand(Ŷ, Y), rel=1e-5
    )


@pytest.mark.parametrize("weight", [[1.0, 1.0], [0.5, 0.5], [2.0, 0.5]])
def test_weighted_crossentropy(weight):
    w = np.array(weight)
    expected = by_hand(Ŷ, Y, w)
    assert float(crossentropy(jnp.asarray(Ŷ), jnp.asarray(Y), weight=jnp.asarray(w))) == (
        pytest.approx(expected, rel=1e-5)
    )
    if weight == [2.0, 0.5]:
        assert expected == pytest.approx(1.5049660054074199, rel=1e-12)
    if weight == [0.5, 0.5]:
        assert expected == pytest.approx(1.203972804325936 / 2, rel=1e-12)


def test_logitcrossentropy_matches_crossentropy_of_softmax():
    assert float(logitcrossentropy(jnp.asarray(LOGŶ), jnp.asarray(Y))) == pytest.approx(
        by_hand(Ŷ, Y), rel=1e-6
    )
    w = np.array([2.0, 0.5])
    assert float(logitcrossentropy(jnp.asarray(LOGŶ), jnp.asarray(Y), weight=w)) == (
        pytest.approx(by_hand(Ŷ, Y, w), rel=1e-6)
    )


def test_logitcrossentropy_is_stable_for_large_logits():
    l = logitcrossentropy(jnp.array([[1000.0, -1000.0]]), jnp.array([[0.0, 1.0]]))
    assert float(l) == pytest.approx(2000.0, rel=1e-5)


def test_crossentropy_of_one_vector_sums_over_classes():
    ŷ, y = np.array([0.2, 0.3, 0.5]), np.array([0.0, 0.0, 1.0])
    assert float(crossentropy(jnp.asarray(ŷ), jnp.asarray(y))) == pytest.approx(
        -np.log(0.5), rel=1e-5
    )


def test_crossentropy_averages_over_all_leading_axes():
    rng = np.random.default_rng(0)
    ŷ = rng.dirichlet(np.ones(3), size=(2, 5)).astype(np.float32)
    y = np.eye(3, dtype=np.float32)[rng.integers(0, 3, size=(2, 5))]
    expected = -(y * np.log(ŷ)).sum() / 10
    assert float(crossentropy(ŷ, y)) == pytest.approx(expected, rel=1e-5)


def test_binarycrossentropy_elementwise_mean():
    ŷ, y = np.array([0.1, 0.7, 0.99, 0.4]), np.array([0.0, 1.0, 1.0, 0.0])
    eps = np.finfo(np.float32).eps
    each = -y * np.log(ŷ + eps) - (1 - y) * np.log(1 - ŷ + eps)
    got = float(binarycrossentropy(jnp.asarray(ŷ, jnp.float32), jnp.asarray(y, jnp.float32)))
    assert got == pytest.approx(each.mean(), rel=1e-5)
    # Flux's broadcast use on one number
    assert float(binarycrossentropy(0.7, 1.0)) == pytest.approx(-np.log(0.7), rel=1e-5)


def test_binarycrossentropy_at_the_edges_is_finite():
    assert np.isfinite(float(binarycrossentropy(jnp.array([0.0, 1.0]), jnp.array([1.0, 0.0]))))
    assert float(binarycrossentropy(jnp.array([0.0, 1.0]), jnp.array([0.0, 1.0]))) < 1e-6


def test_logitbinarycrossentropy_is_binarycrossentropy_of_sigmoid():
    logits = LOGŶ.reshape(-1)
    y = Y.reshape(-1)
    σ = 1 / (1 + np.exp(-logits))
    expected = (-y * np.log(σ) - (1 - y) * np.log(1 - σ)).mean()
    got = float(logitbinarycrossentropy(jnp.asarray(logits), jnp.asarray(y)))
    assert got == pytest.approx(expected, rel=1e-5)
    # stable where σ rounds to 0 or 1
    assert float(logitbinarycrossentropy(100.0, 0.0)) == pytest.approx(100.0, rel=1e-5)
    assert float(logitbinarycrossentropy(-100.0, 1.0)) == pytest.approx(100.0, rel=1e-5)


EPS = float(np.finfo(np.float32).eps)
LOSSES = [
    (mse, lambda a, b: jnp.mean((a - b) ** 2), False),
    (crossentropy, lambda a, b: -jnp.sum(b * jnp.log(a)) / a.shape[0], True),
    (logitcrossentropy, lambda a, b: -jnp.sum(b * jax.nn.log_softmax(a)) / a.shape[0], False),
    (
        binarycrossentropy,
        lambda a, b: jnp.mean(-b * jnp.log(a + EPS) - (1 - b) * jnp.log(1 - a + EPS)),
        True,
    ),
    (
        logitbinarycrossentropy,
        lambda a, b: jnp.mean(
            -b * jnp.log(jax.nn.sigmoid(a)) - (1 - b) * jnp.log(1 - jax.nn.sigmoid(a))
        ),
        False,
    ),
]


@pytest.mark.parametrize("loss, formula, probabilities", LOSSES)
def test_losses_take_tracked_inputs_and_give_jax_gradients(loss, formula, probabilities):
    rng = np.random.default_rng(1)
    raw = rng.standard_normal((4, 3)).astype(np.float32)
    ŷ = jax.nn.softmax(raw) if probabilities else jnp.asarray(raw)
    y = jnp.asarray(np.eye(3, dtype=np.float32)[[0, 2, 1, 1]])
    p = param(ŷ)
    out = loss(p, y)
    assert isinstance(out, Tracked) and out.shape == ()
    assert float(out.data) == pytest.approx(float(loss(ŷ, y)), rel=1e-5)
    assert not isinstance(loss(ŷ, y), Tracked)
    (g,) = gradient(lambda a: loss(a, y), ŷ)
    np.testing.assert_allclose(g, jax.grad(formula)(ŷ, y), rtol=1e-4, atol=1e-6)


def test_losses_work_under_jit():
    f = jax.jit(lambda a, b: logitcrossentropy(a, b))
    assert float(f(jnp.asarray(LOGŶ), jnp.asarray(Y))) == pytest.approx(by_hand(Ŷ, Y), rel=1e-6)
