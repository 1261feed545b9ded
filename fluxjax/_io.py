"""``save`` / ``load``: a model's arrays in a safetensors file, keyed by tree path.

The names come from the model's pytree structure (``treelike``): attribute names and
positions joined by dots, ``W`` and ``b`` for a ``Dense``, ``0.W``, ``1.b``, ... for a
``Chain``. No pickle: the file holds arrays and names only, so loading needs the model it
goes into, built with the same shapes.
"""

import os
import tempfile

import jax
import jax.numpy as jnp
import numpy as np
from jax.tree_util import DictKey, FlattenedIndexKey, GetAttrKey, SequenceKey

from fluxjax.tracker import Tracked

__all__ = ["save", "load"]


def _step(parent, key):
    """The child of ``parent`` that the pytree path entry ``key`` names, and its name."""
    if isinstance(key, GetAttrKey):
        return getattr(parent, key.name), key.name
    if isinstance(key, SequenceKey):
        return parent[key.idx], str(key.idx)
    if isinstance(key, DictKey):
        return parent[key.key], str(key.key)
    if isinstance(key, FlattenedIndexKey):
        return None, str(key.key)
    raise TypeError(f"unexpected pytree path entry {key!r}")


def _entries(model):
    """``{name: (leaf, parent, path entry)}`` for every array in ``model``, each object once.

    Walks the pytree paths of ``model`` on the objects themselves, so a param is found as
    the param (not a copy of its value); a leaf shared by two paths is named by the first.
    """
    found, seen = {}, set()
    for path, _ in jax.tree_util.tree_flatten_with_path(model)[0]:
        node, parent, names = model, None, []
        for key in path:
            parent, (node, name) = node, _step(node, key)
            names.append(name)
            if node is None:
                raise ValueError(f"cannot name the array at {jax.tree_util.keystr(path)}")
        if id(node) not in seen:
            seen.add(id(node))
            found[".".join(names)] = (node, parent, path[-1] if path else None)
    return found


def _value(leaf):
    return np.asarray(leaf.data if isinstance(leaf, Tracked) else leaf)


def save(path, model) -> None:
    """save(path, model) → writes every array of ``model`` to a safetensors file.

    Written to a temporary file in the same folder and then renamed over ``path``, so an
    interrupted save never leaves a half-written file in place of a good one.
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
    from safetensors.numpy import save_file

    tensors = {name: _value(leaf) for name, (leaf, _, _) in _entries(model).items()}
    folder = os.path.dirname(os.path.abspath(path))
    fd, tmp = tempfile.mkstemp(dir=folder, prefix=f".{os.path.basename(path)}.", suffix=".tmp")
    os.close(fd)
    try:
        save_file(tensors, tmp, metadata={"format": "fluxjax"})
        os.chmod(tmp, 0o666 & ~_umask())  # mkstemp makes it private; a saved model is not
        os.replace(tmp, path)
    except BaseException:
        if os.path.exists(tmp):
            os.remove(tmp)
        raise


def _umask():
    mask = os.umask(0)
    os.umask(mask)
    return mask


def _read(path):
    from safetensors.numpy import load_file

    if not os.path.isfile(path):
        raise FileNotFoundError(f"no checkpoint at {path}")
    try:
        return load_file(path)
    except Exception as e:
        raise ValueError(f"{path} is not a checkpoint (a safetensors file): {e}") from e


def _put(leaf, parent, key, array):
    if isinstance(leaf, Tracked):
        leaf.data = jnp.asarray(array, leaf.dtype)
    elif isinstance(key, GetAttrKey):
        object.__setattr__(parent, key.name, jnp.asarray(array, leaf.dtype))
    elif isinstance(parent, list | dict):
        parent[key.idx if isinstance(key, SequenceKey) else key.key] = jnp.asarray(array)
    else:
        raise ValueError(f"cannot load an array in place inside a {type(parent).__name__}")


def load(path, model):
    """load(path, model) → ``model``, its arrays replaced by those saved at ``path``.

    Params keep their identity (``p.data = ...``). Every entry is checked before anything
    changes: a missing, extra or mis-shaped entry, or a file that is not a checkpoint,
    raises ``ValueError`` naming it.
    """
    tensors = _read(path)
    entries = _entries(model)
    missing = [n for n in entries if n not in tensors]
    if missing:
        raise ValueError(f"{path} has no entry for {', '.join(missing)}")
    extra = [n for n in tensors if n not in entries]
    if extra:
        raise ValueError(f"{path} has entries the model does not: {', '.join(extra)}")
    for name, (leaf, _, _) in entries.items():
        shape, saved = tuple(np.shape(leaf)), tensors[name].shape
        if shape != saved:
            raise ValueError(f"entry {name} has shape {saved} in {path}, the model has {shape}")
    for name, (leaf, parent, key) in entries.items():
        _put(leaf, parent, key, tensors[name])
    return model
