"""``Recur``: a recurrent cell made stateful; ``RNN``, ``LSTM``, ``GRU``; ``reset_``,
``truncate_``.

The carry lives in ``state`` leaves (``state``: one per array of the cell's state;
``fresh``: 1.0 after ``reset_``, a float so that plain ``jax.grad`` takes the model), so
every path threads it like any other state and it advances by one step per time step on
every path. A step starts from the cell's initial state right after ``reset_`` (so that
trainable state receives gradients, as in Flux v0.9), else from the carry the previous
step left. Within one evaluation (eager code, one ``gradient``, one compiled step)
successive calls carry the tracked state itself, so gradients flow back through the
whole sequence; a compiled step that did not call ``reset_`` itself starts from
``where(fresh, initial state, stored carry)``, so a ``reset_`` made before it is honoured.

The carry has the shape of the batch it holds: the first batch (or a batch of another
size after ``reset_``) gives the same leaves a new shape (``tracker.resize``, done outside
any trace: a compiled step that meets it is traced again), so no compiled function is
ever dropped. A carry from a batch of another size cannot be continued: that raises,
on every path, unless ``reset_`` came first. ``reset_`` keeps the carry's shape (its
value becomes the initial state); ``save`` never writes the carry.

``truncate_`` (Flux's ``truncate!``) keeps the carry's value and cuts its gradient
history; ``train_`` does the same at the start of every step (truncated BPTT, as Flux's
``train!`` loop with ``truncate!`` in the loss), on every path. A hand-written ``back_``
loop that keeps feeding a carry whose graph ``back_`` freed raises, naming both.
"""

from __future__ import annotations

import contextlib
import threading
from dataclasses import dataclass
from typing import Any, NamedTuple

import jax
import jax.numpy as jnp
import numpy as np

from .. import tracker
from ..tracker import Tracked, data, state, track
from ._activations import tanh
from ._checks import sizes
from ._recurrent import GRUCell, LSTMCell, RNNCell
from ._stateful import write
from ._treelike import register
from ._walk import walk

_where = track(lambda fresh, init, s: jnp.where(fresh > 0, init, s))
_stack = track(lambda ys: jnp.stack(ys, axis=1))
_broadcast = track(jnp.broadcast_to)


def _batched(v, batch):
    """``v`` broadcast to ``(*batch, size)`` (itself when it has that shape)."""
    shape = (*batch, v.shape[-1])
    return v if tuple(v.shape) == shape else _broadcast(v, shape)


class _Steps(threading.local):
    """Per thread: the token of the ``train_`` step running now (None outside ``train_``);
    the carry fits a compiled trace noted (``fitting``; None outside one)."""

    token = None
    fits = None


_STEPS = _Steps()


@contextlib.contextmanager
def truncating():
    """Inside the block (one ``train_`` step), every ``Recur`` starts from its stored carry:
    the carry a previous step left is truncated (its gradient history cut)."""
    old, _STEPS.token = _STEPS.token, object()
    try:
        yield
    finally:
        _STEPS.token = old


@contextlib.contextmanager
def fitting():
    """Inside the block (a compiled ``train_`` trace), a ``Recur`` whose carry the trace
    does not thread yet and that has another shape than the batch notes how to fit it:
    the block yields ``{id(recur): setup}``, for the retrace that threads the carry to
    fit it too (without it, the threaded trace would ask for a retrace of its own)."""
    old, _STEPS.fits = _STEPS.fits, {}
    try:
        yield _STEPS.fits
    finally:
        _STEPS.fits = old


class _Live(NamedTuple):
    """The tracked carry of the evaluation running now: ``h``, the ``fresh`` value it was
    made under (``mark``) and the ``train_`` step (``token``)."""

    h: Any
    mark: Any
    token: Any


def _as_tuple(h):
    return h if isinstance(h, tuple) else (h,)


def _plain_tracer(y):
    return isinstance(y, jax.core.Tracer)


def _gives_plain(x, h):
    """Whether a step over ``x`` from ``h`` surely gives plain JAX values (a tracer, not a
    tracked value): none of them is tracked (``tracker.track`` records a step given any
    tracked input) and one is a tracer."""
    values = (x, *_as_tuple(h))
    return not any(isinstance(v, Tracked) for v in values) and any(map(_plain_tracer, values))


