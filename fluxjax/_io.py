"""``save`` / ``load``: a model's arrays in a safetensors file, keyed by tree path.

The arrays are found by the one model walk ``params`` uses (``layers/_walk.py``), closures
included, and named by their path: attribute names, positions and closure variables
joined by dots, ``W`` and ``b`` for a ``Dense``, ``0.W``, ``1.b``, ... for a ``Chain``.
No pickle: the file holds arrays and names only, so loading needs the model it goes
into, built with the same shapes.
"""

import json
import os
import re
import tempfile
from collections import Counter

import jax
import jax.numpy as jnp
import numpy as np

from fluxjax._optional import require
from fluxjax.layers import is_tracked_leaf, is_transient, path_of, put, walk
from fluxjax.tracker import Tracked

__all__ = ["save", "load"]


def _entries(model, transient=None) -> dict:
    """``{name: Found}`` for every tracked leaf (params and persistent state) and plain
    array of ``model``, found by the one walk (closures included), each object once under
    its first path. A recurrent carry is transient: its name goes to ``transient`` (a set,
    when given), never to the result. An object hiding params raises (see ``walk``)."""
    found = {}
    for f in walk(model):
        if is_tracked_leaf(f.value) or isinstance(f.value, (jnp.ndarray, np.ndarray)):
            name = ".".join(path_of(f)) or "value"
            if not is_transient(f):
                found[name] = f
            elif transient is not None:
                transient.add(name)
    return found


def _value(leaf):
    return np.asarray(leaf.data if isinstance(leaf, Tracked) else leaf)


def save(path, model) -> None:
    """save(path, model) → writes every array of ``model`` to a safetensors file.

    ``model`` may also be an ``OptState`` (``setup(opt, model)``): its optimiser state is
    written, each array named by its path in the optax state (``0.0.mu.1``).

    The arrays are those ``params(model)`` finds (closures included), the persistent
    state (running statistics, random streams) and plain arrays, keyed by their path
    (``0.W``), never a recurrent layer's carry (it holds a batch; ``load`` leaves it);
    a model with no arrays, or with params hidden in an
    object that is not ``treelike``, raises ``ValueError``. Written to a temporary file
    in the same folder, flushed to disk and renamed over ``path``, so an interrupted save
    never leaves a half-written file in place of a good one; the next save removes what
    an interrupted one left beside it.
    In a multi-process run only process 0 writes (every process may call ``save``; the
    others return at once, their params being the same after ``train_``).

    >>> import os, tempfile
    >>> from fluxjax.layers import Chain, Dense
    >>> m = Chain(Dense(3, 2), Dense(2, 1))
    >>> path = os.path.join(tempfile.mkdtemp(), "m.safetensors")
    >>> save(path, m)
    >>> load(path, Chain(Dense(3, 2), Dense(2, 1))).layers[0].W.shape
    (2, 3)
    """
    if jax.process_index() != 0:
        return  # multi-process: one writer, no race on the file
    if _is_opt_state(model):
        write_atomic(path, model.arrays(), {"format": "fluxjax", "kind": "OptState"})
        return
    entries = _entries(model)
    if not entries:
        raise ValueError(
            f"save found no arrays in {type(model).__name__}: nothing would be saved. "
            f"Its layers hold params as treelike fields or closure variables (see params)."
        )
    tensors = {name: _value(f.value) for name, f in entries.items()}
    write_atomic(path, tensors, {"format": "fluxjax"})


def write_atomic(path, tensors: dict, metadata: dict) -> None:
    """Write ``tensors`` (``{name: NumPy array}``) and ``metadata`` (``{str: str}``) as a
    safetensors file at ``path``: to a temporary file in the same folder, synced, then
    renamed over ``path`` and the folder synced, so ``path`` is the old file or the new."""
    safetensors = require("safetensors.numpy", "io", "save")
    folder, base = os.path.split(os.path.abspath(path))
    _remove_stale(folder, base)
    fd, tmp = tempfile.mkstemp(dir=folder, prefix=f".{base}.{os.getpid()}.", suffix=".tmp")
    os.close(fd)
    try:
        _write_bytes(tmp, safetensors.save(tensors, metadata=metadata))
        os.chmod(tmp, 0o666 & ~_umask())  # mkstemp makes it private; a saved model is not
        os.replace(tmp, path)
    except BaseException:
        if os.path.exists(tmp):
            os.remove(tmp)
        raise
    _flush(folder)  # the rename itself reaches the disk


