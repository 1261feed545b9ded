"""Basic layers: ``Dense``, ``Chain``, ``compose`` and ``activations``."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import jax.numpy as jnp

from ..tracker import Tracked, param, track
from ._activations import identity
from ._checks import callable_arg, dense_shapes, looks_like_size, sizes
from ._display import html_table
from ._display import layer_name as _name
from ._random import draw, glorot_uniform, zeros
from ._treelike import register


@track
def _affine(W, b, x):
    return x.astype(W.dtype) @ W.T + b


@track
def _linear(W, x):
    return x.astype(W.dtype) @ W.T


@dataclass(eq=False, repr=False, init=False)
class Dense:
    """Dense(in, out, σ=identity, *, init=glorot_uniform, bias=True, key=None)
    Dense(W, b, σ=identity)

    A fully connected layer: ``y = σ(x @ W.T + b)``, with ``W`` of shape ``(out, in)``
    and ``b`` of shape ``(out,)``, both ``param``s (float32 unless ``init`` says
    otherwise). Inputs are batch first, ``(in,)`` or ``(..., in)``, and converted to
    ``W``'s dtype. ``init(key, shape, dtype)`` follows ``jax.nn.initializers`` (note
    ``W`` is ``(out, in)``: pass ``in_axis=-1, out_axis=-2`` to fan-based ones); ``key``
    defaults to the global stream (see ``seed``). With ``bias=False`` (or ``b=False``)
    the field ``b`` is ``False``, not trainable, and nothing is added. Sizes (ints ≥ 1)
    and ``W``/``b`` shapes are checked here, not at the first call.

    >>> import jax.numpy as jnp, numpy as np
    >>> from fluxjax.layers import σ
    >>> d = Dense(10, 5, σ)
    >>> d
    Dense(10, 5, σ)
    >>> d(jnp.ones(10)).shape, d(jnp.ones((3, 10))).shape
    ((5,), (3, 5))
    >>> np.asarray(Dense(jnp.ones((2, 3)), jnp.zeros(2))(jnp.ones(3))).tolist()
    [3.0, 3.0]
    """

    W: Any
    b: Any
    σ: Callable = identity

    def __init__(self, in_or_W, out_or_b, σ=identity, *, init=glorot_uniform, bias=True, key=None):
        callable_arg("Dense", "σ", σ, "; sizes come first: Dense(in, out, σ)")
        b_given = out_or_b is None or out_or_b is False or not looks_like_size(out_or_b)
        if looks_like_size(in_or_W) or not b_given:
            n_in, n_out = sizes("Dense", n_in=in_or_W, n_out=out_or_b)
            callable_arg("Dense", "init", init, " such as glorot_uniform")
            W = param(draw(init, key, (n_out, n_in), jnp.float32))
            b = param(zeros(n_out, W.dtype)) if bias else False
        else:
            W, b = _as_param(in_or_W), out_or_b
            b = False if b is None or b is False else _as_param(b)
            dense_shapes(W, b)
        self.W, self.b, self.σ = W, b, σ

    def __call__(self, x):
        W, b = self.W, self.b
        if not hasattr(x, "shape"):
            x = jnp.asarray(x)
        if x.ndim == 0 or x.shape[-1] != W.shape[1]:
            got = "a scalar" if x.ndim == 0 else x.shape[-1]
            raise ValueError(f"{self!r}: expected input of size {W.shape[1]}, got {got}")
        y = _linear(W, x) if b is False else _affine(W, b, x)
        return y if self.σ is identity else self.σ(y)

    def __repr__(self):
        out, n_in = self.W.shape
        extra = "" if self.σ is identity else f", {_name(self.σ)}"
        extra += ", bias=False" if self.b is False else ""
        return f"Dense({n_in}, {out}{extra})"

    def _out_size(self):
        return self.W.shape[0]

    def _repr_html_(self):
        return html_table(self)


def _as_param(x):
    return x if isinstance(x, Tracked) else param(x)


@dataclass(eq=False, repr=False, init=False)
class Chain:
    """Chain(*layers)

    Applies ``layers`` left to right: ``Chain(f, g)(x) == g(f(x))``. Any callable is a
    layer. ``c[i]`` is a layer, ``c[i:j]`` a ``Chain``; ``len(c)`` and iteration work.
    A ``ValueError`` or ``TypeError`` inside names the layer's (0-based) position.

    >>> import jax.numpy as jnp
    >>> from fluxjax.layers import σ, softmax
    >>> m = Chain(Dense(10, 5, σ), Dense(5, 2), softmax)
    >>> m
    Chain(Dense(10, 5, σ), Dense(5, 2), softmax)
    >>> round(float(m(jnp.ones(10)).sum()), 5)
    1.0
    >>> Chain(lambda x: x**2, lambda x: x + 1)(5)
    26
    """

    layers: tuple

    def __init__(self, *layers):
        for i, layer in enumerate(layers):
            callable_arg("Chain", f"layer {i}", layer)
        self.layers = tuple(layers)

    def __call__(self, x):
        for i, layer in enumerate(self.layers):
            try:
                x = layer(x)
            except (ValueError, TypeError) as e:
                if type(e) not in (ValueError, TypeError):
                    raise  # a subclass may not take a plain message
                raise type(e)(_located(e, i, layer)) from e
        return x

    def __getitem__(self, i):
        return Chain(*self.layers[i]) if isinstance(i, slice) else self.layers[i]

    def __len__(self):
        return len(self.layers)

    def __iter__(self):
        return iter(self.layers)

    def __repr__(self):
        return f"Chain({', '.join(map(_name, self.layers))})"

    def _sublayers(self):
        return self.layers

    def _repr_html_(self):
        return html_table(self)


def _located(e, i, layer) -> str:
    """The message of ``e`` prefixed with where in the chain it happened."""
    msg, name = str(e), _name(layer)
    if msg.startswith(f"{name}: "):
        msg = msg[len(name) + 2 :]
    return f"Chain layer {i}, {name}: {msg}"


@dataclass(eq=False, repr=False, init=False)
class Composed:
    """The function ``x ↦ f(g(...(x)))`` made by ``compose(f, g, ...)``."""

    fs: tuple

    def __init__(self, *fs):
        self.fs = tuple(fs)

    def __call__(self, x):
        for f in reversed(self.fs):
            x = f(x)
        return x

    def __repr__(self):
        return f"compose({', '.join(map(_name, self.fs))})"


def compose(*fs) -> Composed:
    """compose(f, g, ...) -> x ↦ f(g(...(x)))

    Flux's ``f ∘ g``. The result is treelike, so ``params`` and ``gpu`` reach inside.

    >>> import jax.numpy as jnp
    >>> from fluxjax.layers import σ
    >>> m = compose(Dense(5, 2), Dense(10, 5, σ))
    >>> m(jnp.ones(10)).shape
    (2,)
    """
    return Composed(*fs)


def activations(c: Chain, x) -> list:
    """activations(c, x) -> [y1, y2, ...], the output of every layer of chain ``c``.

    >>> import jax.numpy as jnp
    >>> [y.shape for y in activations(Chain(Dense(4, 3), Dense(3, 2)), jnp.ones(4))]
    [(3,), (2,)]
    """
    outs = []
    for layer in c:
        x = layer(x)
        outs.append(x)
    return outs


register(Dense)
register(Chain, attr="layers")
register(Composed, attr="fs")
