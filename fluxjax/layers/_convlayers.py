"""Convolution layers: ``Conv``, ``CrossCor``, ``ConvTranspose``, ``DepthwiseConv``.

One base class holds what the four share (fields ``weight``, ``bias``, ``σ``, ``stride``,
``pad``, ``dilation``, the constructor, the call and the repr); each subclass names its
kernel layout and which lifted convolution it runs (see ``_conv.py``).
"""

from __future__ import annotations

import numbers
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import jax.numpy as jnp

from ..tracker import Tracked, param
from ._activations import identity
from ._checks import conv_args
from ._conv import (
    ConvSpec,
    check_input,
    conv_layer,
    expand,
    is_same,
    make_spec,
    output_size,
    resolve_pad,
)
from ._random import draw, kernel_glorot_uniform, zeros
from ._treelike import register


def _is_kernel(k) -> bool:
    return isinstance(k, tuple) and all(isinstance(i, numbers.Integral) for i in k)


def _as_param(x):
    return x if isinstance(x, Tracked) else param(x)


@dataclass(eq=False, repr=False, init=False)
class _ConvLayer:
    weight: Any
    bias: Any
    σ: Callable = identity
    stride: tuple = (1,)
    pad: tuple = (0, 0)
    dilation: tuple = (1,)
    groups: int = 1

    _kind = "conv"
    _flipped = False

    def __init__(self, k, ch_in, ch_out=identity, σ=identity, *, stride=1, pad=0, dilation=1,
                 groups=1, outpad=0, init=kernel_glorot_uniform, bias=True, key=None):  # fmt: skip
        self.groups = self._check_groups(groups)
        conv_args(type(self).__name__, k, ch_in, ch_out, stride, dilation)
        if _is_kernel(k):
            shape = self._kernel_shape(tuple(k), int(ch_in), int(ch_out))
            weight = param(draw(init, key, shape, jnp.float32))  # no compile on the host path
            b = param(zeros(self._out(shape), weight.dtype)) if bias else False
        elif hasattr(k, "shape"):  # Conv(weight, bias, σ)
            weight, b, σ = _as_param(k), ch_in, ch_out
            b = False if b is None or b is False else _as_param(b)
        else:
            raise TypeError(
                f"{type(self).__name__}: the first argument is a kernel size tuple such as "
                f"(3, 3) or a weight array, got {k!r}"
            )
        n, same = len(weight.shape) - 2, is_same(pad)
        if same:  # SamePad(): resolved now into Flux's flat pad (a transpose's may be < 0)
            pad = resolve_pad(pad, weight.shape[:n], stride, dilation, self._kind == "transpose")
        spec = make_spec(n, stride, 0 if same else pad, dilation, self._flipped)
        self.weight, self.bias, self.σ = weight, b, σ
        self.stride, self.dilation = spec.stride, spec.dilation
        self.pad = pad if same else tuple(p for pair in spec.pad for p in pair)
        self._set_outpad(outpad)
        self._check_bias()

    def _check_groups(self, groups):
        if not isinstance(groups, numbers.Integral) or isinstance(groups, bool) or groups < 1:
            raise ValueError(f"{type(self).__name__}: groups must be an int ≥ 1, got {groups!r}")
        return int(groups)

    def _set_outpad(self, outpad):
        if outpad != 0:
            raise TypeError(f"{type(self).__name__}: outpad= is for ConvTranspose only")

    def _divisible(self, ch_in, ch_out):
        g = self.groups
        if ch_in % g or ch_out % g:
            raise ValueError(
                f"{type(self).__name__}: groups={g} must divide both channel counts, "
                f"in={ch_in} and out={ch_out}"
            )

    # ---- layouts: (k…, in ÷ groups, out) unless a subclass says otherwise ----
    def _kernel_shape(self, k, ch_in, ch_out):
        self._divisible(ch_in, ch_out)
        return (*k, ch_in // self.groups, ch_out)

    def _in(self, shape):
        return shape[-2] * self.groups

    def _out(self, shape):
        return shape[-1]

    def _check_bias(self):
        if self.weight.shape[-1] % self.groups:
            raise ValueError(
                f"{type(self).__name__}: groups={self.groups} must divide the last axis of "
                f"the weight {tuple(self.weight.shape)}"
            )
        out = self._out(self.weight.shape)
        if self.bias is not False and tuple(self.bias.shape) != (out,):
            raise ValueError(
                f"{type(self).__name__}: bias must have shape ({out},) to match the weight "
                f"{tuple(self.weight.shape)}, got {tuple(self.bias.shape)}"
            )

    def spec(self) -> ConvSpec:
        pairs = tuple(zip(self.pad[::2], self.pad[1::2]))
        return ConvSpec(self.stride, pairs, self.dilation, self._flipped, self.groups)

    def __call__(self, x):
        shape = self.weight.shape
        n = len(shape) - 2
        x, unbatched = check_input(self, x, n, self._in(shape))
        spec = self.spec()
        if self._kind != "transpose" and min(output_size(x.shape[1:-1], shape[:n], spec)) < 1:
            raise ValueError(
                f"{self!r}: input of spatial size {tuple(x.shape[1:-1])} is smaller than the "
                f"kernel {tuple(shape[:n])} (dilation {self.dilation}, pad {self.pad})"
            )
        y = conv_layer(self.weight, self.bias, x, spec, self._kind)
        y = y if self.σ is identity else self.σ(y)
        return y[0] if unbatched else y

    def __repr__(self):
        shape = self.weight.shape
        k = tuple(shape[:-2])
        s = f"{type(self).__name__}({k}, {self._in(shape)}, {self._out(shape)}"
        if self.σ is not identity:
            s += f", {getattr(self.σ, '__name__', repr(self.σ))}"
        n = len(k)
        if self.stride != (1,) * n:
            s += f", stride={_short(self.stride)}"
        if any(self.pad):
            s += f", pad={_short(self.pad)}"
        if self.dilation != (1,) * n:
            s += f", dilation={_short(self.dilation)}"
        if self.groups != 1:
            s += f", groups={self.groups}"
        if any(getattr(self, "outpad", ())):
            s += f", outpad={_short(self.outpad)}"
        return s + (", bias=False)" if self.bias is False else ")")


def _short(t: tuple):
    return t[0] if len(set(t)) == 1 else t


class Conv(_ConvLayer):
    """Conv(k, in, out, σ=identity; stride=1, pad=0, dilation=1, groups=1, init, bias=True,
    key=None)
    Conv(weight, bias, σ=identity; stride=1, pad=0, dilation=1)

    A convolution layer: ``y = σ(conv(x, weight) + bias)``, a true convolution (the
    kernel is flipped) as in Flux. ``k`` is the kernel size, a 1-, 2- or 3-tuple; ``weight``
    is ``(k…, in, out)`` (Flux's layout), ``bias`` ``(out,)``. Input is batch first,
    channels last: ``(n, w, h, in)`` for 2-D (Flux's WHCN, batch axis moved to the front);
    one unbatched sample ``(w, h, in)`` is accepted too. ``pad`` is an int, one value per
    spatial dim, Flux's flat ``(lo₁, hi₁, lo₂, hi₂, …)``, or ``SamePad()``/``"same"`` (the
    padding that keeps each size at ``ceil(size / stride)``, stored flat, odd totals one
    more on the low side). ``groups=g`` splits the channels into ``g`` contiguous blocks
    convolved separately: ``weight`` is then ``(k…, in ÷ g, out)`` and output block ``j``
    reads input block ``j``. Float32; ``init(key, shape, dtype)`` defaults to Glorot
    uniform with fans from the kernel layout.

    >>> import jax.numpy as jnp
    >>> from fluxjax.layers import relu
    >>> c = Conv((3, 3), 1, 16, relu, pad=1)
    >>> c
    Conv((3, 3), 1, 16, relu, pad=1)
    >>> c(jnp.ones((5, 28, 28, 1))).shape
    (5, 28, 28, 16)
    >>> g = Conv((2, 2), 4, 6, groups=2, pad="same")
    >>> g, g.weight.shape, g(jnp.ones((1, 5, 5, 4))).shape
    (Conv((2, 2), 4, 6, pad=(1, 0, 1, 0), groups=2), (2, 2, 2, 6), (1, 5, 5, 6))
    """


class CrossCor(Conv):
    """CrossCor(k, in, out, σ=identity; stride=1, pad=0, dilation=1, groups=1, ...)
    CrossCor(weight, bias, σ=identity; ...)

    As ``Conv`` but a cross-correlation: the kernel is not flipped, so
    ``CrossCor(w, b)(x) == Conv(w[::-1, ::-1], b)(x)``.

    >>> import jax.numpy as jnp
    >>> x = jnp.arange(4.0).reshape(1, 4, 1)
    >>> CrossCor(jnp.array([1.0, 0.0]).reshape(2, 1, 1), None)(x).ravel().tolist()
    [0.0, 1.0, 2.0]
    """

    _flipped = True


@dataclass(eq=False, repr=False, init=False)
class ConvTranspose(Conv):
    """ConvTranspose(k, in, out, σ=identity; stride=1, pad=0, outpad=0, dilation=1, groups=1,
    ...)
    ConvTranspose(weight, bias, σ=identity; ...)

    The transpose (adjoint) of ``Conv``, as Flux's ``∇conv_data``: ``weight`` is
    ``(k…, out ÷ groups, in)`` and each spatial size grows to
    ``(n - 1)·stride + 1 + (k - 1)·dilation - lo - hi + outpad``. With the same ``k``,
    ``stride`` and ``pad`` it undoes a ``Conv``'s change of shape; ``outpad`` (each
    ``< max(stride, dilation)``) adds rows on the high side, as PyTorch's
    ``output_padding``, where a strided ``Conv`` rounded down. ``pad=SamePad()`` gives
    ``size·stride``.

    >>> import jax.numpy as jnp
    >>> y = Conv((3, 3), 1, 4, stride=2)(jnp.ones((1, 9, 9, 1)))
    >>> y.shape, ConvTranspose((3, 3), 4, 1, stride=2)(y).shape
    ((1, 4, 4, 4), (1, 9, 9, 1))
    >>> ConvTranspose((3, 3), 4, 1, stride=2, outpad=1)(y).shape
    (1, 10, 10, 1)
    """

    outpad: tuple = ()

    _kind = "transpose"

    def _set_outpad(self, outpad):
        n = len(self.stride)
        self.outpad = expand(n, outpad, "outpad", least=0)
        limit = tuple(max(s, d) for s, d in zip(self.stride, self.dilation))
        if any(not 0 <= o < m for o, m in zip(self.outpad, limit)):
            raise ValueError(
                f"ConvTranspose: outpad={outpad!r} must be ≥ 0 and smaller than the stride "
                f"or the dilation in each dim, max(stride, dilation) = {limit}"
            )

    def spec(self) -> ConvSpec:
        """The adjoint convolution's spec: ``outpad`` comes off the high pads (a crop that
        stops ``outpad`` rows short, or zeros beyond the last row)."""
        lo, hi = self.pad[::2], self.pad[1::2]
        pairs = tuple((a, b - o) for a, b, o in zip(lo, hi, self.outpad))
        return ConvSpec(self.stride, pairs, self.dilation, self._flipped, self.groups)

    def _kernel_shape(self, k, ch_in, ch_out):
        self._divisible(ch_in, ch_out)
        return (*k, ch_out // self.groups, ch_in)

    def _in(self, shape):
        return shape[-1]

    def _out(self, shape):
        return shape[-2] * self.groups


class DepthwiseConv(Conv):
    """DepthwiseConv(k, in, out, σ=identity; stride=1, pad=0, dilation=1, ...)
    DepthwiseConv(weight, bias, σ=identity; ...)

    Each input channel convolved on its own with ``out ÷ in`` kernels (``out`` must be a
    multiple of ``in``). ``weight`` is NNlib's ``(k…, out ÷ in, in)``; output channel
    ``c·(out ÷ in) + j`` comes from input channel ``c`` and kernel ``weight[…, j, c]``.

    >>> import jax.numpy as jnp
    >>> d = DepthwiseConv((2, 2), 3, 6)
    >>> d.weight.shape, d(jnp.ones((1, 5, 5, 3))).shape
    ((2, 2, 2, 3), (1, 4, 4, 6))
    """

    _kind = "depthwise"

    def _check_groups(self, groups):
        if groups != 1:
            raise TypeError("DepthwiseConv: no groups= (it is a Conv with groups = in)")
        return 1

    def _kernel_shape(self, k, ch_in, ch_out):
        if ch_in < 1 or ch_out % ch_in:
            raise ValueError(
                f"DepthwiseConv: out ({ch_out}) must be a multiple of in ({ch_in}); "
                f"e.g. DepthwiseConv({k}, {ch_in}, {ch_in * max(1, ch_out // max(ch_in, 1))})"
            )
        return (*k, ch_out // ch_in, ch_in)

    def _in(self, shape):
        return shape[-1]

    def _out(self, shape):
        return shape[-1] * shape[-2]


for _cls in (Conv, CrossCor, ConvTranspose, DepthwiseConv):
    register(_cls)
