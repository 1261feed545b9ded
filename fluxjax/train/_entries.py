"""The cache of compiled ``train_`` steps: one ``_Entry`` per (loss, params, optimiser),
found by ``_compiled_for``; each holds its compiled variants (``_Variant``, one per set of
layer modes) and the extras its traces found. Entries hold the user's objects weakly: when
a param, an extra or what the loss's closure held dies, the entry and its code go.
"""

from __future__ import annotations

import dataclasses
import types
import weakref
from typing import Any

import jax

from fluxjax import tracker
from fluxjax.tracker import Cache

from ._optimisers import as_transformation
from ._pure import _pure_step
from ._update import settings

_CACHE = Cache(8, "train_ steps")
_SEEN_LOOSE = Cache(64, "train_ recompile warnings")
_WARNED = Cache(1, "train_ recompile warning given")


def _loose_key(loss, plist, opt):
    """What stays equal when a loop makes a new but identical loss or optimiser each call."""
    code = getattr(loss, "__code__", None)
    return (code if code is not None else type(loss), tuple(map(id, plist)), type(opt))


def _warn_recompile(loss, plist, opt):
    loose = _loose_key(loss, plist, opt)
    if _SEEN_LOOSE.get(loose) is not None and not _WARNED.get("once"):
        _WARNED["once"] = True
        tracker.warn_user(
            "train_ compiles its step again because the loss function or the optimiser "
            "is a new object each call (a lambda or ADAM() written inside the loop?). "
            "Create them once, before the loop, to reuse the compiled step (and to keep "
            "the optimiser's state).",
        )
    _SEEN_LOOSE[loose] = True


_EMPTY = object()


def _cells(fn):
    """The objects a function's closure holds (``_EMPTY`` for a cell not yet filled)."""
    out = []
    for c in fn.__closure__ or ():
        try:
            out.append(c.cell_contents)
        except ValueError:
            out.append(_EMPTY)
    return out


def _snapshot(loss):
    """What a compiled step of ``loss`` baked in: its code, globals, defaults and the
    objects its closure held when traced (a closure cell can change later)."""
    if not isinstance(loss, types.FunctionType):
        return (loss,)
    defaults = (*(loss.__defaults__ or ()), *(loss.__kwdefaults__ or {}).values())
    return (loss.__code__, loss.__globals__, len(defaults), *defaults, *_cells(loss))


@dataclasses.dataclass
class _Variant:
    """One compiled step (and its epoch plans, ``_epoch.py``) for one set of layer modes;
    ``pure`` is a ``tracker.Guarded``: its first trace raises outside JAX's trace."""

    pure: Any
    step: Any = None
    scans: dict = dataclasses.field(default_factory=dict)
    called: bool = False  # True once ``step`` was traced apart and ran

    def __post_init__(self):
        self.renew()

    def renew(self):
        """A new jitted step, of a new function: JAX keeps a trace that ended early
        (``tracker.Guarded``) for the old one."""
        pure = self.pure

        def step(*args):
            return pure(*args)

        self.step = jax.jit(step, donate_argnums=(0, 1, 2, 3))


def _hold(x, on_death=None):
    """A reference to ``x`` that does not keep it alive (``on_death(ref)`` runs when it
    dies); a strong one for what cannot be weakly referenced (numbers, tuples, dicts)."""
    try:
        return weakref.ref(x, on_death)
    except TypeError:
        return lambda: x


class _Entry:
    """The compiled step of one (loss, params, optimiser), with the extras it found.

    It holds the loss, the params, the extras and what the loss's closure held only
    weakly: when a param, an extra or a closure object dies (the model was deleted), the
    entry leaves ``_CACHE`` and its compiled code goes with it. A new but identical loss
    or optimiser takes over the entry (``adopt``)."""

    def __init__(self, key, loss, plist, opt):
        me = weakref.ref(self)
        self._drop = lambda _, key=key, cache=_CACHE: cache.get(key) is me() and cache.pop(key)
        self._snapshot = [_hold(x, self._drop) for x in _snapshot(loss)]
        self._plist = [_hold(p, self._drop) for p in plist]
        self._extras: list = []
        self.loss = self.opt = None
        self.settings = settings(opt)  # equal settings: an equal optimiser (None: opt only)
        self.adopt(loss, opt)
        self.tensors = Cache(2, "train_ data on device", weak=True)  # loader -> arrays
        self.build()

    def adopt(self, loss, opt):
        """``loss`` and ``opt`` (equal to those the step was built for) are the ones now."""
        self.loss, self.opt = _hold(loss), _hold(opt)

    @property
    def plist(self):
        return [r() for r in self._plist]

    @property
    def extras(self):
        return [r() for r in self._extras]

    def add_extras(self, leaves):
        self._extras.extend(_hold(p, self._drop) for p in leaves)
        self.build()

    def build(self):
        """Drops the compiled variants (the extras changed); they are made on demand."""
        self.variants = Cache(8, "train_ step variants")  # guard values -> _Variant
        self.guards = tracker.Guards()  # the layer modes the traces read

    def variant(self):
        """The compiled step for the current layer modes (``testmode_``), made once."""
        key = self.guards.key()
        v = self.variants.get(key)
        if v is None:
            pure = tracker.Guarded(_pure_step(self, as_transformation(self.opt())))
            v = _Variant(pure)
            self.variants[key] = v
        return v

    def noted(self, reads, variant):
        """After a call: a trace read modes not yet guarded: file ``variant`` under them."""
        if self.guards.add(reads):
            self.variants[self.guards.key()] = variant

    def matches(self, loss, plist, opt):
        same_opt = self.opt() is opt or settings(opt) == self.settings is not None
        snapshot = _snapshot(loss)
        return (
            len(snapshot) == len(self._snapshot)
            and all(r() is x for r, x in zip(self._snapshot, snapshot))
            and same_opt
            and len(self._plist) == len(plist)
            and all(r() is p for r, p in zip(self._plist, plist))
        )


def _compiled_for(loss, plist, opt):
    """The compiled step (and scans) of ``loss`` over ``plist`` with ``opt``, made once."""
    # a new lambda with the same code and closure objects shares the step (see _snapshot)
    key = (tuple(map(id, _snapshot(loss))), tuple(map(id, plist)), settings(opt) or id(opt))
    entry = _CACHE.get(key)
    if entry is not None and entry.matches(loss, plist, opt):
        entry.adopt(loss, opt)
        return entry
    _warn_recompile(loss, plist, opt)
    entry = _CACHE[key] = _Entry(key, loss, plist, opt)
    return entry
