"""How compiled ``train_`` runs the steps of a ``DataLoader`` epoch (``strategy=``).

Every strategy runs the same pure step (``_pure._pure_step``) on the same batches, with
the data put on the device once per ``DataLoader`` and each batch gathered there (a slice
of the data, or the rows the epoch's order names). They differ in how many steps one
compiled call runs:

- ``"step"``: one compiled call per step, dispatched from Python;
- ``"scan"``: a chunk of steps (a whole epoch without callbacks) in one rolled ``lax.scan``;
- ``"unroll"``: the same scan with ``UNROLL`` steps per loop iteration (longer compiles);
- ``"auto"`` (the default): ``"step"`` when the step convolves and runs on a CPU (XLA:CPU
  runs a convolution inside a rolled loop several times slower than in a compiled call of
  its own), ``"scan"`` otherwise.

The pure step is traced once per step signature (params, state, batch shapes, layout)
with ``jax.make_jaxpr``, which is also where a loss that touches new leaves retraces; the
chosen strategy's function is built from that jaxpr, so choosing costs no second trace,
and the choice and its compiled function are kept for the signature.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import NamedTuple

import jax
import jax.numpy as jnp
import numpy as np
from jax import lax
from jax.extend.core import ClosedJaxpr, Jaxpr, jaxpr_as_fun

from . import _sharding as sharding

STRATEGIES = ("auto", "step", "scan", "unroll")
UNROLL = 8
"""Steps per loop iteration of the ``"unroll"`` strategy."""

SLOW_IN_A_CPU_LOOP = frozenset({"conv_general_dilated"})
"""Primitives XLA:CPU runs much slower inside a rolled loop than in a call of their own."""


class Resident(NamedTuple):
    """A ``DataLoader``'s arrays on the device, kept per loader (which the cache holds
    weakly: nothing here refers to it)."""

    tensors: tuple
    layout: sharding.Layout


class Batching(NamedTuple):
    """How a ``DataLoader`` makes its batches (all a compiled epoch needs of it)."""

    size: int
    shuffle: bool
    single: bool

    @classmethod
    def of(cls, loader) -> Batching:
        return cls(loader.batchsize, loader.shuffle, loader.single)


class Plan(NamedTuple):
    """The strategy chosen for one step signature and its compiled functions."""

    kind: str
    pure: Callable  # the pure step, rebuilt from its traced jaxpr
    compiled: dict  # None -> the per-step function; n -> the scan of n steps


def check_strategy(strategy, *, jit, loader):
    """Rejects an unknown ``strategy``, or one that ``jit``/the data cannot follow."""
    if strategy not in STRATEGIES:
        raise ValueError(f"train_: strategy must be one of {STRATEGIES}, got {strategy!r}")
    if strategy != "auto" and not jit:
        raise ValueError(
            f"train_: strategy={strategy!r} needs jit=True; jit=False runs Flux's eager "
            f"loop, one Python step at a time"
        )
    if strategy in ("scan", "unroll") and not loader:
        raise ValueError(
            f"train_: strategy={strategy!r} runs the steps of a DataLoader epoch inside one "
            f"compiled call; this data is not a DataLoader (its items run one compiled call "
            f"per step). Pass DataLoader(arrays, batchsize), or strategy='auto'"
        )


def resident(runner, loader) -> Resident:
    """``loader``'s arrays on the device (placed for ``runner``'s layout), once per loader."""
    held = runner.entry.tensors.get(loader)
    if held is None or held.layout != runner.layout:
        tensors = tuple(_on_device(t) for t in loader.tensors)
        held = Resident(sharding.place_data(runner.layout, tensors), runner.layout)
        runner.entry.tensors[loader] = held
    return held


def _on_device(t):
    """``t`` as a JAX array; ``jax.device_put`` compiles nothing (``jnp.asarray`` compiles
    a copy per new shape)."""
    return t if isinstance(t, jax.Array) else jax.device_put(np.asarray(t))


def run(runner, loader, order, start, n, strategy):
    """Steps ``start .. start + n`` of an epoch of ``loader`` (in ``order``): the loss of
    each step, as one array (scans) or a list of scalars (``"step"``)."""
    data, how = resident(runner, loader), Batching.of(loader)
    plan = _plan(runner, how, data, strategy)
    if plan.kind == "step":
        step = _compiled(plan, None, lambda: _each_step(plan.pure, how, runner.layout))
        ks = range(start, start + n)
        return [runner.advance(step, data.tensors, order, np.int32(k)) for k in ks]
    unroll = min(UNROLL, n) if plan.kind == "unroll" else 1
    scan = _compiled(plan, n, lambda: _scan(plan.pure, how, runner.layout, n, unroll))
    return runner.advance(scan, data.tensors, order, np.int32(start))


def _compiled(plan, n, make):
    """``plan``'s jitted function for chunks of ``n`` steps (None: per step), made once."""
    if n not in plan.compiled:
        plan.compiled[n] = jax.jit(make(), donate_argnums=(0, 1, 2, 3))
    return plan.compiled[n]


