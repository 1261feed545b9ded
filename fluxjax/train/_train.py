"""``train_``: Flux's training loop, compiled by default.

The compiled path (``_steps.Compiled``) turns the imperative loss into a pure function: inside
``tracker.swapped(ps, tracers)`` every param reads a tracer, so ``loss(*item)`` traces to
plain JAX, differentiated with ``jax.value_and_grad`` and stepped with ``opt.tx`` in one
``jax.jit`` call with donated buffers. Params and optimiser state stay as flat arrays
through the loop and are written back into the params (``p.data = ...``) only before
callbacks and at the end, so the loop never waits for the device.

A ``DataLoader`` over arrays goes to the device once; each step gathers its batch there,
and ``_epoch.py`` runs the steps one compiled call each or many per ``jax.lax.scan``.
"""

import dataclasses
import math
import sys
import time
from typing import Any, NamedTuple

import jax
import jax.numpy as jnp
import numpy as np

from fluxjax import tracker
from fluxjax._optional import require

from . import _sharding as sharding
from ._callbacks import StopTraining, throttle
from ._checkpoint import checkpointer
from ._data import DataLoader
from ._eager import Eager, nonfinite_error, nonfinite_gradient_error
from ._epoch import check_strategy
from ._explicit import as_explicit
from ._steps import Compiled

__all__ = ["train_"]


def _param_list(ps):
    if isinstance(ps, tracker.Params):
        return list(ps)
    if isinstance(ps, tracker.Tracked):
        return [ps]
    if isinstance(ps, list | tuple) and all(isinstance(p, tracker.Tracked) for p in ps):
        return list(tracker.Params(ps))
    from fluxjax.layers import params

    return list(params(ps))


def _ready(x):
    return getattr(x, "is_ready", lambda: True)()


def _interactive():
    """True in a terminal or a notebook; False under CI, pytest and pipes."""
    try:
        if sys.stderr.isatty():
            return True
    except (AttributeError, ValueError):
        pass
    ipython = sys.modules.get("IPython")
    shell = ipython.get_ipython() if ipython is not None else None
    return shell is not None and "IPKernelApp" in getattr(shell, "config", {})


class _Bar:
    """A tqdm bar showing the latest loss that is already computed (never waits);
    ``tqdm.auto``, so a notebook gets its widget bar and a terminal its text one."""

    def __init__(self, total):
        auto = require("tqdm.auto", "progress", "train_(progress=True)")
        self.bar, self.shown = auto.tqdm(total=total, desc="train_", unit="step"), 0.0

    def advance(self, n, latest):
        self.bar.update(n)
        now = time.monotonic()
        if now - self.shown > 0.2 and _ready(latest):
            value = float(np.asarray(latest).reshape(-1)[-1])
            self.bar.set_postfix(loss=f"{value:.4g}", refresh=False)
            self.shown = now

    def close(self):
        self.bar.close()


class _Loop:
    """Steps, losses, progress and callbacks, shared by both paths."""

    def __init__(self, runner, callbacks, bar):
        self.runner, self.callbacks, self.bar = runner, callbacks, bar
        self.pieces = []  # (first step, loss array of one step or of a chunk)
        self.nsteps = self.checked = 0
        self._host = None

    def record(self, losses, n):
        """Notes ``n`` steps' losses (an array, or a list of one scalar per step), then
        runs the callbacks once."""
        if isinstance(losses, list):
            self.pieces.extend((self.nsteps + i, l) for i, l in enumerate(losses))
        else:
            self.pieces.append((self.nsteps, losses))
        self.nsteps += n
        if self.bar is not None:
            self.bar.advance(n, losses)
        if self.callbacks:
            self.runner.sync()
            self.check(wait=False)
            for f in self.callbacks:
                f()
            self.runner.resume()

    def item(self, item):
        self.record(self.runner.step(item), 1)

    def epoch(self, loader, strategy):
        """One epoch of ``loader`` as ``strategy`` says (``_epoch.py``), in chunks when
        callbacks must run; a resumed loader starts at its position's batch."""
        order, begin = loader.order(), loader.position.batch  # begin > 0: resumed mid-epoch
        full = loader.nobs // loader.batchsize
        chunk = max(1, math.ceil(full / 10)) if self.callbacks or self.bar else max(full, 1)
        device_order = jax.device_put(order.astype(np.int32)) if loader.shuffle else _NO_ORDER
        start = begin
        while start < full:
            n = min(chunk - start % chunk, full - start)  # chunks aligned on the epoch
            losses = self.runner.epoch_steps(loader, device_order, start, n, strategy)
            start += n
            loader._mark(start)
            self.record(losses, n)
        if loader.partial and full * loader.batchsize < loader.nobs:
            loader._mark(full + 1)
            self.item(loader.batch(order[full * loader.batchsize :]))

    def check(self, *, wait):
        """Raise for the first non-finite loss among those computed (or all, if ``wait``)."""
        if wait:
            failed = self.runner.failure()
            host = self.host()
            if failed is not None:
                bad = np.flatnonzero(~np.isfinite(host[: failed.step + 1]))
                if bad.size:
                    raise nonfinite_error(float(host[bad[0]]), int(bad[0]))
                raise nonfinite_gradient_error(failed.step)
            bad = np.flatnonzero(~np.isfinite(host))
            if bad.size:
                raise nonfinite_error(float(host[bad[0]]), int(bad[0]))
            self.checked = len(self.pieces)
            return
        while self.checked < len(self.pieces):
            first, losses = self.pieces[self.checked]
            if not _ready(losses):
                return
            host = np.atleast_1d(np.asarray(losses))
            bad = np.flatnonzero(~np.isfinite(host))
            if bad.size:
                raise nonfinite_error(float(host[bad[0]]), first + int(bad[0]))
            self.checked += 1

    def host(self):
        """Every loss so far as one NumPy array: one device gather, one transfer."""
        if self._host is None or len(self._host) != self.nsteps:
            self._host = _gather([losses for _, losses in self.pieces])
        return self._host

    def losses(self):
        """Every loss so far as one array: a whole epoch's scan gave it already."""
        if len(self.pieces) == 1 and _one_device_vector(self.pieces[0][1], self.nsteps):
            return self.pieces[0][1]
        return jax.device_put(self.host())  # jnp.asarray would compile a copy per length


