"""fluxjax.numpy: ``jax.numpy`` (and ``jax.numpy.linalg``) lifted to tracked values.

Every public function of ``jax.numpy`` is wrapped once by ``fluxjax.track``: with plain
inputs it *is* the ``jax.numpy`` function's behaviour; with tracked inputs it records
itself and JAX supplies the derivative. Constants and dtypes are re-exported unchanged.

>>> import fluxjax as fj
>>> import fluxjax.numpy as fnp
>>> x = fj.param([0.0, 1.0])
>>> fj.back_(fnp.sum(fnp.sin(x)))
>>> fj.grad(x)
Array([1.       , 0.5403023], dtype=float32)
"""

from __future__ import annotations

import inspect
import types

import jax.numpy as _jnp

from fluxjax.tracker import track as _track


def _liftable(obj) -> bool:
    return (
        callable(obj)
        and not isinstance(obj, (type, types.ModuleType))
        and not (
            inspect.isclass(obj) or hasattr(obj, "dtype")  # dtype scalars like jnp.float32
        )
    )


def _lift_module(module, into: dict) -> list[str]:
    names = []
    for name in dir(module):
        if name.startswith("_"):
            continue
        obj = getattr(module, name)
        into[name] = _track(obj) if _liftable(obj) else obj
        if _liftable(obj):
            names.append(name)
    return names


LIFTED: list[str] = _lift_module(_jnp, globals())
"""Names of the lifted ``jax.numpy`` functions (the rest are constants and types)."""

linalg = types.ModuleType("fluxjax.numpy.linalg", "jax.numpy.linalg lifted to tracked values.")
LINALG_LIFTED: list[str] = _lift_module(_jnp.linalg, linalg.__dict__)

__all__ = sorted(n for n in dir(_jnp) if not n.startswith("_") and n != "linalg") + ["linalg"]
