"""The pure function of one compiled ``train_`` step (``_pure_step``) and the records it
carries: ``Carry`` (params, extras, optimiser state, ``Status``) and ``Failure``.

A step whose loss, gradient or updated params are not finite changes nothing, and every
later step of that call is skipped: the carried ``Status`` vector says which step failed
and why (a gradient is judged by the updated params it gives), and ``train_`` raises
``FloatingPointError`` naming it.
"""

from __future__ import annotations

import functools
from typing import Any, NamedTuple

import jax
import jax.numpy as jnp
import optax

from fluxjax import tracker
from fluxjax.layers import fitting

FINE, BAD_LOSS, BAD_GRADIENT = 0, 1, 2


def _call(loss, item):
    return loss(*item) if isinstance(item, tuple) else loss(item)


def _chained(setups):
    def setup():
        for s in setups:
            s()

    return setup


def _finite(tree):
    """Whether every element of ``tree`` is finite: one reduction over the leaves of each
    dtype, concatenated (a reduction per leaf was a loop of its own per leaf on a CPU)."""
    by_dtype: dict = {}
    for x in jax.tree.leaves(tree):
        by_dtype.setdefault(jnp.result_type(x), []).append(jnp.ravel(x))
    return jnp.all(jnp.array([jnp.isfinite(jnp.concatenate(xs)).all() for xs in by_dtype.values()]))


class Status(NamedTuple):
    """Where a compiled call stands: the fields of the int32 vector carried through every
    step (one array, not three: each buffer costs a compiled call ~1.5 µs).

    ``good``: steps done with finite results; ``why``: ``FINE``, or why the first bad step
    failed (``BAD_LOSS``, ``BAD_GRADIENT``); ``params_finite``: 1 if the params were finite
    when the call began (else only the loss is judged)."""

    good: Any
    why: Any
    params_finite: Any

    @classmethod
    def of(cls, vector) -> Status:
        return cls(*(vector[i] for i in range(len(cls._fields))))


class Failure(NamedTuple):
    """The first non-finite step of a call (0-based) and why (``BAD_LOSS``,
    ``BAD_GRADIENT``)."""

    step: int
    why: int


class Carry(NamedTuple):
    """What a compiled step takes and gives back: the params' arrays, the extras' (other
    leaves the loss touches), the optimiser state and the ``Status``."""

    arrays: list
    extras: list
    state: Any
    status: Any  # a ``Status`` vector


def _loss_value(entry, arrays, extra_values, batch):
    """``(loss, new extras)`` of ``entry``'s loss on ``batch``, as a pure function of the
    params' and extras' arrays: one bridge transaction (``tracker.Pure``) whose writes
    are the extras' new values, carried on (``Compiled.sync`` writes them back)."""
    plist, n = entry.plist, len(arrays)
    bridge = tracker.Pure(_call, plist + entry.extras, compiled=True, write_leaves=True)
    with fitting() as fits:  # a recurrent carry found here is fitted to its batch as well
        try:
            out, effects = bridge([*arrays, *extra_values], entry.loss(), batch)
        except tracker.Retrace as r:
            if not fits or r.setup is not None:
                raise
            raise tracker.Retrace(r.leaves, setup=_chained(list(fits.values()))) from None
    if any(v is not None for v in effects.values[:n]):
        raise ValueError(
            "the loss assigns a param it is trained on (p.data = ..., update_, p -= ...); "
            "train_ compiles the loss as a pure function, so that change would be lost. "
            "Do it in a callback (cb=...) or pass jit=False"
        )
    if jnp.ndim(out) != 0:
        raise ValueError(f"the loss must return a scalar, got shape {jnp.shape(out)}")
    return out, [o if v is None else v for v, o in zip(effects.values[n:], extra_values)]


def _judged(status, loss, new_arrays) -> tuple:
    """``(bad, status)``: whether this step is refused (it, or an earlier one of the call,
    was not finite), and the status after it. The params are judged only when they were
    finite as the call began (``_finite_at_start``); the steps keep them finite from then
    on."""
    status = Status.of(status)
    check = status.params_finite
    why = jnp.where(
        ~jnp.isfinite(loss),
        BAD_LOSS,
        jnp.where((check == 1) & ~_finite(new_arrays), BAD_GRADIENT, FINE),
    )
    bad = (status.why != FINE) | (why != FINE)
    good = status.good + (~bad).astype(jnp.int32)
    return bad, jnp.stack([good, jnp.where(status.why != FINE, status.why, why), check])


def _kept(bad, new, old):
    """``old`` where the step is refused, else ``new`` (pytrees of the same arrays): a
    select per leaf, which XLA fuses with the step (the ``lax.cond`` it replaced, with a
    second one judging the start params inside the step, made the tiny step on a CPU
    ~96 µs against ~69; its compile was no faster, within the noise)."""
    return jax.tree.map(lambda n, o: jnp.where(bad, o, n), new, old)


def _pure_step(entry, tx):
    """``(arrays, extras, opt_state, status, batch) -> (same..., loss)``, pure.

    The loss, params and extras are read from ``entry`` when JAX traces (they are alive
    then: the running ``Compiled`` holds them), so the compiled step never owns them.
    Only params and extras are held at their last finite values (``_kept``): selecting the
    optimiser state too would keep two copies alive and stop XLA updating it in place
    (2x the step time at small sizes); a state that saw a bad step is dropped in
    ``Compiled.finish``.
    """
    value_and_grad = jax.value_and_grad(functools.partial(_loss_value, entry), has_aux=True)

    def step(arrays, extra_values, state, status, batch):
        (l, new_extras), g = value_and_grad(arrays, extra_values, batch)
        updates, new_state = tx.update(g, state, arrays)
        new_arrays = optax.apply_updates(arrays, updates)
        bad, status = _judged(status, l, new_arrays)
        kept, kept_extras = _kept(bad, (new_arrays, new_extras), (list(arrays), list(extra_values)))
        return kept, kept_extras, new_state, status, l

    return step
