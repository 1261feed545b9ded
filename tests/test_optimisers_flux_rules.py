"""Flux v0.9's and Optimisers.jl's rules written out in NumPy (float64), five steps each,
at gradient scales 1 and 1e-3: NADAM, AMSGrad, ADAGrad (where optax differs), RADAM,
OADAM, AdaBelief and Lion. Each oracle returns the step Δ with ``x -= Δ``."""

import jax.numpy as jnp
import numpy as np
import pytest
from _tol import assert_close

import fluxjax as fj
from fluxjax.tracker import param
from fluxjax.train import NADAM, OADAM, RADAM, AdaBelief, ADAGrad, AMSGrad, Lion, update_

ϵ = 1e-8


def nadam(η, β):  # Flux v0.9 apply!(::NADAM)
    b1, b2 = β
    s = {"β1p": b1, "β2p": b2}

    def step(g):
        s["m"] = b1 * s.get("m", 0 * g) + (1 - b1) * g
        s["v"] = b2 * s.get("v", 0 * g) + (1 - b2) * g**2
        num = b1 * s["m"] / (1 - b1 * s["β1p"]) + (1 - b1) * g / (1 - s["β1p"])
        Δ = num / (np.sqrt(s["v"] * b2 / (1 - s["β2p"])) + ϵ) * η
        s["β1p"], s["β2p"] = s["β1p"] * b1, s["β2p"] * b2
        return Δ

    return step


def amsgrad(η, β):  # Flux v0.9: every moment starts at ϵ
    b1, b2 = β
    s = {}

    def step(g):
        s["m"] = b1 * s.get("m", np.full_like(g, ϵ)) + (1 - b1) * g
        s["v"] = b2 * s.get("v", np.full_like(g, ϵ)) + (1 - b2) * g**2
        s["v̂"] = np.maximum(s.get("v̂", np.full_like(g, ϵ)), s["v"])
        return η * s["m"] / (np.sqrt(s["v̂"]) + ϵ)

    return step


def adagrad(η):  # Flux v0.9: acc starts at ϵ, ϵ outside the root
    s = {}

    def step(g):
        s["a"] = s.get("a", np.full_like(g, ϵ)) + g**2
        return g * η / (np.sqrt(s["a"]) + ϵ)

    return step


def radam(η, β):  # Flux v0.9 apply!(::RADAM)
    b1, b2 = β
    ρ_inf = 2 / (1 - b2) - 1
    s = {"βp": [b1, b2], "t": 1}

    def step(g):
        s["m"] = b1 * s.get("m", 0 * g) + (1 - b1) * g
        s["v"] = b2 * s.get("v", 0 * g) + (1 - b2) * g**2
        (p1, p2), t = s["βp"], s["t"]
        ρ = ρ_inf - 2 * t * p2 / (1 - p2)
        if ρ > 4:
            r = np.sqrt((ρ - 4) * (ρ - 2) * ρ_inf / ((ρ_inf - 4) * (ρ_inf - 2) * ρ))
            Δ = s["m"] / (1 - p1) / (np.sqrt(s["v"] / (1 - p2)) + ϵ) * η * r
        else:
            Δ = s["m"] / (1 - p1) * η
        s["βp"], s["t"] = [p1 * b1, p2 * b2], t + 1
        return Δ

    return step


def oadam(η, β):  # Optimisers.jl apply!(::OAdam)
    b1, b2 = β
    s = {"βt": [b1, b2]}

    def step(g):
        s["m"] = b1 * s.get("m", 0 * g) + (1 - b1) * g
        s["v"] = b2 * s.get("v", 0 * g) + (1 - b2) * g**2
        prev = s.get("term", 0 * g)
        p1, p2 = s["βt"]
        s["term"] = η * s["m"] / (1 - p1) / (np.sqrt(s["v"] / (1 - p2)) + ϵ)
        s["βt"] = [p1 * b1, p2 * b2]
        return 2 * s["term"] - prev

    return step


def adabelief(η, β, eps):  # Optimisers.jl apply!(::AdaBelief)
    b1, b2 = β
    s = {"βt": [b1, b2]}

    def step(g):
        s["m"] = b1 * s.get("m", 0 * g) + (1 - b1) * g
        s["s"] = b2 * s.get("s", 0 * g) + (1 - b2) * (g - s["m"]) ** 2 + eps
        p1, p2 = s["βt"]
        s["βt"] = [p1 * b1, p2 * b2]
        return η * s["m"] / (1 - p1) / (np.sqrt(s["s"] / (1 - p2)) + eps)

    return step


