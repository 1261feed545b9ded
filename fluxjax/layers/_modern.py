"""Layers from Flux ≥ 0.12's ``basic.jl``: ``flatten``, ``Parallel``, ``Bilinear``.

Batch first: Flux's ``(features, batch…)`` is ``(batch…, features)`` here, so a
``Bilinear`` reads the last axis of each input.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import jax.numpy as jnp
import numpy as np

from ..tracker import Tracked, param, track
from ._activations import identity
from ._checks import callable_arg, sizes
from ._display import layer_name
from ._random import _on_device, draw, host_rng, zeros
from ._treelike import register


def flatten(x):
    """flatten(x) -> x reshaped to ``(n, ∏ rest)``, keeping the batch axis (row-major).

    Flux's ``flatten`` for batch-first arrays: ``x.reshape(x.shape[0], -1)``, the step
    between convolutions and ``Dense`` layers; it shows as ``flatten`` in a ``Chain``.

    >>> import jax.numpy as jnp
    >>> flatten(jnp.ones((5, 4, 4, 3))).shape
    (5, 48)
    """
    x = x if hasattr(x, "shape") else jnp.asarray(x)
    if len(x.shape) == 0:
        raise ValueError("flatten: expected an array with a batch axis, got a scalar")
    return x.reshape(x.shape[0], -1)


def _as_param(x):
    return x if isinstance(x, Tracked) else param(x)


@dataclass(eq=False, repr=False, init=False)
class Parallel:
    """Parallel(connection, *layers)

    Passes its input to every layer and combines the outputs:
    ``Parallel(f, a, b)(x) == f(a(x), b(x))``. Given as many inputs as layers (as separate
    arguments or one tuple), each layer gets its own: ``Parallel(f, a, b)(x, y) ==
    f(a(x), b(y))``. ``connection`` may be a layer itself. Fields ``connection``,
    ``layers``; ``p[i]`` and ``len(p)`` reach the layers.

    >>> import operator
    >>> import jax.numpy as jnp
    >>> from fluxjax.layers import Dense
    >>> p = Parallel(operator.add, Dense(3, 2), Dense(5, 2))
    >>> p
    Parallel(add, Dense(3, 2), Dense(5, 2))
    >>> p(jnp.ones((4, 3)), jnp.ones((4, 5))).shape
    (4, 2)
    """

    parts: tuple  # (connection, *layers): each one static or a child on its own

    def __init__(self, connection, *layers):
        callable_arg("Parallel", "connection", connection, "; write Parallel(connection, *layers)")
        for i, layer in enumerate(layers):
            callable_arg("Parallel", f"layer {i}", layer)
        self.parts = (connection, *layers)

    @property
    def connection(self):
        return self.parts[0]

    @property
    def layers(self) -> tuple:
        return self.parts[1:]

    def __call__(self, *xs):
        if len(xs) == 1 and isinstance(xs[0], tuple):
            xs = xs[0]
        layers = self.layers
        if len(xs) == 1:
            return self.connection(*(f(xs[0]) for f in layers))
        if len(xs) != len(layers):
            raise ValueError(
                f"{self!r}: with {len(layers)} layers it takes one input (for every layer) "
                f"or {len(layers)} inputs (one each), got {len(xs)}"
            )
        return self.connection(*(f(x) for f, x in zip(layers, xs)))

    def __getitem__(self, i):
        return self.layers[i]

    def __len__(self):
        return len(self.layers)

    def __repr__(self):
        return f"Parallel({', '.join(map(layer_name, self.parts))})"

    def _sublayers(self):
        return self.parts


@track
def _bilinear(W, x, y):
    return jnp.einsum("...i,oij,...j->...o", x.astype(W.dtype), W, y.astype(W.dtype))


def _fans_init(key, shape, dtype=jnp.float32):
    """Flux 0.14's ``glorot_uniform`` for ``(out, in1, in2)``: fans ``out·in1`` and
    ``out·in2``."""
    out, in1, in2 = shape
    limit = np.sqrt(6.0 / (out * (in1 + in2)))
    return _on_device(host_rng(key).uniform(-limit, limit, shape), dtype)


_fans_init.on_host = True


@dataclass(eq=False, repr=False, init=False)
class Bilinear:
    """Bilinear(in1, in2, out, σ=identity; bias=True, init=glorot_uniform, key=None)
    Bilinear(in, out, σ=identity; ...)
    Bilinear(weight, bias=True, σ=identity)

    ``z[o] = σ(Σᵢⱼ weight[o, i, j]·x[i]·y[j] + bias[o])`` along the last axis of ``x``
    and ``y`` (any matching batch axes before it). Called ``b(x, y)``, ``b((x, y))`` (as a
    ``Chain`` passes a tuple) or ``b(x) == b(x, x)``. Fields ``weight`` ``(out, in1,
    in2)``, ``bias`` ``(out,)`` (or ``False``), ``σ``.

    >>> import jax.numpy as jnp
    >>> b = Bilinear(5, 3, 7)
    >>> b, b.weight.shape, b(jnp.ones((32, 5)), jnp.ones((32, 3))).shape
    (Bilinear(5, 3, 7), (7, 5, 3), (32, 7))
    """

    weight: Any
    bias: Any
    σ: Callable = identity

    def __init__(self, *args, bias=True, init=_fans_init, key=None):
        if args and hasattr(args[0], "shape"):
            weight, b, σ = _from_weight(*args)
        else:
            n = next((i for i, a in enumerate(args) if callable(a)), len(args))
            dims, σ = args[:n], (args[n:] + (identity,))[0]
            if len(dims) not in (2, 3):
                raise TypeError("Bilinear: write Bilinear(in1, in2, out, σ) or Bilinear(in, out)")
            in1, in2, out = sizes("Bilinear", **dict(zip(("in1", "in2", "out"), _dims(dims))))
            weight, b = param(draw(init, key, (out, in1, in2), jnp.float32)), bias
        callable_arg("Bilinear", "σ", σ)
        out = weight.shape[0]
        if b is True:
            b = param(zeros(out, weight.dtype))
        elif b is not False and b is not None:
            b = _as_param(b)
            if tuple(b.shape) != (out,):
                raise ValueError(f"Bilinear: bias must have shape ({out},), got {b.shape}")
        self.weight, self.bias, self.σ = weight, (False if b is None else b), σ

    def __call__(self, x, y=None):
        if y is None:
            x, y = x if isinstance(x, tuple) else (x, x)
        x, y = (v if hasattr(v, "shape") else jnp.asarray(v) for v in (x, y))
        _, in1, in2 = self.weight.shape
        if x.shape[-1:] != (in1,) or y.shape[-1:] != (in2,) or x.shape[:-1] != y.shape[:-1]:
            raise ValueError(
                f"{self!r}: expected inputs (…, {in1}) and (…, {in2}) with the same batch "
                f"axes, got {tuple(x.shape)} and {tuple(y.shape)}"
            )
        z = _bilinear(self.weight, x, y)
        z = z if self.bias is False else z + self.bias
        return z if self.σ is identity else self.σ(z)

    def __repr__(self):
        out, in1, in2 = self.weight.shape
        s = f"Bilinear({in1}, {in2}, {out}"
        s += "" if self.σ is identity else f", {layer_name(self.σ)}"
        return s + (", bias=False)" if self.bias is False else ")")


def _from_weight(weight, b=True, σ=identity):
    weight = _as_param(weight)
    if len(weight.shape) != 3:
        raise ValueError(f"Bilinear: weight must be (out, in1, in2), got {tuple(weight.shape)}")
    return weight, b, σ


def _dims(dims):
    return (dims[0], dims[0], dims[1]) if len(dims) == 2 else dims


register(Parallel, attr="parts")
register(Bilinear)