def _like(h, values):
    return tuple(values) if isinstance(h, tuple) else values[0]


def _shape(s):
    return tuple(jnp.shape(data(s)))


def _threaded(held):
    """Leaves a compiled step reads as inputs (their shape is fixed in this trace); a
    plain pytree's raw arrays (plain ``jax.jit`` of the model) may take any shape."""
    return any(isinstance(s, tracker.Tracked) and _plain_tracer(data(s)) for s in held)


def _scanned(cell, h, x):
    """``(h, ys)``: ``cell``'s steps over ``x`` ``(n, time, in)`` from ``h``, in one
    ``lax.scan`` (its ``looped`` step when it has one); ``ys`` is ``(n, time, out)``.

    When a step's output is its new state's first array (Flux's cells), the last output
    is read from the final state rather than from the scan's outputs: a loss that keeps
    only the last output (``m(x)[:, -1]``) then leaves the scan's outputs unused, and XLA
    drops them (storing each step's output, and adding its gradient back, made an LSTM
    epoch ~10% slower)."""
    step, echoes = cell.looped() if hasattr(cell, "looped") else cell, []

    def body(h, xt):  # a new function per trace: JAX caches a scan's body by identity
        h, y = step(h, xt)
        echoes.append(y is _as_tuple(h)[0])
        return h, y

    h, ys = jax.lax.scan(body, h, jnp.swapaxes(x, 0, 1))
    ys = jnp.swapaxes(ys, 0, 1)
    if all(echoes):  # (batch-major: XLA sees through a slice of this concatenation)
        ys = jnp.concatenate([ys[:, :-1], _as_tuple(h)[0][:, None]], axis=1)
    return h, ys


