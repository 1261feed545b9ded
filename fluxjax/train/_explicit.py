"""Modern Flux's explicit style on the same models: ``withgradient``, ``setup``, and the
behaviour behind ``update_(state, model, grads)`` and ``train_(loss, model, data, state)``.

Gradients come shaped like the model (as ``gradient(f, model)``); ``setup(opt, model)``
gives an ``OptState``, a handle on ``opt``'s state for the model's params, the same state
that ``update_(opt, params(model), gs)`` and ``train_(..., model, ..., opt)`` use. So the
two styles mix freely on one model.
"""

from __future__ import annotations

import inspect

import jax
import jax.numpy as jnp
import numpy as np

from fluxjax import tracker
from fluxjax.layers import items, mapchildren, params

from . import _opt_arrays, _update
from ._grads_check import check_model, gradients_of

__all__ = ["OptState", "setup", "withgradient"]


def withgradient(f, model, *args):
    """withgradient(f, model, *args) -> (value, grads)

    The value of ``f(model, *args)`` (a scalar) and its gradient with respect to
    ``model``, shaped like the model (one evaluation of ``f``).

    >>> import jax.numpy as jnp
    >>> from fluxjax.layers import Dense
    >>> d = Dense(jnp.ones((1, 2)), jnp.zeros(1))
    >>> v, g = withgradient(lambda m, x: m(x).sum(), d, jnp.array([3.0, 4.0]))
    >>> float(v), g.W.tolist()
    (7.0, [[3.0, 4.0]])
    """
    ps = params(model)
    y, back = tracker.forward(lambda: f(model, *args), ps)
    if jnp.shape(y) != ():
        raise ValueError(f"withgradient needs f to return a scalar, got shape {jnp.shape(y)}")
    return y, _shaped(model, back(jnp.ones((), y.dtype)), {})


def _shaped(x, gs, memo):
    """A copy of model ``x`` holding each param's gradient (a plain array) in its place.

    A param used twice gets its whole gradient at its first place and None at the
    others; state leaves and anything that is not a param become None.
    """
    if isinstance(x, tracker.Tracked):
        first = id(x) not in memo
        memo[id(x)] = None
        return tracker.data(gs[x]) if first and x.is_leaf and x.trainable else None
    if id(x) in memo:
        return memo[id(x)]
    if items(x) is not None or (isinstance(x, (list, tuple, dict)) and not hasattr(x, "_fields")):
        return mapchildren(lambda v: _shaped(v, gs, memo), x, memo)
    return None if isinstance(x, (jax.Array, np.ndarray)) else x


class OptState:
    """The optimiser state of one model, made by ``setup(opt, model)``.

    Fields ``opt`` and ``params`` (the model's params, in ``params(model)`` order);
    ``state`` reads the current optax state. A value: ``fluxjax.save(path, state)`` writes
    its arrays, ``fluxjax.load(path, state)`` puts them back (in place).
    """

    def __init__(self, opt, model):
        self.opt, self.model = opt, model
        self.params = list(params(model))
        self._loss = None  # (loss, its wrapper over this model), reused across train_ calls

    @property
    def state(self):
        arrays = [p.data for p in self.params]
        return _update.get_state(self.opt, self.params, arrays)

    def explicit_update_(self, model, grads):
        """``update_(state, model, grads)``: one step of ``opt`` on ``model``'s params."""
        self._check(model)
        found = gradients_of(model, grads, self.params)  # checked first: raises, or all found
        if all(g is None for g in found):
            raise ValueError(
                f"update_(state, model, grads): grads (a {type(grads).__name__}) holds no "
                f"gradient for any param of the model; pass withgradient(f, model)[1] or "
                f"gradient(f, model)[0]"
            )
        _update.update_(self.opt, self.params, found)
        return model

    def arrays(self) -> dict:
        """``{name: array}``: the optimiser state's arrays, named by their path."""
        return _opt_arrays.named_state(self.opt, self.params)

    def load_arrays_(self, arrays: dict, where: str = "the saved state"):
        """Put back arrays as ``arrays()`` gave them (checked first); returns ``self``."""
        _opt_arrays.put_named(self.opt, self.params, arrays, where)
        return self

    def explicit_train_(self, train, loss, model, data, **kwargs):
        """``train_(loss, model, data, state)``: ``train`` over ``loss(model, *item)``."""
        self._check(model)
        if self._loss is None or self._loss[0] is not loss:  # one wrapper: one compiled step
            self._loss = (loss, lambda *item: loss(model, *item))
        return train(self._loss[1], self.params, data, self.opt, **kwargs)

    def _check(self, model):
        if model is not self.model:
            raise ValueError(
                "this optimiser state was made by setup(opt, model) for another model; "
                "call setup(opt, model) for this one"
            )

    def __repr__(self):
        return f"OptState({self.opt!r}, {len(self.params)} params)"


def setup(opt, model) -> OptState:
    """setup(opt, model) -> OptState

    A fresh optimiser state for ``model``'s params (modern Flux's ``Flux.setup``), for
    ``update_(state, model, grads)`` and ``train_(loss, model, data, state)``.

    >>> import jax.numpy as jnp
    >>> from fluxjax.layers import Dense
    >>> from fluxjax.train import Descent, update_
    >>> d = Dense(jnp.ones((1, 2)), jnp.zeros(1))
    >>> s = setup(Descent(0.5), d)
    >>> _, g = withgradient(lambda m: m(jnp.array([1.0, 1.0])).sum(), d)
    >>> update_(s, d, g).W.data.tolist()
    [[0.5, 0.5]]
    """
    check_model(model)
    s = OptState(opt, model)
    arrays = [p.data for p in s.params]
    _update.put_state(opt, s.params, _update._book(opt).tx.init(arrays))
    return s


def as_explicit(loss, model, data, opt):
    """``OptState(opt, model)`` when ``train_(loss, model, data, opt)`` is the explicit style
    with a rule (``loss`` takes the model before each item's parts), else ``opt``.

    The state is not reset: it is ``opt``'s state for the model's params, as in the
    implicit style, so calling ``train_`` again continues it.
    """
    if hasattr(opt, "explicit_train_") or not _wants_model(loss, model, data):
        return opt
    check_model(model, "train_(loss, model, data, opt)")
    return OptState(opt, model)


def _wants_model(loss, model, data) -> bool:
    if isinstance(model, (tracker.Params, tracker.Tracked)) or (
        isinstance(model, (list, tuple)) and all(isinstance(p, tracker.Tracked) for p in model)
    ):
        return False
    try:
        sig = inspect.signature(loss)
    except (TypeError, ValueError):
        return False
    kinds = (inspect.Parameter.POSITIONAL_ONLY, inspect.Parameter.POSITIONAL_OR_KEYWORD)
    ps = list(sig.parameters.values())
    if any(p.kind is inspect.Parameter.VAR_POSITIONAL for p in ps):
        return False
    required = [p for p in ps if p.kind in kinds and p.default is p.empty]
    arity = _item_arity(data)
    return arity is not None and len(required) == arity + 1


def _item_arity(data):
    """How many arguments ``train_`` passes the loss per item (None if it cannot tell)."""
    if hasattr(data, "tensors") and hasattr(data, "single"):  # a DataLoader
        return 1 if data.single else len(data.tensors)
    if isinstance(data, (list, tuple)) and data:
        return len(data[0]) if isinstance(data[0], tuple) else 1
    return None
