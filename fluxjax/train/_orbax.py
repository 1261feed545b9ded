"""Sharded checkpoints on orbax-checkpoint: every process writes its own shards.

``save_sharded(folder, tree, meta)`` writes a pytree of arrays and a JSON record; an array
split over the devices of several processes (``train_``'s params and optimiser state under
``devices=``) is written piece by piece, each process its own pieces, with no gather to one
host. Orbax writes into a temporary folder and renames it when every process is done, so a
folder that exists is complete. ``load_sharded(folder, like)`` reads it back shaped,
typed and placed like ``like``: onto another mesh, another device count, or into NumPy.

``write``/``newest`` keep a folder of such checkpoints (``step-000000012.orbax``, the
newest two kept) for ``train_(checkpoint=)`` in a multi-process run.
"""

from __future__ import annotations

import os
import re
import shutil

import jax
import numpy as np

from fluxjax._optional import require
from fluxjax.train._checkpoint_files import first_readable

__all__ = ["save_sharded", "load_sharded", "write", "newest", "holds_any", "Mismatch"]

_DIR = re.compile(r"step-(\d{9})\.orbax")
_KEEP = 2


def _ocp():
    return require("orbax.checkpoint", "distributed", "sharded checkpoints")


def _checkpointer(ocp):
    """Orbax's synchronous checkpointer of our two items: the arrays and a JSON record."""
    handler = ocp.CompositeCheckpointHandler(
        arrays=ocp.StandardCheckpointHandler(), meta=ocp.JsonCheckpointHandler()
    )
    return ocp.Checkpointer(handler)


def _storable(a):
    """What orbax stores: a jax.Array spanning processes as it is; anything one process
    holds (every process holding the same) as NumPy, written once, by process 0."""
    if isinstance(a, jax.Array) and not a.is_fully_addressable:
        return a
    if isinstance(a, jax.Array) and len(a.devices()) > 1:
        return a  # one process's mesh: orbax writes its pieces
    return np.asarray(a)


def save_sharded(folder, tree, meta=None) -> None:
    """save_sharded(folder, tree, meta=None) → writes the arrays of ``tree`` (a pytree:
    dicts, lists; leaves jax arrays or NumPy) and the JSON-ready dict ``meta`` to the
    new folder ``folder``, every process writing its own shards (every process must call
    it, with the same tree structure). Needs ``pip install 'fluxjax[distributed]'``.

    >>> import tempfile, os, numpy as np
    >>> folder = os.path.join(tempfile.mkdtemp(), "ckpt")
    >>> save_sharded(folder, {"w": np.ones(3, np.float32)}, {"step": 1})
    >>> load_sharded(folder, {"w": np.zeros(3, np.float32)})
    ({'w': array([1., 1., 1.], dtype=float32)}, {'step': 1})
    """
    ocp = _ocp()
    args = ocp.args.Composite(
        arrays=ocp.args.StandardSave(jax.tree.map(_storable, tree)),
        meta=ocp.args.JsonSave(meta or {}),
    )
    with _checkpointer(ocp) as saver:
        saver.save(os.path.abspath(os.fspath(folder)), args)


class Mismatch(ValueError):
    """A checkpoint of other entries, shapes or dtypes than asked for (not damage)."""


def _target(a):
    """What to read a leaf as: a ShapeDtypeStruct (with its sharding) or NumPy."""
    if isinstance(a, jax.ShapeDtypeStruct):
        return a
    if isinstance(a, jax.Array):
        return jax.ShapeDtypeStruct(a.shape, a.dtype, sharding=a.sharding)
    return np.asarray(a)  # only its shape and dtype are read


def _first_difference(saved, like) -> str:
    here = dict(jax.tree_util.tree_flatten_with_path(like)[0])
    there = dict(jax.tree_util.tree_flatten_with_path(saved)[0])
    for path, a in here.items():
        name = jax.tree_util.keystr(path)
        if path not in there:
            return f"it has no entry {name}"
        b = there[path]
        if tuple(b.shape) != tuple(np.shape(a)) or np.dtype(b.dtype) != np.dtype(a.dtype):
            return (
                f"entry {name} is {np.dtype(b.dtype)}{list(b.shape)} there, "
                f"{np.dtype(a.dtype)}{list(np.shape(a))} here"
            )
    extra = [jax.tree_util.keystr(p) for p in there if p not in here]
    return f"it has entries not asked for: {', '.join(extra)}" if extra else ""


