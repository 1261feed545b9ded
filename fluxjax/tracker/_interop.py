"""Interop: NumPy, JAX and PyTorch habits meet tracked values, and no gradient is lost silently.

- **NumPy** (``__array_function__``, ``__array_ufunc__``): a NumPy function or ufunc that
  has a ``fluxjax.numpy`` equivalent records it, so ``np.dot(W, W)`` or ``np.exp(W)`` stay
  tracked; one without raises ``TypeError`` naming the fix. The only silent conversions
  are the explicit ones: ``np.asarray(t)``, ``np.array(t)`` and ``data(t)``.
- **Plain JAX** (``jax.numpy``, ``jax.nn``, optax losses, ``jax.jit``): a tracked value
  raises ``TrackedTypeError`` (a ``TypeError``) naming ``fluxjax.numpy``,
  ``fluxjax.track(fn)`` and ``data(x)``. Three hooks catch it before JAX's own message:
  ``__jax_array__`` (asked by ``jnp.asarray`` and every ``jax.numpy`` argument check),
  JAX's tracing pytree registry (flattened first by every ``jax.jit`` call, so before
  JAX wraps errors), and ``pytype_aval_mappings`` (the fallback for ``jax.lax``
  primitives, where our message is the cause of JAX's).
- **PyTorch habits**: ``round(t, 3)`` works (tracked, as ``fluxjax.numpy.round``);
  ``t.backward()`` raises an ``AttributeError`` naming ``back_``.

``install(cls)`` puts all of this on the tracked class.

>>> import numpy as np
>>> import fluxjax as fj
>>> W = fj.param([[1.0, 2.0], [3.0, 4.0]])
>>> fj.back_(np.linalg.norm(np.dot(W, W)))
>>> fj.grad(W).shape
(2, 2)
"""

from __future__ import annotations

import functools
import sys

import jax.numpy as jnp

from ._compat import JAX_OPERATORS_MODULE, reject_in_plain_jax
from ._lift import track

_FIX = (
    "Use the same function from fluxjax.numpy to keep the gradient "
    "(import fluxjax.numpy as fnp), lift any other JAX function with fluxjax.track(fn) "
    "(e.g. fluxjax.track(optax.l2_loss)(ŷ, y)), or pass data(x) to drop the tracking "
    "on purpose."
)
_JNP_MODULES = {"numpy": jnp, "numpy.linalg": jnp.linalg}


class TrackedTypeError(TypeError):
    """A tracked value reached a function that cannot record it (its gradient would be lost)."""


def _describe(x) -> str:
    dims = "×".join(str(d) for d in x.shape) or "0-d"
    return f"a fluxjax {type(x).__name__} ({dims} {x.dtype})"


def _plain_jax_error(x) -> TrackedTypeError:
    return TrackedTypeError(
        f"{_describe(x)} was passed to a plain JAX function (jax.numpy, jax.nn, jax.lax, "
        f"jax.jit, optax...), which cannot record it: the gradient would be lost. {_FIX}"
    )


# -- NumPy ------------------------------------------------------------------------------
@functools.cache
def _lifted(module: str, name: str, method: str = "__call__"):
    """The ``jax.numpy`` twin of ``numpy[.linalg].name`` lifted by ``track``, or None."""
    jmod = _JNP_MODULES.get(module)
    target = getattr(jmod, name, None) if jmod is not None else None
    if method != "__call__":
        is_ufunc = hasattr(jnp, "ufunc") and isinstance(target, jnp.ufunc)
        target = getattr(target, method, None) if is_ufunc and method != "at" else None
    if target is None or not callable(target) or isinstance(target, type):
        return None
    return track(target)


def _no_equivalent(what: str, module: str) -> TrackedTypeError:
    return TrackedTypeError(
        f"{what} was given a tracked value, but {module} has no fluxjax.numpy equivalent, "
        f"so it cannot record it and the gradient would be lost. Write it with "
        f"fluxjax.numpy functions, lift a JAX function that does it with fluxjax.track(fn), "
        f"or call it on data(x) to drop the tracking on purpose."
    )


