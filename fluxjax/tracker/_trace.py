"""The trace state: what the tracker must know about the code running *now*, per thread.

Three facts change how a tracked value behaves, and each holds only inside a ``with``
block of the thread that opened it:

- ``swapped(leaves, values)``: each leaf reads ``values[i]`` (usually a JAX tracer)
  instead of its own value; ops then run at once rather than being recorded lazily.
- ``watching()``: every leaf read or written while its value is concrete (not one of the
  swapped ones) is noted with its state from before (its cell and ``.grad``), so a trace
  learns what it read as a constant and anything it touched can be put back.
  ``Transaction`` notes the writes only (a read changes nothing to put back), and puts
  them back if its block raises: an eager ``train_`` step pays nothing per read.
- ``keeping_graph()``: ops on tracers still record a graph, so ``back_`` works inside a
  compiled step (``fluxjax.jit``).
- ``checking()``: ``check(ok, message)`` calls with a traced ``ok`` are collected, so the
  compiled step can return them and raise after the call (eagerly, ``check`` raises).

Nothing here is shared between threads: two threads tracing at once never see each
other's swaps or watches.
"""

from __future__ import annotations

import contextlib
import threading
from typing import NamedTuple

import jax


class Before(NamedTuple):
    """A leaf as it was before a watched block first touched it."""

    leaf: object
    cell: object
    grad: object


class TraceState(threading.local):
    """Per-thread: ``swaps`` (old cell id -> the cell read now), ``watches`` (the dicts
    id(leaf) -> Before of the open ``watching()`` blocks, which note reads and writes),
    ``writes`` (those and the open transactions' dicts, which note writes only),
    ``keep_graph`` (depth of ``keeping_graph`` blocks), ``checks`` (the innermost
    ``checking()`` block's list of ``(ok, message, error)``, or None)."""

    def __init__(self):
        self.swaps: dict = {}
        self.watches: list = []
        self.writes: list = []
        self.keep_graph = 0
        self.checks: list | None = None


TRACE = TraceState()


_new = tuple.__new__  # Before(...) without its Python-level __new__: once per leaf and step


def note(leaf):
    """Tell every open ``watching()`` block and transaction of this thread that ``leaf`` is
    written now (its cell or ``.grad`` is about to change)."""
    k = id(leaf)
    for seen in TRACE.writes:
        if k not in seen:
            seen[k] = _new(Before, (leaf, leaf._cell, leaf._grad))


def note_read(leaf):
    """Tell every open ``watching()`` block of this thread that ``leaf`` is read now."""
    k = id(leaf)
    for seen in TRACE.watches:
        if k not in seen:
            seen[k] = _new(Before, (leaf, leaf._cell, leaf._grad))


def _remove(stack, seen):
    if stack[-1] is seen:  # blocks close in the order they opened
        stack.pop()
    else:
        del stack[next(i for i in range(len(stack) - 1, -1, -1) if stack[i] is seen)]


@contextlib.contextmanager
def watching():
    """Yield a dict ``id(leaf) -> Before`` of the leaves read or written inside the block."""
    seen: dict = {}
    TRACE.watches.append(seen)
    TRACE.writes.append(seen)
    try:
        yield seen
    finally:
        _remove(TRACE.watches, seen)
        _remove(TRACE.writes, seen)


class Transaction:
    """``with Transaction() as seen:`` notes in ``seen`` (id(leaf) -> Before) every leaf
    written inside the block; if the block raises, puts each back as it was (its cell and
    ``.grad``). Reads are not noted: they change nothing to put back.

    >>> with Transaction() as seen:
    ...     pass
    >>> seen
    {}
    """

    __slots__ = ("seen",)

    def __enter__(self):
        self.seen = {}
        TRACE.writes.append(self.seen)
        return self.seen

    def __exit__(self, kind, error, tb):
        _remove(TRACE.writes, self.seen)
        if kind is not None:
            restore(self.seen)
        return False


def restore(seen, skip=()):
    """Put every leaf in ``seen`` (from ``watching()``) back as it was, except ``skip`` ids:
    its cell, its ``.grad``, and its shape (a ``resize`` changed it with the cell)."""
    for k, b in seen.items():
        if k not in skip:
            b.leaf._cell, b.leaf._grad, b.leaf._aval = b.cell, b.grad, b.cell.aval


def check(ok, message, error=FloatingPointError):
    """Raise ``error(message)`` unless ``ok``; a traced ``ok`` goes to the open
    ``checking()`` block (the compiled step raises after its call), if there is one."""
    if not isinstance(ok, jax.core.Tracer):
        if not bool(ok):
            raise error(message)
    elif TRACE.checks is not None:
        TRACE.checks.append((ok, message, error))


@contextlib.contextmanager
def checking():
    """Yield the list of ``(traced ok, message, error)`` that ``check`` collects in the block."""
    found: list = []
    outer, TRACE.checks = TRACE.checks, found
    try:
        yield found
    finally:
        TRACE.checks = outer


@contextlib.contextmanager
def keeping_graph():
    """Inside the block, ops on tracers record a graph (for ``back_`` in a compiled step)."""
    TRACE.keep_graph += 1
    try:
        yield
    finally:
        TRACE.keep_graph -= 1


@contextlib.contextmanager
def swapped(leaves, values, make_cell):
    """Inside the block each ``leaves[i]`` reads ``values[i]`` (through ``make_cell``);
    every leaf's cell and ``.grad`` are restored afterwards, also on error."""
    leaves = list(leaves)
    saved = [p._cell for p in leaves]
    grads = [p._grad for p in leaves]
    swaps = TRACE.swaps
    before = {id(c): swaps.get(id(c)) for c in saved}
    try:
        for p, old, v in zip(leaves, saved, values, strict=True):
            p._cell = swaps[id(old)] = make_cell(v, p, old)
        yield
    finally:
        for p, c, g in zip(leaves, saved, grads):
            p._cell, p._grad = c, g
        for k, c in before.items():
            if c is None:
                swaps.pop(k, None)
            else:
                swaps[k] = c
