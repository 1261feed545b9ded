"""Checks for the explicit style: gradients shaped like the model, models that hold params.

``update_(state, model, grads)`` needs ``grads`` shaped like ``model`` (as
``withgradient(f, model)`` and ``gradient(f, model)[0]`` give them). ``check_grads`` walks
the two together and raises ``ValueError`` at the first place they differ, naming its path
(``layers.0.W``) and what was found there, before anything changes.
"""

from __future__ import annotations

import jax
import numpy as np

from fluxjax import tracker
from fluxjax.layers import UnregisteredModelError, params
from fluxjax.layers._treelike import items

__all__ = ["check_grads", "check_model"]

_HINT = (
    "update_(state, model, grads) needs the gradient shaped like the model, as "
    "withgradient(f, model)[1] or gradient(f, model)[0] give it"
)


def check_model(model, who="setup(opt, model)") -> None:
    """Raise ``ValueError`` unless ``model`` holds at least one param."""
    try:
        found = params(model)
    except UnregisteredModelError:  # a plain class holding layers: its error names treelike
        raise
    except (TypeError, ValueError) as e:
        raise ValueError(f"{who}: {type(model).__name__} is not a model ({e})") from e
    if not list(found):
        raise ValueError(
            f"{who} got a {type(model).__name__} holding no params: nothing to optimise. "
            f"Pass the model (a layer, a Chain, a treelike object with param(...) fields)"
        )


def check_grads(model, grads) -> None:
    """Raise ``ValueError`` naming the first place where ``grads`` is not shaped like ``model``.

    >>> import jax.numpy as jnp
    >>> from fluxjax.layers import Dense
    >>> d = Dense(jnp.ones((1, 2)), jnp.zeros(1))
    >>> check_grads(d, [d.W.data])
    Traceback (most recent call last):
    ValueError: grads at the top is a list where the model has a Dense. ...
    """
    if isinstance(grads, tracker.Grads):
        raise ValueError(
            "update_(state, model, grads) got Grads, the implicit style's gradients "
            "(gradient(() -> ..., params(model))); pass them as update_(opt, params(model), "
            f"grads), or use the explicit style's gradients. {_HINT}"
        )
    if isinstance(grads, tuple) and not isinstance(model, tuple) and len(grads) >= 1:
        if type(grads[0]) is type(model):
            raise ValueError(
                f"grads at the top is a tuple where the model has a {type(model).__name__}: "
                f"gradient(f, model) returns one gradient per argument; pass its [0]"
            )
    _walk(model, grads, (), set())


def _where(path) -> str:
    return ".".join(map(str, path)) or "the top"


def _mismatch(path, m, g) -> ValueError:
    return ValueError(
        f"grads at {_where(path)} is a {type(g).__name__} where the model has a "
        f"{type(m).__name__}. {_HINT}"
    )


def _has_params(m) -> bool:
    try:
        return bool(list(params(m)))
    except (TypeError, ValueError):
        return False


def _walk(m, g, path, seen) -> None:
    if id(m) in seen:
        return
    if isinstance(m, tracker.Tracked):
        _leaf(m, g, path)
        return
    if g is None:
        if _has_params(m):
            raise ValueError(f"grads at {_where(path)} is None where the model has params. {_HINT}")
        return
    seen = seen | {id(m)}
    pairs = items(m)
    if pairs is not None:
        if type(g) is not type(m):
            raise _mismatch(path, m, g)
        found = dict(items(g) or ())
        for name, v in pairs:
            _walk(v, found.get(name), (*path, name), seen)
    elif isinstance(m, (list, tuple)) and not hasattr(m, "_fields"):
        if not isinstance(g, (list, tuple)):
            raise _mismatch(path, m, g)
        if len(g) != len(m):
            raise ValueError(
                f"grads at {_where(path)} has {len(g)} entries, the model {len(m)}. {_HINT}"
            )
        for i, (v, gv) in enumerate(zip(m, g)):
            _walk(v, gv, (*path, i), seen)
    elif isinstance(m, dict):
        if not isinstance(g, dict):
            raise _mismatch(path, m, g)
        for k, v in m.items():
            _walk(v, g.get(k), (*path, k), seen)


def _leaf(p, g, path) -> None:
    if not (p.is_leaf and getattr(p, "trainable", True)) or g is None:
        return  # state leaves take no gradient; None reads as zeros (an unused param)
    if not isinstance(g, (jax.Array, np.ndarray, tracker.Tracked, float, int)):
        raise ValueError(
            f"grads at {_where(path)} is a {type(g).__name__} where the model has a param "
            f"of shape {tuple(p.shape)}. {_HINT}"
        )
    shape = tuple(getattr(g, "shape", np.shape(g)))
    if shape != tuple(p.shape):
        raise ValueError(
            f"grads at {_where(path)} has shape {shape}, the param there has "
            f"shape {tuple(p.shape)}: gradients of another architecture? {_HINT}"
        )
