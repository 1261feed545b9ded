"""One bounded cache, used by every cache in fluxjax, and ``clear_caches()``.

A ``Cache`` is a least-recently-used mapping of at most ``size`` entries; the oldest
entry goes when a new one would exceed it. Every cache registers itself, so
``clear_caches()`` empties all of them at once (and JAX's own compilation caches).
"""

from __future__ import annotations

import threading
import weakref
from collections import OrderedDict

_ALL: weakref.WeakSet = weakref.WeakSet()


class Cache:
    """Cache(size, name) -> a bounded LRU mapping (thread-safe).

    >>> c = Cache(2, "example")
    >>> c["a"] = 1; c["b"] = 2; c["c"] = 3
    >>> len(c), c.get("a"), c.get("c")
    (2, None, 3)
    """

    def __init__(self, size: int, name: str):
        self.size, self.name = size, name
        self._items: OrderedDict = OrderedDict()
        self._lock = threading.Lock()
        _ALL.add(self)

    def get(self, key, default=None):
        try:  # no lock: each OrderedDict call is atomic, a race only costs a miss
            self._items.move_to_end(key)
            return self._items[key]
        except KeyError:
            return default

    def __setitem__(self, key, value):
        with self._lock:
            self._items[key] = value
            self._items.move_to_end(key)
            while len(self._items) > self.size:
                self._items.popitem(last=False)

    def pop(self, key, default=None):
        with self._lock:
            return self._items.pop(key, default)

    def __len__(self):
        return len(self._items)

    def __iter__(self):
        return iter(list(self._items))

    def values(self):
        return list(self._items.values())

    def __contains__(self, key):
        return key in self._items

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
