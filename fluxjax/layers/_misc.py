"""Small layers from Flux v0.9's ``basic.jl``: ``Diagonal``, ``Maxout``,
``SkipConnection``; and ``normalise``."""

from __future__ import annotations

import numbers
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import jax.numpy as jnp

from ..tracker import Tracked, param, track
from ._basic import _name
from ._checks import sizes
from ._treelike import register

_maximum = track(jnp.maximum)


@track
def normalise(x, axis=-1):
    """normalise(x, axis=-1) = (x - mean(x)) / std(x) along ``axis`` (the feature axis).

    The standard deviation is the uncorrected one (divided by ``n``), with no ε, as in
    Flux v0.9.

    >>> import jax.numpy as jnp
    >>> normalise(jnp.array([[1.0, 2.0, 3.0]])).round(4).tolist()
    [[-1.2247, 0.0, 1.2247]]
    """
    μ = jnp.mean(x, axis=axis, keepdims=True)
    return (x - μ) / jnp.std(x, axis=axis, keepdims=True)


@dataclass(eq=False, repr=False, init=False)
class Diagonal:
    """Diagonal(n; initα=ones, initβ=zeros)
    Diagonal(α, β)

    An elementwise affine layer: ``y = α * x + β``, with trainable ``α`` and ``β`` of
    shape ``(n,)``, broadcast along the last (feature) axis.

    >>> import jax.numpy as jnp
    >>> d = Diagonal(2)
    >>> d, d(jnp.array([[1.0, 2.0], [3.0, 4.0]])).tolist()
    (Diagonal(2), [[1.0, 2.0], [3.0, 4.0]])
    """

    α: Any
    β: Any

    def __init__(self, n, β=None, *, initα=jnp.ones, initβ=jnp.zeros):
        if isinstance(n, numbers.Integral):
            sizes("Diagonal", n=n)
            self.α = param(initα(int(n), jnp.float32))
            self.β = param(initβ(int(n), jnp.float32))
        else:
            self.α = n if isinstance(n, Tracked) else param(n)
            self.β = β if isinstance(β, Tracked) else param(β)

    def __call__(self, x):
        n = self.α.shape[-1]
        if hasattr(x, "shape") and x.shape and x.shape[-1] not in (1, n):
            raise ValueError(f"{self!r}: expected input of size {n} (last axis), got {x.shape}")
        return self.α * x + self.β

    def __repr__(self):
        return f"Diagonal({self.α.shape[-1]})"


@dataclass(eq=False, repr=False, init=False)
class Maxout:
    """Maxout(make, n)
    Maxout(layers)

    The elementwise maximum of several layers applied to the same input (Goodfellow et
    al. 2013). ``make`` is a zero-argument function returning a layer, called ``n``
    times; or give the tuple of callables ``layers`` directly. Field ``over``.

    >>> import jax.numpy as jnp
    >>> from fluxjax.layers import Dense
    >>> m = Maxout(lambda: Dense(3, 2), 4)
    >>> m, m(jnp.ones((5, 3))).shape
    (Maxout(Dense(3, 2), 4), (5, 2))
    >>> Maxout((lambda x: x, lambda x: 2 * x))(jnp.array([1.0, -1.0])).tolist()
    [2.0, -1.0]
    """

    over: tuple

    def __init__(self, make, n=None):
        self.over = tuple(make) if n is None else tuple(make() for _ in range(int(n)))
        if not self.over:
            raise ValueError("Maxout needs at least one layer")

    def __call__(self, x):
        y = self.over[0](x)
        for f in self.over[1:]:
            y = _maximum(y, f(x))
        return y

    def __repr__(self):
        names = [_name(f) for f in self.over]
        if len(set(names)) == 1:
            return f"Maxout({names[0]}, {len(names)})"
        return f"Maxout(({', '.join(names)}))"


@dataclass(eq=False, repr=False, init=False)
class SkipConnection:
    """SkipConnection(layer, connect)

    ``connect(layer(x), x)``: a residual block when ``connect`` adds, a concatenation
    when it stacks. Fields ``layers``, ``connection``.

    >>> import jax.numpy as jnp
    >>> from fluxjax.layers import Dense
    >>> s = SkipConnection(Dense(3, 3), lambda a, b: a + b)
    >>> s(jnp.ones((2, 3))).shape
    (2, 3)
    """

    layers: Any
    connection: Callable

    def __init__(self, layers, connection):
        self.layers, self.connection = layers, connection

    def __call__(self, x):
        return self.connection(self.layers(x), x)

    def __repr__(self):
        return f"SkipConnection({_name(self.layers)}, {_name(self.connection)})"


register(Diagonal)
register(Maxout, attr="over")
register(SkipConnection)