def _is_opt_state(x) -> bool:
    """An ``OptState`` (``setup(opt, model)``), told by its methods: ``train`` writes its
    checkpoints with ``write_atomic``, so this module does not import it."""
    return callable(getattr(type(x), "arrays", None)) and callable(
        getattr(type(x), "load_arrays_", None)
    )


def _write_bytes(path, payload: bytes) -> None:
    """Write ``payload`` to ``path`` and sync it; a full disk raises ``OSError`` here
    (safetensors' own ``save_file`` reports it as a ``SafetensorError``)."""
    with open(path, "wb") as f:
        f.write(payload)
        f.flush()
        os.fsync(f.fileno())


def _flush(path):
    """Ask the OS to put ``path`` (a file, or a folder's entries) on the disk."""
    try:
        fd = os.open(path, os.O_RDONLY)
    except OSError:  # pragma: no cover - a folder cannot be opened on Windows
        return
    try:
        os.fsync(fd)
    except OSError:  # pragma: no cover - some file systems cannot sync a folder
        pass
    finally:
        os.close(fd)


def _remove_stale(folder, base):
    """Remove temporary files that saves to ``base`` left when their process died."""
    if os.name != "posix":  # os.kill(pid, 0) probes a process only on POSIX
        return
    pattern = re.compile(rf"\.{re.escape(base)}\.(\d+)\.[^.]+\.tmp")
    for name in os.listdir(folder):
        m = pattern.fullmatch(name)
        if m and int(m.group(1)) != os.getpid() and not _alive(int(m.group(1))):
            try:
                os.remove(os.path.join(folder, name))
            except FileNotFoundError:  # another save removed it first
                pass


def _alive(pid) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except OSError:  # it exists but belongs to someone else
        return True
    return True


def _umask():
    mask = os.umask(0)
    os.umask(mask)
    return mask


def _read(path):
    safetensors = require("safetensors.numpy", "io", "load")
    if not os.path.isfile(path):
        raise FileNotFoundError(f"no checkpoint at {path}")
    try:
        _unique_names(path)
        return safetensors.load_file(path)
    except Exception as e:
        raise ValueError(f"{path} is not a checkpoint (a safetensors file): {e}") from e


def _unique_names(path):
    """Refuses a safetensors header that names a tensor twice (a reader would keep one)."""
    with open(path, "rb") as f:
        header = f.read(int.from_bytes(f.read(8), "little"))

    def once(pairs):
        twice = sorted(k for k, n in Counter(k for k, _ in pairs).items() if n > 1)
        if twice:
            raise ValueError(f"its header names {', '.join(twice)} more than once")
        return dict(pairs)

    json.loads(header, object_pairs_hook=once)


def _check(path, tensors, entries):
    """Every way ``tensors`` may not fit ``entries``, as one message (empty if they fit)."""
    missing = [n for n in entries if n not in tensors]
    if missing:
        return f"{path} has no entry for {', '.join(missing)}"
    extra = [n for n in tensors if n not in entries]
    if extra:
        return f"{path} has entries the model does not: {', '.join(extra)}"
    for name, f in entries.items():
        shape, saved = tuple(np.shape(f.value)), tensors[name].shape
        if shape != saved:
            return f"entry {name} has shape {saved} in {path}, the model has {shape}"
        if not is_tracked_leaf(f.value) and f.how is None:
            return (
                f"cannot load {name} in place: it is a plain array inside a "
                f"{type(f.owner).__name__ if f.owner is not None else 'tuple'}; make it a "
                f"param, or hold it in a list, a dict or an attribute"
            )
    return ""


def load(path, model):
    """load(path, model) → ``model``, its arrays replaced by those saved at ``path``.

    Params keep their identity (``p.data = ...``) and dtype; an ``OptState`` (from
    ``setup``) gets its optimiser state back. Every entry is checked before
    anything changes: a missing, extra or mis-shaped entry, an array that cannot be
    replaced in place, or a file that is not a checkpoint raises ``ValueError`` naming it.
    """
    tensors = _read(path)
    if _is_opt_state(model):
        return model.load_arrays_(tensors, where=str(path))
    transient: set = set()
    entries = _entries(model, transient)
    tensors = {k: v for k, v in tensors.items() if k not in transient}  # older files
    problem = _check(path, tensors, entries) if entries else f"{path}: the model has no arrays"
    if problem:
        raise ValueError(problem)
    for name, f in entries.items():
        put(f, _like(f.value, tensors[name]))
    return model


def _like(old, array):
    """``array`` with the dtype (and the kind: NumPy or JAX) of the value it replaces."""
    return (
        np.asarray(array, old.dtype) if type(old) is np.ndarray else jnp.asarray(array, old.dtype)
    )
