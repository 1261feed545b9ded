"""ExpDecay and InvDecay step by step against hand-computed sequences (Flux's rules)."""

import jax.numpy as jnp
import numpy as np

from fluxjax.tracker import param
from fluxjax.train import Descent, ExpDecay, InvDecay, Optimiser, update_


def scales(opt, n):
    """The factor the schedule applies to a gradient of ones at steps 1..n."""
    state, out = opt.piece.init(jnp.zeros(1)), []
    for _ in range(n):
        step, state = opt.piece.update(jnp.ones(1), state)
        out.append(float(step[0]))
    return out


def test_expdecay_fluxs_own_test():
    # Flux's test: ExpDecay(0.2, 0.5, 1, 1e-3) gives max(0.2 * 0.5^n, 1e-3) at step n
    expected = [max(0.2 * 0.5**n, 1e-3) for n in range(1, 9)]
    np.testing.assert_allclose(scales(ExpDecay(0.2, 0.5, 1, 1e-3), 8), expected, rtol=1e-6)


def test_expdecay_decays_every_decay_step_steps_down_to_clip():
    # η = 1 halves at steps 3, 6, 9, 12 (every 3 steps) and never goes below 0.1
    expected = [1, 1, 0.5, 0.5, 0.5, 0.25, 0.25, 0.25, 0.125, 0.125, 0.125, 0.1, 0.1]
    np.testing.assert_allclose(scales(ExpDecay(1.0, 0.5, 3, 0.1), 13), expected, rtol=1e-6)


def test_expdecay_through_update_moves_a_param_by_the_rate():
    opt = Optimiser(ExpDecay(1.0, 0.5, 2, 0.3), Descent(1.0))
    p = param(jnp.zeros(1))
    values = []
    for _ in range(6):
        update_(opt, p, jnp.ones(1))
        values.append(float(p.data[0]))
    rates = [1.0, 0.5, 0.5, 0.3, 0.3, 0.3]  # 0.25 at steps 4 and 5 is clipped to 0.3
    np.testing.assert_allclose(values, -np.cumsum(rates), rtol=1e-6)


def test_invdecay_scales_step_n_by_one_over_one_plus_gamma_n():
    expected = [1 / (1 + 0.5 * n) for n in range(1, 6)]
    np.testing.assert_allclose(scales(InvDecay(0.5), 5), expected, rtol=1e-6)
