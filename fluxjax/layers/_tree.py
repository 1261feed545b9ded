"""Walking model trees: ``params``, ``fmap``, ``gpu``/``cpu``, ``f32``/``f64``, ``loadparams_``.

A model tree is made of treelike objects, lists, tuples, dicts, other JAX pytrees and
functions (whose attributes and closure cells are visited, so the seed's closure
``linear(in, out)`` exposes its params). Every walk remembers what it has seen by
identity: shared leaves are visited once and self-references end the walk.
"""

from __future__ import annotations

import types

import jax
import jax.numpy as jnp
import numpy as np

from ..tracker import Params, Tracked, data, param, state
from ._treelike import items, rebuilt

_ATOMS = (str, bytes, int, float, complex, bool, type, types.ModuleType)


def _children(x):
    """The values a walk visits below ``x``, in order."""
    pairs = items(x)
    if pairs is not None:
        return [v for _, v in pairs]
    if isinstance(x, (list, tuple, set, frozenset, Params)):
        return list(x)
    if isinstance(x, dict):
        return list(x.values())
    if isinstance(x, types.FunctionType):
        cells = [c.cell_contents for c in x.__closure__ or () if _filled(c)]
        return list(vars(x).values()) + cells
    kids = jax.tree_util.tree_leaves(x, is_leaf=lambda y: y is not x)
    return [] if len(kids) == 1 and kids[0] is x else kids


def _filled(cell) -> bool:
    try:
        cell.cell_contents  # noqa: B018
        return True
    except ValueError:  # an empty cell
        return False


def params(*models) -> Params:
    """params(*models) -> Params

    Every tracked leaf (``param``) inside ``models``, depth first, each shared leaf once.

    >>> from fluxjax.layers import Chain, Dense
    >>> d = Dense(10, 5)
    >>> [p.shape for p in params(d)], len(params(Chain(d, d)))
    ([(5, 10), (5,)], 2)
    """
    found, seen = [], set()
    stack = list(reversed(models))
    while stack:
        x = stack.pop()
        if id(x) in seen or x is None or isinstance(x, _ATOMS):
            continue
        seen.add(id(x))
        if isinstance(x, Tracked):
            if x.is_leaf and x.trainable:  # state(...) leaves are not params
                found.append(x)
        elif not isinstance(x, (jax.Array, np.ndarray)):
            stack.extend(reversed(_children(x)))
    return Params(found)


def fmap(f, model):
    """fmap(f, model) -> a new model with ``f`` applied to every array leaf.

    Params map to new params, ``param(f(data(p)))``, so the result stays trainable.
    Leaves (and sub-models) shared in ``model`` are mapped once and stay shared.
    Functions and other non-array values are kept as they are.

    >>> import jax.numpy as jnp
    >>> from fluxjax.layers import Dense
    >>> d = Dense(10, 5)
    >>> d2 = fmap(jnp.zeros_like, d)
    >>> type(d2).__name__, float(abs(d2.W.data).sum()), d2.W is d.W
    ('Dense', 0.0, False)
    """
    memo = {}

    def walk(x):
        if id(x) in memo:
            return memo[id(x)]
        if isinstance(x, Tracked):
            new = (param if x.trainable else state)(f(data(x)))
        elif isinstance(x, (jax.Array, np.ndarray)):
            new = f(x)
        elif items(x) is not None:
            return rebuilt(x, walk, memo)  # rebuilt puts the copy in memo first
        elif isinstance(x, list):
            new = memo[id(x)] = []
            new.extend(walk(v) for v in x)
        elif isinstance(x, tuple):
            new = type(x)(*map(walk, x)) if hasattr(x, "_fields") else tuple(map(walk, x))
        elif isinstance(x, dict):
            new = type(x)((k, walk(v)) for k, v in x.items())
        elif x is None or isinstance(x, _ATOMS) or isinstance(x, types.FunctionType):
            return x
        else:
            kids, tree = jax.tree_util.tree_flatten(x, is_leaf=lambda y: y is not x)
            is_node = not (len(kids) == 1 and kids[0] is x)
            new = tree.unflatten([walk(k) for k in kids]) if is_node else x
        memo[id(x)] = new
        return new

    return walk(model)


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
    ps, xs = list(params(model)), [jnp.asarray(data(a)) for a in arrays]
    if len(ps) != len(xs):
        raise ValueError(f"loadparams_: the model has {len(ps)} params, got {len(xs)} arrays")
    for i, (p, a) in enumerate(zip(ps, xs, strict=True)):
        if tuple(a.shape) != tuple(p.shape):
            raise ValueError(
                f"loadparams_: param {i} has shape {tuple(p.shape)}, got {tuple(a.shape)}"
            )
    for p, a in zip(ps, xs, strict=True):
        p.data = a.astype(p.dtype)
    return model
