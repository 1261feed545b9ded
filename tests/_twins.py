"""Pure ``jax.numpy`` twins of Flux v0.9's recurrent cells (the oracle of the recurrent
tests): ``w`` is the cell's params in order ``[Wi, Wh, b, initial state...]``, inputs are
batch first, gates in Flux's order."""

import jax
import jax.numpy as jnp

sig = jax.nn.sigmoid


def rnn_step(w, h, x):
    Wi, Wh, b = w[:3]
    return jnp.tanh(x @ Wi.T + h @ Wh.T + b)


def lstm_step(w, hc, x):
    Wi, Wh, b = w[:3]
    h, c = hc
    n = h.shape[-1]
    g = x @ Wi.T + h @ Wh.T + b
    i, f, cc, o = (g[..., k * n : (k + 1) * n] for k in range(4))  # Flux's gate order
    c = sig(f) * c + sig(i) * jnp.tanh(cc)
    return sig(o) * jnp.tanh(c), c


def gru_step(w, h, x):
    Wi, Wh, b = w[:3]
    n = h.shape[-1]
    gx, gh = x @ Wi.T, h @ Wh.T
    part = lambda a, k: a[..., k * n : (k + 1) * n]  # noqa: E731
    r = sig(part(gx, 0) + part(gh, 0) + part(b, 0))
    z = sig(part(gx, 1) + part(gh, 1) + part(b, 1))
    h̃ = jnp.tanh(part(gx, 2) + r * part(gh, 2) + part(b, 2))
    return (1 - z) * h̃ + z * h
