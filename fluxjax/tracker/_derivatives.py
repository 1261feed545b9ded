"""Derivatives of plain functions of arrays: ``jacobian``, ``hessian``, ``gradcheck``."""

from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np

from ._gradient import _plain, _scalar, gradient


def jacobian(f, x):
    """jacobian(f, x) -> ``J[i, j] = ∂f(x)[i] / ∂x[j]``.

    >>> jacobian(lambda x: x ** 2, jnp.array([1.0, 2.0]))
    Array([[2., 0.],
           [0., 4.]], dtype=float32)
    """
    return jax.jacrev(lambda v: _plain(f(v)))(_plain(x))


def hessian(f, x):
    """hessian(f, x) -> the matrix of second derivatives of a scalar ``f``.

    >>> hessian(lambda x: (x ** 3).sum(), jnp.array([1.0, 2.0]))
    Array([[ 6.,  0.],
           [ 0., 12.]], dtype=float32)
    """
    return jax.hessian(lambda v: _scalar(f(v), "hessian"))(_plain(x))


def gradcheck(f, *xs, eps=1e-3, rtol=1e-2, atol=1e-3):
    """gradcheck(f, *xs) -> True when ``gradient`` agrees with central finite differences.

    >>> gradcheck(lambda x: (x ** 3).sum(), jnp.array([0.5, -1.0]))
    True
    """
    vals = [np.asarray(_plain(x), np.float64) for x in xs]
    exact = [
        np.asarray(g, np.float64) for g in gradient(f, *[jnp.asarray(v, jnp.float32) for v in vals])
    ]

    def at(i, v):
        args = [jnp.asarray(a, jnp.float32) for a in vals[:i] + [v] + vals[i + 1 :]]
        return float(_plain(f(*args)))

    for i, v in enumerate(vals):
        approx = np.zeros_like(v)
        for j in np.ndindex(v.shape):
            step = eps * max(1.0, abs(v[j]))
            up, down = v.copy(), v.copy()
            up[j] += step
            down[j] -= step
            approx[j] = (at(i, up) - at(i, down)) / (2 * step)
        if not np.allclose(exact[i], approx, rtol=rtol, atol=atol):
            return False
    return True
