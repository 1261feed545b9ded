"""``train_(..., checkpoint=folder)``: training that survives being killed.

A ``Checkpointer`` is made before the runner copies the params: it finds every leaf the
loss reads (the params, and the state leaves one abstract run of the loss touches:
running statistics, dropout keys, recurrent state), restores them, the optimiser state,
the data position and the random streams from the newest valid checkpoint in ``folder``,
and then rides along as a callback that writes a new checkpoint every ``checkpoint_every``
steps and at each epoch end. Each checkpoint is one safetensors file written atomically
(``_io.write_atomic``) with a SHA-256 of its arrays; the last two are kept, so a damaged
newest one falls back to the one before, with a warning. In a multi-process run each
checkpoint is instead an orbax folder that every process writes its shards into, with no
gather (``_orbax``); either kind resumes either kind of run.
"""

from __future__ import annotations

import os
from typing import NamedTuple

import jax
import numpy as np

from fluxjax import tracker
from fluxjax.layers import is_transient, path_of, set_stream_state, stream_state, walk

from . import _checkpoint_files as files
from . import _opt_arrays, _orbax
from . import _sharding as sharding
from ._data import DataLoader, Position
from ._optimisers import FluxOptimiser

__all__ = ["Checkpointer", "checkpointer"]


class Leaves(NamedTuple):
    """The leaves a checkpoint holds: params first, then state, each with its name;
    ``resizable`` names the recurrent carries, whose shape is their batch's."""

    leaves: list
    names: list
    resizable: frozenset = frozenset()


def _call(loss, item):
    return loss(*item) if isinstance(item, tuple) else loss(item)


def touched_by(loss, plist, item) -> list:
    """The leaves outside ``plist`` that ``loss(item)`` reads or writes, found by running it
    through the bridge, which puts every leaf back: abstractly (``jax.eval_shape``), or on
    the concrete values for a loss that needs them (``float``, ``if`` on a value)."""
    found = []

    def probe(values):
        r = tracker.run(_call, (loss, item), plist, list(values))
        found[:] = r.touched
        return r.out

    try:
        jax.eval_shape(probe, tracker.values_of(plist))
    except _NEEDS_VALUES:
        probe(tracker.values_of(plist))
    return found


_NEEDS_VALUES = (
    jax.errors.ConcretizationTypeError,
    jax.errors.TracerArrayConversionError,
    jax.errors.TracerBoolConversionError,
    jax.errors.TracerIntegerConversionError,
)


def _first_item(data):
    if isinstance(data, DataLoader):
        return data.batch(np.arange(min(data.batchsize, data.nobs)))
    return data.items[0]  # a Positioned list


def leaves_of(loss, plist, data, model=None) -> Leaves:
    """The params and the state leaves of this training, named by their path in ``model``
    or from the loss (its closure) where they are reached, else ``param.i`` / ``state.i``."""
    own = {id(p) for p in plist}
    extra = [leaf for leaf in touched_by(loss, plist, _first_item(data)) if id(leaf) not in own]
    where, carries = {}, set()
    for f in [*walk(model), *walk(loss)]:  # walk(None) meets nothing
        if isinstance(f.value, tracker.Tracked):
            where.setdefault(id(f.value), ".".join(path_of(f)))
            if is_transient(f):
                carries.add(id(f.value))
    names = [where.get(id(p)) or f"param.{i}" for i, p in enumerate(plist)]
    names += [where.get(id(s)) or f"state.{i}" for i, s in enumerate(extra)]
    resizable = frozenset(n for n, s in zip(names[len(plist) :], extra) if id(s) in carries)
    return Leaves(list(plist) + extra, names, resizable)


def _describe(opt) -> str:
    return repr(opt) if isinstance(opt, FluxOptimiser) else type(opt).__name__


class Positioned:
    """A list or tuple of items iterated epoch after epoch from a ``position`` on, as a
    ``DataLoader`` is (so a checkpoint can say where a list of batches stood)."""

    def __init__(self, items):
        self.items, self._epoch, self._batch = items, 0, 0
        self._started = self._pending = False

    def __len__(self):
        return len(self.items)

    @property
    def position(self) -> Position:
        if self._batch >= len(self):
            return Position(self._epoch + 1, 0)
        return Position(self._epoch, self._batch)

    def _resume_at(self, epoch, batch, key_state=None):
        self._epoch, self._batch, self._pending = epoch, batch, True
        if batch >= len(self):
            self._epoch, self._batch = epoch + 1, 0

    def __iter__(self):
        if self._pending:
            self._pending = False
        elif self._started:
            self._epoch, self._batch = self._epoch + 1, 0
        self._started = True
        for k in range(self._batch, len(self)):
            self._batch = k + 1
            yield self.items[k]