def _one_device_vector(x, n) -> bool:
    return isinstance(x, jax.Array) and x.shape == (n,) and len(x.devices()) == 1


def _gather(arrays):
    if not arrays:
        return np.zeros(0, np.float32)
    on_cpu = jax.default_backend() == "cpu"  # reading a CPU array is cheaper than stacking
    if not on_cpu and len(arrays) > 1 and all(np.ndim(a) == 0 for a in arrays):
        n = len(arrays)  # pad to a power of two: few distinct stacks to compile
        stacked = jnp.stack(arrays + arrays[-1:] * ((1 << (n - 1).bit_length()) - n))
        return np.asarray(stacked)[:n]
    if all(np.ndim(a) == 0 for a in arrays):
        return np.array([np.asarray(a) for a in arrays])
    return np.concatenate([np.atleast_1d(np.asarray(a)) for a in arrays])


_NO_ORDER = np.zeros(0, np.int32)  # a sequential epoch scans the batches in place


def _callback_list(cb):
    if cb is None:
        return []
    return list(cb) if isinstance(cb, list | tuple) else [cb]


def _flush(callbacks):
    """Run the postponed calls of throttled callbacks, as Flux's timers would."""
    for f in callbacks:
        if isinstance(f, throttle):
            f.flush()


class _Options(NamedTuple):
    """``train_``'s keyword arguments, as passed."""

    cb: Any
    epochs: int
    progress: Any
    jit: bool
    devices: Any
    shard_params: bool
    checkpoint: Any
    checkpoint_every: Any
    strategy: str


class _Job(NamedTuple):
    """A validated call: the params as a list, the device layout and the callbacks."""

    plist: list
    layout: sharding.Layout
    callbacks: list


@dataclasses.dataclass
class _Session:
    """One ``train_`` call's running state: the step runner (compiled or eager), the loop
    of steps and losses, the progress bar, the checkpointer and the data (a resumed
    checkpoint's loader) over ``epochs`` epochs still to run."""

    runner: Any
    loop: _Loop
    bar: _Bar | None
    ckpt: Any
    data: Any
    epochs: int
    strategy: str
    callbacks: list


def _validated(ps, data, o: _Options) -> _Job:
    """Rejects a call that cannot run (no params, bad devices, strategy or data), before
    anything is changed."""
    plist = _param_list(ps)
    if not plist and type(ps) is not tracker.Params:  # an explicit Params([]) runs, as Flux
        raise ValueError(
            "train_ got no params to train: pass params(model) or the model itself, "
            "with at least one param(...) in it"
        )
    layout = sharding.layout(o.devices, o.shard_params)
    sharding.check_batches(layout, data)
    if layout.mesh is not None and not o.jit:
        raise ValueError("devices= needs jit=True: the eager loop runs on one device")
    check_strategy(o.strategy, jit=o.jit, loader=isinstance(data, DataLoader))
    if o.epochs > 1 and iter(data) is data:
        raise ValueError(
            f"epochs={o.epochs} needs data that can be iterated again (a list, a DataLoader), "
            f"not a one-shot iterator"
        )
    return _Job(plist, layout, _callback_list(o.cb))


def _show_progress(progress) -> bool:
    """``progress``, or by default: in a terminal or a notebook, when tqdm is installed."""
    if progress is not None:
        return progress
    if not _interactive():
        return False
    try:
        import tqdm  # noqa: F401
    except ImportError:
        return False
    return True


