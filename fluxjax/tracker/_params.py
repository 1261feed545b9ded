"""``Params`` and ``Grads``: collections of params keyed by identity, as in Flux."""

from __future__ import annotations

from collections.abc import Mapping

from ._cell import Value as Tracked


class Params:
    """Params(iterable=()) -> an insertion-ordered set of params, unique by identity.

    >>> from fluxjax import param
    >>> W, b = param([1.0, 2.0]), param(0.0)
    >>> ps = Params([W, b, W])
    >>> len(ps), W in ps
    (2, True)
    """

    __slots__ = ("_items",)

    def __init__(self, xs=()):
        self._items: dict[int, Tracked] = {}
        for x in xs:
            self.add(x)

    def add(self, x):
        if not isinstance(x, Tracked) or not x.is_leaf:
            raise TypeError(f"Params holds params made by param(...), got {type(x).__name__}")
        if not x.trainable:
            raise TypeError(
                "Params holds trainable params made by param(...); this is a state(...) leaf, "
                "which is not trained (the code that uses it assigns it)"
            )
        self._items.setdefault(id(x), x)
        return self

    def __len__(self):
        return len(self._items)

    def __iter__(self):
        return iter(list(self._items.values()))

    def __contains__(self, x):
        return self._items.get(id(x)) is x

    def __getitem__(self, i):
        raise TypeError("Params is a set: iterate over it (list(ps)) instead of indexing")

    def __repr__(self):
        shapes = ", ".join("×".join(map(str, p.shape)) or "scalar" for p in self)
        return f"Params([{shapes}])"


class Grads(Mapping):
    """The gradients of ``gradient(f, ps)``, looked up by param: ``gs[W]``."""

    __slots__ = ("_grads", "_params")

    def __init__(self, pairs=()):
        self._grads: dict[int, object] = {}
        self._params: dict[int, Tracked] = {}
        for p, g in pairs:
            self._params[id(p)] = p
            self._grads[id(p)] = g

    def __getitem__(self, x):
        if not isinstance(x, Tracked):
            raise KeyError(f"Grads are looked up by param; {type(x).__name__} is not tracked")
        if self._params.get(id(x)) is not x:
            raise KeyError("this param is not one of the Params the gradient was taken for")
        return self._grads[id(x)]

    def __contains__(self, x):
        return self._params.get(id(x)) is x

    def __iter__(self):
        return iter(list(self._params.values()))

    def __len__(self):
        return len(self._grads)

    def __repr__(self):
        return f"Grads({len(self)} params)"
