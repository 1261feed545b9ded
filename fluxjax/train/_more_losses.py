"""Flux 0.14's losses beyond the classic set, batch first (classes on the last axis).

Each is a plain JAX function lifted once with ``track``, as in ``_losses.py``. Keywords
keep Flux's names: ``agg`` (default ``jnp.mean``: any function of the elementwise losses,
e.g. ``jnp.sum``), ``delta``, ``beta``, ``gamma``, ``margin``, ``smooth``, ``eps``; Flux's
Greek spellings (``δ``, ``β``, ``γ``, ``ϵ``) are accepted as the same keyword. As Flux's
``_check_sizes``, ``ŷ`` and ``y`` must have the same shape unless one is a number.
"""

from __future__ import annotations

import numbers

import jax.numpy as jnp
from jax.scipy.special import xlogy

from fluxjax.tracker import track


def _same_shape(loss, ŷ, y):
    """Flux's ``_check_sizes``: a shape mismatch would broadcast into a wrong loss."""
    a, b = jnp.shape(ŷ), jnp.shape(y)
    if a and b and a != b:
        raise ValueError(
            f"{loss}: ŷ has shape {a} but y has shape {b}; they must match (a number y is "
            "fine). Reshape one of them, e.g. y.reshape(ŷ.shape)"
        )


def _keyword(loss, name, value, greek, greek_value, default):
    """One keyword under Flux's ASCII name or its Greek spelling, never both."""
    if value is not None and greek_value is not None:
        raise TypeError(f"{loss}: give {name}= or {greek}=, not both (they are one keyword)")
    chosen = value if value is not None else greek_value
    return default if chosen is None else chosen


def _eps(loss, eps, ε, ŷ):
    return _keyword(loss, "eps", eps, "ϵ", ε, jnp.finfo(jnp.result_type(ŷ, jnp.float32)).eps)


@track
def mae(ŷ, y, *, agg=jnp.mean):
    """mae(ŷ, y; agg=mean) = agg(|ŷ - y|), the mean absolute error.

    >>> import jax.numpy as jnp
    >>> round(float(mae(jnp.array([1.1, 1.9, 3.1]), jnp.array([1.0, 2, 3]))), 4)
    0.1
    """
    _same_shape("mae", ŷ, y)
    return agg(jnp.abs(ŷ - y))


@track
def msle(ŷ, y, *, agg=jnp.mean, eps=None, ε=None):
    """msle(ŷ, y; agg=mean, eps=eps(ŷ)) = agg((log(ŷ + ϵ) - log(y + ϵ))²).

    The mean squared logarithmic error: penalises under-estimation more than over-.

    >>> import jax.numpy as jnp
    >>> round(float(msle(jnp.array([1.1, 2.2, 3.3]), jnp.array([1.0, 2, 3]))), 5)
    0.00908
    """
    _same_shape("msle", ŷ, y)
    e = _eps("msle", eps, ε, ŷ)
    return agg(jnp.log((ŷ + e) / (y + e)) ** 2)


@track
def huber_loss(ŷ, y, *, agg=jnp.mean, delta=None, δ=None):
    """huber_loss(ŷ, y; agg=mean, delta=1): ``½e²`` where ``e = |ŷ - y| < δ``, else
    ``δ(e - ½δ)``; aggregated by ``agg``.

    >>> import jax.numpy as jnp
    >>> round(float(huber_loss(jnp.array([1.1, 2.1, 3.1]), jnp.array([1.0, 2, 3]))), 4)
    0.005
    """
    _same_shape("huber_loss", ŷ, y)
    d = _keyword("huber_loss", "delta", delta, "δ", δ, 1)
    e = jnp.abs(ŷ - y)
    return agg(jnp.where(e < d, 0.5 * e**2, d * (e - 0.5 * d)))


def _check_α(α):
    if isinstance(α, numbers.Real) and not 0 < α < 1:
        raise ValueError(f"label_smoothing: α must be between 0 and 1 (exclusive), got {α}")


@track
def label_smoothing(y, α, *, dims=-1):
    """label_smoothing(y, α; dims=-1) -> labels pulled towards uniform: ``y(1 - α) + α/k``.

    ``dims=-1``: ``y`` is one-hot along the last axis (``k`` classes, Flux's ``dims=1``);
    ``dims=0``: ``y`` holds binary labels as numbers (``k = 2``, Flux's ``dims=0``).
    ``α`` lies in (0, 1).

    >>> import jax.numpy as jnp
    >>> label_smoothing(jnp.array([[0.0, 1.0]]), 0.2).tolist()  # doctest: +ELLIPSIS
    [[0.1..., 0.9...]]
    """
    _check_α(α)
    if dims not in (-1, 0):
        raise ValueError(
            f"label_smoothing: dims must be -1 (one-hot, classes on the last axis: Flux's "
            f"dims=1) or 0 (binary labels as numbers), got {dims!r}"
        )
    k = 2 if dims == 0 else jnp.shape(y)[-1]
    return y * (1 - α) + α / k


@track
def poisson_loss(ŷ, y, *, agg=jnp.mean):
    """poisson_loss(ŷ, y; agg=mean) = agg(ŷ - y log ŷ), for predicted Poisson rates ŷ.

    >>> import jax.numpy as jnp
    >>> round(float(poisson_loss(jnp.array([0.4, 0.5, 0.6]), jnp.array([0.1, 0.2, 0.3]))), 4)
    0.6278
    """
    _same_shape("poisson_loss", ŷ, y)
    return agg(ŷ - xlogy(y, ŷ))


