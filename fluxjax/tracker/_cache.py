"""One bounded cache, used by every cache in fluxjax, ``clear_caches()``, and guards.

A ``Cache`` is a least-recently-used mapping of at most ``size`` entries; the oldest
entry goes when a new one would exceed it. Every cache registers itself, so
``clear_caches()`` empties all of them at once (and JAX's own compilation caches).

A compiled step bakes in the Python values its trace read (a layer's ``active`` mode).
Such a read goes through ``static(obj, name)``, which notes it for the compiled paths
tracing now (``noting_statics``); each keeps a ``Guards``, the places read so far, and
looks its compiled variants up by their current values. So ``testmode_`` /
``trainmode_`` switch between variants compiled once and nothing is ever cleared.
Guards hold the objects weakly.
"""

from __future__ import annotations

import threading
import types
import weakref
from collections import OrderedDict
from typing import Any, NamedTuple

_ALL: weakref.WeakSet = weakref.WeakSet()


class Read(NamedTuple):
    """A static read: ``getattr(ref(), name)`` gave ``value`` while a step was traced."""

    ref: Any
    name: str
    value: Any


class _Reads(threading.local):
    """Per thread: a stack of lists, one per open ``noting_statics`` block."""

    def __init__(self):
        self.stack: list = []


_READS = _Reads()


def static(obj, name):
    """static(obj, name) -> ``getattr(obj, name)``, noted as a guard of the compiled steps
    being traced now (see the module docstring).

    >>> class Layer: active = True
    >>> with noting_statics() as reads:
    ...     static(Layer(), "active")
    True
    >>> [(r.name, r.value) for r in reads]
    [('active', True)]
    """
    value = getattr(obj, name)
    if _READS.stack:
        read = Read(weakref.ref(obj), name, value)
        for reads in _READS.stack:
            reads.append(read)
    return value


class noting_statics:  # noqa: N801 (used as a function)
    """noting_statics() -> a context giving the list of ``Read`` s that ``static`` makes
    inside the block (a class: it opens for every compiled step, ~0.5 µs, not ~4)."""

    __slots__ = ("found",)

    def __enter__(self) -> list:
        self.found: list = []
        _READS.stack.append(self.found)
        return self.found

    def __exit__(self, *exc):
        _READS.stack.remove(self.found)


_GONE = object()


class Guards:
    """The places (object, attribute) whose values select a compiled variant.

    >>> class Layer: active = True
    >>> g, layer = Guards(), Layer()
    >>> with noting_statics() as reads:
    ...     _ = static(layer, "active")
    >>> g.add(reads), g.key()
    (True, (True,))
    """

    def __init__(self):
        self.places: list = []
        self.version = 0  # one more for each ``add`` that found a new place

    def add(self, reads) -> bool:
        """Adds the places of ``reads`` not yet known; True if any was new."""
        known = {(id(r()), n) for r, n in self.places if r() is not None}
        new = False
        for read in reads:
            obj = read.ref()
            if obj is not None and (id(obj), read.name) not in known:
                known.add((id(obj), read.name))
                self.places.append((read.ref, read.name))
                new = True
        self.version += new
        return new

    def key(self) -> tuple:
        """The current value at every place (a dead object: a marker)."""
        out = []
        for ref, name in self.places:
            obj = ref()
            out.append(_GONE if obj is None else getattr(obj, name, _GONE))
        return tuple(out)


_deref = weakref.ref.__call__


class WeakFn(weakref.ref):
    """WeakFn(fn, gone) -> ``fn`` held weakly inside a cache key: equal to ``fn`` and
    hashing as it while it lives (a bound method: its object is held weakly); calling it
    calls ``fn``. ``gone(ref)`` runs when ``fn`` dies.

    >>> f = lambda x: x + 1
    >>> w = WeakFn(f, None)
    >>> w == f, hash(w) == hash(f), w(1)
    (True, True, 2)
    """

    __slots__ = ("_hash", "_func")

    def __new__(cls, fn, gone):
        func = fn.__func__ if type(fn) is types.MethodType else None
        self = weakref.ref.__new__(cls, fn if func is None else fn.__self__, gone)
        self._hash, self._func = hash(fn), func
        return self

    def __init__(self, fn, gone):
        pass

    def target(self):
        """``fn``, or None once it died."""
        obj = weakref.ref.__call__(self)
        return obj if obj is None or self._func is None else types.MethodType(self._func, obj)

    def __call__(self, *args, **kwargs):
        return self.target()(*args, **kwargs)

    def __eq__(self, other):
        mine = _deref(self)
        if mine is other and self._func is None:  # the lookup of a live function: quick
            return True
        if isinstance(other, WeakFn):
            other = other.target()
        mine = self.target()
        return mine is not None and (mine is other or mine == other)

    def __ne__(self, other):
        return not self.__eq__(other)

    def __hash__(self):
        return self._hash


