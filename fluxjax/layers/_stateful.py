"""State that is not trained: ``states``, ``testmode_``, ``trainmode_``.

Running statistics, dropout keys and recurrent state are ``fluxjax.tracker.state``
leaves: tracked but not trainable, so ``params`` skips them and every path (eager,
``gradient``, compiled ``train_``, ``fluxjax.jit``) threads their new values out of the
step and writes them back. Whether a Dropout or normalisation layer is active is a plain
Python flag (``active``), fixed when a step is compiled; ``testmode_``/``trainmode_`` flip
it on every such layer and drop compiled steps so the next one sees the new mode.
"""

from __future__ import annotations

import jax
import numpy as np

from .. import tracker
from ..tracker import Tracked
from ._tree import _ATOMS, _children


def walk(model):
    """Every object inside ``model`` once, depth first (shared objects once)."""
    seen, stack = set(), [model]
    while stack:
        x = stack.pop()
        if id(x) in seen or x is None or isinstance(x, _ATOMS):
            continue
        seen.add(id(x))
        yield x
        if not isinstance(x, (Tracked, jax.Array, np.ndarray)):
            stack.extend(reversed(_children(x)))


def states(*models) -> list:
    """states(*models) -> [state leaves]

    Every non-trainable tracked leaf in ``models`` (running statistics, dropout keys,
    recurrent state), depth first, each once: the counterpart of ``params``.

    >>> from fluxjax.layers import BatchNorm
    >>> [tuple(s.shape) for s in states(BatchNorm(3))]
    [(3,), (3,)]
    """
    found = {}
    for m in models:
        for x in walk(m):
            if isinstance(x, Tracked) and x.is_leaf and not x.trainable:
                found.setdefault(id(x), x)
    return list(found.values())


def _set_mode(model, active: bool):
    for x in walk(model):
        if getattr(type(x), "_has_mode", False):
            x.active = active
    tracker.clear_caches()
    return model


def testmode_(model, mode: bool = True):
    """testmode_(m, mode=True) -> m

    Flux's ``testmode!``: switches every Dropout, AlphaDropout and normalisation layer in
    ``m`` off (``mode=True``: dropout passes inputs through, normalisation uses its
    running statistics and stops updating them) or back on (``mode=False``). Layers are
    active from construction until this is called, in training and in plain forward
    passes alike (Flux v0.9). Compiled steps are dropped, so the next ``train_`` or
    ``fluxjax.jit`` call traces the new mode.

    >>> import jax.numpy as jnp
    >>> from fluxjax.layers import Chain, Dropout
    >>> m = testmode_(Chain(Dropout(0.5)))
    >>> m[0].active, m(jnp.ones(3)).tolist()
    (False, [1.0, 1.0, 1.0])
    """
    return _set_mode(model, not mode)


testmode_.__test__ = False  # a library function, not a pytest test


def trainmode_(model):
    """trainmode_(m) -> m, the same as ``testmode_(m, False)``: every layer active again.

    >>> from fluxjax.layers import Dropout
    >>> trainmode_(testmode_(Dropout(0.5))).active
    True
    """
    return _set_mode(model, True)


def write(obj, name: str, value):
    """Sets ``obj.<name>`` (a state leaf, or a tuple of them) to ``value``.

    A state leaf gets ``s.data = v``. Under plain ``jax.jit``/``jax.grad`` the model is a
    pytree holding raw arrays, so the field itself is replaced on that (traced) object,
    which a pure function may return to pass the new state on.
    """
    old = getattr(obj, name)
    if isinstance(old, tuple):
        if all(isinstance(s, Tracked) for s in old):
            for s, v in zip(old, value, strict=True):
                s.data = v
            return
    elif isinstance(old, Tracked):
        old.data = value
        return
    object.__setattr__(obj, name, value)
