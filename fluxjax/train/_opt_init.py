"""An optimiser's fresh state, made on the host when it is all constants (no compile).

Every optax optimiser fluxjax offers starts its state from constants: zeros for moments,
a step count of 0, a fixed accumulator value (``adagrad``). Compiling ``tx.init`` for
that costs a first ``train_`` call a whole XLA compilation (~0.2 s on a CPU), so
``initialiser(tx)`` traces ``tx.init`` (no compile) and, when every output is a constant
or a broadcast constant, fills NumPy arrays and puts them on the device. Any other state
(one that copies the params, say) comes from the compiled ``tx.init``, as before.
"""

from __future__ import annotations

import jax
import numpy as np
from jax.extend.core import Literal


def initialiser(tx):
    """initialiser(tx) -> ``init(arrays)``: ``tx.init(arrays)``, made on the host when it
    is all constants, else compiled (once per shapes, as ``jax.jit`` does).

    >>> import jax.numpy as jnp, optax
    >>> init = initialiser(optax.adam(1e-3))
    >>> s = init([jnp.ones(2)])
    >>> int(s[0].count), s[0].mu[0].tolist()
    (0, [0.0, 0.0])
    """
    compiled = jax.jit(tx.init)

    def init(arrays):
        if not any(isinstance(a, jax.core.Tracer) for a in jax.tree.leaves(arrays)):
            closed, shape = jax.make_jaxpr(tx.init, return_shape=True)(arrays)
            values = _constants(closed)
            if values is not None:
                return jax.tree.unflatten(jax.tree.structure(shape), jax.device_put(values))
        return compiled(arrays)

    return init


def _constants(closed):
    """The outputs of ``closed`` as NumPy arrays when each is a literal or a broadcast
    literal; None when any depends on an input or needs another primitive."""
    made = {}
    for eqn in closed.jaxpr.eqns:
        (x,) = eqn.invars if len(eqn.invars) == 1 else (None,)
        if eqn.primitive.name != "broadcast_in_dim" or not isinstance(x, Literal):
            return None
        (out,) = eqn.outvars
        made[out] = np.full(out.aval.shape, x.val, out.aval.dtype)
    values = []
    for v in closed.jaxpr.outvars:
        if isinstance(v, Literal):
            values.append(np.asarray(v.val, v.aval.dtype))
        elif v in made:
            values.append(made[v])
        else:
            return None
    return values
