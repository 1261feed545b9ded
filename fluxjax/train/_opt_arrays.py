"""An optimiser's state as named arrays, and back: what ``save``/``load`` of an ``OptState``
and the checkpoints of ``train_`` write and read.

The state of ``opt`` for a list of params is an optax pytree; each array is named by its
path in that tree (``0.0.mu.1``: first piece of the chain, its ``mu``, the second param's
entry). ``put_named`` checks every name, shape and dtype kind before it changes anything.
"""

from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np

from fluxjax import tracker

from . import _update

__all__ = ["named_state", "put_named"]


def _key_name(k) -> str:
    for attr in ("name", "key", "idx"):
        if hasattr(k, attr):
            return str(getattr(k, attr))
    return str(k)


def _named(state) -> dict:
    pairs, _ = jax.tree_util.tree_flatten_with_path(state)
    return {".".join(map(_key_name, path)) or "value": leaf for path, leaf in pairs}


def current_state(opt, plist):
    """The optax state of ``opt`` for ``plist`` (made fresh if it has none yet)."""
    return _update.get_state(opt, plist, tracker.values_of(plist))


def named_state(opt, plist, state=None) -> dict:
    """``{name: NumPy array}`` for the optax state of ``opt`` over ``plist`` (or ``state``).

    >>> from fluxjax.tracker import param
    >>> from fluxjax.train import ADAM
    >>> sorted(named_state(ADAM(), [param([1.0, 2.0])]))
    ['0.0.count', '0.0.mu.0', '0.0.nu.0']
    """
    state = current_state(opt, plist) if state is None else state
    return {name: np.asarray(a) for name, a in _named(state).items()}


def named_arrays(state) -> dict:
    """``{name: array}`` for an optax state, its arrays as they are (split over devices)."""
    return _named(state)


def put_named(opt, plist, arrays: dict, where: str) -> None:
    """Set ``opt``'s state for ``plist`` from ``arrays`` (as ``named_state`` gives them).

    Raises ``ValueError`` naming the first missing, extra or mis-shaped entry (``where``
    says which file or record), with nothing changed.
    """
    state = current_state(opt, plist)
    names = _named(state)
    missing = [n for n in names if n not in arrays]
    extra = [n for n in arrays if n not in names]
    if missing or extra:
        raise ValueError(
            f"{where} holds the state of another optimiser or model: "
            + (f"no entry for {', '.join(missing)}" if missing else "")
            + ("; " if missing and extra else "")
            + (f"entries {', '.join(extra)} this {opt!r} does not have" if extra else "")
        )
    for name, old in names.items():
        if tuple(np.shape(arrays[name])) != tuple(np.shape(old)):
            raise ValueError(
                f"{where}: optimiser entry {name} has shape {tuple(np.shape(arrays[name]))} "
                f"there, {tuple(np.shape(old))} here (another model?)"
            )
    leaves, treedef = jax.tree.flatten(state)
    new = [jnp.asarray(arrays[n], jnp.asarray(old).dtype) for n, old in names.items()]
    assert len(new) == len(leaves)
    _update.put_state(opt, plist, jax.tree.unflatten(treedef, new))
