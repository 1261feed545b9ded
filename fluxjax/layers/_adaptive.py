"""Pooling whose window follows the input: ``GlobalMaxPool``, ``GlobalMeanPool``,
``AdaptiveMaxPool``, ``AdaptiveMeanPool``.

Each call works out a window and a stride from the input's spatial sizes as Flux does and
runs the same lifted ``reduce_window`` as ``MaxPool``/``MeanPool`` (``_pool.py``).
"""

from __future__ import annotations

from dataclasses import dataclass

import jax.numpy as jnp

from ._conv import expand
from ._pool import _pool
from ._treelike import register


def _batch(layer, x, n=None):
    """``x`` as an array ``(n, spatial…, c)`` with at least one spatial axis (or ``n``)."""
    x = x if hasattr(x, "shape") else jnp.asarray(x)
    want = "at least 3" if n is None else str(n + 2)
    if len(x.shape) < 3 or (n is not None and len(x.shape) != n + 2):
        raise ValueError(
            f"{layer!r}: expected a batch (n, spatial…, c) with {want} dims, channels last; "
            f"got shape {tuple(x.shape)}"
        )
    return x


@dataclass(eq=False, repr=False)
class GlobalMaxPool:
    """GlobalMaxPool()

    The maximum over all spatial positions of each channel:
    ``(n, w, h, c) → (n, 1, 1, c)`` (any number of spatial axes).

    >>> import jax.numpy as jnp
    >>> GlobalMaxPool()(jnp.arange(8.0).reshape(1, 2, 2, 2)).ravel().tolist()
    [6.0, 7.0]
    """

    _kind = "max"

    def __call__(self, x):
        x = _batch(self, x)
        k = tuple(x.shape[1:-1])
        return _pool(x, k, k, ((0, 0),) * len(k), self._kind)

    def __repr__(self):
        return f"{type(self).__name__}()"


@dataclass(eq=False, repr=False)
class GlobalMeanPool(GlobalMaxPool):
    """GlobalMeanPool()

    The mean over all spatial positions of each channel: ``(n, w, h, c) → (n, 1, 1, c)``.

    >>> import jax.numpy as jnp
    >>> GlobalMeanPool()(jnp.arange(8.0).reshape(1, 2, 2, 2)).ravel().tolist()
    [3.0, 4.0]
    """

    _kind = "mean"


@dataclass(eq=False, repr=False, init=False)
class AdaptiveMaxPool:
    """AdaptiveMaxPool(out)

    Max pooling with the window and stride chosen so that the spatial output is ``out``
    (a tuple, one size per spatial dim), as Flux: ``stride = size ÷ out``,
    ``k = size - (out - 1)·stride``, no padding. Each spatial size must be ≥ ``out``.

    >>> import jax.numpy as jnp
    >>> AdaptiveMaxPool((5, 5))(jnp.ones((2, 10, 10, 3))).shape
    (2, 5, 5, 3)
    """

    out: tuple

    _kind = "max"

    def __init__(self, out):
        n = len(out) if isinstance(out, tuple) else 1
        self.out = expand(n, out, "out")
        if min(self.out) < 1:
            raise ValueError(f"{type(self).__name__}: output sizes must be ≥ 1, got {out!r}")

    def __call__(self, x):
        x = _batch(self, x, len(self.out))
        sizes = tuple(x.shape[1:-1])
        if any(s < o for s, o in zip(sizes, self.out)):
            raise ValueError(f"{self!r}: input of spatial size {sizes} is smaller than the output")
        stride = tuple(s // o for s, o in zip(sizes, self.out))
        k = tuple(s - (o - 1) * st for s, o, st in zip(sizes, self.out, stride))
        return _pool(x, k, stride, ((0, 0),) * len(k), self._kind)

    def __repr__(self):
        return f"{type(self).__name__}({self.out})"


class AdaptiveMeanPool(AdaptiveMaxPool):
    """AdaptiveMeanPool(out)

    Mean pooling with the window and stride chosen so that the spatial output is ``out``
    (see ``AdaptiveMaxPool``).

    >>> import jax.numpy as jnp
    >>> AdaptiveMeanPool((2,))(jnp.arange(4.0).reshape(1, 4, 1)).ravel().tolist()
    [0.5, 2.5]
    """

    _kind = "mean"


for _cls in (GlobalMaxPool, GlobalMeanPool, AdaptiveMaxPool, AdaptiveMeanPool):
    register(_cls)
