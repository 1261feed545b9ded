"""The two ways ``train_`` runs a step: compiled (``Compiled``) and eager (``Eager``).

``Compiled`` turns the imperative loss into a pure function once: inside
``tracker.swapped(ps, tracers)`` every param reads a tracer, so ``loss(*item)`` traces to
plain JAX, differentiated with ``jax.value_and_grad`` and stepped with ``opt.tx`` in one
``jax.jit`` call with donated buffers. Params and optimiser state stay as flat arrays
between steps and are written back (``p.data = ...``) only when asked (``sync``).
``scan`` runs many steps of a ``DataLoader`` epoch in one call with ``jax.lax.scan``.
"""

from collections import OrderedDict

import jax
import jax.numpy as jnp
import numpy as np
import optax
from jax import lax

from fluxjax import tracker
from fluxjax.tracker._node import WATCH

from . import _sharding as sharding
from ._optimisers import as_transformation
from ._update import _step, get_state, put_state


def _call(loss, item):
    return loss(*item) if isinstance(item, tuple) else loss(item)


def _pure_step(loss, plist, tx, outside):
    """``(arrays, opt_state, bad, batch) -> (arrays, opt_state, bad, loss)``, pure.

    ``bad`` records a non-finite loss; from that step on the arrays are left as they were,
    so they keep the values of the last finite step.
    Params the loss reads that are not in ``plist`` are added to the set ``outside``
    (their values are constants of this compiled step).
    """

    def value(arrays, batch):
        WATCH.append({})
        try:
            with tracker.swapped(plist, arrays):
                l = tracker.data(_call(loss, batch))
        finally:
            outside.update(WATCH.pop())
        if jnp.ndim(l) != 0:
            raise ValueError(f"the loss must return a scalar, got shape {jnp.shape(l)}")
        return l

    def step(arrays, state, bad, batch):
        l, g = jax.value_and_grad(value)(arrays, batch)
        updates, new_state = tx.update(g, state, arrays)
        new_arrays = optax.apply_updates(arrays, updates)
        bad = bad | ~jnp.isfinite(l)
        # Only the params are held at their last finite values: selecting the optimiser
        # state too would keep two copies alive and stop XLA updating it in place (2x the
        # step time at small sizes). A state that saw a bad step is dropped in ``finish``.
        kept = [jnp.where(bad, old, new) for new, old in zip(new_arrays, arrays)]
        return kept, new_state, bad, l

    return step


_copies = jax.jit(lambda tree: jax.tree.map(jnp.copy, tree))
"""Fresh device copies of a pytree of arrays in one call (the carry gets donated)."""

_CACHE: OrderedDict = OrderedDict()
_CACHE_SIZE = 16


def _compiled_for(loss, plist, opt):
    """The compiled step (and scans) of ``loss`` over ``plist`` with ``opt``, made once.

    Reused by later ``train_`` calls with the same loss, params and optimiser, unless
    its trace read params outside ``plist``: their values are constants of the compiled
    step, so a later call (after they changed) must trace again.
    """
    key = (id(loss), tuple(map(id, plist)), id(opt))
    entry = _CACHE.get(key)
    if (
        entry is not None
        and entry["refs"][0] is loss
        and entry["refs"][2] is opt
        and all(a is b for a, b in zip(entry["refs"][1], plist))
    ):
        if not entry["outside"]:
            _CACHE.move_to_end(key)
            return entry
    outside: dict = {}
    pure = _pure_step(loss, plist, as_transformation(opt), outside)
    entry = {
        "refs": (loss, list(plist), opt),
        "pure": pure,
        "step": jax.jit(pure, donate_argnums=(0, 1, 2)),
        "scans": {},
        "tensors": {},
        "outside": outside,
    }
    _CACHE[key] = entry
    if len(_CACHE) > _CACHE_SIZE:
        _CACHE.popitem(last=False)
    return entry


