"""Recurrent cells (``RNNCell``, ``LSTMCell``, ``GRUCell``) and ``Recur``.

A cell is a pure step ``cell(h, x) -> (h′, y)`` whose initial state (``h``, and ``c``
for an LSTM) is a trainable param, as in Flux v0.9. Gates are stacked in one weight:
LSTM ``[input; forget; cell; output]`` (forget-gate bias starts at 1), GRU
``[reset; update; candidate]``. Every step is one lifted function.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import jax
import jax.numpy as jnp
import numpy as np

from ..tracker import param, track
from ._activations import tanh
from ._checks import sizes
from ._random import glorot_uniform, host_rng, next_key, zeros
from ._treelike import register


def _weights(init, key, n_in, n_out, gates):
    """``Wi``, ``Wh``, ``b``: a host initialiser draws all three from one NumPy generator
    (no compile), any other ``init`` gets three JAX keys split from ``key``."""
    if getattr(init, "on_host", False):
        kx = kh = kb = host_rng(key)
    else:
        kx, kh, kb = jax.random.split(next_key(key), 3)
    Wi = init(kx, (gates * n_out, n_in), jnp.float32)
    Wh = init(kh, (gates * n_out, n_out), jnp.float32)
    b = init(kb, (gates * n_out,), jnp.float32)  # Flux v0.9 draws the bias too
    return Wi, Wh, b


def _check(cell, x):
    n_in = cell.Wi.shape[1]
    if not hasattr(x, "shape") or not x.shape or x.shape[-1] != n_in:
        got = getattr(x, "shape", type(x).__name__)
        raise ValueError(f"{cell!r}: expected input of size {n_in} (last axis), got {got}")


# Each step's arithmetic takes the weights transposed, ``(in, gates·out)``: a cell step
# transposes them itself (``_step``); a loop over time transposes them once, before the
# loop (``_looped``: XLA:CPU multiplies by a transposed weight inside a loop ~10% slower).


def _pre(WiT, WhT, b, h, x):
    return x.astype(WiT.dtype) @ WiT + h @ WhT + b


def _lstm(WiT, WhT, b, h, c, x):
    g = jnp.split(_pre(WiT, WhT, b, h, x), 4, axis=-1)
    i, f, o = jax.nn.sigmoid(g[0]), jax.nn.sigmoid(g[1]), jax.nn.sigmoid(g[3])
    c = f * c + i * jnp.tanh(g[2])
    return o * jnp.tanh(c), c


def _gru(WiT, WhT, b, h, x):
    gx = jnp.split(x.astype(WiT.dtype) @ WiT, 3, axis=-1)
    gh, gb = jnp.split(h @ WhT, 3, axis=-1), jnp.split(b, 3)
    r = jax.nn.sigmoid(gx[0] + gh[0] + gb[0])
    z = jax.nn.sigmoid(gx[1] + gh[1] + gb[1])
    h̃ = jnp.tanh(gx[2] + r * gh[2] + gb[2])
    return (1 - z) * h̃ + z * h


def _step(math):
    """``math`` over the weights as a cell holds them, ``(gates·out, in)``: lifted."""
    return track(lambda Wi, Wh, *rest: math(Wi.T, Wh.T, *rest))


_transposed = track(lambda W: W.T)


def _looped(cell, math):
    """``step(h, x) -> (h′, y)``: ``cell``'s step for a loop over time, with its weights
    transposed once, now (``Recur`` calls this outside its ``lax.scan``)."""
    lifted, WiT, WhT = track(math), _transposed(cell.Wi), _transposed(cell.Wh)

    def step(h, x):
        _check(cell, x)
        return cell._advance(lifted, WiT, WhT, h, x)

    return step


_LIFTED = {_pre: _step(_pre), _lstm: _step(_lstm), _gru: _step(_gru)}


def _called(cell, math, h, x):
    """One step of ``cell`` (``cell(h, x)``), its weights as it holds them."""
    _check(cell, x)
    return cell._advance(_LIFTED[math], cell.Wi, cell.Wh, h, x)


@dataclass(eq=False, repr=False, init=False)
class RNNCell:
    """RNNCell(in, out, σ=tanh; init=glorot_uniform, key=None)

    ``h′ = σ(x @ Wi.T + h @ Wh.T + b)``, output ``h′``. Params ``Wi (out, in)``,
    ``Wh (out, out)``, ``b (out,)`` and the initial state ``h (out,)`` (zeros).

    >>> import jax.numpy as jnp
    >>> c = RNNCell(3, 2)
    >>> h, y = c(c.h, jnp.ones((5, 3)))
    >>> c, y.shape
    (RNNCell(3, 2), (5, 2))
    """

    Wi: Any
    Wh: Any
    b: Any
    h: Any
    σ: Callable = tanh

    def __init__(self, n_in, n_out, σ=tanh, *, init=glorot_uniform, key=None):
        sizes("RNNCell", n_in=n_in, n_out=n_out)
        Wi, Wh, b = _weights(init, key, n_in, n_out, 1)
        self.Wi, self.Wh, self.b = param(Wi), param(Wh), param(b)
        self.h, self.σ = param(zeros(n_out)), σ

    def hidden(self):
        return self.h

    def __call__(self, h, x):
        return _called(self, _pre, h, x)

    def looped(self):
        """``step(h, x) -> (h′, y)`` for a loop over time (weights transposed once)."""
        return _looped(self, _pre)

    def _advance(self, math, Wi, Wh, h, x):
        h = self.σ(math(Wi, Wh, self.b, h, x))
        return h, h

    def __repr__(self):
        σ = "" if self.σ is tanh else f", {getattr(self.σ, '__name__', repr(self.σ))}"
        return f"RNNCell({self.Wi.shape[1]}, {self.Wi.shape[0]}{σ})"


@dataclass(eq=False, repr=False, init=False)
class LSTMCell:
    """LSTMCell(in, out; init=glorot_uniform, key=None)

    Long short-term memory (Hochreiter & Schmidhuber 1997), Flux v0.9's form: with
    ``g = x @ Wi.T + h @ Wh.T + b`` split into input, forget, cell and output gates,
    ``c′ = σ(f)·c + σ(i)·tanh(g_c)``, ``h′ = σ(o)·tanh(c′)``; state ``(h, c)``. Params
    ``Wi (4·out, in)``, ``Wh (4·out, out)``, ``b (4·out,)`` (forget part 1), ``h``, ``c``.

    >>> import jax.numpy as jnp
    >>> c = LSTMCell(3, 2)
    >>> c.b.data[2:4].tolist(), c
    ([1.0, 1.0], LSTMCell(3, 2))
    """

    Wi: Any
    Wh: Any
    b: Any
    h: Any
    c: Any

    def __init__(self, n_in, n_out, *, init=glorot_uniform, key=None):
        sizes("LSTMCell", n_in=n_in, n_out=n_out)
        Wi, Wh, b = _weights(init, key, n_in, n_out, 4)
        self.Wi, self.Wh = param(Wi), param(Wh)
        b = np.array(b)  # a host copy: .at[].set would compile per shape
        b[n_out : 2 * n_out] = 1
        self.b = param(jax.device_put(b))
        self.h, self.c = param(zeros(n_out)), param(zeros(n_out))

    def hidden(self):
        return (self.h, self.c)

    def __call__(self, hc, x):
        return _called(self, _lstm, hc, x)

    def looped(self):
        """``step(h, x) -> (h′, y)`` for a loop over time (weights transposed once)."""
        return _looped(self, _lstm)

    def _advance(self, math, Wi, Wh, hc, x):
        h, c = math(Wi, Wh, self.b, *hc, x)
        return (h, c), h

    def __repr__(self):
        return f"LSTMCell({self.Wi.shape[1]}, {self.Wi.shape[0] // 4})"


@dataclass(eq=False, repr=False, init=False)
class GRUCell:
    """GRUCell(in, out; init=glorot_uniform, key=None)

    Gated recurrent unit (Cho et al. 2014), Flux v0.9's form: ``r = σ(x_r + h_r + b_r)``,
    ``z = σ(x_z + h_z + b_z)``, ``h̃ = tanh(x_h + r·h_h + b_h)``, ``h′ = (1 - z)·h̃ + z·h``
    where ``x_* = x @ Wi.T``, ``h_* = h @ Wh.T`` split in three. Params ``Wi (3·out, in)``,
    ``Wh (3·out, out)``, ``b (3·out,)``, ``h (out,)``.

    >>> GRUCell(3, 2)
    GRUCell(3, 2)
    """

    Wi: Any
    Wh: Any
    b: Any
    h: Any

    def __init__(self, n_in, n_out, *, init=glorot_uniform, key=None):
        sizes("GRUCell", n_in=n_in, n_out=n_out)
        Wi, Wh, b = _weights(init, key, n_in, n_out, 3)
        self.Wi, self.Wh, self.b = param(Wi), param(Wh), param(b)
        self.h = param(zeros(n_out))

    def hidden(self):
        return self.h

    def __call__(self, h, x):
        return _called(self, _gru, h, x)

    def looped(self):
        """``step(h, x) -> (h′, y)`` for a loop over time (weights transposed once)."""
        return _looped(self, _gru)

    def _advance(self, math, Wi, Wh, h, x):
        h = math(Wi, Wh, self.b, h, x)
        return h, h

    def __repr__(self):
        return f"GRUCell({self.Wi.shape[1]}, {self.Wi.shape[0] // 3})"


for _cls in (RNNCell, LSTMCell, GRUCell):
    register(_cls)