def _reject_out(what: str, kwargs: dict) -> dict:
    if kwargs.get("out") is not None:
        raise TrackedTypeError(
            f"{what}(..., out=...) cannot write a tracked result into a NumPy array (this "
            f"is also what `a += t` asks when `a` is a NumPy array): use the returned value "
            f"instead (`a = a + t`), or data(x) to drop the tracking on purpose."
        )
    return {k: v for k, v in kwargs.items() if k != "out"}


_SHAPE_QUERIES = frozenset({"shape", "ndim", "size"})
"""NumPy functions answered from a tracked value's known shape: a value recorded lazily is
not computed to say how big it is."""


def array_function(self, func, types, args, kwargs):
    """Tracked.__array_function__: ``np.f(t, ...)`` runs ``fluxjax.numpy.f`` (tracked)."""
    module = getattr(func, "__module__", "") or ""
    if module == "numpy" and func.__name__ in _SHAPE_QUERIES and len(args) == 1 and not kwargs:
        return getattr(args[0], func.__name__)
    what = f"{module}.{func.__name__}"
    f = _lifted(module, func.__name__)
    if f is None:
        raise _no_equivalent(what, what)
    return f(*args, **_reject_out(what, kwargs))


def array_ufunc(self, ufunc, method, *inputs, **kwargs):
    """Tracked.__array_ufunc__: ``np.exp(t)``, ``np.add.reduce(t)``... run tracked."""
    name = ufunc.__name__
    what = f"numpy.{name}" + ("" if method == "__call__" else f".{method}")
    if method == "at":
        raise TrackedTypeError(
            f"{what} changes its input in place, which a tracked value cannot do; "
            f"use x.at[i].add(v) style updates through fluxjax.numpy, or data(x)."
        )
    f = _lifted("numpy", name, method)
    if f is None:
        raise _no_equivalent(what, f"numpy.{name}")
    return f(*inputs, **_reject_out(what, kwargs))


# -- plain JAX --------------------------------------------------------------------------
def jax_array(self):
    """Tracked.__jax_array__: asked by ``jnp.asarray`` and every ``jax.numpy`` argument
    check; a tracked value is never converted silently, so it raises. A JAX array's own
    operator (``jax_array @ W``) gets ``self`` back, which it does not accept, so Python
    calls our reflected operator and the result stays tracked."""
    if sys._getframe(1).f_globals.get("__name__") == JAX_OPERATORS_MODULE:
        return self
    raise _plain_jax_error(self)


def _register_with_jax(classes) -> bool:
    """Make ``jax.jit``-wrapped functions (most of ``jax.numpy``, ``jax.nn``) and ``jax.lax``
    primitives reject tracked values with our error. True if JAX had every hook."""

    def reject(x):
        raise _plain_jax_error(x)

    return reject_in_plain_jax(classes, reject)


# -- PyTorch habits ---------------------------------------------------------------------
def round_(self, ndigits=None):
    """round(t, n) -> ``fluxjax.numpy.round(t, n)``, tracked (its gradient is zero);
    round(t) of a 0-d value gives a Python int, as ``round`` of a float does."""
    if ndigits is None and self.ndim == 0:
        return round(float(self))
    return _lifted("numpy", "round")(self, 0 if ndigits is None else ndigits)


class Hint:
    """Hint(message) -> a class attribute that raises ``AttributeError(message)`` when read
    on an instance: a PyTorch habit (``t.backward()``, ``m.eval()``) meets the Flux way.

    >>> class T: backward = Hint("call back_(loss)")
    >>> T().backward
    Traceback (most recent call last):
    AttributeError: call back_(loss)
    """

    def __init__(self, message: str):
        self.message = message

    def __get__(self, obj, cls=None):
        if obj is None:
            return self
        raise AttributeError(self.message)


BACKWARD = Hint(
    "tracked values have no .backward(): fluxjax follows Flux, so call "
    "fluxjax.back_(loss) and read fluxjax.grad(W) (or W.grad), then update_(W, Δ)"
)


def install(cls) -> None:
    """Set the NumPy/JAX/PyTorch interop methods on ``cls`` and its subclasses."""
    cls.__array_function__ = array_function
    cls.__array_ufunc__ = array_ufunc
    cls.__jax_array__ = jax_array
    cls.__round__ = round_
    cls.backward = BACKWARD
    _register_with_jax([cls, *cls.__subclasses__()])
