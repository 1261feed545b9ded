"""Walking model trees: ``params``, ``fmap``, ``gpu``/``cpu``, ``f32``/``f64``, ``loadparams_``.

Both are short uses of the one model walk (``_walk``): ``params`` of ``walk`` (the same
one ``save``/``load`` use), ``fmap`` of ``mapchildren``: treelike objects, containers,
other pytrees, and functions' attributes and closure cells, each object once by identity.
"""

from __future__ import annotations

import types

import jax
import jax.numpy as jnp
import numpy as np

from .. import tracker
from ..tracker import Params, Tracked, data, param
from ._opaque import ATOMS
from ._walk import is_param, mapchildren, walk


def params(*models) -> Params:
    """params(*models) -> Params

    Every tracked leaf (``param``) inside ``models``, depth first, each shared leaf once.

    >>> from fluxjax.layers import Chain, Dense
    >>> d = Dense(10, 5)
    >>> [p.shape for p in params(d)], len(params(Chain(d, d)))
    ([(5, 10), (5,)], 2)
    """
    found = Params(f.value for f in walk(*models) if is_param(f.value))
    return found if len(found) else NoneFound()


class NoneFound(Params):
    """What ``params`` returns when it finds none: an empty ``Params`` that ``train_`` tells
    from an explicit ``Params([])`` (Flux's callback-test idiom, which trains nothing)."""

    __slots__ = ()


def fmap(f, model):
    """fmap(f, model) -> a new model with ``f`` applied to every array leaf.

    Params map to new params, ``param(f(data(p)))``, so the result stays trainable;
    ``fmap(data, model)`` is the exception, as in Flux (``mapleaves(Tracker.data, m)``):
    a copy holding plain arrays, which ``params`` does not find.
    Leaves (and sub-models) shared in ``model`` are mapped once and stay shared.
    A function holding arrays in its closure or attributes (the seed's ``linear``) is
    copied with mapped values, a bound method is bound to the mapped object, so what
    ``params`` finds is mapped; other functions and non-array values are kept as they are.

    >>> import jax.numpy as jnp
    >>> from fluxjax.layers import Dense
    >>> d = Dense(10, 5)
    >>> d2 = fmap(jnp.zeros_like, d)
    >>> type(d2).__name__, float(abs(d2.W.data).sum()), d2.W is d.W
    ('Dense', 0.0, False)
    """
    memo = {}

    def visit(x):
        if id(x) in memo:
            return memo[id(x)]
        if x is None or isinstance(x, ATOMS):
            return x
        if isinstance(x, (Tracked, jax.Array, np.ndarray)):
            memo[id(x)] = _mapped_leaf(f, x)
            return memo[id(x)]
        if isinstance(x, (types.FunctionType, types.MethodType)) and not _holds_arrays(x):
            return x  # a function with no arrays inside is kept, not copied
        return mapchildren(visit, x, memo)

    return visit(model)


def _mapped_leaf(f, x):
    """``f`` of an array leaf; a tracked leaf maps to a new one of its kind (a param, or a
    state leaf), except under ``fmap(data, ...)``, which gives the plain array."""
    if not isinstance(x, Tracked) or f is data:
        return f(x)
    return param(f(x.data)) if getattr(x, "trainable", True) else tracker.state(f(x.data))


def _holds_arrays(fn) -> bool:
    return any(isinstance(f.value, (Tracked, jax.Array, np.ndarray)) for f in walk(fn))


def _checked_array(i, a, ps):
    """Array ``i`` given to ``loadparams_``, as a JAX array of real numbers."""
    a = data(a)
    kind = np.asarray(a).dtype if not isinstance(a, jax.Array) else a.dtype
    if not (jnp.issubdtype(kind, jnp.floating) or jnp.issubdtype(kind, jnp.integer)):
        raise TypeError(
            f"loadparams_: param {i} needs real numbers, got an array of {kind}"
            + ("" if i >= len(ps) else f" for the param of shape {tuple(ps[i].shape)}")
        )
    return jnp.asarray(a)


def _to(device):
    return lambda a: jax.device_put(a, device)


def gpu(x):
    """gpu(x) -> ``x`` (a model or an array) moved to the first GPU.

    Params stay params. Without a GPU, ``x`` itself is returned unchanged.

    >>> import jax.numpy as jnp
    >>> gpu(jnp.ones(2)).shape
    (2,)
    """
    try:
        devices = jax.devices("gpu")
    except RuntimeError:
        return x
    return fmap(_to(devices[0]), x) if devices else x


def cpu(x):
    """cpu(x) -> ``x`` (a model or an array) moved to the CPU; params stay params.

    >>> import jax.numpy as jnp
    >>> cpu(jnp.ones(2)).devices() == {jax.devices("cpu")[0]}
    True
    """
    return fmap(_to(jax.devices("cpu")[0]), x)


def _cast(dtype):
    def cast(a):
        return a.astype(dtype) if jnp.issubdtype(a.dtype, jnp.floating) else a

    return cast


def f32(x):
    """f32(x) -> ``x`` with every floating-point array leaf converted to float32.

    >>> import jax.numpy as jnp
    >>> f32(jnp.ones(2, jnp.float16)).dtype
    dtype('float32')
    """
    return fmap(_cast(jnp.float32), x)


def f64(x):
    """f64(x) -> ``x`` with every floating-point array leaf converted to float64.

    Needs JAX's 64-bit mode (``jax.config.update("jax_enable_x64", True)`` at start-up,
    or ``with jax.enable_x64(True):``); without it JAX would silently keep float32, so
    this raises ``RuntimeError`` instead.

    >>> import jax.numpy as jnp
    >>> with jax.enable_x64(True):
    ...     print(f64(jnp.ones(2)).dtype)
    float64
    """
    if not jax.config.jax_enable_x64:
        raise RuntimeError(
            "f64 needs JAX's 64-bit mode, which is off: call "
            'jax.config.update("jax_enable_x64", True) first (or use jax.enable_x64(True)).'
        )
    return fmap(_cast(jnp.float64), x)


def loadparams_(model, arrays):
    """loadparams_(model, arrays) -> model

    Copies ``arrays`` (any iterable of arrays or params, e.g. ``params(other)``) into
    ``params(model)`` in order, keeping each param's identity and dtype. A count or a
    shape mismatch raises ``ValueError`` before anything is changed.

    >>> import jax.numpy as jnp
    >>> from fluxjax.layers import Dense
    >>> d = loadparams_(Dense(2, 1), [jnp.ones((1, 2)), jnp.full(1, 3.0)])
    >>> d.W.data.tolist(), d.b.data.tolist()
    ([[1.0, 1.0]], [3.0])
    """
    ps = list(params(model))
    xs = [_checked_array(i, a, ps) for i, a in enumerate(arrays)]
    if len(ps) != len(xs):
        raise ValueError(
            f"loadparams_: the model has {len(ps)} params, got {len(xs)} arrays; pass one "
            f"array per param, in the order of params(model)"
        )
    for i, (p, a) in enumerate(zip(ps, xs, strict=True)):
        if tuple(a.shape) != tuple(p.shape):
            raise ValueError(
                f"loadparams_: param {i} has shape {tuple(p.shape)}, got {tuple(a.shape)}; "
                f"the arrays must follow the order of params(model)"
            )
    for p, a in zip(ps, xs, strict=True):
        p.data = a.astype(p.dtype)
    return model
