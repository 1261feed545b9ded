"""Walking model trees: ``params``, ``fmap``, ``gpu``/``cpu``, ``f32``/``f64``, ``loadparams_``.

``params`` uses the one walk of ``_walk`` (the same one ``save``/``load`` use): treelike
objects, containers, other pytrees, and functions' attributes and closure cells, each
object once by identity.
"""

from __future__ import annotations

import types

import jax
import jax.numpy as jnp
import numpy as np

from .. import tracker
from ..tracker import Params, Tracked, data, param
from ._treelike import items, rebuilt
from ._walk import ATOMS, is_filled, is_param, walk


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
        if isinstance(x, Tracked):
            new = f(data(x)) if f is data else _leaf_like(x, f(data(x)))
        elif isinstance(x, (jax.Array, np.ndarray)):
            new = f(x)
        elif items(x) is not None:
            return rebuilt(x, visit, memo)  # rebuilt puts the copy in memo first
        elif isinstance(x, list):
            new = memo[id(x)] = []
            new.extend(visit(v) for v in x)
        elif isinstance(x, tuple):
            new = type(x)(*map(visit, x)) if hasattr(x, "_fields") else tuple(map(visit, x))
        elif isinstance(x, dict):
            new = type(x)((k, visit(v)) for k, v in x.items())
        elif x is None or isinstance(x, ATOMS):
            return x
        elif isinstance(x, types.FunctionType):
            return _rebuilt_function(x, visit, memo) if _holds_arrays(x) else x
        elif isinstance(x, types.MethodType):
            new = types.MethodType(x.__func__, visit(x.__self__)) if _holds_arrays(x) else x
        else:
            kids, tree = jax.tree_util.tree_flatten(x, is_leaf=lambda y: y is not x)
            is_node = not (len(kids) == 1 and kids[0] is x)
            new = tree.unflatten([visit(k) for k in kids]) if is_node else x
        memo[id(x)] = new
        return new

    return visit(model)


def _leaf_like(old, value):
    """A new leaf of ``old``'s kind holding ``value``: a param, or a state leaf."""
    return param(value) if getattr(old, "trainable", True) else tracker.state(value)


def _holds_arrays(fn) -> bool:
    return any(isinstance(f.value, (Tracked, jax.Array, np.ndarray)) for f in walk(fn))


def _rebuilt_function(fn, visit, memo):
    """A copy of ``fn`` whose closure cells and attributes hold ``visit``ed values."""
    cells = tuple(types.CellType() for _ in fn.__closure__ or ())
    new = types.FunctionType(fn.__code__, fn.__globals__, fn.__name__, fn.__defaults__, cells)
    memo[id(fn)] = new  # before the values: a closure may reach itself
    for cell, old in zip(cells, fn.__closure__ or (), strict=True):
        if is_filled(old):
            cell.cell_contents = visit(old.cell_contents)
    new.__kwdefaults__, new.__qualname__ = fn.__kwdefaults__, fn.__qualname__
    new.__doc__, new.__module__ = fn.__doc__, fn.__module__
    new.__dict__.update({k: visit(v) for k, v in vars(fn).items()})
    return new


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
