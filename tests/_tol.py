"""Comparisons with a tolerance that fits the dtype being checked.

XLA's float32 sums can differ in the last place between CPUs (and between XLA's
optimisation levels), so a float32 result is never compared at float64 precision.
"""

from __future__ import annotations

import numpy as np

# (rtol, atol) by the precision of the result being checked.
TOLERANCES = {
    2: (1e-2, 1e-3),  # float16 / bfloat16
    4: (1e-5, 1e-6),  # float32: a few units in the last place of a reduction
    8: (1e-12, 1e-14),  # float64
}


def tolerance(actual):
    """``(rtol, atol)`` for ``actual``'s dtype: exact for integers and booleans."""
    dtype = np.asarray(actual).dtype
    if not np.issubdtype(dtype, np.inexact):
        return 0.0, 0.0
    size = np.dtype(dtype).itemsize // (2 if np.issubdtype(dtype, np.complexfloating) else 1)
    return TOLERANCES.get(size, TOLERANCES[4])


def assert_close(actual, desired, *, rtol=None, atol=None, err_msg=""):
    """``np.testing.assert_allclose`` with ``rtol``/``atol`` chosen from ``actual``'s dtype.

    >>> import numpy as np
    >>> assert_close(np.float32(6.144382953643799), 6.144381999969482)  # one ulp apart
    """
    r, a = tolerance(actual)
    np.testing.assert_allclose(
        np.asarray(actual),
        desired,
        rtol=r if rtol is None else rtol,
        atol=a if atol is None else atol,
        err_msg=err_msg,
    )