@dataclass(eq=False, repr=False, init=False)
class Recur:
    """Recur(cell)

    Runs ``cell`` step by step, keeping its state between calls: ``m(x)`` does
    ``h, y = cell(h, x)`` and returns ``y``. ``x`` is one step (``(in,)`` or a batch
    ``(n, in)``), a list of steps (gives the list of outputs, Flux style) or an array
    ``(n, time, in)`` (gives ``(n, time, out)``). ``reset_`` goes back to the cell's
    initial state. Fields ``cell``, ``state``, ``fresh``.

    >>> import jax.numpy as jnp
    >>> m = Recur(RNNCell(3, 2))
    >>> m(jnp.ones((4, 5, 3))).shape, len(m([jnp.ones(3)] * 5))
    ((4, 5, 2), 5)
    """

    cell: Any
    state: Any
    fresh: Any

    _transient = ("state", "fresh")  # the carry: ``save`` skips it

    def __init__(self, cell):
        self.cell = cell
        init = _as_tuple(cell.hidden())
        self.state = _like(cell.hidden(), [state(jnp.asarray(data(h))) for h in init])
        self.fresh = state(np.ones((), np.float32))  # NumPy: nothing to compile

    @property
    def init(self):
        return self.cell.hidden()

    def __call__(self, x):
        if isinstance(x, list):
            return [self._step(xt)[1] for xt in x]
        if hasattr(x, "shape") and len(x.shape) == 3:
            return self._sequence(x)
        return self._step(x)[1]

    def _step(self, x):
        x = x if hasattr(x, "shape") else jnp.asarray(x)
        batch = tuple(x.shape[:-1])
        h, y = self.cell(self._current(batch), x)
        self._remember(h, batch)
        return h, y

    def _sequence(self, x):
        """``(n, time, in) -> (n, time, out)``. Inside a trace whose steps give plain JAX
        values, every step runs in one ``jax.lax.scan``; otherwise step by step."""
        batch = tuple(x.shape[:1])
        # of the batch's shape, lifted: plain values in a trace that computes tracked steps
        # as plain JAX, even from the initial state's params (reset_ in the loss)
        h = self._current(batch)
        h, first = _like(h, [_batched(v, batch) for v in _as_tuple(h)]), []
        if not _gives_plain(x, h):  # the first step tells: does it give plain values?
            h, y = self.cell(h, x[:, 0])
            self._remember(h, batch)
            first, x = [y], x[:, 1:]
            if not _plain_tracer(y):  # tracked: step by step, each step recorded
                return _stack(first + [self._step(x[:, t])[1] for t in range(x.shape[1])])
        if x.shape[1] == 0:
            return _stack(first)
        h, ys = _scanned(self.cell, h, data(x))
        self._remember(h, batch)
        return jnp.concatenate([first[0][:, None], ys], axis=1) if first else ys

    def _live(self):
        """The carry an earlier step of this evaluation left, or None."""
        live = self.__dict__.get("_carry")
        if live is None or live.mark is not data(self.fresh) or live.token is not _STEPS.token:
            return None
        if any(tracker.is_freed(v) for v in _as_tuple(live.h)):
            raise RuntimeError(
                f"{self!r}: its carry comes from a graph that back_ already freed; call "
                "truncate_(model) after each back_ to keep the carry's value and cut its "
                "history (truncated BPTT, as train_ does), or reset_(model) to start over"
            )
        return live.h

    def _current(self, batch):
        """The state a step over a batch of shape ``batch`` starts from (see the module
        docstring)."""
        live = self._live()
        if live is not None:
            if not batch or all(h.shape[:-1] in ((), batch) for h in _as_tuple(live)):
                return live
            raise self._mismatch(_as_tuple(live)[0].shape, batch)
        if self.__dict__.get("_reset") is data(self.fresh):  # reset_ here, no step since
            return self.cell.hidden()
        init, held = _as_tuple(self.cell.hidden()), _as_tuple(self.state)
        want = [(*batch, i.shape[-1]) if batch else _shape(s) for i, s in zip(init, held)]
        if all(_shape(s) == w for s, w in zip(held, want)):
            return _like(self.state, [_where(self.fresh, i, s) for i, s in zip(init, held)])
        if _threaded(held):  # threaded by a compiled step
            raise tracker.Retrace(setup=lambda: self._fit(batch))
        if all(_shape(s) == i.shape for s, i in zip(held, init)):  # unbatched: broadcasts
            self._note_fit(lambda: self._fit(batch))  # what the threaded trace would ask
            return _like(self.state, [_where(self.fresh, i, s) for i, s in zip(init, held)])
        if not _plain_tracer(data(self.fresh)) and float(data(self.fresh)) == 0:
            raise self._mismatch(_shape(held[0]), batch)
        return self.cell.hidden()

    def _fit(self, batch, reset=False):
        """Outside any trace: gives the carry the shape of ``batch`` (its value broadcast
        when it is unbatched, the initial state when fresh or ``reset``)."""
        init, held = _as_tuple(self.cell.hidden()), _as_tuple(self.state)
        fresh = reset or float(data(self.fresh)) > 0
        if not fresh and not all(_shape(s) == i.shape for s, i in zip(held, init)):
            raise self._mismatch(_shape(held[0]), batch)
        for i, s in zip(init, held):
            source = data(i) if fresh else data(s)
            # broadcast on the host: a device broadcast compiles once per batch shape
            shape = (*batch, i.shape[-1])
            tracker.resize(s, jax.device_put(np.broadcast_to(np.asarray(source), shape)))
        if reset:
            write(self, "fresh", np.ones((), np.float32))

    def _note_fit(self, setup):
        """Inside ``fitting``: ``setup`` fits this carry (the first noted in a trace)."""
        if _STEPS.fits is not None:
            _STEPS.fits.setdefault(id(self), setup)

    def _mismatch(self, shape, batch):
        return ValueError(
            f"{self!r}: its state, of shape {tuple(shape)}, comes from a batch of another "
            f"size than this one {batch}: call reset_ first"
        )

    def _remember(self, h, batch):
        values = [data(v) for v in _as_tuple(h)]
        held = _as_tuple(self.state)
        plain = not any(isinstance(s, tracker.Tracked) for s in held)  # a traced pytree
        if plain or all(v.shape == _shape(s) for v, s in zip(values, held)):
            write(self, "state", _like(self.state, values))
        elif not any(_plain_tracer(v) for v in values):  # eager: the carry takes a new shape
            for s, v in zip(held, values):
                tracker.resize(s, v)
        elif _threaded(held):  # threaded (or holding what reset_ wrote): trace again,
            # reshaped; the leaves too, for a trace that did not thread them yet
            setup = lambda: self._fit(batch, reset=True)  # noqa: E731
            raise tracker.Retrace([*held, self.fresh], setup=setup)
        else:  # not threaded yet: the retrace that threads it can fit it first
            self._note_fit(lambda: self._fit(batch, reset=True))
        write(self, "fresh", np.zeros((), np.float32))
        object.__setattr__(self, "_carry", _Live(h, data(self.fresh), _STEPS.token))

    def reset_(self):
        """Back to the cell's initial state (its params ``h``, ``c``), the shape kept."""
        init = _as_tuple(self.cell.hidden())
        held = _as_tuple(self.state)
        values = [jnp.broadcast_to(data(i), _shape(s)) for i, s in zip(init, held)]
        write(self, "state", _like(self.state, values))
        write(self, "fresh", np.ones((), np.float32))
        self.__dict__.pop("_carry", None)
        object.__setattr__(self, "_reset", data(self.fresh))

    def truncate_(self):
        """Keeps the carry's value, cuts its gradient history (Flux's ``truncate!``)."""
        live = self.__dict__.pop("_carry", None)
        now = _STEPS.token
        if live is not None and live.mark is data(self.fresh) and live.token is now:
            values = [data(v) for v in _as_tuple(live.h)]
        else:
            init, held = _as_tuple(self.cell.hidden()), _as_tuple(self.state)
            values = [jnp.where(data(self.fresh) > 0, data(i), data(s)) for i, s in zip(init, held)]
        for s, v in zip(_as_tuple(self.state), values):
            if v.shape == _shape(s):
                s.data = v
            else:
                tracker.resize(s, v)
        write(self, "fresh", np.zeros((), np.float32))
        self.__dict__.pop("_reset", None)

    def __repr__(self):
        return f"Recur({self.cell!r})"