def _plan(runner, how, data, strategy) -> Plan:
    """The plan for this step signature (carry, batch, layout) and the current layer
    modes: traced, and chosen, at its first use."""
    fixed = ("epoch", strategy, how, runner.layout, _signature(_batch_avals(how, data.tensors)))
    plan = runner.entry.variant().scans.get((*fixed, _signature(runner.carry)))
    if plan is None:
        closed, out_tree, variant = _trace(runner, _batch_avals(how, data.tensors))
        # filed under the carry the trace saw: a retrace may have reshaped it (a recurrent
        # carry taking the batch's shape), and may lead back to a plan made before
        key = (*fixed, _signature(runner.carry))
        plan = variant.scans.get(key)
        if plan is None:
            kind = _choose(closed, runner) if strategy == "auto" else strategy
            plan = variant.scans[key] = Plan(kind, _as_function(closed, out_tree), {})
    return plan


def _signature(tree):
    """The structure, shapes and dtypes of a pytree of arrays: what a trace depends on."""
    leaves, treedef = jax.tree.flatten(tree)
    return treedef, tuple((tuple(a.shape), a.dtype) for a in leaves)


def _batch_avals(how, tensors):
    avals = tuple(jax.ShapeDtypeStruct((how.size, *t.shape[1:]), t.dtype) for t in tensors)
    return avals[0] if how.single else avals


def _trace(runner, batch):
    """The step's jaxpr for ``batch`` and the variant it belongs to, after adding to the
    carry the leaves the loss touches (``Compiled.traced``: a retrace rebuilds the
    variants)."""

    def trace(variant):
        return variant.pure.jaxpr(*runner.carry, batch)  # raises outside the trace

    variant, (closed, shape) = runner.traced(trace)
    return closed, jax.tree.structure(shape), variant


def _as_function(closed, out_tree):
    """``closed`` as a function over the same pytrees as the step it was traced from."""
    flat = jaxpr_as_fun(closed)

    def pure(*args):
        return jax.tree.unflatten(out_tree, flat(*jax.tree.leaves(args)))

    return pure


def _choose(closed, runner) -> str:
    """``"step"`` for a step that convolves on a CPU, ``"scan"`` otherwise."""
    platforms = {d.platform for a in jax.tree.leaves(runner.arrays) for d in a.devices()}
    on_cpu = platforms == {"cpu"}
    return "step" if on_cpu and _uses(closed.jaxpr, SLOW_IN_A_CPU_LOOP) else "scan"


def _uses(jaxpr, names) -> bool:
    """Whether ``jaxpr`` or any jaxpr inside it binds a primitive named in ``names``."""
    for eqn in jaxpr.eqns:
        if eqn.primitive.name in names:
            return True
        for value in eqn.params.values():
            for sub in value if isinstance(value, tuple | list) else (value,):
                inner = sub.jaxpr if isinstance(sub, ClosedJaxpr) else sub
                if isinstance(inner, Jaxpr) and _uses(inner, names):
                    return True
    return False


def _gather(how, layout, tensors, order, k):
    """Batch ``k`` of the epoch, on the device: rows ``k·b .. (k+1)·b`` of the data, or
    the rows ``order`` names there when shuffling; split over the devices of ``layout``."""
    b = how.size
    if how.shuffle:
        ids = lax.dynamic_slice_in_dim(order, k * b, b)
        parts = tuple(jnp.take(t, ids, axis=0) for t in tensors)
    else:
        parts = tuple(lax.dynamic_slice_in_dim(t, k * b, b) for t in tensors)
    parts = sharding.constrain_batch(layout, parts)  # each device: its rows
    return parts[0] if how.single else parts


def _each_step(pure, how, layout):
    def epoch_step(arrays, extras, state, status, tensors, order, k):
        return pure(arrays, extras, state, status, _gather(how, layout, tensors, order, k))

    return epoch_step


def _scan(pure, how, layout, n, unroll):
    def epoch_scan(arrays, extras, state, status, tensors, order, start):
        def body(carry, k):
            *carry, l = pure(*carry, _gather(how, layout, tensors, order, k))
            return tuple(carry), l

        steps = start + jnp.arange(n, dtype=jnp.int32)
        carry, ls = lax.scan(body, (arrays, extras, state, status), steps, unroll=unroll)
        return (*carry, ls)

    return epoch_scan
