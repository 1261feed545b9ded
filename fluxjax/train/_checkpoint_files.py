"""The files of ``train_(checkpoint=)``: one safetensors file per checkpoint,
``step-000000012.safetensors``, holding the arrays and a JSON record (position, random
streams, optimiser, entries) with a SHA-256 of the arrays; written atomically, the last
two kept; read back newest first, a damaged one skipped with a warning.
"""

from __future__ import annotations

import hashlib
import json
import os
import re
from typing import NamedTuple

import numpy as np

from fluxjax import tracker
from fluxjax._io import write_atomic
from fluxjax._optional import require

__all__ = ["Saved", "first_readable", "newest", "read", "write"]

_FILE = re.compile(r"step-(\d{9})\.safetensors")
_KEEP = 2
_VERSION = 1


class Saved(NamedTuple):
    """One checkpoint read back: its file, its record (``meta``) and its arrays."""

    path: str
    meta: dict
    tensors: dict


def _checksum(tensors: dict) -> str:
    h = hashlib.sha256()
    for name in sorted(tensors):
        a = np.ascontiguousarray(tensors[name])
        h.update(f"{name}:{a.dtype.str}:{a.shape}".encode())
        h.update(a.tobytes())
    return h.hexdigest()


def write(folder, step, tensors: dict, meta: dict) -> None:
    """Write the checkpoint of step ``step`` atomically; keep the newest two."""
    meta = {"version": _VERSION, **meta, "checksum": _checksum(tensors)}
    path = os.path.join(folder, f"step-{step:09d}.safetensors")
    write_atomic(path, tensors, {"format": "fluxjax", "checkpoint": json.dumps(meta)})
    for old in sorted(f for f in os.listdir(folder) if _FILE.fullmatch(f))[:-_KEEP]:
        os.remove(os.path.join(folder, old))


def read(path) -> Saved:
    """One checkpoint file, checked (its record and the SHA-256 of its arrays)."""
    safe_open = require("safetensors", "io", "train_(checkpoint=...)").safe_open
    with safe_open(path, framework="np") as f:
        meta = json.loads((f.metadata() or {}).get("checkpoint", "null"))
        tensors = {k: f.get_tensor(k) for k in f.keys()}  # noqa: SIM118 - not a dict
    if not isinstance(meta, dict) or meta.get("version") != _VERSION:
        raise ValueError("not a fluxjax checkpoint (no record of version 1)")
    if _checksum(tensors) != meta.get("checksum"):
        raise ValueError("its arrays do not match their checksum (damaged)")
    return Saved(path, meta, tensors)


def newest(folder) -> Saved | None:
    """The newest valid checkpoint in ``folder`` (None if it holds none); a damaged one is
    skipped with a warning; if every one is damaged, ``ValueError`` names them."""
    files = sorted((f for f in os.listdir(folder) if _FILE.fullmatch(f)), reverse=True)
    return first_readable([os.path.join(folder, f) for f in files], read)


def first_readable(paths, read, passes=()):
    """``read(path)`` of the first of ``paths`` (newest first) that reads back, or None if
    ``paths`` is empty. A damaged one (``read`` raises) is skipped with a warning naming it;
    exceptions of the types ``passes`` are not damage and go to the caller; if every one is
    damaged, ``ValueError`` names them all: training never silently restarts.

    >>> first_readable(["a", "b"], lambda p: {"b": 2}[p])
    2
    """
    problems = []
    for path in paths:
        try:
            found = read(path)
        except passes:
            raise
        except Exception as e:  # noqa: BLE001 - any failure to read means damaged
            problems.append(f"{path}: {type(e).__name__}: {e}")
            continue
        if problems:
            tracker.warn_user(
                f"train_: skipped damaged checkpoint(s) {problems}; resuming from {path}"
            )
        return found
    if problems:
        raise ValueError(
            "train_(checkpoint=...): every checkpoint in the folder is damaged, so training "
            f"cannot resume and will not silently restart: {problems}. Remove the folder "
            f"(or pass another) to start over"
        )
    return None