def _positioned(data):
    if isinstance(data, DataLoader):
        return data
    if isinstance(data, (list, tuple)) and data:
        return Positioned(data)
    raise ValueError(
        f"train_(checkpoint=...) needs data it can resume in the middle: a DataLoader or a "
        f"non-empty list of batches, not a {type(data).__name__}"
    )


def _key_state(data, pos):
    """The shuffling key at the start of the epoch ``pos`` is in (None for a list)."""
    if not isinstance(data, DataLoader):
        return None
    return data._rng.bit_generator.state if pos.batch == 0 else data._epoch_state


def _first_difference(saved: dict, here: dict, resizable=frozenset()) -> str:
    """The first entry whose name or shape differs (a recurrent carry's shape may: it is
    its batch's), or ""."""
    for name, shape in here.items():
        if name not in saved:
            return f"it has no entry {name} (shape {tuple(shape)} here)"
        if tuple(saved[name]) != tuple(shape) and name not in resizable:
            return f"entry {name} has shape {tuple(saved[name])} there, {tuple(shape)} here"
    extra = [n for n in saved if n not in here]
    return f"it has entries this training does not: {', '.join(extra)}" if extra else ""


def checkpointer(folder, every, loss, ps, plist, data, opt, epochs):
    """The ``Checkpointer`` of ``train_(checkpoint=folder, checkpoint_every=every)``, or
    None without a folder."""
    if folder is None:
        if every is not None:
            raise ValueError("checkpoint_every= needs checkpoint=folder, where to write them")
        return None
    return Checkpointer(folder, every, loss, ps, plist, data, opt, epochs)