@track
def hinge_loss(ŷ, y, *, agg=jnp.mean):
    """hinge_loss(ŷ, y; agg=mean) = agg(max(0, 1 - ŷ y)) for labels y in {-1, 1}.

    Elementwise, as Flux ≥ 0.11 (``hinge`` keeps v0.9's sum over the last axis).

    >>> import jax.numpy as jnp
    >>> float(hinge_loss(jnp.array([0.1, 0.3, 1, 1.5]), jnp.array([1.0, -1, 1, 1])))
    0.55
    """
    _same_shape("hinge_loss", ŷ, y)
    return agg(jnp.maximum(0, 1 - ŷ * y))


@track
def squared_hinge_loss(ŷ, y, *, agg=jnp.mean):
    """squared_hinge_loss(ŷ, y; agg=mean) = agg(max(0, 1 - ŷ y)²) for labels in {-1, 1}.

    >>> import jax.numpy as jnp
    >>> float(squared_hinge_loss(jnp.array([0.1, 0.3, 1, 1.5]), jnp.array([1.0, -1, 1, 1])))
    0.625
    """
    _same_shape("squared_hinge_loss", ŷ, y)
    return agg(jnp.maximum(0, 1 - ŷ * y) ** 2)


@track
def dice_coeff_loss(ŷ, y, *, smooth=1):
    """dice_coeff_loss(ŷ, y; smooth=1) = 1 - (2 Σ ŷy + s) / (Σ ŷ² + Σ y² + s), over all
    elements (V-Net's loss; no ``agg``, as Flux).

    >>> import jax.numpy as jnp
    >>> round(float(dice_coeff_loss(jnp.array([0, 1.4, .5, 1.2]), jnp.array([1, .5, .3, 2.4]))), 4)
    0.28
    """
    _same_shape("dice_coeff_loss", ŷ, y)
    return 1 - (2 * jnp.sum(y * ŷ) + smooth) / (jnp.sum(y**2) + jnp.sum(ŷ**2) + smooth)


@track
def tversky_loss(ŷ, y, *, beta=None, β=None):
    """tversky_loss(ŷ, y; beta=0.7) = 1 - (Σ yŷ + 1) / (Σ(yŷ + β(1-y)ŷ + (1-β)y(1-ŷ)) + 1).

    Larger ``beta`` weighs recall more than precision (over all elements, no ``agg``).

    >>> import jax.numpy as jnp
    >>> round(float(tversky_loss(jnp.array([0, 1.4, .5, 1.2]), jnp.array([1, .5, .3, 2.4]))), 4)
    -0.0677
    """
    _same_shape("tversky_loss", ŷ, y)
    b = _keyword("tversky_loss", "beta", beta, "β", β, 0.7)
    num = jnp.sum(y * ŷ) + 1
    return 1 - num / (jnp.sum(y * ŷ + b * (1 - y) * ŷ + (1 - b) * y * (1 - ŷ)) + 1)


@track
def binary_focal_loss(ŷ, y, *, agg=jnp.mean, gamma=None, γ=None, eps=None, ε=None):
    """binary_focal_loss(ŷ, y; agg=mean, gamma=2, eps=eps(ŷ)) = agg(-(1-pₜ)^γ log pₜ),
    ``pₜ = y(ŷ+ϵ) + (1-y)(1-ŷ-ϵ)``: binarycrossentropy that down-weights easy examples.

    >>> import jax.numpy as jnp
    >>> round(float(binary_focal_loss(jnp.array([[.6, .4], [.3, .7]]), jnp.eye(2))), 4)
    0.0569
    """
    _same_shape("binary_focal_loss", ŷ, y)
    g = _keyword("binary_focal_loss", "gamma", gamma, "γ", γ, 2)
    ŷϵ = ŷ + _eps("binary_focal_loss", eps, ε, ŷ)
    p_t = y * ŷϵ + (1 - y) * (1 - ŷϵ)
    return agg(-((1 - p_t) ** g) * jnp.log(p_t))


@track
def focal_loss(ŷ, y, *, dims=-1, agg=jnp.mean, gamma=None, γ=None, eps=None, ε=None):
    """focal_loss(ŷ, y; dims=-1, agg=mean, gamma=2, eps=eps(ŷ)) =
    agg(Σ_dims -y (1-ŷ-ϵ)^γ log(ŷ+ϵ)) for probabilities ŷ (classes on the last axis).

    ``gamma=0`` is ``crossentropy``.

    >>> import jax.numpy as jnp
    >>> ŷ = jnp.array([[0.4, 0.5, 0.1], [0.2, 0.5, 0.3]])
    >>> round(float(focal_loss(ŷ, jnp.array([[1.0, 0, 0], [0, 0, 1]]))), 4)
    0.4599
    """
    _same_shape("focal_loss", ŷ, y)
    g = _keyword("focal_loss", "gamma", gamma, "γ", γ, 2)
    ŷϵ = ŷ + _eps("focal_loss", eps, ε, ŷ)
    return agg(jnp.sum(-y * (1 - ŷϵ) ** g * jnp.log(ŷϵ), axis=dims))


@track
def siamese_contrastive_loss(ŷ, y, *, agg=jnp.mean, margin=1):
    """siamese_contrastive_loss(ŷ, y; agg=mean, margin=1) =
    agg((1 - y) ŷ² + y max(0, margin - ŷ)²), for distances ŷ between pairs.

    >>> import jax.numpy as jnp
    >>> ŷ, y = jnp.array([0.6, 0.4, 0.1]), jnp.array([1.0, 0, 0])
    >>> round(float(siamese_contrastive_loss(ŷ, y)), 4)
    0.11
    """
    _same_shape("siamese_contrastive_loss", ŷ, y)
    if isinstance(margin, numbers.Real) and margin < 0:
        raise ValueError(f"siamese_contrastive_loss: margin must be non-negative, got {margin}")
    return agg((1 - y) * ŷ**2 + y * jnp.maximum(0, margin - ŷ) ** 2)
