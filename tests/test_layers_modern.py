"""Flux ≥ 0.12's layers (flatten, SamePad, groups, outpad, global/adaptive pools, Upsample,
PixelShuffle, Embedding, Parallel, Bilinear, LayerNorm's ε) against NumPy references, Flux's
and NNlib's published values, and jax.grad twins on every path (tests/_paths.py)."""

from __future__ import annotations

import math
import operator

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from _paths import check_paths
from _tol import assert_close

import fluxjax as fj

# ---- NumPy references -------------------------------------------------------------------


def np_conv(x, w, stride=1, pads=None, dilation=1, groups=1):
    """Batch-first, channels-last true convolution by definition, ``groups`` contiguous
    channel blocks; ``pads`` may be negative (a crop)."""
    n = w.ndim - 2
    stride, dilation = (stride,) * n if np.isscalar(stride) else stride, (dilation,) * n
    pads = pads or ((0, 0),) * n
    for i, (lo, hi) in enumerate(pads):  # negative pads crop
        sl = [slice(None)] * x.ndim
        sl[1 + i] = slice(-lo if lo < 0 else 0, x.shape[1 + i] + hi if hi < 0 else None)
        x = x[tuple(sl)]
    x = np.pad(x, [(0, 0), *((max(lo, 0), max(hi, 0)) for lo, hi in pads), (0, 0)])
    w = w[(slice(None, None, -1),) * n]
    out = [(x.shape[1 + i] - dilation[i] * (w.shape[i] - 1) - 1) // stride[i] + 1 for i in range(n)]
    c_in, c_out = w.shape[-2], w.shape[-1]
    y = np.zeros((x.shape[0], *out, c_out))
    for g in range(groups):
        xs = x[..., g * c_in : (g + 1) * c_in]
        ws = w[..., g * (c_out // groups) : (g + 1) * (c_out // groups)]
        for o in np.ndindex(*out):
            for k in np.ndindex(*w.shape[:n]):
                idx = tuple(o[i] * stride[i] + k[i] * dilation[i] for i in range(n))
                y[(slice(None), *o, slice(g * (c_out // groups), (g + 1) * (c_out // groups)))] += (
                    xs[(slice(None), *idx)] @ ws[k]
                )
    return y


def np_conv_transpose(x, w, stride, pads, outpad):
    """PyTorch's conv_transpose: scatter every input through the kernel, then keep
    ``[lo, full - hi + outpad)`` (zeros past the end). ``w`` is ``(k…, out, in)``."""
    n = w.ndim - 2
    wf = w[(slice(None, None, -1),) * n]
    full = [(x.shape[1 + i] - 1) * stride[i] + w.shape[i] for i in range(n)]
    extra = [o + max(0, -hi) for o, (_, hi) in zip(outpad, pads)]  # zeros past the end
    y = np.zeros((x.shape[0], *(f + e for f, e in zip(full, extra)), w.shape[-2]))
    for o in np.ndindex(*x.shape[1:-1]):
        for k in np.ndindex(*w.shape[:n]):
            idx = tuple(o[i] * stride[i] + k[i] for i in range(n))
            y[(slice(None), *idx)] += x[(slice(None), *o)] @ wf[k].T
    return y[
        (slice(None), *(slice(lo, f - hi + op) for (lo, hi), f, op in zip(pads, full, outpad)))
    ]


def pairs(flat):
    return tuple(zip(flat[::2], flat[1::2]))


# ---- flatten --------------------------------------------------------------------------------


def test_flatten_is_row_major_and_shows_by_name(rng):
    x = rng.normal(size=(3, 2, 4, 5)).astype(np.float32)
    np.testing.assert_array_equal(np.asarray(fj.flatten(x)), x.reshape(3, 40))
    m = fj.Chain(fj.Conv((3, 3), 1, 2), fj.flatten, fj.Dense(8, 2))
    assert repr(m) == "Chain(Conv((3, 3), 1, 2), flatten, Dense(8, 2))"
    assert "flatten," in fj.summary(m)
    with pytest.raises(ValueError, match="scalar"):
        fj.flatten(1.0)


# ---- SamePad, groups, outpad ----------------------------------------------------------------

KERNELS = [(1,), (2,), (3,), (4, 5), (6, 7, 8)]


@pytest.mark.parametrize("layer", [fj.Conv, fj.ConvTranspose, fj.DepthwiseConv, fj.CrossCor])
@pytest.mark.parametrize("k", KERNELS)
def test_flux_samepad_sizes(layer, k):
    """Flux's test/layers/conv.jl "SamePad kernelsize" (dilation k ÷ 2 at least 1)."""
    x = jnp.ones((1, *(kk + 3 for kk in k), 1))
    assert layer(k, 1, 1, pad=fj.SamePad())(x).shape == x.shape
    dil = tuple(max(1, kk // 2) for kk in k)
    assert layer(k, 1, 1, pad=fj.SamePad(), dilation=dil)(x).shape == x.shape
    y = layer(k, 1, 1, pad="same", stride=3)(x)
    sizes = x.shape[1:-1]
    want = [3 * s for s in sizes] if layer is fj.ConvTranspose else [-(-s // 3) for s in sizes]
    assert list(y.shape[1:-1]) == want


@pytest.mark.parametrize("layer", [fj.MeanPool, fj.MaxPool])
@pytest.mark.parametrize("k", KERNELS)
def test_flux_samepad_window_sizes(layer, k):
    x = jnp.ones((1, *(kk + 3 for kk in k), 1))
    y = layer(k, pad=fj.SamePad())(x)
    assert list(y.shape[1:-1]) == [-(-(kk + 3) // kk) for kk in k]


def test_samepad_resolves_to_flux_flat_pad_with_the_extra_low():
    # Flux's SamePad docstring: Conv((2,2), 3 => 7, pad=SamePad()) shows pad=(1, 0, 1, 0)
    assert fj.Conv((2, 2), 3, 7, pad=fj.SamePad()).pad == (1, 0, 1, 0)
    assert fj.Conv((5, 5), 3, 7, stride=2, pad="same").pad == (2, 2, 2, 2)
    assert fj.Conv((3,), 1, 1, pad="SAME", dilation=2).pad == (2, 2)
    assert fj.MaxPool((4,), pad="same").pad == (2, 1)
    assert repr(fj.Conv((2, 2), 3, 7, pad="same")) == "Conv((2, 2), 3, 7, pad=(1, 0, 1, 0))"
    x = jnp.ones((50, 100, 100, 3))  # Flux's docstring: stride 2 and SamePad give ceil(100/2)
    assert fj.Conv((5, 5), 3, 7, stride=2, pad=fj.SamePad())(x).shape == (50, 50, 50, 7)
    with pytest.raises(ValueError, match="same"):
        fj.Conv((3,), 1, 1, pad="valid")


def test_samepad_values_match_numpy(rng):
    x = rng.normal(size=(2, 6, 5, 2)).astype(np.float32)
    c = fj.Conv((2, 3), 2, 3, pad="same", dilation=1)
    want = np_conv(x, np.asarray(c.weight.data), pads=pairs(c.pad)) + np.asarray(c.bias.data)
    assert_close(c(x), want, rtol=1e-5, atol=1e-5)


def test_flux_grouped_conv_shapes_and_checks():
    """Flux's "Grouped Conv" test set, batch first."""
    c = fj.Conv((3,), 100, 25, groups=5)
    assert c.weight.shape == (3, 20, 25) and c(jnp.ones((2, 28, 100))).shape == (2, 26, 25)
    c = fj.Conv((3, 3), 100, 25, groups=5)
    assert c.weight.shape == (3, 3, 20, 25) and c(jnp.ones((2, 28, 28, 100))).shape[1:] == (
        26,
        26,
        25,
    )
    c = fj.Conv((3, 4, 5), 100, 25, groups=5)
    assert c.weight.shape == (3, 4, 5, 20, 25)
    assert c(jnp.ones((2, 10, 11, 12, 100))).shape == (2, 8, 8, 8, 25)
    for ch_in, ch_out in ((3, 10), (2, 9)):
        with pytest.raises(ValueError, match="groups=2 must divide"):
            fj.Conv((2, 2), ch_in, ch_out, groups=2)
    with pytest.raises(ValueError, match="groups must be an int"):
        fj.Conv((2, 2), 2, 2, groups=0)
    with pytest.raises(TypeError, match="DepthwiseConv"):
        fj.DepthwiseConv((2, 2), 2, 4, groups=2)
    assert repr(fj.Conv((3, 3), 4, 8, groups=2)) == "Conv((3, 3), 4, 8, groups=2)"
    with pytest.raises(ValueError, match="4 input channels"):
        fj.Conv((3,), 4, 8, groups=2)(jnp.ones((1, 5, 2)))


@pytest.mark.parametrize("layer", [fj.Conv, fj.CrossCor])
def test_grouped_conv_is_separate_convs_on_contiguous_blocks(rng, layer):
    x = rng.normal(size=(2, 6, 5, 6)).astype(np.float32)
    c = layer((3, 2), 6, 4, groups=2, stride=(2, 1), pad=1)
    w = np.asarray(c.weight.data)
    w = w[::-1, ::-1] if layer is fj.CrossCor else w  # a cross-correlation is a flipped conv
    want = np_conv(x, w, (2, 1), pairs(c.pad), groups=2) + np.asarray(c.bias.data)
    assert_close(c(x), want, rtol=1e-5, atol=1e-5)


def _block_twin(arrays, x):
    """A grouped conv as two lax convolutions on channel blocks, concatenated."""
    w, b = arrays
    halves = [
        jax.lax.conv_general_dilated(
            x[..., 3 * g : 3 * g + 3], jnp.flip(w[..., 2 * g : 2 * g + 2], (0, 1)), (1, 1),
            ((1, 0), (1, 0)), dimension_numbers=("NHWC", "HWIO", "NHWC"),
        )
        for g in range(2)
    ]  # fmt: skip
    return jnp.tanh(jnp.concatenate(halves, axis=-1) + b)


def test_grouped_conv_on_every_path(rng):
    x = rng.normal(size=(2, 4, 4, 6)).astype(np.float32)
    check_paths(lambda: fj.Conv((2, 2), 6, 4, fj.tanh, groups=2, pad="same"), (x,), _block_twin)


def test_flux_conv_transpose_groups_and_outpad_shapes():
    """Flux's ConvTranspose tests: groups with SamePad, outpad on strided layers."""
    x = jnp.ones((3, 10, 10, 2))
    m1 = fj.ConvTranspose((3, 3), 2, 4, pad=fj.SamePad())
    m2 = fj.ConvTranspose((3, 3), 2, 4, groups=2, pad=fj.SamePad())
    assert m1.weight.shape == (3, 3, 4, 2) and m2.weight.shape == (3, 3, 2, 2)
    assert m1(x).shape == m2(x).shape == (3, 10, 10, 4)
    m = fj.ConvTranspose((3, 5, 3), 3, 6, pad=fj.SamePad(), groups=3)
    assert m(jnp.ones((2, 10, 11, 12, 3))).shape == (2, 10, 11, 12, 6)
    assert m.weight.size == (3 * 5 * 3) * (3 * 6) // 3
    assert "groups=2" in repr(m2)
    x = jnp.ones((2, 10, 11, 3))
    a = fj.ConvTranspose((3, 5), 3, 6, stride=3)
    b = fj.ConvTranspose((3, 5), 3, 6, stride=3, outpad=(1, 0))
    assert b(x).shape[1:3] == (a(x).shape[1] + 1, a(x).shape[2])
    assert repr(b) == "ConvTranspose((3, 5), 3, 6, stride=3, outpad=(1, 0))"
    with pytest.raises(ValueError, match="outpad"):
        fj.ConvTranspose((3,), 1, 1, stride=2, outpad=2)
    with pytest.raises(TypeError, match="ConvTranspose only"):
        fj.Conv((3,), 1, 1, outpad=1)


@pytest.mark.parametrize("pad, outpad", [((0, 0), (1,)), ((1, 2), (1,)), ((0, 1), (2,))])
def test_outpad_adds_on_the_high_side_as_pytorch(rng, pad, outpad):
    x = rng.normal(size=(2, 4, 2)).astype(np.float32)
    m = fj.ConvTranspose((3,), 2, 3, stride=3, pad=pad, outpad=outpad)
    want = np_conv_transpose(x, np.asarray(m.weight.data), (3,), (pad,), outpad)
    assert_close(m(x), want + np.asarray(m.bias.data), rtol=1e-5, atol=1e-5)


def test_samepad_transpose_with_a_crop_matches_numpy(rng):
    """Flux's rule gives a negative pad when stride > kernel: (0, -1) here."""
    x = rng.normal(size=(1, 4, 1)).astype(np.float32)
    m = fj.ConvTranspose((2,), 1, 1, stride=3, pad="same")
    assert m.pad == (0, -1) and m(x).shape == (1, 12, 1)
    want = np_conv_transpose(x, np.asarray(m.weight.data), (3,), ((0, -1),), (0,))
    assert_close(m(x), want + np.asarray(m.bias.data), rtol=1e-5, atol=1e-5)


def test_transpose_with_groups_and_outpad_on_every_path(rng):
    x = rng.normal(size=(2, 3, 4)).astype(np.float32)

    def twin(arrays, x):
        w, b = arrays  # (k, out/g, in): each group is a transposed conv of its own block
        outs = []
        for g in range(2):
            wg, xg = w[..., 2 * g : 2 * g + 2], x[..., 2 * g : 2 * g + 2]
            y = jax.lax.conv_transpose(
                xg, jnp.swapaxes(wg, -1, -2), (2,), ((1, 1),),
                dimension_numbers=("NWC", "WIO", "NWC"), transpose_kernel=False,
            )  # fmt: skip
            outs.append(y)
        return jnp.concatenate(outs, -1) + b

    # lax.conv_transpose with explicit padding (k-1-lo, k-1-hi+outpad) = (1, 1) for k=2,
    # pad (0, 1) and outpad 1: Flux's size (3-1)·2 + 2 - 1 + 1 = 6
    m = check_paths(lambda: fj.ConvTranspose((2,), 4, 4, groups=2, stride=2, pad=(0, 1), outpad=1),
                    (x,), twin)  # fmt: skip
    assert m(x).shape == (2, 6, 4)


# ---- global and adaptive pooling ------------------------------------------------------------


def test_flux_adaptive_and_global_pools(rng):
    """Flux's "Pooling" test set, batch first."""
    x = rng.normal(size=(2, 10, 10, 3)).astype(np.float32)
    y = rng.normal(size=(2, 20, 20, 3)).astype(np.float32)
    np.testing.assert_array_equal(fj.AdaptiveMaxPool((5, 5))(x), fj.maxpool(x, (2, 2)))
    np.testing.assert_array_equal(fj.AdaptiveMeanPool((5, 5))(x), fj.meanpool(x, (2, 2)))
    np.testing.assert_array_equal(fj.AdaptiveMaxPool((10, 5))(y), fj.maxpool(y, (2, 4)))
    np.testing.assert_array_equal(fj.AdaptiveMeanPool((10, 5))(y), fj.meanpool(y, (2, 4)))
    assert fj.GlobalMaxPool()(x).shape == fj.GlobalMeanPool()(x).shape == (2, 1, 1, 3)
    assert_close(fj.GlobalMaxPool()(x), x.max(axis=(1, 2), keepdims=True))
    assert_close(fj.GlobalMeanPool()(x), x.mean(axis=(1, 2), keepdims=True))
    assert fj.GlobalMeanPool()(jnp.ones((7, 5, 2))).shape == (7, 1, 2)  # 1-D, Flux's (1, 5, 7)


def test_adaptive_pool_windows_follow_flux(rng):
    x = rng.normal(size=(1, 7, 3)).astype(np.float32)  # stride 7 ÷ 3 = 2, window 7 - 2·2 = 3
    want = np.stack([x[:, 2 * i : 2 * i + 3].max(1) for i in range(3)], 1)
    assert_close(fj.AdaptiveMaxPool((3,))(x), want)
    assert repr(fj.AdaptiveMaxPool((3,))) == "AdaptiveMaxPool((3,))"
    assert repr(fj.GlobalMeanPool()) == "GlobalMeanPool()"
    with pytest.raises(ValueError, match="smaller than the output"):
        fj.AdaptiveMeanPool((8,))(x)
    with pytest.raises(ValueError, match="3 dims"):
        fj.AdaptiveMeanPool((2,))(jnp.ones((4, 4, 4, 1)))


def test_global_pool_in_a_cnn_on_every_path(rng):
    x = rng.normal(size=(2, 5, 5, 1)).astype(np.float32)

    def twin(arrays, x):
        w, b, W, bd = arrays
        h = jax.lax.conv_general_dilated(
            x, jnp.flip(w, (0, 1)), (1, 1), "VALID", dimension_numbers=("NHWC", "HWIO", "NHWC")
        )
        h = jax.nn.relu(h + b).max(axis=(1, 2))
        return h @ W.T + bd

    make = lambda: fj.Chain(  # noqa: E731
        fj.Conv((3, 3), 1, 4, fj.relu), fj.GlobalMaxPool(), fj.flatten, fj.Dense(4, 2)
    )
    check_paths(make, (x,), twin)


# ---- Upsample and PixelShuffle --------------------------------------------------------------

NNLIB_X = np.array([[1.0, 2.0, 3.0], [4.0, 5.0, 6.0]], np.float32).reshape(1, 2, 3, 1)


def test_nnlib_bilinear_values():
    """NNlib's upsample_bilinear docstring (align_corners=true)."""
    y = fj.Upsample(scale=(2, 3), mode="bilinear")(NNLIB_X)[0, :, :, 0]
    want = np.array([np.arange(9) * 0.25 + 1 + r for r in range(4)])
    assert_close(y, want)
    y = fj.Upsample("bilinear", (2.5, 3.5))(NNLIB_X)[0, :, :, 0]  # non-integer scales
    assert y.shape == (5, 10)
    assert_close(y[0, [0, 1, 2, 3, 4, 6, 7, 8, 9]], [1.0, 1.22222, 1.44444, 1.66667, 1.88889,
                 2.33333, 2.55556, 2.77778, 3.0], atol=1e-5)  # fmt: skip
    assert_close(y[:, 0], [1.0, 1.75, 2.5, 3.25, 4.0])
    assert_close(y[:, -1], [3.0, 3.75, 4.5, 5.25, 6.0])


def test_nnlib_nearest_values():
    y = fj.Upsample(scale=(2, 3))(NNLIB_X)[0, :, :, 0]
    want = [[1] * 3 + [2] * 3 + [3] * 3] * 2 + [[4] * 3 + [5] * 3 + [6] * 3] * 2
    np.testing.assert_array_equal(np.asarray(y), want)
    same = fj.Upsample(mode="nearest", size=(4, 9))(NNLIB_X)[0, :, :, 0]
    np.testing.assert_array_equal(np.asarray(same), want)
    np.testing.assert_array_equal(
        np.asarray(fj.Upsample(scale=(2,))(NNLIB_X)[0, :, :, 0]), [[1, 2, 3]] * 2 + [[4, 5, 6]] * 2
    )


def test_flux_upsample_shapes():
    """Flux's test/layers/upsample.jl, batch first."""
    x = jnp.ones((3, 3, 4, 2))  # Flux's (3, 4, 2, 3)
    assert fj.Upsample(mode="bilinear", scale=(2, 3))(x).shape == (3, 6, 12, 2)
    assert fj.Upsample(mode="bilinear", scale=3)(x).shape == (3, 9, 12, 2)
    assert fj.Upsample(mode="bilinear", size=(4, 6))(x).shape == (3, 4, 6, 2)
    x5 = jnp.ones((4, 3, 4, 2, 3))  # Flux's (3, 4, 2, 3, 4)
    assert fj.Upsample(mode="trilinear", scale=(2, 3, 2))(x5).shape == (4, 6, 12, 4, 3)
    assert fj.Upsample(mode="trilinear", size=(4, 6, 4))(x5).shape == (4, 4, 6, 4, 3)
    assert fj.Upsample(scale=(2,))(jnp.ones((3, 3, 2))).shape == (3, 6, 2)
    assert fj.Upsample(scale=(2,))(x).shape == (3, 6, 4, 2)
    assert fj.Upsample(2)(x).shape == fj.Upsample(mode="nearest", size=(6, 8))(x).shape
    assert repr(fj.Upsample(2)) == 'Upsample("nearest", scale=2)'
    assert repr(fj.Upsample("bilinear", size=(4, 5))) == 'Upsample("bilinear", size=(4, 5))'
    with pytest.raises(ValueError, match="either scale or size"):
        fj.Upsample(2, size=(3, 3))
    with pytest.raises(ValueError, match="mode"):
        fj.Upsample(2, "cubic")
    with pytest.raises(ValueError, match="4 dims"):
        fj.Upsample(2, "bilinear")(jnp.ones((1, 4, 2)))


def _hat_matrix(n, out):
    """Linear interpolation with aligned corners as a matrix of hat functions."""
    src = np.arange(out) * ((n - 1) / (out - 1))
    return np.maximum(0, 1 - np.abs(src[:, None] - np.arange(n)[None, :])).astype(np.float32)


def test_bilinear_upsample_on_every_path(rng):
    x = rng.normal(size=(2, 3, 4, 2)).astype(np.float32)
    A, B = _hat_matrix(3, 6), _hat_matrix(4, 10)

    def twin(arrays, x):
        (α, β) = arrays
        return jnp.einsum("ia,jb,nabc->nijc", A, B, x * α + β)

    make = lambda: fj.Chain(fj.Diagonal(2), fj.Upsample(mode="bilinear", scale=(2, 2.5)))  # noqa: E731
    check_paths(make, (x,), twin)


def test_nearest_upsample_on_every_path(rng):
    x = rng.normal(size=(2, 3, 2)).astype(np.float32)

    def twin(arrays, x):
        α, β = arrays
        return jnp.repeat(x * α + β, 3, axis=1)

    check_paths(lambda: fj.Chain(fj.Diagonal(2), fj.Upsample(3)), (x,), twin)


def test_flux_pixel_shuffle_values():
    """Flux's PixelShuffle docstring: xs[row, col, channel] = 2row + col + channel/10."""
    rows, cols, ch = np.meshgrid(np.arange(1, 3), np.arange(1, 3), np.arange(1, 5), indexing="ij")
    xs = (2 * rows + cols + ch / 10)[None].astype(np.float32)
    want = [[3.1, 3.3, 4.1, 4.3], [3.2, 3.4, 4.2, 4.4], [5.1, 5.3, 6.1, 6.3], [5.2, 5.4, 6.2, 6.4]]
    assert_close(fj.PixelShuffle(2)(xs)[0, :, :, 0], want)
    rows, cols, ch = np.meshgrid(np.arange(1, 3), np.arange(1, 4), np.arange(1, 5), indexing="ij")
    xs = (3 * rows + cols + ch / 10)[None].astype(np.float32)
    want = [[4.1, 4.3, 5.1, 5.3, 6.1, 6.3], [4.2, 4.4, 5.2, 5.4, 6.2, 6.4],
            [7.1, 7.3, 8.1, 8.3, 9.1, 9.3], [7.2, 7.4, 8.2, 8.4, 9.2, 9.4]]  # fmt: skip
    assert_close(fj.PixelShuffle(2)(xs)[0, :, :, 0], want)


def test_nnlib_pixel_shuffle_1d_and_flux_shapes():
    """NNlib's docstring: y[i, channel] = i + channel/10 (3 × 6) → 6 × 3."""
    i, ch = np.meshgrid(np.arange(1, 4), np.arange(1, 7), indexing="ij")
    y = fj.PixelShuffle(2)((i + ch / 10)[None].astype(np.float32))[0]
    want = [[1.1, 1.3, 1.5], [1.2, 1.4, 1.6], [2.1, 2.3, 2.5], [2.2, 2.4, 2.6],
            [3.1, 3.3, 3.5], [3.2, 3.4, 3.6]]  # fmt: skip
    assert_close(y, want)
    assert fj.PixelShuffle(2)(jnp.ones((3, 3, 18))).shape == (3, 6, 9)
    assert fj.PixelShuffle(3)(jnp.ones((3, 3, 4, 18))).shape == (3, 9, 12, 2)
    with pytest.raises(ValueError, match="divisible"):
        fj.PixelShuffle(2)(jnp.ones((1, 3, 3, 6)))


def test_pixel_shuffle_on_every_path(rng):
    x = rng.normal(size=(2, 2, 3, 4)).astype(np.float32)

    def twin(arrays, x):  # out[n, 2i + a, 2j + b, 0] = h[n, i, j, a + 2b]
        α, β = arrays
        h = x * α + β
        out = jnp.zeros((2, 4, 6, 1))
        for a in range(2):
            for b in range(2):
                out = out.at[:, a::2, b::2, 0].set(h[..., a + 2 * b])
        return out

    check_paths(lambda: fj.Chain(fj.Diagonal(4), fj.PixelShuffle(2)), (x,), twin)


# ---- Embedding ------------------------------------------------------------------------------


def test_flux_embedding_tests(rng):
    """Flux's "Embedding" test set, indices from 0 and batch first."""
    vocab, dim = 10, 4
    m = fj.Embedding(vocab, dim)
    W = np.asarray(m.weight.data)
    assert m.weight.shape == (dim, vocab)
    assert m(1).shape == (dim,) and m(1).dtype == jnp.float32
    assert_close(m(1), W[:, 1])
    assert_close(m(np.eye(vocab, dtype=np.float32)[2]), W[:, 2])  # a one-hot vector
    assert_close(m(3), m(np.arange(vocab) == 3))  # a bool one-hot
    x = rng.integers(0, vocab, size=3)
    assert_close(m(x), W[:, x].T)
    assert_close(m(np.eye(vocab, dtype=np.float32)[x]), W[:, x].T)
    x = rng.integers(0, vocab, size=(3, 4))
    assert m(x).shape == (3, 4, dim)
    assert_close(m(x), np.moveaxis(W[:, x], 0, -1))
    assert m(np.eye(vocab)[x]).shape == (3, 4, dim)
    with pytest.raises(ValueError, match="vocabulary"):
        m(np.eye(1000, dtype=np.float32)[3])


def test_embedding_rejects_indices_out_of_range():
    m = fj.Embedding(5, 2)
    for bad in (5, -1, np.array([0, 7]), jnp.array([[-2, 1]])):
        with pytest.raises(IndexError, match=r"Embedding\(5, 2\).*0 to 4"):
            m(bad)
    before = np.asarray(m.weight.data)
    with pytest.raises(FloatingPointError):  # the compiled step sees NaN: nothing written
        fj.train_(lambda x: fj.numpy.sum(m(x)), m, [(np.array([1, 9]),)], fj.Descent(0.1))
    np.testing.assert_array_equal(np.asarray(m.weight.data), before)
    assert bool(jnp.isnan(jax.jit(lambda m, x: m(x))(m, jnp.array([9]))).all())


def test_embedding_on_every_path(rng):
    idx = rng.integers(0, 6, size=(2, 3))
    check_paths(lambda: fj.Embedding(6, 4), (idx,), lambda a, i: jax.nn.one_hot(i, 6) @ a[0].T)
    soft = jax.nn.softmax(rng.normal(size=(2, 6)).astype(np.float32))
    check_paths(lambda: fj.Embedding(6, 4), (soft,), lambda a, s: s @ a[0].T)


# ---- Parallel -------------------------------------------------------------------------------


def test_flux_parallel_tests(rng):
    """Flux's "Parallel" test set."""
    x = rng.normal(size=(10, 10, 10, 10)).astype(np.float32)
    np.testing.assert_array_equal(fj.Parallel(operator.add, jnp.zeros_like, fj.identity)(x), x)
    x = rng.normal(size=(2, 10)).astype(np.float32)
    cat = lambda a, b: fj.numpy.concatenate([a, b], axis=0)  # noqa: E731
    assert fj.Parallel(cat, fj.Dense(10, 10), fj.identity)(x).shape == (4, 10)
    inputs = (jnp.ones(10), jnp.ones(5), jnp.ones(4))
    p = fj.Parallel(lambda *ys: sum(ys[1:], ys[0]), fj.Dense(10, 2), fj.Dense(5, 2), fj.Dense(4, 2))
    assert p(inputs).shape == p(*inputs).shape == (2,)
    with pytest.raises(
        ValueError, match=r"one input \(for every layer\) or 2 inputs \(one each\), got 3"
    ):
        fj.Parallel(operator.add, jnp.sin, jnp.cos)(1.0, 2.0, 3.0)
    assert_close(fj.Parallel(operator.add, jnp.sin, jnp.cos)(math.pi / 2), 1.0, atol=1e-6)
    calls = []
    counted = lambda *ys: calls.append(1) or sum(ys)  # noqa: E731
    fj.Parallel(counted, jnp.sin, jnp.cos, jnp.tan)(1.0)
    fj.Parallel(counted, jnp.sin, jnp.cos, jnp.tan)(1.0, 2.0, 3.0)
    fj.Parallel(counted, jnp.sin)(1.0)
    assert len(calls) == 3
    p = fj.Parallel(operator.add, fj.Dense(3, 2), fj.identity)
    assert p[0] is p.layers[0] and len(p) == 2 and p.connection is operator.add
    assert repr(p) == "Parallel(add, Dense(3, 2), identity)"
    assert "Dense(3, 2)," in fj.summary(p)


def test_parallel_on_every_path(rng):
    x, y = rng.normal(size=(3, 4)).astype(np.float32), rng.normal(size=(3, 2)).astype(np.float32)

    def twin(arrays, x, y):
        W, b, α, β = arrays
        return jnp.tanh(x @ W.T + b) * (y * α + β)

    make = lambda: fj.Parallel(operator.mul, fj.Dense(4, 2, fj.tanh), fj.Diagonal(2))  # noqa: E731
    check_paths(make, (x, y), twin)
    check_paths(make, ((x, y),), lambda a, xy: twin(a, *xy))  # one tuple, as a Chain gives


# ---- Bilinear -------------------------------------------------------------------------------


def np_bilinear(W, b, x, y):
    z = np.zeros((*x.shape[:-1], W.shape[0]))
    for o in range(W.shape[0]):
        for i in range(W.shape[1]):
            for j in range(W.shape[2]):
                z[..., o] += W[o, i, j] * x[..., i] * y[..., j]
    return z + b


def test_flux_bilinear_tests(rng):
    """Flux's "Bilinear" test set, batch first."""
    x = rng.normal(size=(9, 10)).astype(np.float32)
    sc = fj.SkipConnection(fj.Dense(10, 10), fj.Bilinear(10, 10, 5))
    assert sc(x).shape == (9, 5)
    b = fj.Bilinear(10, 2, 3)
    assert b(jnp.zeros((9, 10)), jnp.zeros((9, 2))).shape == (9, 3)
    assert float((b(jnp.zeros((9, 10)), jnp.zeros((9, 2))) ** 2).sum()) == 0.0
    b = fj.Bilinear(11, 11, 3)
    assert b(rng.normal(size=(7, 11)).astype(np.float32)).shape == (7, 3)
    b1 = fj.Bilinear(rng.normal(size=(3, 4, 5)).astype(np.float32))
    assert b1.bias.shape == (3,) and b1.σ is fj.identity
    assert fj.Bilinear(np.ones((3, 4, 5), np.float32), False).bias is False
    b3 = fj.Bilinear(np.ones((3, 4, 5), np.float32), True, fj.tanh)
    assert b3.σ is fj.tanh and b3(jnp.ones(4), jnp.ones(5)).shape == (3,)
    with pytest.raises(ValueError, match="out, in1, in2"):
        fj.Bilinear(np.ones(3, np.float32))
    with pytest.raises(ValueError, match="out, in1, in2"):
        fj.Bilinear(np.ones((3, 4), np.float32), False, fj.tanh)
    with pytest.raises(ValueError, match=r"bias must have shape \(3,\)"):
        fj.Bilinear(np.ones((3, 4, 5), np.float32), np.ones(6, np.float32), fj.tanh)
    assert repr(fj.Bilinear(4, 6)) == "Bilinear(4, 4, 6)"
    assert repr(fj.Bilinear(4, 5, 6, fj.tanh, bias=False)) == "Bilinear(4, 5, 6, tanh, bias=False)"
    with pytest.raises(ValueError, match=r"\(…, 4\) and \(…, 5\)"):
        b3(jnp.ones((2, 4)), jnp.ones((3, 5)))


def test_bilinear_matches_numpy_and_every_path(rng):
    x, y = rng.normal(size=(3, 4)).astype(np.float32), rng.normal(size=(3, 5)).astype(np.float32)
    b = fj.Bilinear(4, 5, 2)
    want = np_bilinear(np.asarray(b.weight.data), np.asarray(b.bias.data), x, y)
    assert_close(b(x, y), want, rtol=1e-5, atol=1e-5)
    assert_close(b((x, y)), want, rtol=1e-5, atol=1e-5)

    def twin(arrays, x, y):
        W, bias = arrays
        z = sum(W[:, i, j] * (x[:, i] * y[:, j])[:, None] for i in range(4) for j in range(5))
        return jnp.tanh(z + bias)

    check_paths(lambda: fj.Bilinear(4, 5, 2, fj.tanh), (x, y), twin)


# ---- LayerNorm's ε --------------------------------------------------------------------------


def test_layernorm_is_flux_014_normalise_and_finite_on_constant_rows(rng):
    x = rng.normal(size=(3, 5)).astype(np.float32)
    x[1] = 2.5  # a constant row: Flux v0.9's LayerNorm gave NaN here
    ln = fj.LayerNorm(5)
    μ, σ = x.mean(-1, keepdims=True), x.std(-1, keepdims=True)
    assert_close(ln(x), (x - μ) / (σ + 1e-5), rtol=1e-5, atol=1e-5)
    assert np.all(np.asarray(ln(x))[1] == 0)
    r = rng.normal(size=(3, 5)).astype(np.float32)
    (g,) = fj.gradient(lambda x: fj.numpy.sum(ln(x) * r), x)
    assert np.isfinite(np.asarray(g)).all()
    # at a constant row σ is flat, so d(Σ r·y)/dx = (r - mean(r)) / ε by hand
    assert_close(g[1], (r[1] - r[1].mean()) / 1e-5, rtol=1e-4)
    assert fj.LayerNorm(5, ϵ=0.1).ε == 0.1 and repr(fj.LayerNorm(5, ε=0.1)) == "LayerNorm(5, ε=0.1)"


def test_layernorm_on_every_path(rng):
    x = rng.normal(size=(4, 3)).astype(np.float32)
    x[0] = -1.0

    def twin(arrays, x):
        α, β = arrays
        c = x - x.mean(-1, keepdims=True)
        v = (c**2).mean(-1, keepdims=True)
        σ = jnp.sqrt(jnp.maximum(v, 1e-30)) * (v > 0)  # flat where v = 0
        return α * c / (σ + 1e-3) + β

    check_paths(lambda: fj.LayerNorm(3, ε=1e-3), (x,), twin, tol={"rtol": 1e-4, "atol": 1e-4})


def test_every_new_layer_shows_in_a_summary():
    m = fj.Chain(
        fj.Conv((3, 3), 2, 4, pad="same", groups=2), fj.Upsample(2), fj.PixelShuffle(2),
        fj.AdaptiveMeanPool((2, 2)), fj.GlobalMaxPool(), fj.flatten, fj.LayerNorm(1),
        fj.Parallel(operator.add, fj.Dense(1, 3), fj.Bilinear(1, 1, 3)),
    )  # fmt: skip
    assert m(jnp.ones((2, 4, 4, 2))).shape == (2, 3)
    text = fj.summary(m)
    for name in ("Conv((3, 3), 2, 4, pad=1, groups=2)", 'Upsample("nearest", scale=2)',
                 "PixelShuffle(2)", "AdaptiveMeanPool((2, 2))", "GlobalMaxPool()", "flatten",
                 "LayerNorm(1)", "Bilinear(1, 1, 3)", "Parallel("):  # fmt: skip
        assert name in text, name
    assert "Embedding(26, 4)" in fj.summary(fj.Embedding(26, 4))