class Checkpointer:
    """The checkpoints of one ``train_`` call; also the callback that writes them."""

    def __init__(self, folder, every, loss, ps, plist, data, opt, epochs):
        if every is not None and (not isinstance(every, int) or every < 1):
            raise ValueError(
                f"checkpoint_every must be a whole number of steps >= 1, got {every!r}"
            )
        self.folder, self.every, self.opt, self.plist = os.fspath(folder), every, opt, plist
        self.data, self.epochs = _positioned(data), epochs
        self.total = epochs * len(self.data)
        model = None if isinstance(ps, (tracker.Params, list, tuple)) else ps
        self.named = leaves_of(loss, plist, self.data, model)
        self.start, self.last, self.losses = 0, 0, np.zeros(0, np.float32)
        self.loop = self.runner = None
        os.makedirs(self.folder, exist_ok=True)
        saved = self._newest()
        if saved is not None:
            self._restore(saved)

    def _newest(self) -> files.Saved | None:
        """The checkpoint to resume from, the later step of either kind: a safetensors file
        (a one-process run's) or an orbax folder (a multi-process run's, each process
        having written its shards: ``_orbax``), so a run resumes on another number of
        processes or devices too."""
        found = [files.newest(self.folder)]
        if _orbax.in_use() or _orbax.holds_any(self.folder):
            written = _orbax.newest_named(self.folder, self._like)
            found.append(None if written is None else files.Saved(*written))
        found = [saved for saved in found if saved is not None]
        return max(found, key=lambda saved: saved.meta["step"], default=None)

    def _like(self, path, meta) -> dict:
        """The entries of an orbax checkpoint of this training, after checking its record."""
        self._check(files.Saved(path, meta, {}))
        like = {}
        for name, value in zip(self.named.names, self._values()):
            resized = name in self.named.resizable  # a carry: the checkpoint's batch shape
            shape = tuple(meta["entries"][name]) if resized else np.shape(value)
            like[f"leaf/{name}"] = _orbax.template(value, shape)
        for name, a in _opt_arrays.named_state(self.opt, self.plist).items():
            like[f"opt/{name}"] = _orbax.template(a)
        like["losses"] = np.zeros(meta["step"], np.float32)
        return like

    def _shapes(self) -> dict:
        return {n: tuple(np.shape(v)) for n, v in zip(self.named.names, self._values())}

    def _values(self):
        return tracker.values_of(self.named.leaves)

    def _check(self, saved: files.Saved):
        meta, where = saved.meta, f"train_: the checkpoint {saved.path}"
        if meta["optimiser"] != _describe(self.opt):
            raise ValueError(
                f"{where} is of {meta['optimiser']}, this training uses {_describe(self.opt)}"
            )
        difference = _first_difference(meta["entries"], self._shapes(), self.named.resizable)
        if difference:
            raise ValueError(f"{where} is of another model: {difference}")
        if meta["batches"] != len(self.data):
            raise ValueError(
                f"{where} had {meta['batches']} batches per epoch, this data has {len(self.data)}"
            )
        if meta["step"] > self.total:
            raise ValueError(
                f"{where} is at step {meta['step']}, past epochs={self.epochs} ({self.total} steps)"
            )

    def _restore(self, saved: files.Saved):
        self._check(saved)
        opt_arrays = {k[4:]: v for k, v in saved.tensors.items() if k.startswith("opt/")}
        _opt_arrays.put_named(self.opt, self.plist, opt_arrays, where=saved.path)
        for leaf, name in zip(self.named.leaves, self.named.names):
            value = saved.tensors[f"leaf/{name}"]
            if name in self.named.resizable and np.shape(value) != np.shape(leaf.data):
                tracker.resize(leaf, jax.numpy.asarray(value, leaf.data.dtype))
            else:
                leaf.data = value
        meta = saved.meta
        self.data._resume_at(meta["epoch"], meta["batch"], meta["key"])
        set_stream_state(meta["stream"])
        self.start = self.last = meta["step"]
        self.losses = saved.tensors["losses"]

    @property
    def epochs_left(self) -> int:
        return self.epochs - self.data.position.epoch

    def attach(self, loop, runner):
        self.loop, self.runner = loop, runner

    def _opt_state(self):
        state = getattr(self.runner, "state", None)  # the compiled runner's carry
        if state is None:
            return _opt_arrays.current_state(self.opt, self.plist)
        return state if _orbax.in_use() else sharding.gather(self.runner.layout, state)

    def __call__(self):
        """After each step or chunk: write a checkpoint when one is due."""
        step, pos = self.start + self.loop.nsteps, self.data.position
        due = step - self.last >= self.every if self.every else pos.batch == 0
        if due and step > self.last:
            self.loop.check(wait=True)  # never save a state that went non-finite
            self.write(step, pos, self._opt_state())

    def finish(self):
        """At the end: the last checkpoint, and every loss so far (earlier runs' too)."""
        step = self.start + self.loop.nsteps
        if step > self.last:
            self.write(step, self.data.position, _opt_arrays.current_state(self.opt, self.plist))
        return jax.numpy.asarray(np.concatenate([self.losses, self.loop.host()]))

    def write(self, step, pos, opt_state):
        """Write the checkpoint of step ``step`` (atomically), keep the last two."""
        self.last = step
        sharded = _orbax.in_use()  # every process writes its shards, no gather
        if not sharded and jax.process_index() != 0:
            return  # one writer: after a step every process holds the same values
        tensors = self._sharded(opt_state) if sharded else self._tensors(opt_state)
        tensors["losses"] = np.concatenate([self.losses, self.loop.host()]).astype(np.float32)
        meta = {
            "step": step, "epoch": pos.epoch, "batch": pos.batch,
            "key": _key_state(self.data, pos), "stream": stream_state(),
            "optimiser": _describe(self.opt), "batches": len(self.data),
            "entries": self._shapes(), "epochs": self.epochs, "done": step == self.total,
        }  # fmt: skip
        (_orbax.write_named if sharded else files.write)(self.folder, step, tensors, meta)

    def _tensors(self, opt_state) -> dict:
        tensors = {f"leaf/{n}": np.asarray(v) for n, v in zip(self.named.names, self._values())}
        for name, a in _opt_arrays.named_state(self.opt, self.plist, opt_state).items():
            tensors[f"opt/{name}"] = a
        return tensors

    def _sharded(self, opt_state) -> dict:
        """The entries as the compiled runner carries them (split over the processes'
        devices), where it does; else the leaves' values."""
        runner, carried = self.runner, {}
        if getattr(runner, "arrays", None) is not None:
            leaves = runner.plist + runner.entry.extras
            arrays = [*runner.arrays, *runner.extras]
            carried = {id(leaf): a for leaf, a in zip(leaves, arrays) if not a.is_deleted()}
        values = [carried.get(id(leaf), v) for leaf, v in zip(self.named.leaves, self._values())]
        tensors = {f"leaf/{n}": v for n, v in zip(self.named.names, values)}
        for name, a in _opt_arrays.named_arrays(opt_state).items():
            tensors[f"opt/{name}"] = a
        return tensors
