"""Flux 0.14's losses: Flux's own test values (test/losses.jl and the docstrings, transposed
to batch first), gradients against ``jax.grad`` of a pure twin, on tracked inputs too."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from _tol import assert_close

import fluxjax as fj
from fluxjax import (
    binary_focal_loss,
    binarycrossentropy,
    crossentropy,
    dice_coeff_loss,
    focal_loss,
    hinge_loss,
    huber_loss,
    label_smoothing,
    mae,
    msle,
    onehotbatch,
    poisson_loss,
    siamese_contrastive_loss,
    squared_hinge_loss,
    tversky_loss,
)

F32 = dict(rtol=1e-5, atol=1e-6)


def a(x):
    return jnp.asarray(np.asarray(x, np.float32))


# test/losses.jl: y = [1, 1, 0, 0]; ŷ = [.9, .1, .1, .9]
def test_mae_and_huber_match_flux():
    ŷ, y = a([0.9, 0.1, 0.1, 0.9]), a([1, 1, 0, 0])
    assert_close(mae(ŷ, y), 1 / 2, **F32)
    assert_close(huber_loss(ŷ, y), 0.20500000000000002, **F32)
    # the docstrings
    assert_close(mae(a([1.1, 1.9, 3.1]), a([1, 2, 3])), 0.10000000000000009, **F32)
    assert_close(huber_loss(a([1.1, 2.1, 3.1]), a([1, 2, 3])), 0.005000000000000009, rtol=1e-4)
    assert_close(huber_loss(a([1.1, 2.1, 3.1]), a([1, 2, 3]), delta=0.05), 0.00375, rtol=1e-4)
    assert_close(mae(ŷ, y, agg=jnp.sum), 2.0, **F32)


def test_msle_matches_flux():
    assert_close(msle(a([345.0, 332.0, 789.0]), a([123.0, 456.0, 789.0])), 0.38813985859136585)
    assert_close(msle(a([1.1, 2.2, 3.3]), a([1, 2, 3])), 0.009084041, rtol=1e-4)
    assert_close(msle(a([0.9, 1.8, 2.7]), a([1, 2, 3])), 0.011100831, rtol=1e-4)


def test_label_smoothing_matches_flux():
    y = onehotbatch([1], range(2))  # Flux's 2×1 one-hot column is one batch-first row
    assert_close(label_smoothing(y, 0.2), [[0.1, 0.9]], **F32)
    np.testing.assert_array_equal(label_smoothing(y, 0.2, dims=0), y * 0.8 + 0.1)
    for bad in (1.2, 0.0, 1.0, -0.1):
        with pytest.raises(ValueError, match="label_smoothing.*α"):
            label_smoothing(a([0.0, 0.0, 1.0, 0.0]), bad)
    with pytest.raises(ValueError, match="dims"):
        label_smoothing(y, 0.2, dims=1)  # Flux's class axis is the last axis here
    # crossentropy with smoothed labels (Flux's lossvalue_smoothed)
    Y = onehotbatch([1, 1, 0, 0], range(2))
    Ŷ = a([[0.1, 0.9], [0.9, 0.1], [0.9, 0.1], [0.1, 0.9]])
    assert_close(crossentropy(Ŷ, label_smoothing(Y, 0.1)), 1.2039728043259348, **F32)
    # smoothing lowers the loss on dissimilar predictions and raises it on similar ones
    ya = onehotbatch([1, 1, 1, 0, 0], range(2))
    y_sim = ya * 0.8 + 0.1
    y_dis = y_sim[:, ::-1]
    assert crossentropy(y_sim, ya) < crossentropy(y_sim, label_smoothing(ya, 0.2))
    assert crossentropy(y_dis, ya) > crossentropy(y_dis, label_smoothing(ya, 0.2))


def test_binary_label_smoothing_with_binarycrossentropy():
    rng = np.random.default_rng(3)
    logŷ, y = rng.standard_normal(3), rng.random(3)
    yls = y * 0.8 + 0.1
    s = 1 / (1 + np.exp(-logŷ))
    expected = np.mean(-yls * np.log(s) - (1 - yls) * np.log(1 - s))
    got = binarycrossentropy(a(s), label_smoothing(a(y), 0.2, dims=0), ε=0)
    assert_close(got, expected, rtol=1e-5)


def test_hinge_losses_match_flux():
    y, ŷ = a([1, 2, 3, 4]), a([5.0, 6.0, 7.0, 8.0])
    assert_close(hinge_loss(ŷ, y), 0.0)
    assert_close(hinge_loss(y, 0.5 * y), 0.125, **F32)
    assert_close(squared_hinge_loss(ŷ, y), 0.0)
    assert_close(squared_hinge_loss(y, 0.5 * y), 0.0625, **F32)
    y_true, y_pred = a([1, -1, 1, 1]), a([0.1, 0.3, 1, 1.5])
    assert_close(hinge_loss(y_pred, y_true), 0.55, **F32)
    assert_close(squared_hinge_loss(y_pred, y_true), 0.625, **F32)
    assert hinge_loss(y_pred[0], y_true[0]) != 0 and hinge_loss(y_pred[3], y_true[3]) == 0


def test_poisson_dice_tversky_match_flux():
    y, ŷ = a([[0.1], [0.2], [0.3]]), a([[0.4], [0.5], [0.6]])  # Flux's 1×3, batch first
    assert_close(poisson_loss(ŷ, y), 0.6278353988097339, **F32)
    assert_close(poisson_loss(y, y), 0.5044459776946685, **F32)
    y, ŷ = a([[1.0], [0.5], [0.3], [2.4]]), a([[0], [1.4], [0.5], [1.2]])
    assert_close(dice_coeff_loss(ŷ, y), 0.2799999999999999, **F32)
    assert_close(dice_coeff_loss(y, y), 0.0, atol=1e-6)
    assert_close(dice_coeff_loss(a([1.1, 2.1, 3.1]), a([1, 2, 3])), 0.000992391663909964, rtol=1e-3)
    assert_close(tversky_loss(ŷ, y), -0.06772009029345383, **F32)
    assert_close(tversky_loss(ŷ, y, beta=0.8), -0.09490740740740744, **F32)
    assert_close(tversky_loss(y, y), -0.5576923076923075, **F32)


def test_binary_focal_loss_matches_flux():
    y = a([[0, 1, 0], [1, 0, 1]]).T
    ŷ = a([[0.268941, 0.5, 0.268941], [0.731059, 0.5, 0.731059]]).T
    y1, ŷ1 = a([[1, 0], [0, 1]]).T, a([[0.6, 0.3], [0.4, 0.7]]).T
    assert_close(binary_focal_loss(ŷ, y), 0.0728675615927385, **F32)
    assert_close(binary_focal_loss(ŷ1, y1), 0.05691642237852222, **F32)
    assert_close(binary_focal_loss(ŷ, y, gamma=0.0), binarycrossentropy(ŷ, y), **F32)


SOFT = jax.nn.softmax(a(np.arange(-7, 8).reshape(5, 3)), axis=-1)  # Flux's softmax(-7:7, 3×5)
HOT = a([[1, 0, 0], [0, 1, 0], [0, 0, 1], [0, 1, 0], [1, 0, 0]])


def test_focal_loss_matches_flux():
    y1, ŷ1 = a([[1, 0, 0], [0, 0, 1]]), a([[0.4, 0.5, 0.1], [0.2, 0.5, 0.3]])
    assert_close(focal_loss(SOFT, HOT), 1.1277571935622628, **F32)
    assert_close(focal_loss(ŷ1, y1), 0.45990566879720157, **F32)
    assert_close(focal_loss(SOFT, HOT, gamma=0), crossentropy(SOFT, HOT), **F32)
    # classes on the last axis: the transposed layout is a different loss
    assert abs(float(focal_loss(SOFT.T, HOT.T)) - 1.1277571935622628) > 1e-3


def test_siamese_contrastive_loss_matches_flux():
    y, ŷ = a([[1, 0], [0, 0], [0, 1]]).T, a([[0.4, 0.2], [0.5, 0.5], [0.1, 0.3]]).T
    y2, ŷ2 = a([1, 0, 0, 1, 1]), a([0.6, 0.4, 0.1, 0.2, 0.7])
    scl = siamese_contrastive_loss
    assert_close(scl(ŷ, y), 0.2333333333333333, **F32)
    assert_close(scl(ŷ, y, margin=0.5), 0.10000000000000002, **F32)
    assert_close(scl(ŷ, y, margin=1.5), 0.5333333333333333, **F32)
    assert_close(scl(SOFT, HOT), 0.32554644, **F32)
    assert_close(scl(SOFT, HOT, margin=0.5), 0.16271012, **F32)
    assert_close(scl(SOFT, HOT, margin=1.5), 0.6532292, **F32)
    assert_close(scl(y, y), 0.0)
    assert_close(scl(ŷ, y, margin=0), 0.09166666666666667, **F32)
    assert_close(scl(SOFT, HOT, margin=0), 0.13161165, **F32)
    assert_close(scl(ŷ2, y2), 0.21200000000000005, **F32)
    assert_close(scl(ŷ2, ŷ2), 0.18800000000000003, **F32)
    for m in (-0.5, -1):
        with pytest.raises(ValueError, match="margin"):
            scl(SOFT, HOT, margin=m)


@pytest.mark.parametrize("loss", [mae, msle, huber_loss, hinge_loss, poisson_loss, focal_loss])
def test_mismatched_shapes_raise_as_flux(loss):
    with pytest.raises(ValueError, match=r"\(4, 1\).*\(4,\)"):
        loss(a(np.full((4, 1), 0.5)), a(np.full(4, 0.5)))


def test_greek_and_ascii_keywords_are_one_keyword():
    ŷ, y = a([0.3, 0.9]), a([0.0, 1.0])
    assert_close(huber_loss(ŷ, y, δ=0.2), huber_loss(ŷ, y, delta=0.2))
    assert_close(tversky_loss(ŷ, y, β=0.2), tversky_loss(ŷ, y, beta=0.2))
    assert_close(focal_loss(ŷ, y, γ=1.5), focal_loss(ŷ, y, gamma=1.5))
    assert_close(msle(ŷ, y, ϵ=0.1), msle(ŷ, y, eps=0.1))
    with pytest.raises(TypeError, match="delta.*δ"):
        huber_loss(ŷ, y, delta=1.0, δ=2.0)


# Pure twins, written from the formulas (not from the implementation), for gradients.
E = float(np.finfo(np.float32).eps)


def _huber(p, t):
    e = jnp.abs(p - t)
    return jnp.mean(jnp.where(e < 1, 0.5 * e**2, e - 0.5))


TWINS = [
    (mae, lambda p, t: jnp.mean(jnp.abs(p - t)), "real"),
    (msle, lambda p, t: jnp.mean((jnp.log(p + E) - jnp.log(t + E)) ** 2), "prob"),
    (huber_loss, _huber, "real"),
    (poisson_loss, lambda p, t: jnp.mean(p - t * jnp.log(p)), "prob"),
    (hinge_loss, lambda p, t: jnp.mean(jnp.maximum(0, 1 - p * t)), "sign"),
    (squared_hinge_loss, lambda p, t: jnp.mean(jnp.maximum(0, 1 - p * t) ** 2), "sign"),
    (
        dice_coeff_loss,
        lambda p, t: 1 - (2 * jnp.sum(p * t) + 1) / (jnp.sum(p**2) + jnp.sum(t**2) + 1),
        "prob",
    ),
    (
        tversky_loss,
        lambda p, t: (
            1 - (jnp.sum(p * t) + 1) / (jnp.sum(p * t + 0.7 * (1 - t) * p + 0.3 * t * (1 - p)) + 1)
        ),
        "prob",
    ),
    (
        binary_focal_loss,
        lambda p, t: jnp.mean(
            -((1 - (t * (p + E) + (1 - t) * (1 - p - E))) ** 2)
            * jnp.log(t * (p + E) + (1 - t) * (1 - p - E))
        ),
        "prob",
    ),
    (focal_loss, lambda p, t: jnp.sum(-t * (1 - p - E) ** 2 * jnp.log(p + E)) / p.shape[0], "soft"),
    (
        siamese_contrastive_loss,
        lambda p, t: jnp.mean((1 - t) * p**2 + t * jnp.maximum(0, 1 - p) ** 2),
        "prob",
    ),
]


def _inputs(kind):
    rng = np.random.default_rng(7)
    raw = rng.standard_normal((4, 3)).astype(np.float32)
    hot = np.eye(3, dtype=np.float32)[[0, 2, 1, 1]]
    if kind == "real":
        return a(raw), a(raw[::-1] * 0.7)
    if kind == "sign":
        return a(raw), a(np.sign(raw[::-1]))
    if kind == "soft":
        return jax.nn.softmax(a(raw), axis=-1), a(hot)
    return jax.nn.sigmoid(a(raw)), a(hot)


@pytest.mark.parametrize("loss, twin, kind", TWINS, ids=[t[0].__name__ for t in TWINS])
def test_gradients_match_a_pure_twin_on_every_path(loss, twin, kind):
    ŷ, y = _inputs(kind)
    want = jax.grad(twin)(ŷ, y)
    assert_close(loss(ŷ, y), twin(ŷ, y), rtol=1e-5, atol=1e-6)
    (g,) = fj.gradient(lambda p: loss(p, y), ŷ)  # tracked inputs through gradient
    assert_close(g, want, rtol=1e-4, atol=1e-6)
    p = fj.param(ŷ)  # back_ on a param
    out = loss(p, y)
    assert isinstance(out, fj.TrackedReal)
    fj.back_(out)
    assert_close(fj.grad(p), want, rtol=1e-4, atol=1e-6)
    assert_close(jax.jit(jax.grad(loss))(ŷ, y), want, rtol=1e-4, atol=1e-6)  # plain JAX


def test_label_smoothing_is_differentiable_on_tracked_labels():
    y = fj.param(onehotbatch([0, 1, 1], range(2)))
    fj.back_(label_smoothing(y, 0.2).sum())
    assert_close(fj.grad(y), np.full((3, 2), 0.8), **F32)


def test_losses_train_a_model():
    m = fj.Dense(3, 1)
    x, y = a(np.random.default_rng(0).standard_normal((8, 3))), a(np.ones((8, 1)))
    first = float(huber_loss(m(x), y))
    fj.train_(lambda x, y: huber_loss(m(x), y), fj.params(m), [(x, y)] * 20, fj.Descent(0.1))
    assert float(huber_loss(m(x), y)) < first
