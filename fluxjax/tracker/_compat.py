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


def reject_in_plain_jax(classes, reject):
    """Make plain ``jax.numpy`` call ``reject(x)`` when given an instance of ``classes``.

    Returns False when this JAX has no such hook (then JAX's own error names the class).
    """
    if AVAL_MAPPINGS is None:  # pragma: no cover
        return False
    for cls in classes:
        AVAL_MAPPINGS[cls] = reject
    return True
