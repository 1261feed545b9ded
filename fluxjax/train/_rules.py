"""Flux's update rules written as optax transformations, where optax's own differ.

Each function returns an ``optax.GradientTransformation`` mapping a gradient to Flux's step
in the gradient's direction (learning rate included), as ``apply!`` does; the optimiser
classes in ``_optimisers.py`` chain it with ``optax.scale(-1)``. States are named records
(``NamedTuple``), so a saved optimiser state names its entries (``mu``, ``nu``, ...).
The step number ``t`` (1-based) is ``count + 1``; ``1 - βᵗ`` is computed from it without
cancellation (``-expm1(t log β)``).

>>> import jax.numpy as jnp
>>> tx = adagrad(0.1, 1e-8)  # Flux: a = ϵ + g², step η g / (√a + ϵ)
>>> step, _ = tx.update(jnp.array([2.0]), tx.init(jnp.zeros(1)))
>>> round(float(step[0]), 6)
0.1
"""

import math
from typing import NamedTuple

import jax
import jax.numpy as jnp
import optax


class MomentsState(NamedTuple):
    """Step count, first and second moments (NADAM, RADAM)."""

    count: jax.Array
    mu: optax.Updates
    nu: optax.Updates


class AMSGradState(NamedTuple):
    """First and second moments and the running maximum of the second (AMSGrad)."""

    mu: optax.Updates
    nu: optax.Updates
    nu_max: optax.Updates


class AccumulatorState(NamedTuple):
    """The sum of squared gradients (ADAGrad)."""

    sum_of_squares: optax.Updates


class OptimisticState(NamedTuple):
    """Step count, moments, and the previous step's Adam term (OADAM)."""

    count: jax.Array
    mu: optax.Updates
    nu: optax.Updates
    term: optax.Updates


def _zeros(params):
    return jax.tree.map(jnp.zeros_like, params)


def _filled(params, value):
    return jax.tree.map(lambda p: jnp.full_like(p, value), params)


def _moment(g, m, β, power=1):
    return jax.tree.map(lambda g, m: β * m + (1 - β) * g**power, g, m)


class Powers(NamedTuple):
    """``1 - β₁ᵗ`` and ``1 - β₂ᵗ`` at step ``t``, and ``t`` (float32)."""

    t: jax.Array
    c1: jax.Array
    c2: jax.Array


def _one_minus_power(β, t):
    """``1 - βᵗ`` without cancellation: ``-expm1(t log β)``, the log taken in float64."""
    return -jnp.expm1(t * math.log(β))


def _powers(count, β1, β2, ahead=0):
    t = (count + 1).astype(jnp.float32)
    return Powers(t, _one_minus_power(β1, t + ahead), _one_minus_power(β2, t))


def nadam(η, β1, β2, ϵ) -> optax.GradientTransformation:
    """Flux's NADAM, step
    ``(β₁ m / (1 - β₁ᵗ⁺¹) + (1 - β₁) g / (1 - β₁ᵗ)) / (√(v β₂ / (1 - β₂ᵗ)) + ϵ) η``."""

    def init(params):
        return MomentsState(jnp.zeros([], jnp.int32), _zeros(params), _zeros(params))

    def update(g, state, params=None):
        mu, nu = _moment(g, state.mu, β1), _moment(g, state.nu, β2, 2)
        now, ahead = _powers(state.count, β1, β2), _powers(state.count, β1, β2, ahead=1)

        def step(g, m, v):
            m̂ = β1 * m / ahead.c1 + (1 - β1) * g / now.c1
            return m̂ / (jnp.sqrt(v * β2 / now.c2) + ϵ) * η

        return jax.tree.map(step, g, mu, nu), MomentsState(state.count + 1, mu, nu)

    return optax.GradientTransformation(init, update)


def amsgrad(η, β1, β2, ϵ) -> optax.GradientTransformation:
    """Flux's AMSGrad: moments start at ``ϵ``; step ``η m / (√v̂ + ϵ)``, no bias correction."""

    def init(params):
        return AMSGradState(*(_filled(params, ϵ) for _ in range(3)))

    def update(g, state, params=None):
        mu, nu = _moment(g, state.mu, β1), _moment(g, state.nu, β2, 2)
        nu_max = jax.tree.map(jnp.maximum, state.nu_max, nu)
        steps = jax.tree.map(lambda m, v: η * m / (jnp.sqrt(v) + ϵ), mu, nu_max)
        return steps, AMSGradState(mu, nu, nu_max)

    return optax.GradientTransformation(init, update)


def adagrad(η, ϵ) -> optax.GradientTransformation:
    """Flux's ADAGrad: ``a`` starts at ``ϵ``, ``a += g²``, step ``η g / (√a + ϵ)``."""

    def init(params):
        return AccumulatorState(_filled(params, ϵ))

    def update(g, state, params=None):
        acc = jax.tree.map(lambda a, g: a + g**2, state.sum_of_squares, g)
        steps = jax.tree.map(lambda g, a: η * g / (jnp.sqrt(a) + ϵ), g, acc)
        return steps, AccumulatorState(acc)

    return optax.GradientTransformation(init, update)


def radam(η, β1, β2, ϵ) -> optax.GradientTransformation:
    """Flux's RADAM: Adam times the rectifier ``r`` while ``ρ > 4``, else ``η m̂`` alone."""
    ρ_inf = 2 / (1 - β2) - 1

    def init(params):
        return MomentsState(jnp.zeros([], jnp.int32), _zeros(params), _zeros(params))

    def update(g, state, params=None):
        mu, nu = _moment(g, state.mu, β1), _moment(g, state.nu, β2, 2)
        t, c1, c2 = _powers(state.count, β1, β2)
        ρ = ρ_inf - 2 * t * (1 - c2) / c2
        rectified = ρ > 4
        ρ_safe = jnp.where(rectified, ρ, 5.0)  # keeps the unused branch finite
        r = jnp.sqrt((ρ_safe - 4) * (ρ_safe - 2) * ρ_inf / ((ρ_inf - 4) * (ρ_inf - 2) * ρ_safe))

        def step(m, v):
            adam = m / c1 / (jnp.sqrt(v / c2) + ϵ) * η * r
            return jnp.where(rectified, adam, m / c1 * η)

        return jax.tree.map(step, mu, nu), MomentsState(state.count + 1, mu, nu)

    return optax.GradientTransformation(init, update)


def oadam(η, β1, β2, ϵ) -> optax.GradientTransformation:
    """Optimisers.jl's OAdam: ``2 aₜ - aₜ₋₁`` with ``aₜ`` Adam's step and ``a₀ = 0``."""

    def init(params):
        z = _zeros(params)
        return OptimisticState(jnp.zeros([], jnp.int32), z, _zeros(params), _zeros(params))

    def update(g, state, params=None):
        mu, nu = _moment(g, state.mu, β1), _moment(g, state.nu, β2, 2)
        _, c1, c2 = _powers(state.count, β1, β2)
        term = jax.tree.map(lambda m, v: η * m / c1 / (jnp.sqrt(v / c2) + ϵ), mu, nu)
        steps = jax.tree.map(lambda new, old: 2 * new - old, term, state.term)
        return steps, OptimisticState(state.count + 1, mu, nu, term)

    return optax.GradientTransformation(init, update)