def load_sharded(folder, like):
    """load_sharded(folder, like) → ``(tree, meta)`` written by ``save_sharded``.

    ``tree`` has the structure of ``like``; each leaf is read with the shape, dtype and
    placement of ``like``'s leaf: a ``jax.Array`` or a ``jax.ShapeDtypeStruct`` with a
    ``sharding`` gives a jax array placed so (each process reads only its pieces; a
    mesh of another device count than the writer's is fine), a NumPy array gives NumPy.
    A checkpoint whose entries, shapes or dtypes differ raises ``ValueError`` naming the
    first difference. See ``save_sharded`` for an example.
    """
    ocp, path = _ocp(), os.path.abspath(os.fspath(folder))
    target = jax.tree.map(_target, like)
    with _checkpointer(ocp) as reader:
        saved = reader.metadata(path).item_metadata["arrays"]
        saved = getattr(saved, "tree", saved)
        if not jax.tree.leaves(saved):
            raise OSError(f"the checkpoint {path} lists no arrays (damaged or incomplete)")
        difference = _first_difference(saved, target)
        if difference:
            raise Mismatch(f"the checkpoint {path} does not match: {difference}")
        args = ocp.args.Composite(
            arrays=ocp.args.StandardRestore(target), meta=ocp.args.JsonRestore()
        )
        found = reader.restore(path, args)
    return found["arrays"], found["meta"]


def write(folder, step, tree, meta) -> str:
    """Write the checkpoint of step ``step`` into ``folder`` (all processes); keep the
    newest two. Returns its path."""
    path = os.path.join(folder, f"step-{step:09d}.orbax")
    save_sharded(path, tree, meta)
    if jax.process_index() == 0:
        for old in sorted(d for d in os.listdir(folder) if _DIR.fullmatch(d))[:-_KEEP]:
            shutil.rmtree(os.path.join(folder, old), ignore_errors=True)
    return path


def newest(folder, like_of):
    """``(path, tree, meta)`` of the newest checkpoint in ``folder`` that reads back, or
    None if there is none; ``like_of(path, meta)`` gives the ``like`` of ``load_sharded``
    (and raises if the record shows another training). A damaged one is skipped with a
    warning; if every one is damaged, ``ValueError`` names them."""
    found = sorted((d for d in os.listdir(folder) if _DIR.fullmatch(d)), reverse=True)

    def read(path):
        meta = _read_meta(path)  # raises: damaged
        try:
            like = like_of(path, meta)
        except Exception as e:  # another training's checkpoint: not damage
            raise _Refused(e) from e
        return (path, *load_sharded(path, like))

    paths = [os.path.join(folder, name) for name in found]
    try:
        return first_readable(paths, read, passes=(Mismatch, _Refused))
    except _Refused as refused:
        raise refused.error from None


class _Refused(Exception):
    """``like_of`` refused a checkpoint (another training's): passed through, not damage."""

    def __init__(self, error):
        super().__init__(str(error))
        self.error = error


def _read_meta(path) -> dict:
    ocp = _ocp()
    with _checkpointer(ocp) as reader:
        return reader.restore(path, ocp.args.Composite(meta=ocp.args.JsonRestore()))["meta"]


# ``train_(checkpoint=)``'s entries are flat names, ``leaf/layers.0.W``, ``opt/0.0.mu.1``,
# ``losses``; orbax gets them nested at the first ``/`` (its own separator is ``.``).


def in_use() -> bool:
    """Whether ``train_(checkpoint=)`` writes orbax checkpoints: in a multi-process run."""
    return jax.process_count() > 1


def holds_any(folder) -> bool:
    """Whether ``folder`` holds orbax checkpoints (complete ones: orbax renames a folder
    into ``step-….orbax`` when every process is done)."""
    return any(_DIR.fullmatch(d) for d in os.listdir(folder))


def _nested(flat: dict) -> dict:
    tree: dict = {}
    for name, a in flat.items():
        group, _, rest = name.partition("/")
        if rest:
            tree.setdefault(group, {})[rest] = a
        else:
            tree[group] = a
    return tree


def _flat(tree: dict) -> dict:
    flat = {}
    for group, value in tree.items():
        if isinstance(value, dict):
            flat.update({f"{group}/{k}": a for k, a in value.items()})
        else:
            flat[group] = value
    return flat


def template(a, shape=None):
    """A NumPy stand-in of ``a``'s dtype and shape (or ``shape``) that holds no memory
    (for ``like``)."""
    return np.broadcast_to(np.zeros((), np.dtype(a.dtype)), np.shape(a) if shape is None else shape)


def write_named(folder, step, tensors: dict, meta: dict) -> None:
    """``write`` for flat names (every process calls it; arrays may span processes)."""
    write(folder, step, _nested(tensors), meta)


def newest_named(folder, like_of):
    """``newest`` for flat names: ``(path, meta, {name: NumPy array})`` or None. Needs
    orbax even for an empty folder: without it, training must not start."""
    _ocp()
    found = newest(folder, lambda path, meta: _nested(like_of(path, meta)))
    if found is None:
        return None
    path, tree, meta = found
    return path, meta, _flat(tree)
