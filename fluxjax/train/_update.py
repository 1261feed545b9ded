"""``update_``: one optimiser step on tracked params, with optax state kept per param set.

The optax state of ``opt`` lives in a small book on the optimiser object (for a raw optax
transformation, in a bounded module-level book keyed by its identity). The key is the
tuple of the params' identities, so ``update_(opt, W, ΔW)`` keeps one state for ``W`` and
``update_(opt, ps, gs)`` one joint state for the whole ``ps``, shared with
``train_(..., ps, ..., opt)``: calling ``train_`` again with the same ``opt`` and ``ps``
continues where it stopped. Entries are dropped when a param dies (weak references).

Each array of a stored state is a ``tracker.state`` leaf, so the bridge threads optimiser
states through every compiled path like any other state: ``update_(opt, ps, gs)`` works
inside ``fluxjax.jit``, and a failed trace or step leaves the state as it was.
"""

import functools
import weakref
from typing import NamedTuple

import jax
import jax.numpy as jnp
import optax

from fluxjax import tracker
from fluxjax.tracker import Cache

from ._opt_init import initialiser
from ._optimisers import FluxOptimiser, as_transformation

__all__ = ["update_"]


def settings(opt):
    """A hashable key equal for fluxjax optimisers of the same kind and settings (so they
    share compiled steps), or None for anything else (keyed by identity instead)."""
    if not isinstance(opt, FluxOptimiser) or set(vars(opt)) - _KNOWN_FIELDS:
        return None  # not ours, or it keeps settings outside _hyper (Optimiser(...))
    parts = tuple(_setting(v) for v in vars(opt).get("_hyper", {}).values())
    return None if _NOT_PLAIN in parts else (type(opt), parts)


_NOT_PLAIN = object()
_KNOWN_FIELDS = {"piece", "tx", "_hyper", "_book"}


def _setting(v):
    """``v`` as part of a settings key: numbers, strings, tuples of them, optimisers."""
    if type(v) in (int, float, bool, str):
        return (type(v), v)
    if isinstance(v, FluxOptimiser):
        return settings(v) or _NOT_PLAIN
    if type(v) in (tuple, list):
        parts = tuple(_setting(e) for e in v)
        return _NOT_PLAIN if _NOT_PLAIN in parts else parts
    return _NOT_PLAIN


_APPLIES = Cache(32, "optimiser steps of update_")
_INITS = Cache(32, "optimiser state initialisers")


class _Book:
    """Per-optimiser storage: optax states by param-identity key, and the compiled step
    (shared by optimisers with the same settings)."""

    def __init__(self, opt, tx):
        self.tx = tx
        self.states = {}  # key -> _Stored
        key = settings(opt)
        self.apply = _shared(_APPLIES, key, lambda: jax.jit(functools.partial(_apply, tx)))
        self.init = _shared(_INITS, key, lambda: initialiser(tx))  # nothing or one compile


def _shared(cache, key, make):
    """``make()``, shared through ``cache`` by optimisers with equal settings (``key``)."""
    fn = cache.get(key) if key is not None else None
    if fn is None:
        fn = make()
        if key is not None:
            cache[key] = fn
    return fn


def _apply(tx, grads, state, arrays):
    updates, state = tx.update(grads, state, arrays)
    new = optax.apply_updates(arrays, updates)
    fine = [jnp.all(jnp.isfinite(n)) | ~jnp.all(jnp.isfinite(a)) for n, a in zip(new, arrays)]
    return new, state, jnp.all(jnp.array(fine))


class _Stored:
    """One optax state: weak references to its params, its arrays as ``state`` leaves."""

    __slots__ = ("refs", "leaves", "treedef")

    def __init__(self, refs, state):
        arrays, self.treedef = jax.tree.flatten(state)
        self.refs, self.leaves = refs, [tracker.state(a) for a in arrays]

    def value(self):
        return jax.tree.unflatten(self.treedef, [s.data for s in self.leaves])


_raw_books = Cache(64, "optimiser books of raw optax transformations")


def _book(opt) -> _Book:
    """The book of ``opt``, kept on the optimiser so it lives exactly as long: a fluxjax
    optimiser's ``_book``; for a raw optax transformation (a tuple, which takes no
    attributes and no weak reference), an attribute of its ``update`` function."""
    if isinstance(opt, FluxOptimiser):
        if "_book" not in vars(opt):
            opt._book = _Book(opt, opt.tx)
        return opt._book
    tx = as_transformation(opt)
    book = getattr(tx.update, "_fluxjax_book", None)
    if book is not None and book.tx is tx:
        return book
    book = _raw_books.get(id(tx))  # an update that takes no attribute (a builtin)
    if book is None or book.tx is not tx:
        book = _Book(opt, tx)
        try:
            tx.update._fluxjax_book = book
        except (AttributeError, TypeError):
            _raw_books[id(tx)] = book
    return book