def hold_weakly(fn, gone):
    """``fn`` as a cache key holds it: a ``WeakFn``, unless ``fn`` is equal by value (a
    fresh copy is as good, so it is kept), lives as long as the program (a module's plain
    function, JAX's own jitted ones such as ``jnp.tanh``), or cannot be held weakly (a
    NumPy ufunc)."""
    weakly = getattr(type(fn), "held_weakly", None)  # its own weak twin (``_spec.py::Reader``)
    if weakly is not None:
        return weakly(fn, gone)
    obj = fn.__self__ if type(fn) is types.MethodType else fn
    if type(obj).__eq__ is not object.__eq__:
        return fn
    if _is_module_function(fn) or (
        str(getattr(fn, "__module__", "")).startswith("jax.")
        and _is_module_function(getattr(fn, "__wrapped__", None))
    ):
        return fn  # owns nothing of the user's; kept, so lookups compare by identity (quick)
    try:
        return WeakFn(fn, gone)
    except TypeError:
        return fn


def _is_module_function(fn):
    return type(fn) is types.FunctionType and fn.__closure__ is None and "<" not in fn.__qualname__


class Cache:
    """Cache(size, name) -> a bounded LRU mapping (thread-safe).

    >>> c = Cache(2, "example")
    >>> c["a"] = 1; c["b"] = 2; c["c"] = 3
    >>> len(c), c.get("a"), c.get("c")
    (2, None, 3)

    With ``weak=True`` the keys are objects held weakly, by identity: an entry goes when
    its key dies, so the cache never keeps a user's model, loader or function alive.
    With ``holds=f`` a compound key is stored as ``f(key, gone)``, the functions it names
    held weakly (``hold_weakly(fn, gone)``): the entry goes when one of them dies.
    """

    def __init__(self, size: int, name: str, weak: bool = False, holds=None):
        self.size, self.name, self.weak, self.holds = size, name, weak, holds
        self._items: OrderedDict = OrderedDict()
        self._lock = threading.Lock()
        _ALL.add(self)

    def get(self, key, default=None):
        slot = id(key) if self.weak else key  # weak: the entry holds ``key`` weakly
        try:  # no lock: each OrderedDict call is atomic, a race only costs a miss
            self._items.move_to_end(slot)
            value = self._items[slot]
        except KeyError:
            return default
        if self.weak:
            ref, value = value
            if ref() is not key:
                return default
        return value

    def store(self, key, make):
        """Stores and returns ``make(stored, gone)``, ``stored`` the key as kept (with
        ``holds``: its functions held weakly, so ``make`` can build a value that does not
        own them); ``gone`` drops the entry (a weakref callback for what the value holds)."""
        me, cell = weakref.ref(self), []
        gone = lambda _: me() is not None and me()._drop(cell)  # noqa: E731
        if self.holds is not None:
            key = self.holds(key, gone)
        cell.append(key)
        value = make(key, gone)
        self._put(key, value)
        return value

    def _drop(self, cell):  # from a weakref callback: no lock (as WeakKeyDictionary)
        if cell:
            key = cell.pop()
            self._items.pop(id(key) if self.weak else key, None)

    def __setitem__(self, key, value):
        if self.holds is None:
            self._put(key, value)
        else:
            self.store(key, lambda *_: value)

    def _put(self, key, value):
        slot = id(key) if self.weak else key
        if self.weak:
            me = weakref.ref(self)
            gone = lambda r, slot=slot: me() is not None and me()._forget(slot, r)  # noqa: E731
            value = (weakref.ref(key, gone), value)
        with self._lock:
            self._items[slot] = value
            self._items.move_to_end(slot)
            while len(self._items) > self.size:
                self._items.popitem(last=False)

    def _forget(self, slot, ref):
        with self._lock:
            if self._items.get(slot, (None,))[0] is ref:
                del self._items[slot]

    def pop(self, key, default=None):
        if self.weak:
            raise TypeError("pop on a weak cache: its entries go with their keys")
        with self._lock:
            return self._items.pop(key, default)

    def __len__(self):
        return len(self._items)

    def __iter__(self):
        return iter(list(self._items))

    def values(self):
        values = list(self._items.values())
        return [v for _, v in values] if self.weak else values

    def __contains__(self, key):
        return self.get(key, _GONE) is not _GONE

    def clear(self):
        with self._lock:
            self._items.clear()

    def __repr__(self):
        return f"Cache({self.name!r}, {len(self)}/{self.size})"


def clear_caches():
    """clear_caches() -> empty every fluxjax cache (compiled replays and steps, shapes,
    optimiser books of raw optax transformations) and JAX's compilation caches.

    Call it after changing something a compiled step baked in as static (a layer's mode,
    a global), or to free memory.

    >>> clear_caches()
    """
    for cache in list(_ALL):
        cache.clear()
    import jax

    jax.clear_caches()


def cache_sizes() -> dict:
    """``{name: number of entries}`` of every live cache (for tests and debugging)."""
    return {c.name: len(c) for c in list(_ALL)}
