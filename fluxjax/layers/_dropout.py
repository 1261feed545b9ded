"""Dropout layers: ``Dropout`` and ``AlphaDropout``.

Each layer owns its random stream: a PRNG key kept in a ``state`` leaf (as
``jax.random.key_data``), split on every active call, so the key advances in eager code
and inside compiled steps alike and every step draws a fresh mask. The first key comes
from the global stream (``seed``) or ``key=``.
"""

from __future__ import annotations

import numbers
from dataclasses import dataclass
from typing import Any

import jax
import jax.numpy as jnp

from ..tracker import data, state, static
from ._random import next_key
from ._stateful import write
from ._treelike import register

_SELU_λα = 1.0507009873554804934193349852946 * 1.6732632423543772848170429916717


def _new_stream(key):
    return state(jax.random.key_data(next_key(key)))


def _draw(layer):
    """``(key for this call, the stream's next key data)``: write the latter on success."""
    new, use = jax.random.split(jax.random.wrap_key_data(data(layer.key)))
    return use, jax.random.key_data(new)


def _check_p(name, p):
    if not isinstance(p, numbers.Real) or not 0 <= p <= 1:
        raise ValueError(f"{name}: p is a probability in [0, 1], got {p!r}")
    return float(p)


def _mask_shape(shape, dims):
    if dims is None:
        return tuple(shape)
    axes = {d % len(shape) for d in ((dims,) if isinstance(dims, int) else dims)}
    return tuple(n if i in axes else 1 for i, n in enumerate(shape))


@dataclass(eq=False, repr=False, init=False)
class Dropout:
    """Dropout(p; dims=None, key=None)

    While active, sets each entry of its input to 0 with probability ``p`` and scales the
    others by ``1 / (1 - p)`` (Srivastava et al. 2014); after ``testmode_`` it passes its
    input through. ``dims`` names the axes that get independent mask entries (an int or a
    tuple; ``None``, all axes); the mask is shared along the other axes, e.g.
    ``dims=-1`` drops the same features for every sample. Fields ``p``, ``dims``,
    ``active``, and ``key``, the state leaf of its random stream.

    >>> import jax.numpy as jnp
    >>> d = Dropout(0.5)
    >>> d, sorted(set(d(jnp.ones(100)).tolist()))
    (Dropout(0.5), [0.0, 2.0])
    """

    p: float
    dims: Any
    active: bool
    key: Any

    _has_mode = True

    def __init__(self, p, *, dims=None, key=None):
        self.p, self.active = _check_p("Dropout", p), True
        self.dims = dims if dims is None or isinstance(dims, int) else tuple(dims)
        self.key = _new_stream(key)

    def __call__(self, x):
        if not static(self, "active"):
            return x
        x = x if hasattr(x, "shape") else jnp.asarray(x)
        use, next_key = _draw(self)
        u = jax.random.uniform(use, _mask_shape(x.shape, self.dims))
        keep = 1 / (1 - self.p) if self.p < 1 else 0.0
        y = x * jnp.where(u >= self.p, keep, 0.0).astype(x.dtype)
        write(self, "key", next_key)
        return y

    def __repr__(self):
        dims = "" if self.dims is None else f", dims={self.dims}"
        return f"Dropout({self.p}{dims})"


@dataclass(eq=False, repr=False, init=False)
class AlphaDropout:
    """AlphaDropout(p; key=None)

    Dropout for self-normalising networks (Klambauer et al. 2017): while active, each
    entry is replaced with probability ``p`` by ``α′ = -λα`` (selu's limit at -∞), then
    ``y = A·x + B`` with ``A = ((1 - p)(1 + p·α′²))^(-1/2)`` and ``B = -A·α′·p``, which
    keeps a standard-normal input's mean 0 and variance 1. Identity after ``testmode_``.

    >>> import jax.numpy as jnp
    >>> AlphaDropout(0.2)(jnp.zeros(4)).shape
    (4,)
    """

    p: float
    active: bool
    key: Any

    _has_mode = True

    def __init__(self, p, *, key=None):
        self.p, self.active = _check_p("AlphaDropout", p), True
        self.key = _new_stream(key)

    def __call__(self, x):
        if not static(self, "active"):
            return x
        x = x if hasattr(x, "shape") else jnp.asarray(x)
        p, α = self.p, -_SELU_λα
        use, next_key = _draw(self)
        keep = (jax.random.uniform(use, tuple(x.shape)) >= p).astype(x.dtype)
        A = ((1 - p) * (1 + p * α**2)) ** -0.5 if p < 1 else 0.0
        y = (x * keep + (α * (1 - keep))) * A + (-A * α * p)
        write(self, "key", next_key)
        return y

    def __repr__(self):
        return f"AlphaDropout({self.p})"


register(Dropout)
register(AlphaDropout)
