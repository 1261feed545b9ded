"""Upsampling: ``Upsample`` (nearest or (bi/tri)linear) and ``PixelShuffle``, NNlib's
``upsample_*`` and ``pixel_shuffle`` on batch-first, channels-last arrays.

Each is one function lifted with ``track``; sizes and scales are static.
"""

from __future__ import annotations

import math
import numbers
from dataclasses import dataclass
from typing import Any

import jax.numpy as jnp
import numpy as np

from ..tracker import track
from ._treelike import register

_LINEAR = {"bilinear": 2, "trilinear": 3}


def _linear_axis(x, axis: int, out: int):
    """Linear interpolation of ``x`` along ``axis`` to ``out`` points, corners aligned
    (NNlib's ``align_corners=true``): output ``i`` reads input ``i·(n - 1)/(out - 1)``."""
    n = x.shape[axis]
    if out == n:
        return x
    src = np.arange(out) * ((n - 1) / (out - 1) if out > 1 else 0.0)
    lo = np.minimum(np.floor(src).astype(np.int32), n - 1)
    hi = np.minimum(lo + 1, n - 1)
    shape = [1] * x.ndim
    shape[axis] = out
    λ = jnp.asarray((src - lo).reshape(shape), x.dtype)
    return jnp.take(x, lo, axis=axis) * (1 - λ) + jnp.take(x, hi, axis=axis) * λ


