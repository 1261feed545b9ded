"""treelike: make a class a JAX pytree whose tracked params stay params.

A registered object splits into *children* (fields holding arrays, params or other
trees) and *static* fields (functions, numbers, strings, None), which go into the
hashable aux data. Leaf params are flattened straight to their raw arrays (the aux data
records which fields they were) and come back as fresh ``param``s when unflattened with
concrete arrays; with tracers they stay raw, so under ``jax.jit``/``jax.grad`` a model is
plain JAX. Unflattening never calls ``__init__``.

An object rebuilt with tracers in its param fields (or with odd leaves, such as the
``None`` or ``True`` of a ``tree_map``) remembers which fields were params and children,
so a model built inside ``jax.jit`` (an optax step, say) comes out holding params again,
and a mask tree has the same structure as the model it was mapped from.
"""

from __future__ import annotations

import dataclasses
import enum
import numbers
import types

import jax
import numpy as np

from ..tracker import Tracked, param, state
from . import _habits as habits
from ._boxes import boxed, is_concrete

_STATIC, _CHILD, _PARAM, _STATE = 0, 1, 2, 3  # _STATE: a non-trainable state(...) leaf
_MARK = "__treelike_memory__"  # set only on objects rebuilt holding tracers or odd leaves
_NO_DICT: dict = {}
_SCALARS = (str, bytes, numbers.Number, enum.Enum, type)
_FUNCTIONS = (types.FunctionType, types.BuiltinFunctionType, types.MethodType)


class _Spec:
    """How to read and rebuild one registered class."""

    def __init__(self, cls, fields=None, attr=None):
        self.cls, self.fields, self.attr = cls, fields, attr  # attr: a sequence class
        self.names = None

    def items(self, obj):
        """(name, value) pairs of ``obj``: fields, attributes, or positions."""
        if self.attr is not None:
            return list(enumerate(getattr(obj, self.attr)))
        if self.names is None and dataclasses.is_dataclass(self.cls):
            self.names = tuple(f.name for f in dataclasses.fields(self.cls))
        d = getattr(obj, "__dict__", None)
        if self.names is None and d is not None:
            return [(n, v) for n, v in d.items() if n != _MARK]
        if self.names is None:  # a plain class with __slots__
            self.names = _slot_names(self.cls)
        if d is not None:  # the fast path: one dict read per field
            return [(n, d[n]) for n in self.names if n in d]
        return [(n, getattr(obj, n)) for n in self.names if hasattr(obj, n)]

    def fill(self, obj, names, values):
        """Sets ``values`` on a blank ``obj`` (made by ``object.__new__``)."""
        if self.attr is not None:
            object.__setattr__(obj, self.attr, tuple(values))
        else:
            for name, value in zip(names, values, strict=True):
                object.__setattr__(obj, name, value)
        return obj


def _slot_names(cls) -> tuple:
    names = []
    for k in reversed(cls.__mro__):
        slots = k.__dict__.get("__slots__", ())
        names += [slots] if isinstance(slots, str) else list(slots)
    return tuple(n for n in dict.fromkeys(names) if n not in ("__dict__", "__weakref__"))


_specs: dict[type, _Spec] = {}


class _ById:
    """Wraps an unhashable static value; equal only to a wrapper of the same object."""

    __slots__ = ("value",)

    def __init__(self, value):
        self.value = value

    def __eq__(self, other):
        return type(other) is _ById and other.value is self.value

    def __hash__(self):
        return id(self.value)


def _hashable(v):
    try:
        hash(v)
        return v
    except TypeError:
        return _ById(v)


_KIND_OF_TYPE: dict[type, bool] = {}  # types whose instances are always (not) dynamic


def is_dynamic(v) -> bool:
    """Does ``v`` hold arrays or params, so that it is a child rather than static?"""
    known = _KIND_OF_TYPE.get(type(v))
    if known is not None:
        return known
    t = type(v)
    if issubclass(t, (jax.Array, np.ndarray, Tracked)) or t in _specs:
        _KIND_OF_TYPE[t] = True
        return True
    if v is None or issubclass(t, _SCALARS + _FUNCTIONS):
        _KIND_OF_TYPE[t] = False
        return False
    if isinstance(v, (list, tuple)):
        return any(map(is_dynamic, v))
    if isinstance(v, dict):
        return any(map(is_dynamic, v.values()))
    leaves = jax.tree_util.tree_leaves(v)
    return not (len(leaves) == 1 and leaves[0] is v) and any(map(is_dynamic, leaves))


