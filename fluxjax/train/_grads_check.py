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
from fluxjax.layers import UnregisteredModelError, items, params

__all__ = ["check_grads", "check_model", "gradients_of"]

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


def check_grads(model, grads, acc=None) -> None:
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
    _walk(model, grads, (), {} if acc is None else acc, set())


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


def gradients_of(model, grads, plist) -> list:
    """The gradient of each param of ``plist`` (None where ``grads`` has none), read at its
    place(s) in ``grads``, in one walk of ``model`` and ``grads`` together that raises
    ``ValueError`` at the first place they differ (``check_grads``' message), before anything
    changes.

    A sub-model used twice is visited twice when its two places hold different gradients
    (``gradient(f, model)`` gives each use its part: summed), once when they hold the same
    object (``withgradient`` keeps the sharing and gives the whole gradient).

    >>> import jax.numpy as jnp
    >>> from fluxjax.layers import Dense
    >>> d = Dense(jnp.ones((1, 2)), jnp.zeros(1))
    >>> [g.tolist() for g in gradients_of(d, Dense(jnp.ones((1, 2)), jnp.ones(1)), [d.W, d.b])]
    [[[1.0, 1.0]], [1.0]]
    """
    check_grads(model, grads, acc := {})
    return [acc.get(id(p)) for p in plist]


def _walk(m, g, path, acc, above) -> None:
    """Check ``g`` against ``m`` (raising at the first difference) and add each param's
    gradient into ``acc[id(param)]``; ``above``: the path from the root (cycles) and the
    (sub-model, gradient) pairs already summed."""
    if isinstance(m, tracker.Tracked):
        _leaf(m, g, path, acc)
        return
    if g is None:
        if _has_params(m):
            raise ValueError(f"grads at {_where(path)} is None where the model has params. {_HINT}")
        return
    if id(m) in above or (id(m), id(g)) in above:
        return
    above.update((id(m), (id(m), id(g))))
    for name, v, gv in _paired(m, g, path):
        _walk(v, gv, (*path, name), acc, above)
    above.discard(id(m))


def _paired(m, g, path):
    """``(name, child of m, its part of g)`` for each child of ``m``, after checking that
    ``g`` has ``m``'s kind (and length)."""
    pairs = items(m)
    if pairs is not None:
        if type(g) is not type(m):
            raise _mismatch(path, m, g)
        found = dict(items(g) or ())
        return [(name, v, found.get(name)) for name, v in pairs]
    if isinstance(m, (list, tuple)) and not hasattr(m, "_fields"):
        if not isinstance(g, (list, tuple)):
            raise _mismatch(path, m, g)
        if len(g) != len(m):
            raise ValueError(
                f"grads at {_where(path)} has {len(g)} entries, the model {len(m)}. {_HINT}"
            )
        return list(zip(range(len(m)), m, g))
    if isinstance(m, tuple) and isinstance(g, tuple):  # a namedtuple: read, not checked
        return list(zip(range(len(m)), m, g))
    if isinstance(m, dict):
        if not isinstance(g, dict):
            raise _mismatch(path, m, g)
        return [(k, v, g.get(k)) for k, v in m.items()]
    return []


def _leaf(p, g, path, acc) -> None:
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
    v = tracker.data(g)
    acc[id(p)] = v if id(p) not in acc else acc[id(p)] + v  # a shared param: summed