def lion(η, β):  # Chen et al. 2023, Algorithm 2 (no weight decay)
    b1, b2 = β
    s = {}

    def step(g):
        m = s.get("m", 0 * g)
        c = b1 * m + (1 - b1) * g
        s["m"] = b2 * m + (1 - b2) * g
        return η * np.sign(c)

    return step


CASES = [
    (lambda: NADAM(0.01), lambda: nadam(0.01, (0.9, 0.999))),
    (lambda: NADAM(0.01, (0.8, 0.99)), lambda: nadam(0.01, (0.8, 0.99))),
    (lambda: AMSGrad(0.01), lambda: amsgrad(0.01, (0.9, 0.999))),
    (lambda: ADAGrad(0.1), lambda: adagrad(0.1)),
    (lambda: RADAM(0.01), lambda: radam(0.01, (0.9, 0.999))),
    (lambda: RADAM(0.01, (0.9, 0.6)), lambda: radam(0.01, (0.9, 0.6))),  # rectifies at step 2
    (lambda: OADAM(0.01), lambda: oadam(0.01, (0.5, 0.9))),
    (lambda: AdaBelief(0.01), lambda: adabelief(0.01, (0.9, 0.999), 1e-16)),
    (lambda: Lion(0.01), lambda: lion(0.01, (0.9, 0.999))),
]


@pytest.mark.parametrize("scale", [1.0, 1e-3])
@pytest.mark.parametrize("make, oracle", CASES, ids=[repr(make()) for make, _ in CASES])
def test_five_steps_follow_the_rule(make, oracle, scale):
    rng = np.random.default_rng(3)
    x0 = rng.standard_normal(8).astype(np.float32)
    W, opt, rule = param(x0), make(), oracle()
    x = x0.astype(np.float64)
    for n in range(5):
        g = (scale * rng.standard_normal(8)).astype(np.float32)
        update_(opt, W, jnp.asarray(g))
        x = x - rule(g.astype(np.float64))
        assert_close(W.data, x, rtol=2e-6, atol=1e-7, err_msg=f"{opt!r}, step {n + 1}")


def test_the_first_oadam_step_is_twice_adams():
    W, g = param(np.ones(3, np.float32)), jnp.array([0.5, -2.0, 1e-3])
    update_(OADAM(0.01), W, g)
    assert_close(W.data, 1 - 2 * 0.01 * np.asarray(g) / (np.abs(np.asarray(g)) + ϵ))


def test_radam_rectifies_only_after_rho_passes_4():
    # default β₂ = 0.999: ρ₄ ≈ 3.997, ρ₅ ≈ 4.996: four steps of momentum alone, then Adam's
    ρ_inf = 2 / (1 - 0.999) - 1
    ρ = [ρ_inf - 2 * t * 0.999**t / (1 - 0.999**t) for t in range(1, 6)]
    assert [r > 4 for r in ρ] == [False] * 4 + [True]
    W, opt = param(np.zeros(1, np.float32)), RADAM(0.01)
    for _ in range(4):
        update_(opt, W, jnp.array([2.0]))  # a constant gradient: m̂ = g
    assert_close(W.data, [-4 * 0.01 * 2.0])  # η m̂, no division by √v̂
    update_(opt, W, jnp.array([2.0]))
    r = np.sqrt((ρ[4] - 4) * (ρ[4] - 2) * ρ_inf / ((ρ_inf - 4) * (ρ_inf - 2) * ρ[4]))
    assert_close(W.data, [-4 * 0.01 * 2.0 - 0.01 * r * 2.0 / (2.0 + ϵ)])


def test_defaults_and_top_level_names():
    assert repr(RADAM()) == "RADAM(0.001, (0.9, 0.999))"
    assert repr(OADAM()) == "OADAM(0.001, (0.5, 0.9))"
    assert repr(AdaBelief()) == "AdaBelief(0.001, (0.9, 0.999), 1e-16)"
    assert repr(Lion()) == "Lion(0.001, (0.9, 0.999))"
    for name in ("RADAM", "OADAM", "AdaBelief", "Lion"):
        assert getattr(fj, name) is getattr(fj.train, name) and name in fj.__all__
