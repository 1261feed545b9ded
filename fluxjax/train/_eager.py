"""Flux's own training loop (``train_(..., jit=False)``), and the errors both loops raise."""

import numpy as np

from fluxjax import tracker
from fluxjax.layers import truncating

from ._update import _commit, _stepped


def _call(loss, item):
    return loss(*item) if isinstance(item, tuple) else loss(item)


class Eager:
    """Flux's own loop: ``l = loss(*item)`` on the params' concrete values (so the loss
    may print, call ``float``, branch on values), ``back_(l)`` from zeroed gradients, then
    the optimiser step of ``update_``."""

    def __init__(self, loss, plist, opt):
        self.loss, self.plist, self.opt = loss, plist, opt
        self.nsteps = 0

    def step(self, item):
        with tracker.transaction():  # a refused step puts every leaf back, state included
            value = self._loss_and_grads(item)
            try:
                stepped = _stepped(self.opt, self.plist, [p.grad for p in self.plist])
            except FloatingPointError:
                raise nonfinite_gradient_error(self.nsteps) from None
        _commit(self.opt, self.plist, stepped)  # checked: writing it cannot fail
        self.nsteps += 1
        return value

    def _loss_and_grads(self, item):
        if tracker.grads_of(self.plist).count(None) != len(self.plist):  # else zeros already
            for p in self.plist:
                p.grad = None  # reads as zeros
        with truncating():  # each step starts from the stored carry, as compiled steps do
            try:
                l = _call(self.loss, item)
            except FloatingPointError as e:
                raise FloatingPointError(f"{e} (step {self.nsteps}, 0-based)") from None
        shape = l.shape if isinstance(l, tracker.Tracked) else np.shape(l)
        if shape != ():
            raise ValueError(f"the loss must return a scalar, got shape {shape}")
        if isinstance(l, tracker.Tracked):
            try:
                tracker.back_(l)
            except FloatingPointError:
                raise nonfinite_error(float(l.data), self.nsteps) from None
        value = np.asarray(tracker.data(l))
        if not np.isfinite(value):
            raise nonfinite_error(float(value), self.nsteps)
        return value

    def resume(self):
        pass

    def failure(self):
        return None

    def sync(self):
        pass

    def finish(self):
        pass


def nonfinite_gradient_error(i):
    return FloatingPointError(
        f"the gradient or the updated params are not finite at step {i} (0-based), although "
        f"the loss is finite; training stopped and the params keep the values from before "
        f"that step"
    )


def nonfinite_error(value, i):
    return FloatingPointError(
        f"loss is {value} at step {i} (0-based); training stopped and the params keep "
        f"the values from before that step"
    )