def _flatten(obj):
    spec = _specs[type(obj)]
    memory = getattr(obj, "__dict__", _NO_DICT).get(_MARK)  # (children, raw params) or None
    forced = spec.fields if spec.fields is not None or memory is None else memory[0]
    raw_params = () if memory is None else memory[1]
    raw_states = () if memory is None else memory[2]
    names, kinds, children, statics = [], [], [], []
    for name, v in spec.items(obj):
        names.append(name)
        dynamic = is_dynamic(v) if forced is None else name in forced
        if not dynamic:
            statics.append(_hashable(v))
            kinds.append(_STATIC)
        elif isinstance(v, Tracked) and v.is_leaf:
            children.append(v.data)
            kinds.append(_PARAM if v.trainable else _STATE)
        else:
            children.append(boxed(v))
            kind = _PARAM if name in raw_params else _STATE if name in raw_states else _CHILD
            kinds.append(kind)
    return children, (tuple(names), tuple(kinds), tuple(statics))


def _flatten_with_keys(obj):
    children, aux = _flatten(obj)
    sequence = _specs[type(obj)].attr is not None
    key = jax.tree_util.SequenceKey if sequence else jax.tree_util.GetAttrKey
    keys = [key(n) for n, k in zip(aux[0], aux[1], strict=True) if k != _STATIC]
    return list(zip(keys, children, strict=True)), aux


def _unflatten(cls, aux, children):
    names, kinds, statics = aux
    children, statics = iter(children), iter(statics)
    values, odd, raw_params, raw_states = [], False, [], []
    for name, kind in zip(names, kinds, strict=True):
        if kind == _STATIC:
            v = next(statics)
            values.append(v.value if type(v) is _ById else v)
            continue
        c = next(children)
        if kind == _PARAM or kind == _STATE:
            if is_concrete(c):
                c = param(c) if kind == _PARAM else state(c)
            else:  # a tracer: a param (state leaf) again once it is concrete
                (raw_params if kind == _PARAM else raw_states).append(name)
        odd = odd or not is_dynamic(c)  # e.g. None or a bool from a tree_map
        values.append(c)
    spec = _specs[cls]
    obj = spec.fill(object.__new__(cls), names, values)
    if (odd or raw_params or raw_states) and hasattr(obj, "__dict__"):
        # remember the children and the params when this object is flattened again
        kept = zip(names, kinds, strict=True)
        forced = frozenset(n for n, k in kept if k != _STATIC) if odd else None
        obj.__dict__[_MARK] = (forced, frozenset(raw_params), frozenset(raw_states))
    return obj


def register(cls, fields=None, attr=None):
    """Registers ``cls`` (once) with JAX; later calls only update ``fields``."""
    if cls in _specs:
        _specs[cls].fields = fields
        return cls
    _specs[cls] = _Spec(cls, fields, attr)
    habits.install(cls)  # m.eval() & co. name testmode_, params...
    jax.tree_util.register_pytree_with_keys(
        cls,
        _flatten_with_keys,
        lambda aux, children: _unflatten(cls, aux, children),
        _flatten,
    )
    return cls


def treelike(cls=None, fields=None):
    """treelike(cls, fields=None) -> cls

    Registers ``cls`` as a JAX pytree and returns it, as a call (``treelike(Affine)``)
    or a decorator (``@treelike`` or ``@treelike(fields=("W", "b"))``). Dataclasses are
    read field by field, other classes by their instance attributes (or ``__slots__``).
    Fields holding arrays, params or other trees are children; the rest (functions,
    numbers, strings, None) are static. ``fields`` names the children explicitly. Then
    ``params``, ``fmap``, ``gpu``, ``jax.tree_util``, ``jax.jit`` and ``gradient`` all
    see inside. A subclass of a treelike class needs its own ``treelike`` call.

    >>> import jax, jax.numpy as jnp
    >>> from fluxjax.tracker import param
    >>> class Affine:
    ...     def __init__(self, W, b):
    ...         self.W, self.b = param(W), param(b)
    ...     def __call__(self, x):
    ...         return self.W @ x + self.b
    >>> _ = treelike(Affine)
    >>> a = Affine(jnp.ones((2, 3)), jnp.zeros(2))
    >>> [leaf.shape for leaf in jax.tree_util.tree_leaves(a)]
    [(2, 3), (2,)]
    >>> jax.jit(lambda a, x: a(x))(a, jnp.ones(3)).tolist()
    [3.0, 3.0]
    """
    if cls is None:
        return lambda c: treelike(c, fields)
    return register(cls, None if fields is None else tuple(fields))


def items(obj):
    """(name, value) pairs a tree walk should visit in a treelike ``obj``, else None."""
    spec = _specs.get(type(obj))
    if spec is None:
        return None
    pairs = spec.items(obj)
    if spec.fields is not None:
        pairs = [(n, v) for n, v in pairs if n in spec.fields]
    return pairs


def rebuilt(obj, fn, memo):
    """A copy of treelike ``obj`` (no ``__init__``) with ``fn`` applied to each value."""
    spec = _specs[type(obj)]
    new = object.__new__(type(obj))
    memo[id(obj)] = new
    pairs = spec.items(obj)
    children = spec.fields
    values = [fn(v) if children is None or n in children else v for n, v in pairs]
    return spec.fill(new, [n for n, _ in pairs], values)
