"""``Recur``: a recurrent cell made stateful; ``RNN``, ``LSTM``, ``GRU``; ``reset_``.

The hidden state lives in ``state`` leaves (``state``: one per array of the cell's
state; ``fresh``: 1 after ``reset_``), so compiled steps thread it like any other state.
A step starts from the cell's initial state right after ``reset_`` (so that trainable
state receives gradients, as in Flux v0.9), else from the state the previous step left.
Within one evaluation (eager code, one ``gradient``, one compiled step) successive calls
carry the tracked state itself, so gradients flow back through the whole sequence; a
compiled step that did not call ``reset_`` itself starts from ``where(fresh, initial
state, stored state)``, so a ``reset_`` made before it is honoured too.

A sequence given as one array ``(n, time, in)`` runs step by step in eager code; inside
a trace (``gradient``, a compiled ``train_`` step, plain ``jax.jit``) the steps after the
first run as one ``jax.lax.scan``, which compiles once whatever the length.

A compiled step can only write back a state of the shape it was given: when a trace
meets a batch whose state shape differs from the stored one (typically the first
compiled step after ``reset_``, whose stored state is the unbatched initial one), the
sequence inside the step is exact but the stored state is left as it was. A stored state
from a batch of another size cannot be continued (an unbatched step broadcasts over it):
eagerly that raises unless ``reset_`` came first; inside a compiled step it is taken as
reset.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import jax
import jax.numpy as jnp
import numpy as np

from ..tracker import clear_caches, data, state, track
from ._activations import tanh
from ._checks import sizes
from ._recurrent import GRUCell, LSTMCell, RNNCell
from ._stateful import write
from ._treelike import register
from ._walk import walk

_where = track(lambda fresh, init, s: jnp.where(fresh > 0, init, s))
_stack = track(lambda ys: jnp.stack(ys, axis=1))


def _as_tuple(h):
    return h if isinstance(h, tuple) else (h,)


def _plain_tracer(y):
    return isinstance(y, jax.core.Tracer)


def _like(h, values):
    return tuple(values) if isinstance(h, tuple) else values[0]


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

    def __init__(self, cell):
        self.cell = cell
        init = _as_tuple(cell.hidden())
        self.state = _like(cell.hidden(), [state(jnp.asarray(data(h))) for h in init])
        self.fresh = state(np.ones((), np.int32))  # NumPy: nothing to compile

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
        h, y = self.cell(self._current(tuple(x.shape[:-1])), x)
        self._remember(h)
        return h, y

    def _sequence(self, x):
        """``(n, time, in) -> (n, time, out)``. Inside a trace whose steps give plain JAX
        values, the steps after the first run as one ``jax.lax.scan``."""
        h, y = self._step(x[:, 0])
        if x.shape[1] == 1 or not _plain_tracer(y):
            ys = [y] + [self._step(x[:, t])[1] for t in range(1, x.shape[1])]
            return _stack(ys)

        def body(h, xt):
            return self.cell(h, xt)

        h, ys = jax.lax.scan(body, h, jnp.swapaxes(data(x[:, 1:]), 0, 1))
        self._remember(h)
        return jnp.concatenate([y[:, None], jnp.swapaxes(ys, 0, 1)], axis=1)

    def _current(self, batch):
        """The state a step over a batch of shape ``batch`` starts from (see the module
        docstring)."""
        mark = data(self.fresh)
        live = self.__dict__.get("_live")
        if live is not None and mark is live[1]:  # a step of this evaluation came before
            if not batch or all(h.shape[:-1] in ((), batch) for h in _as_tuple(live[0])):
                return live[0]
            raise self._mismatch(_as_tuple(live[0])[0].shape, batch)
        if self.__dict__.get("_reset") is mark:  # reset_ in this evaluation, no step since
            return self.cell.hidden()
        init, held = _as_tuple(self.cell.hidden()), _as_tuple(self.state)
        if not batch or all(
            s.shape in (i.shape, (*batch, i.shape[-1])) for i, s in zip(init, held)
        ):
            return _like(self.state, [_where(self.fresh, i, s) for i, s in zip(init, held)])
        if not isinstance(mark, jax.core.Tracer) and int(mark) == 0:
            raise self._mismatch(held[0].shape, batch)
        return self.cell.hidden()  # reset since (under a trace: taken as reset)

    def _mismatch(self, shape, batch):
        return ValueError(
            f"{self!r}: its state, of shape {tuple(shape)}, comes from a batch of another "
            f"size than this one {batch}: call reset_ first"
        )

    def _remember(self, h):
        values = [data(v) for v in _as_tuple(h)]
        held = _as_tuple(self.state)
        if all(v.shape == s.shape for v, s in zip(values, held)):
            write(self, "state", _like(self.state, values))
            write(self, "fresh", jnp.zeros((), jnp.int32))
        elif not any(isinstance(v, jax.core.Tracer) for v in values):  # eager: new shape
            object.__setattr__(self, "state", _like(self.state, [state(v) for v in values]))
            write(self, "fresh", jnp.zeros((), jnp.int32))
            clear_caches()  # compiled steps that read the old leaves must trace again
        object.__setattr__(self, "_live", (h, data(self.fresh)))

    def reset_(self):
        """Back to the cell's initial state (its params ``h``, ``c``)."""
        init = _as_tuple(self.cell.hidden())
        held = _as_tuple(self.state)
        values = [jnp.broadcast_to(data(i), s.shape) for i, s in zip(init, held)]
        write(self, "state", _like(self.state, values))
        write(self, "fresh", jnp.ones((), jnp.int32))
        self.__dict__.pop("_live", None)
        object.__setattr__(self, "_reset", data(self.fresh))

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