def _ref(p, callback):
    try:
        return weakref.ref(p, callback)
    except TypeError:  # not weak-referenceable: hold it strongly
        return lambda: p


def _stored(book, plist):
    entry = book.states.get(tuple(map(id, plist)))
    if entry is not None and all(r() is p for r, p in zip(entry.refs, plist, strict=True)):
        return entry
    return None


def get_state(opt, plist, arrays):
    """The optax state of ``opt`` for the params ``plist`` (fresh from ``tx.init`` if new)."""
    book = _book(opt)
    entry = _stored(book, plist)
    if entry is not None:
        return entry.value()
    state = book.init(arrays)
    if any(isinstance(a, jax.core.Tracer) for a in jax.tree.leaves(state)):
        # inside a trace (fluxjax.jit): create the state outside it, then trace again
        raise tracker.Retrace(setup=lambda: put_state(opt, plist, _init(book, plist)))
    return state


def _init(book, plist):
    return book.init(tracker.values_of(plist))


def put_state(opt, plist, state):
    """Remember ``state`` as ``opt``'s state for ``plist``."""
    states = _book(opt).states
    entry = _stored(_book(opt), plist)
    if entry is not None:
        for s, a in zip(entry.leaves, jax.tree.leaves(state), strict=True):
            s.data = a
        return
    key = tuple(map(id, plist))
    refs = [_ref(p, lambda _, key=key: states.pop(key, None)) for p in plist]
    states[key] = _Stored(refs, state)


def _grad_of(gs, p, i):
    g = gs[i] if isinstance(gs, list | tuple) else gs[p]
    return jnp.zeros_like(p.data) if g is None else tracker.data(g)


class Stepped(NamedTuple):
    """One optimiser step computed and checked, not yet written: the params' ``new``
    values and the optimiser's ``state``."""

    new: list
    state: object


def _stepped(opt, plist, grads) -> Stepped:
    """The step of ``opt`` for ``plist`` from ``grads``; raises ``FloatingPointError``,
    having written nothing, if the gradient or the new values are not finite."""
    arrays = [p.data for p in plist]
    state = get_state(opt, plist, arrays)
    new, state, fine = _book(opt).apply(grads, state, arrays)
    tracker.check(
        fine,
        "update_: the gradient or the updated params are not finite; the params and the "
        "optimiser state were left unchanged",
    )
    return Stepped(new, state)


def _commit(opt, plist, stepped: Stepped):
    """Writes a checked step: the optimiser's state, the params' values, zero gradients."""
    put_state(opt, plist, stepped.state)
    for p, a in zip(plist, stepped.new, strict=True):
        p.data = a
        p.grad = None  # reads as zeros


def _step(opt, plist, grads):
    _commit(opt, plist, _stepped(opt, plist, grads))


def update_(*args):
    """update_(opt, x, Δ) / update_(opt, ps, gs) / update_(x, Δ) → one step of descent.

    With an optimiser (a fluxjax optimiser or any ``optax.GradientTransformation``) and a
    param ``x`` with its gradient ``Δ``, or a ``Params`` with ``Grads`` (or a list of
    gradients in the order of ``ps``): applies ``opt``'s step so that ``x`` descends, and
    resets ``x.grad`` to zeros as Flux does. The optimiser's state (momenta, step counts)
    is kept for the same ``x`` / ``ps`` across calls. With two arguments this is the
    tracker's ``update_(x, Δ)``: ``x.data += Δ``. Returns ``x`` / ``ps``.

    >>> from fluxjax.tracker import param
    >>> from fluxjax.train import Descent
    >>> W = param([1.0, 2.0])
    >>> _ = update_(Descent(0.1), W, jnp.array([1.0, -1.0]))
    >>> W.data
    Array([0.9, 2.1], dtype=float32)
    """
    if len(args) == 3 and hasattr(args[0], "explicit_update_"):  # update_(state, model, grads)
        return args[0].explicit_update_(*args[1:])
    if len(args) == 2:
        return tracker.update_(*args)
    if len(args) != 3:
        raise TypeError(f"update_ takes (opt, x, Δ), (opt, ps, gs) or (x, Δ); got {len(args)} args")
    opt, x, gs = args
    if isinstance(x, tracker.Tracked):
        _step(opt, [x], [tracker.data(gs)])
    else:
        plist = list(x)
        _step(opt, plist, [_grad_of(gs, p, i) for i, p in enumerate(plist)])
    return x
