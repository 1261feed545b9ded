"""Convolutions: ``conv``, ``depthwiseconv`` and the layers ``Conv``, ``CrossCor``,
``ConvTranspose``, ``DepthwiseConv``.

Arrays are batch first, channels last: Flux's WHCN ``(w, h, c, n)`` is ``(n, w, h, c)``
here, and a kernel keeps Flux's layout ``(k1, k2, c_in, c_out)``. Each function is one
``jax.lax.conv_general_dilated`` call lifted with ``track``: JAX supplies every derivative.
As in NNlib, ``conv`` is a true convolution (the kernel is flipped) unless
``flipped=True``, which gives a cross-correlation.
"""

from __future__ import annotations

import numbers
from typing import NamedTuple

import jax
import jax.numpy as jnp

from ..tracker import track
from ._checks import kernel_fits

_DIMS = {1: ("NWC", "WIO", "NWC"), 2: ("NHWC", "HWIO", "NHWC"), 3: ("NDHWC", "DHWIO", "NDHWC")}


class ConvSpec(NamedTuple):
    """How a convolution slides: per spatial dim ``stride``, ``(lo, hi)`` ``pad`` pairs,
    ``dilation``; ``flipped=True`` means cross-correlation (no kernel flip); ``groups``
    splits the channels into that many contiguous blocks, each convolved on its own."""

    stride: tuple
    pad: tuple
    dilation: tuple
    flipped: bool = False
    groups: int = 1


def expand(n: int, v, what: str, least: int = 1) -> tuple:
    """One int ``>= least`` (positive by default) per spatial dim from an int or an ``n``-tuple."""
    t = (v,) * n if isinstance(v, numbers.Integral) else tuple(v)
    if len(t) != n or not all(isinstance(i, numbers.Integral) and i >= least for i in t):
        kind = "positive int" if least == 1 else f"int >= {least}"
        raise ValueError(f"{what} must be a {kind} or a tuple of {n} of them, got {v!r}")
    return tuple(int(i) for i in t)


def pad_pairs(n: int, pad) -> tuple:
    """``((lo₁, hi₁), …)`` from an int, one value per dim, or Flux's flat ``(lo₁, hi₁, …)``.

    >>> pad_pairs(2, 1), pad_pairs(2, (1, 2)), pad_pairs(2, (0, 1, 1, 2))
    (((1, 1), (1, 1)), ((1, 1), (2, 2)), ((0, 1), (1, 2)))
    """
    t = (pad,) * n if isinstance(pad, numbers.Integral) else tuple(pad)
    if len(t) == n:
        t = tuple(v for p in t for v in (p, p))
    if len(t) != 2 * n or not all(isinstance(p, numbers.Integral) and p >= 0 for p in t):
        raise ValueError(
            f"pad must be an int, {n} values (one per spatial dim) or {2 * n} values "
            f"(lo₁, hi₁, lo₂, hi₂, …), all ≥ 0; got {pad!r}"
        )
    return tuple((int(t[2 * i]), int(t[2 * i + 1])) for i in range(n))


def make_spec(n, stride=1, pad=0, dilation=1, flipped=False) -> ConvSpec:
    """A ``ConvSpec`` for ``n`` spatial dims from Flux-style keyword values."""
    if n not in _DIMS:
        raise ValueError(f"convolutions are 1-, 2- or 3-D; a kernel with {n} spatial dims")
    return ConvSpec(
        expand(n, stride, "stride"), pad_pairs(n, pad), expand(n, dilation, "dilation"), flipped
    )


def _lax_conv(x, w, spec: ConvSpec, groups=None):
    n = w.ndim - 2
    groups = spec.groups if groups is None else groups
    if not spec.flipped:
        w = jnp.flip(w, axis=tuple(range(n)))
    dn = jax.lax.conv_dimension_numbers(x.shape, w.shape, _DIMS[n])
    return jax.lax.conv_general_dilated(
        x.astype(w.dtype), w, spec.stride, spec.pad, rhs_dilation=spec.dilation,
        dimension_numbers=dn, feature_group_count=groups,
    )  # fmt: skip


