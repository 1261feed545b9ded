"""Pooling: ``maxpool``, ``meanpool`` and the layers ``MaxPool``, ``MeanPool``.

One ``jax.lax.reduce_window`` each, lifted with ``track``. As in NNlib, ``maxpool``
ignores padding (it never wins the max) and ``meanpool`` counts it as zeros, always
dividing by the full window size ``prod(k)``.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import jax
import jax.numpy as jnp

from ..tracker import track
from ._checks import positive
from ._conv import check_input, expand, is_same, output_size, pad_pairs, resolve_pad
from ._conv import make_spec as _make_spec
from ._treelike import register


@track
def _pool(x, k, stride, pad, kind):
    window, strides = (1, *k, 1), (1, *stride, 1)
    padding = ((0, 0), *pad, (0, 0))
    if kind == "max":
        return jax.lax.reduce_window(x, -jnp.inf, jax.lax.max, window, strides, padding)
    total = jax.lax.reduce_window(x, 0.0, jax.lax.add, window, strides, padding)
    return total / math.prod(k)


def _check(x, k):
    if len(x.shape) != len(k) + 2:
        raise ValueError(
            f"pooling with a {len(k)}-D window {k} needs a batch (n, …, c) of {len(k) + 2} "
            f"dims, channels last; got shape {tuple(x.shape)}"
        )


def _args(k, pad, stride):
    k = expand(len(k) if isinstance(k, tuple) else 1, k, "k")
    return k, pad_pairs(len(k), pad), expand(len(k), k if stride is None else stride, "stride")


def maxpool(x, k, *, pad=0, stride=None):
    """maxpool(x, k; pad=0, stride=k) -> the maximum over each window of size ``k``.

    ``x`` is ``(n, spatial…, c)``; ``k`` a tuple with one size per spatial dim. Padded
    positions never win.

    >>> import jax.numpy as jnp
    >>> maxpool(jnp.arange(8.0).reshape(1, 4, 2), (2,))[0].tolist()
    [[2.0, 3.0], [6.0, 7.0]]
    """
    k, pad, stride = _args(k, pad, stride)
    _check(x, k)
    return _pool(x, k, stride, pad, "max")


def meanpool(x, k, *, pad=0, stride=None):
    """meanpool(x, k; pad=0, stride=k) -> the mean over each window of size ``k``.

    Padded positions count as zeros; the divisor is always ``prod(k)`` (as NNlib).

    >>> import jax.numpy as jnp
    >>> meanpool(jnp.arange(4.0).reshape(1, 4, 1), (2,)).ravel().tolist()
    [0.5, 2.5]
    """
    k, pad, stride = _args(k, pad, stride)
    _check(x, k)
    return _pool(x, k, stride, pad, "mean")


@dataclass(eq=False, repr=False, init=False)
class MaxPool:
    """MaxPool(k; pad=0, stride=k)

    Max pooling over windows of size ``k`` (a tuple, one size per spatial dim) of a
    batch-first, channels-last input; an unbatched sample works too. ``pad`` as for
    ``Conv``, ``SamePad()``/``"same"`` included (sizes become ``ceil(size / stride)``).

    >>> import jax.numpy as jnp
    >>> m = MaxPool((2, 2))
    >>> m
    MaxPool((2, 2), pad=0, stride=(2, 2))
    >>> m(jnp.ones((3, 28, 28, 16))).shape
    (3, 14, 14, 16)
    """

    k: tuple
    pad: tuple
    stride: tuple

    _kind = "max"

    def __init__(self, k, *, pad=0, stride=None):
        positive(type(self).__name__, k=k, stride=stride)
        if is_same(pad):  # Flux's SamePad(): sizes become ceil(size / stride)
            window = expand(len(k) if isinstance(k, tuple) else 1, k, "k")
            pad = resolve_pad(pad, window, window if stride is None else stride)
        self.k, pairs, self.stride = _args(k, pad, stride)
        self.pad = tuple(p for pair in pairs for p in pair)

    def __call__(self, x):
        if not hasattr(x, "shape"):
            x = jnp.asarray(x)
        n = len(self.k)
        x, unbatched = check_input(self, x, n, x.shape[-1])
        pairs = tuple(zip(self.pad[::2], self.pad[1::2]))
        spec = _make_spec(n, self.stride, self.pad)
        if min(output_size(x.shape[1:-1], self.k, spec)) < 1:
            raise ValueError(f"{self!r}: input of spatial size {tuple(x.shape[1:-1])} is too small")
        y = _pool(x, self.k, self.stride, pairs, self._kind)
        return y[0] if unbatched else y

    def __repr__(self):
        pad = self.pad[0] if len(set(self.pad)) == 1 else self.pad
        return f"{type(self).__name__}({self.k}, pad={pad}, stride={self.stride})"


class MeanPool(MaxPool):
    """MeanPool(k; pad=0, stride=k)

    Mean pooling over windows of size ``k``; padding counts as zeros.

    >>> import jax.numpy as jnp
    >>> MeanPool((2,))(jnp.arange(4.0).reshape(1, 4, 1)).ravel().tolist()
    [0.5, 2.5]
    """

    _kind = "mean"


register(MaxPool)
register(MeanPool)
