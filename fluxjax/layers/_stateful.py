"""State that is not trained: ``states``, ``testmode_``, ``trainmode_``.

Running statistics, dropout keys and recurrent state are ``fluxjax.tracker.state``
leaves: tracked but not trainable, so ``params`` skips them and every path (eager,
``gradient``, compiled ``train_``, ``fluxjax.jit``) threads their new values out of the
step and writes them back. Whether a Dropout or normalisation layer is active is a plain
Python flag (``active``), fixed when a step is compiled and read through
``tracker.static``, so each compiled path keeps one variant per mode;
``testmode_``/``trainmode_`` flip it on every such layer and clear nothing.
"""

from __future__ import annotations

import jax

from ..tracker import Tracked
from ._opaque import holds_model, unregistered
from ._walk import at_path, is_state, walk


def states(*models) -> list:
    """states(*models) -> [state leaves]

    Every non-trainable tracked leaf in ``models`` (running statistics, dropout keys,
    recurrent state), depth first, each once: the counterpart of ``params``.

    >>> from fluxjax.layers import BatchNorm
    >>> [tuple(s.shape) for s in states(BatchNorm(3))]
    [(3,), (3,)]
    """
    return [f.value for f in walk(*models) if is_state(f.value)]


def _set_mode(model, active: bool):
    for found in walk(model):
        if getattr(type(found.value), "_has_mode", False):
            found.value.active = active
    return model  # compiled steps read ``active`` through tracker.static: nothing to clear


def testmode_(model, mode: bool = True):
    """testmode_(m, mode=True) -> m

    Flux's ``testmode!``: switches every Dropout, AlphaDropout and normalisation layer in
    ``m`` off (``mode=True``: dropout passes inputs through, normalisation uses its
    running statistics and stops updating them) or back on (``mode=False``). Layers are
    active from construction until this is called, in training and in plain forward
    passes alike (Flux v0.9). Compiled steps are kept: ``train_`` and ``fluxjax.jit``
    compile each mode once and switch between them.

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


def leaf_owners(xs) -> list:
    """leaf_owners(xs) -> for each leaf of ``jax.tree_util.tree_leaves(xs)``, the tracked
    leaf (param or state) it was read from, or None.

    The finder ``fluxjax.layers`` gives the tracker (``register_leaf_finder``), so that
    ``gradient(f, model)`` threads a model's state leaves instead of differentiating them:
    each leaf's key path is followed on the objects themselves (``at_path``, through the
    one walk's ``children``).

    >>> from fluxjax.layers import BatchNorm, Chain, Dense
    >>> m = Chain(Dense(2, 2), BatchNorm(2))
    >>> [None if o is None else o.trainable for o in leaf_owners((m, [1.0]))]
    [True, True, True, True, False, False, None]
    """
    pairs = jax.tree_util.tree_flatten_with_path(xs, is_leaf=_is_tracked)[0]
    for path, leaf in pairs:
        if holds_model(leaf):  # JAX would say "not a valid JAX type"
            raise unregistered(leaf, jax.tree_util.keystr(path))
    owners = [at_path(xs, path) for path, _ in pairs]
    return [o if isinstance(o, Tracked) and o.is_leaf else None for o in owners]


def _is_tracked(x) -> bool:
    return isinstance(x, Tracked)