class Compiled:
    """Runs steps through one compiled function; params as a flat list of arrays."""

    def __init__(self, loss, plist, opt, layout=sharding.ONE_DEVICE):
        self.plist, self.opt, self.layout = plist, opt, layout
        entry = _compiled_for(loss, plist, opt)
        self.pure, self.step_fn, self.scans = entry["pure"], entry["step"], entry["scans"]
        self.tensors = entry["tensors"]  # device copies of DataLoaders' data, kept across calls
        self.resume()
        state = _copies(get_state(opt, plist, [p.data for p in plist]))
        self.state = sharding.place_params(layout, state)
        self.bad = sharding.place_data(layout, jnp.zeros((), bool))

    def resume(self):
        """Carry on from the params' current values (copies: the carry gets donated)."""
        self.arrays = sharding.place_params(self.layout, _copies([p.data for p in self.plist]))

    def sync(self):
        """Write the carried values into the params (skipped if a call was cut short)."""
        if not any(a.is_deleted() for a in self.arrays):
            for p, a in zip(self.plist, sharding.gather(self.layout, self.arrays), strict=True):
                p.data = a

    def finish(self):
        """Write back the params; keep the optimiser state unless a step went non-finite
        (then the state from the start of this ``train_`` call stays)."""
        self.sync()
        if any(a.is_deleted() for a in jax.tree.leaves(self.state)) or bool(self.bad):
            return
        put_state(self.opt, self.plist, sharding.gather(self.layout, self.state))

    def step(self, item):
        item = sharding.place_batch(self.layout, item)
        self.arrays, self.state, self.bad, l = self.step_fn(self.arrays, self.state, self.bad, item)
        return sharding.settle(self.layout, l)

    def scan(self, loader, order, start, n):
        """Steps ``start .. start + n`` of an epoch of ``loader`` in one compiled call.

        Without shuffling the batches are the data reshaped to ``(batches, batchsize,
        ...)`` and scanned over directly; with shuffling each step gathers its batch.
        """
        seq = not loader.shuffle
        key = (n, loader.batchsize, loader.single, seq, self.layout)
        if key not in self.scans:
            self.scans[key] = jax.jit(self._scan_fn(*key), donate_argnums=(0, 1, 2))
        held = self.tensors.get(id(loader))
        if held is None or held[0] is not loader or held[3] != self.layout:
            b, full = loader.batchsize, loader.nobs // loader.batchsize
            tensors = tuple(jnp.asarray(t) for t in loader.tensors)
            batched = tuple(t[: full * b].reshape(full, b, *t.shape[1:]) for t in tensors)
            tensors, batched = sharding.place_data(self.layout, (tensors, batched))
            held = self.tensors[id(loader)] = (loader, tensors, batched, self.layout)
        data = held[2] if seq else held[1]
        self.arrays, self.state, self.bad, ls = self.scans[key](
            self.arrays, self.state, self.bad, data, order, jnp.int32(start)
        )
        return sharding.settle(self.layout, ls)

    def _scan_fn(self, n, b, single, seq, layout):
        pure = self.pure

        def run(arrays, state, bad, tensors, order, start):
            def body(carry, k_or_batch):
                if seq:
                    parts = k_or_batch
                else:
                    ids = lax.dynamic_slice_in_dim(order, (start + k_or_batch) * b, b)
                    parts = tuple(jnp.take(t, ids, axis=0) for t in tensors)
                parts = sharding.constrain_batch(layout, parts)  # each device: its rows
                *carry, l = pure(*carry, parts[0] if single else parts)
                return tuple(carry), l

            xs = tuple(lax.dynamic_slice_in_dim(t, start, n) for t in tensors) if seq else None
            steps = xs if seq else jnp.arange(n)
            (arrays, state, bad), ls = lax.scan(body, (arrays, state, bad), steps)
            return arrays, state, bad, ls

        return run


class Eager:
    """Flux's own loop: ``l = loss(*item)`` on the params' concrete values (so the loss
    may print, call ``float``, branch on values), ``back_(l)`` from zeroed gradients, then
    the optimiser step of ``update_``."""

    def __init__(self, loss, plist, opt):
        self.loss, self.plist, self.opt = loss, plist, opt
        self.nsteps = 0

    def step(self, item):
        for p in self.plist:
            p.grad = None  # reads as zeros
        l = _call(self.loss, item)
        if np.shape(l) != ():
            raise ValueError(f"the loss must return a scalar, got shape {np.shape(l)}")
        if isinstance(l, tracker.Tracked):
            try:
                tracker.back_(l)
            except FloatingPointError:
                raise nonfinite_error(float(l.data), self.nsteps) from None
        value = np.asarray(tracker.data(l))
        if not np.isfinite(value):
            raise nonfinite_error(float(value), self.nsteps)
        _step(self.opt, self.plist, [p.grad for p in self.plist])
        self.nsteps += 1
        return value

    def resume(self):
        pass

    def sync(self):
        pass

    def finish(self):
        pass


def nonfinite_error(value, i):
    return FloatingPointError(
        f"loss is {value} at step {i} (0-based); training stopped and the params keep "
        f"the values from before that step"
    )