def _placed(loss, ps, data, opt, job: _Job, o: _Options) -> _Session:
    """Restores a checkpoint (before the runner copies the values; it then writes them as
    a callback), and puts the params and optimiser state where the steps run."""
    show, callbacks, epochs = _show_progress(o.progress), job.callbacks, o.epochs
    total = len(data) * epochs if hasattr(data, "__len__") else None
    plist = job.plist
    ckpt = checkpointer(o.checkpoint, o.checkpoint_every, loss, ps, plist, data, opt, epochs)
    if ckpt is not None:
        data, callbacks, total = ckpt.data, [*callbacks, ckpt], ckpt.total - ckpt.start
        epochs = ckpt.epochs_left
    runner = Compiled(loss, plist, opt, job.layout) if o.jit else Eager(loss, plist, opt)
    bar = _Bar(total) if show else None
    loop = _Loop(runner, callbacks, bar)
    if ckpt is not None:
        ckpt.attach(loop, runner)
    return _Session(runner, loop, bar, ckpt, data, epochs, o.strategy, callbacks)


def _run(s: _Session, jit: bool):
    """Runs every step, then waits for the last and checks the losses; ``stop()`` ends it
    cleanly; a loss that needs concrete values under ``jit=True`` says so."""
    compiled_epochs = jit and isinstance(s.data, DataLoader) and s.data.keys is None
    try:
        for _ in range(s.epochs):
            if compiled_epochs:  # dicts: per step
                s.loop.epoch(s.data, s.strategy)
            else:
                for item in s.data:
                    s.loop.item(item)
        s.runner.sync()
        s.loop.check(wait=True)
        _flush(s.callbacks)
    except StopTraining:
        pass
    except (jax.errors.ConcretizationTypeError, jax.errors.TracerArrayConversionError) as e:
        if jit and hasattr(e, "add_note"):
            e.add_note(
                "train_ compiles the loss (jit=True), so it sees abstract values: a loss "
                "that needs concrete ones (float(), if on a value, printing) needs jit=False."
            )
        raise


def _write_back(s: _Session):
    """The params, state leaves and optimiser state take their trained values."""
    s.runner.finish()
    if s.bar is not None:
        s.bar.close()


def _report(s: _Session):
    """Raises for a non-finite step; else the loss of every step (a resumed run's too)."""
    s.loop.check(wait=True)
    return s.loop.losses() if s.ckpt is None else s.ckpt.finish()


def train_(
    loss, ps, data, opt, *, cb=None, epochs=1, progress=None, jit=True, devices=None,
    shard_params=False, checkpoint=None, checkpoint_every=None, strategy="auto",
):  # fmt: skip
    """train_(loss, ps, data, opt; cb=None, epochs=1, progress=None, jit=True, devices=None,
    shard_params=False, checkpoint=None, checkpoint_every=None, strategy="auto") → losses.

    For each item of ``data``, ``epochs`` times: ``loss(*item)`` (``loss(item)`` for a
    non-tuple), its gradient w.r.t. ``ps`` (a ``Params``, or a model), one step of ``opt``,
    then each callback of ``cb`` (``stop()`` ends training). ``jit=True`` compiles the step;
    a ``DataLoader`` epoch runs by ``strategy`` ("auto", "step", "scan", "unroll"), with
    callbacks after each tenth of it. ``jit=False`` is Flux's eager loop. ``devices`` trains
    data parallel, ``checkpoint=folder`` resumably; ``opt`` may be ``setup(opt, model)`` for
    ``loss(model, *item)``. A non-finite step raises ``FloatingPointError`` naming it, the
    params as before it. Returns every step's loss. See docs/training.md.

    >>> import jax.numpy as jnp
    >>> from fluxjax.tracker import param, Params
    >>> from fluxjax.train import Descent, mse
    >>> W = param(jnp.zeros((1, 2)))
    >>> x, y = jnp.array([[1.0, 2.0]]), jnp.array([[3.0]])
    >>> losses = train_(lambda x, y: mse(x @ W.T, y), Params([W]), [(x, y)] * 100, Descent(0.1))
    >>> losses.shape, float(losses[-1]) < 1e-6
    ((100,), True)
    """
    o = _Options(
        cb, epochs, progress, jit, devices, shard_params, checkpoint, checkpoint_every, strategy
    )
    opt = as_explicit(loss, ps, data, opt)  # train_(loss, model, data, ADAM()): set up
    if hasattr(opt, "explicit_train_"):  # modern Flux: train_(loss, model, data, setup(...))
        return opt.explicit_train_(train_, loss, ps, data, **o._asdict())
    session = _placed(loss, ps, data, opt, _validated(ps, data, o), o)
    try:
        _run(session, jit)
    finally:
        _write_back(session)
    return _report(session)