@track
def _upsample(x, sizes: tuple, mode: str):
    """``x`` ``(n, spatial…, c)`` resized to the spatial ``sizes`` (one per leading spatial
    dim; the rest are kept)."""
    if not jnp.issubdtype(x.dtype, jnp.inexact):
        x = x.astype(jnp.float32)
    for d, out in enumerate(sizes, start=1):
        if mode == "nearest":
            x = jnp.repeat(x, out // x.shape[d], axis=d)
        else:
            x = _linear_axis(x, d, out)
    return x


@dataclass(eq=False, repr=False, init=False)
class Upsample:
    """Upsample(scale=2, mode="nearest"; size=None)
    Upsample(mode; scale=None, size=None)

    Flux's ``Upsample``: enlarges the spatial axes of ``(n, spatial…, c)`` by ``scale``
    (a number for every spatial dim, or a tuple for the leading ones) or to ``size``.
    ``mode="nearest"`` repeats each value (integer scales); ``"bilinear"`` (4-D input)
    and ``"trilinear"`` (5-D) interpolate with corners aligned, as NNlib (PyTorch's
    ``align_corners=True``); their output size is ``floor(scale·size)``.

    >>> import jax.numpy as jnp
    >>> x = jnp.array([[1.0, 2.0, 3.0], [4.0, 5.0, 6.0]]).reshape(1, 2, 3, 1)
    >>> Upsample(scale=(2, 3), mode="bilinear")(x)[0, :, :, 0][:, :4].tolist()
    [[1.0, 1.25, 1.5, 1.75], [2.0, 2.25, 2.5, 2.75], [3.0, 3.25, 3.5, 3.75], [4.0, 4.25, 4.5, 4.75]]
    >>> Upsample(2)(jnp.ones((1, 3, 4, 2))).shape
    (1, 6, 8, 2)
    """

    mode: str
    scale: Any
    size: Any

    def __init__(self, scale=None, mode="nearest", *, size=None):
        if isinstance(scale, str):
            scale, mode = None if mode == "nearest" else mode, scale  # Upsample(mode; scale)
        if mode not in ("nearest", *_LINEAR):
            raise ValueError(
                f'Upsample: mode must be "nearest", "bilinear" or "trilinear"; got {mode!r}'
            )
        if (scale is None) == (size is None):
            raise ValueError("Upsample: give either scale or size (not both)")
        scale = scale if scale is None or isinstance(scale, numbers.Real) else tuple(scale)
        self.mode, self.scale, self.size = mode, scale, None if size is None else tuple(size)
        values = _tuple(scale if size is None else size)
        if not values or not all(isinstance(v, numbers.Real) and v > 0 for v in values):
            raise ValueError(f"Upsample: scale and size must be positive, got {scale or size!r}")

    def _sizes(self, x) -> tuple:
        spatial = tuple(x.shape[1:-1])
        n = _LINEAR.get(self.mode)
        if len(x.shape) < 3 or (n is not None and len(spatial) != n):
            want = "at least 3" if n is None else str(n + 2)
            raise ValueError(
                f"{self!r}: expected a batch (n, spatial…, c) with {want} dims, "
                f"got shape {tuple(x.shape)}"
            )
        if self.size is not None:
            target = self.size
        else:
            scale = (self.scale,) * len(spatial) if _is_number(self.scale) else self.scale
            target = tuple(math.floor(s * v) for s, v in zip(scale, spatial))
        if len(target) > len(spatial) or (n is not None and len(target) != n):
            raise ValueError(f"{self!r}: {len(target)} sizes for {len(spatial)} spatial dims")
        if self.mode == "nearest" and any(t % s for t, s in zip(target, spatial)):
            raise ValueError(f"{self!r}: nearest needs whole multiples of {spatial}, got {target}")
        return target

    def __call__(self, x):
        x = x if hasattr(x, "shape") else jnp.asarray(x)
        return _upsample(x, self._sizes(x), self.mode)

    def __repr__(self):
        what = f"scale={self.scale}" if self.size is None else f"size={self.size}"
        return f'Upsample("{self.mode}", {what})'


def _is_number(v) -> bool:
    return isinstance(v, numbers.Real)


def _tuple(v):
    return (v,) if _is_number(v) else tuple(v)


@track
def _pixel_shuffle(x, r: int):
    """NNlib's channel order: input channel ``i₁ + r·i₂ + … + r^d·c`` goes to output
    channel ``c`` at spatial offsets ``(i₁, i₂, …)`` within each ``r``-block."""
    n, *spatial, channels = x.shape
    d = len(spatial)
    y = x.reshape(n, *spatial, channels // r**d, *([r] * d))  # (…, c, r_d, …, r_1)
    order = [0]
    for i in range(d):
        order += [1 + i, 2 * d + 1 - i]  # spatial dim i, then its offset r_(i+1)
    y = y.transpose(*order, d + 1)
    return y.reshape(n, *(s * r for s in spatial), channels // r**d)


@dataclass(eq=False, repr=False, init=False)
class PixelShuffle:
    """PixelShuffle(r)

    Trades channels for resolution (Shi et al. 2016; NNlib's ``pixel_shuffle``):
    ``(n, w, h, r²·c) → (n, r·w, r·h, c)``, for any number ``d`` of spatial dims (the
    channels must divide by ``r^d``). Output ``[r·i + a, r·j + b, c]`` is input channel
    ``a + r·b + r²·c`` at ``[i, j]``.

    >>> import jax.numpy as jnp
    >>> x = jnp.arange(4.0).reshape(1, 1, 1, 4)
    >>> PixelShuffle(2)(x)[0, :, :, 0].tolist()
    [[0.0, 2.0], [1.0, 3.0]]
    """

    r: int

    def __init__(self, r):
        if not isinstance(r, numbers.Integral) or isinstance(r, bool) or r < 1:
            raise ValueError(f"PixelShuffle: r must be an int ≥ 1, got {r!r}")
        self.r = int(r)

    def __call__(self, x):
        x = x if hasattr(x, "shape") else jnp.asarray(x)
        d = len(x.shape) - 2
        if d < 1 or x.shape[-1] % self.r**d:
            raise ValueError(
                f"{self!r}: expected (n, spatial…, c) with c divisible by r^d = {self.r}^{d}, "
                f"got shape {tuple(x.shape)}"
            )
        return _pixel_shuffle(x, self.r)

    def __repr__(self):
        return f"PixelShuffle({self.r})"


register(Upsample)
register(PixelShuffle)