def reset_(model):
    """reset_(m) -> m

    Flux's ``reset!``: every ``Recur`` inside ``m`` goes back to its cell's initial state.

    >>> import jax.numpy as jnp
    >>> m = RNN(2, 2)
    >>> y1 = m(jnp.ones(2)); y2 = m(jnp.ones(2))
    >>> bool((reset_(m)(jnp.ones(2)) == y1).all())
    True
    """
    for found in walk(model):
        if isinstance(found.value, Recur):
            found.value.reset_()
    return model


def truncate_(model):
    """truncate_(m) -> m

    Flux v0.9's ``truncate!``: every ``Recur`` inside ``m`` keeps its carry's value and
    forgets how it was computed, so the next ``back_`` stops there (truncated
    backpropagation through time). ``train_`` truncates at the start of every step.

    >>> import jax.numpy as jnp
    >>> import fluxjax as fj
    >>> m = RNN(2, 2)
    >>> for x in [jnp.ones((1, 2))] * 3:
    ...     fj.back_(fj.numpy.sum(m(x)))
    ...     m = truncate_(m)
    >>> m.state.shape
    (1, 2)
    """
    for found in walk(model):
        if isinstance(found.value, Recur):
            found.value.truncate_()
    return model


def RNN(n_in, n_out, σ=tanh, **kwargs) -> Recur:
    """RNN(in, out, σ=tanh; init, key) = Recur(RNNCell(in, out, σ)).

    >>> RNN(3, 2)
    Recur(RNNCell(3, 2))
    """
    sizes("RNN", n_in=n_in, n_out=n_out)
    return Recur(RNNCell(n_in, n_out, σ, **kwargs))


def LSTM(n_in, n_out, **kwargs) -> Recur:
    """LSTM(in, out; init, key) = Recur(LSTMCell(in, out)).

    >>> import jax.numpy as jnp
    >>> LSTM(3, 2)(jnp.ones((4, 3))).shape
    (4, 2)
    """
    sizes("LSTM", n_in=n_in, n_out=n_out)
    return Recur(LSTMCell(n_in, n_out, **kwargs))


def GRU(n_in, n_out, **kwargs) -> Recur:
    """GRU(in, out; init, key) = Recur(GRUCell(in, out)).

    >>> GRU(3, 2)
    Recur(GRUCell(3, 2))
    """
    sizes("GRU", n_in=n_in, n_out=n_out)
    return Recur(GRUCell(n_in, n_out, **kwargs))


register(Recur)