def _depthwise_kernel(w):
    """NNlib's ``(k…, multiplier, c_in)`` as a grouped kernel ``(k…, 1, c_in·multiplier)``,
    so output channel ``c·multiplier + j`` reads input channel ``c``."""
    *k, mult, c_in = w.shape
    return jnp.swapaxes(w, -1, -2).reshape(*k, 1, c_in * mult)


def _transpose_input_shape(x, w, spec: ConvSpec):
    """The shape of the input whose ``conv`` has ``x``'s shape (Flux's ``ConvTranspose``):
    ``(n - 1)·stride + 1 + (k - 1)·dilation - lo - hi`` per spatial dim."""
    k = w.shape[:-2]
    sizes = [
        (i - 1) * s + 1 + (kk - 1) * d - lo - hi
        for i, kk, s, d, (lo, hi) in zip(x.shape[1:-1], k, spec.stride, spec.dilation, spec.pad)
    ]
    return (x.shape[0], *sizes, w.shape[-2] * spec.groups)


@track
def conv_layer(w, b, x, spec: ConvSpec, kind: str = "conv"):
    """``conv(x, w) + b`` (or the depthwise/transposed variant), one node of the graph."""
    if kind == "depthwise":
        y = _lax_conv(x, _depthwise_kernel(w), spec, groups=w.shape[-1])
    elif kind == "transpose":
        shape = _transpose_input_shape(x, w, spec)
        zeros = jnp.zeros(shape, w.dtype)
        (y,) = jax.linear_transpose(lambda z: _lax_conv(z, w, spec), zeros)(x.astype(w.dtype))
    else:
        y = _lax_conv(x, w, spec)
    return y if b is False else y + b


def conv(x, w, *, stride=1, pad=0, dilation=1, flipped=False):
    """conv(x, w; stride=1, pad=0, dilation=1, flipped=False) -> y

    NNlib's ``conv`` on batch-first, channels-last arrays: ``x`` is ``(n, w, [h, [d,]] c_in)``,
    ``w`` is ``(k1, [k2, [k3,]] c_in, c_out)``; each output spatial size is
    ``(size + lo + hi - dilation·(k - 1) - 1) ÷ stride + 1``. A true convolution (the kernel
    flipped) unless ``flipped=True``. Plain or tracked inputs.

    >>> import jax.numpy as jnp
    >>> x = jnp.arange(5.0).reshape(1, 5, 1)
    >>> conv(x, jnp.array([1.0, 0.0]).reshape(2, 1, 1)).ravel().tolist()
    [1.0, 2.0, 3.0, 4.0]
    >>> conv(x, jnp.array([1.0, 0.0]).reshape(2, 1, 1), flipped=True).ravel().tolist()
    [0.0, 1.0, 2.0, 3.0]
    """
    spec = make_spec(len(w.shape) - 2, stride, pad, dilation, flipped)
    _fits("conv", x, w.shape[:-2], spec)
    return conv_layer(w, False, x, spec)


def depthwiseconv(x, w, *, stride=1, pad=0, dilation=1, flipped=False):
    """depthwiseconv(x, w; stride=1, pad=0, dilation=1, flipped=False) -> y

    Each input channel convolved on its own with ``multiplier`` kernels: ``w`` is NNlib's
    ``(k…, multiplier, c_in)`` and output channel ``c·multiplier + j`` is input channel
    ``c`` convolved with ``w[…, j, c]``.

    >>> import jax.numpy as jnp
    >>> x = jnp.ones((1, 3, 2))
    >>> depthwiseconv(x, jnp.ones((2, 3, 2))).shape
    (1, 2, 6)
    """
    spec = make_spec(len(w.shape) - 2, stride, pad, dilation, flipped)
    _fits("depthwiseconv", x, w.shape[:-2], spec)
    return conv_layer(w, False, x, spec, "depthwise")


