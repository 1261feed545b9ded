"""Every use of JAX internals (``jax._src``) in the tracker, in one place.

``tests/test_bridge_compat.py`` checks each one against the installed JAX, so a JAX
release that moves them fails that test loudly instead of fluxjax degrading quietly.
"""

from __future__ import annotations

import jax

Tracer = jax.core.Tracer

try:  # JAX's table from Python type to abstract value: how jnp.* sees its arguments
    from jax._src.core import pytype_aval_mappings as AVAL_MAPPINGS
except ImportError:  # pragma: no cover - a JAX that moved it (the compat test says so)
    AVAL_MAPPINGS = None

try:  # how JAX canonicalises a Python value it is given (jax.lax primitives)
    from jax._src.dtypes import canonicalize_value_handlers as VALUE_HANDLERS
except ImportError:  # pragma: no cover
    VALUE_HANDLERS = None

try:  # the pytree registry jax.jit flattens its arguments with, before it wraps errors
    from jax._src.tree_util import tracing_registry as TRACING_REGISTRY
except ImportError:  # pragma: no cover
    TRACING_REGISTRY = None

JAX_OPERATORS_MODULE = "jax._src.numpy.array_methods"
"""Where ``jax.Array``'s operators live (a module name, compared with a caller's frame)."""


def reject_in_plain_jax(classes, reject) -> bool:
    """Make plain JAX (``jax.numpy``, ``jax.nn``, ``jax.lax``, ``jax.jit``) call
    ``reject(x)`` when given an instance of ``classes``, before JAX's own error.

    Returns False when this JAX lacks a hook (then ``__jax_array__`` still catches most).
    """
    hooks = (AVAL_MAPPINGS, VALUE_HANDLERS, TRACING_REGISTRY)
    for cls in classes:
        if AVAL_MAPPINGS is not None:
            AVAL_MAPPINGS[cls] = reject
        if VALUE_HANDLERS is not None:
            VALUE_HANDLERS[cls] = reject
        if TRACING_REGISTRY is not None:
            TRACING_REGISTRY.register_node(cls, reject, lambda aux, children: None)
    return all(h is not None for h in hooks)


def distributed_runtime():
    """JAX's multi-process runtime state (``jax._src.distributed.global_state``): its
    client, service and process count, which ``fluxjax.distributed`` reads to check counts
    and to notice a second ``initialize``."""
    from jax._src import distributed

    return distributed.global_state