def output_size(sizes, k, spec: ConvSpec) -> tuple:
    """The spatial output sizes of a convolution (or pooling) window."""
    return tuple(
        (n + lo + hi - d * (kk - 1) - 1) // s + 1
        for n, kk, s, d, (lo, hi) in zip(sizes, k, spec.stride, spec.dilation, spec.pad)
    )


def _fits(fn, x, k, spec):
    sizes = x.shape[1:-1]
    kernel_fits(fn, sizes, k, spec, output_size(sizes, k, spec))


def check_input(layer, x, n: int, channels: int):
    """``x`` as an array of ``n + 2`` dims (a batch) with ``channels`` last, else ValueError.

    Returns ``(x, unbatched)``; a single sample of ``n + 1`` dims gets a batch axis.
    """
    if not hasattr(x, "shape"):
        x = jnp.asarray(x)
    unbatched = len(x.shape) == n + 1
    if unbatched:
        x = x[None]
    if len(x.shape) != n + 2:
        raise ValueError(
            f"{layer!r}: expected a batch (n, {', '.join(['…'] * n)}, c) with {n + 2} dims, "
            f"channels last; got shape {tuple(x.shape)}"
        )
    if x.shape[-1] != channels:
        raise ValueError(
            f"{layer!r}: expected {channels} input channels (the last axis), "
            f"got {x.shape[-1]} in shape {tuple(x.shape[unbatched:])}"
        )
    return x, unbatched


class SamePad:
    """SamePad()

    Flux's ``pad=SamePad()`` (also ``pad="same"``): the padding that keeps each spatial
    size at ``ceil(size / stride)`` (for ``ConvTranspose``, grows it to ``size·stride``),
    worked out when the layer is built and stored as Flux's flat ``(lo₁, hi₁, …)``: a total
    of ``dilation·(k - 1)`` per dim, the odd one on the low side.

    >>> from fluxjax.layers import Conv
    >>> Conv((2, 2), 3, 7, pad=SamePad())
    Conv((2, 2), 3, 7, pad=(1, 0, 1, 0))
    """

    def __repr__(self):
        return "SamePad()"

    def __eq__(self, other):
        return type(other) is SamePad

    def __hash__(self):
        return hash(SamePad)


def is_same(pad) -> bool:
    """Is ``pad`` Flux's ``SamePad()`` (or the string ``"same"``, any case)?"""
    if isinstance(pad, str):
        if pad.lower() != "same":
            raise ValueError(f'pad must be a number, a tuple, SamePad() or "same"; got {pad!r}')
        return True
    return pad is SamePad or isinstance(pad, SamePad)  # the class itself reads as SamePad()


def same_pad(k, stride, dilation) -> tuple:
    """Flux's ``calc_padding`` for ``SamePad``: the flat ``(lo₁, hi₁, …)`` with
    ``dilation·(k - 1)`` in all per dim, ``⌈·/2⌉`` of it on the low side.

    >>> same_pad((2, 3), (1, 1), (1, 2))
    (1, 0, 2, 2)
    """
    del stride  # as Flux: the output is ceil(size / stride) without a stride term
    total = [kk + (kk - 1) * (d - 1) - 1 for kk, d in zip(k, dilation)]
    return tuple(v for t in total for v in (-(-t // 2), t // 2))


def resolve_pad(pad, k, stride=1, dilation=1, transpose=False):
    """``pad`` as given, or the flat padding ``SamePad()``/``"same"`` stands for: for a
    transposed convolution Flux's rule with the kernel ``k - stride + 1`` (which may give a
    negative pad, a crop)."""
    if not is_same(pad):
        return pad
    n = len(k)
    stride, dilation = expand(n, stride, "stride"), expand(n, dilation, "dilation")
    if transpose:
        k = tuple(kk - s + 1 for kk, s in zip(k, stride))
    return same_pad(k, stride, dilation)
