"""Convolution and pooling layers against NumPy loops, Flux's own tests and jax.grad twins."""

from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np
import pytest

import fluxjax as fj

TOL = dict(rtol=1e-5, atol=1e-5)


# ---- independent oracles: plain NumPy loops --------------------------------------------


def np_conv(x, w, stride, pads, dilation, flip=True):
    """Batch-first, channels-last convolution by definition (NNlib's conv when flip)."""
    n = w.ndim - 2
    if flip:
        w = w[(slice(None, None, -1),) * n]
    xp = np.pad(x, [(0, 0), *pads, (0, 0)])
    out = [
        (xp.shape[1 + i] - dilation[i] * (w.shape[i] - 1) - 1) // stride[i] + 1 for i in range(n)
    ]
    y = np.zeros((x.shape[0], *out, w.shape[-1]))
    for o in np.ndindex(*out):
        for k in np.ndindex(*w.shape[:n]):
            idx = tuple(o[i] * stride[i] + k[i] * dilation[i] for i in range(n))
            y[(slice(None), *o)] += xp[(slice(None), *idx)] @ w[k]
    return y


def np_conv_transpose(x, w, stride, pads, dilation):
    """Flux's ConvTranspose: the scatter that is the adjoint of ``np_conv`` with ``w``
    mapping ``w.shape[-2]`` channels to ``w.shape[-1]``."""
    n = w.ndim - 2
    wf = w[(slice(None, None, -1),) * n]
    full = [(x.shape[1 + i] - 1) * stride[i] + (w.shape[i] - 1) * dilation[i] + 1 for i in range(n)]
    yp = np.zeros((x.shape[0], *full, w.shape[-2]))
    for o in np.ndindex(*x.shape[1:-1]):
        for k in np.ndindex(*w.shape[:n]):
            idx = tuple(o[i] * stride[i] + k[i] * dilation[i] for i in range(n))
            yp[(slice(None), *idx)] += x[(slice(None), *o)] @ wf[k].T
    return yp[(slice(None), *(slice(lo, full[i] - hi) for i, (lo, hi) in enumerate(pads)))]


def np_pool(x, k, stride, pads, kind):
    n = len(k)
    fill = -np.inf if kind == "max" else 0.0
    xp = np.pad(x, [(0, 0), *pads, (0, 0)], constant_values=fill)
    out = [(xp.shape[1 + i] - k[i]) // stride[i] + 1 for i in range(n)]
    y = np.zeros((x.shape[0], *out, x.shape[-1]))
    for o in np.ndindex(*out):
        win = xp[
            (slice(None), *(slice(o[i] * stride[i], o[i] * stride[i] + k[i]) for i in range(n)))
        ]
        axes = tuple(range(1, n + 1))
        y[(slice(None), *o)] = win.max(axes) if kind == "max" else win.sum(axes) / np.prod(k)
    return y


CASES = [  # (k, stride, pad as given, pad pairs, dilation)
    ((3,), 2, (1, 0), ((1, 0),), 2),
    ((2, 3), (2, 1), (0, 1, 2, 1), ((0, 1), (2, 1)), 1),
    ((2, 1, 2), 1, 1, ((1, 1),) * 3, (1, 1, 2)),
]


def _tuple(v, n):
    return (v,) * n if isinstance(v, int) else tuple(v)


@pytest.mark.parametrize("k, stride, pad, pairs, dilation", CASES)
def test_conv_and_crosscor_match_numpy(rng, k, stride, pad, pairs, dilation):
    n = len(k)
    x = rng.normal(size=(2, *([5] * n), 3)).astype(np.float32)
    w = rng.normal(size=(*k, 3, 4)).astype(np.float32)
    b = rng.normal(size=4).astype(np.float32)
    s, d = _tuple(stride, n), _tuple(dilation, n)
    for cls, flip in ((fj.Conv, True), (fj.CrossCor, False)):
        layer = cls(w, b, fj.relu, stride=stride, pad=pad, dilation=dilation)
        want = np.maximum(np_conv(x, w, s, pairs, d, flip) + b, 0)
        np.testing.assert_allclose(np.asarray(layer(x)), want, **TOL)
    y = fj.conv(x, w, stride=stride, pad=pad, dilation=dilation)
    np.testing.assert_allclose(np.asarray(y), np_conv(x, w, s, pairs, d), **TOL)


def test_flux_asymmetric_padding():
    """Flux v0.9 test/layers/conv.jl, "asymmetric padding" (indices made 0-based)."""
    m = fj.Conv((3, 3), 1, 1, fj.relu, pad=(0, 1, 1, 2))
    m.weight.data = jnp.ones_like(m.weight.data)
    y = np.asarray(m(jnp.ones((1, 28, 28, 1))))[0, :, :, 0]
    assert y.shape == (27, 29)
    assert (y[0, 0], y[1, 1], y[-1, 0], y[0, -1], y[0, -2], y[-1, -1]) == (6, 9, 4, 3, 6, 2)


@pytest.mark.parametrize("k", [(3, 3), (3, 1), (1, 3)])
def test_flux_non_quadratic_window(k):
    """Flux v0.9 "Conv with non quadratic window #700": a unit impulse returns the kernel."""
    x = np.zeros((1, 7, 7, 1), np.float32)
    x[0, 3, 3, 0] = 1
    layer = fj.Conv(k, 1, 1)
    expected = np.zeros((1, 8 - k[0], 8 - k[1], 1), np.float32)
    lo = (3 - (k[0] - 1), 3 - (k[1] - 1))
    expected[0, lo[0] : lo[0] + k[0], lo[1] : lo[1] + k[1], 0] = np.asarray(layer.weight.data)[
        ..., 0, 0
    ]
    np.testing.assert_array_equal(np.asarray(layer(x)), expected)


def test_crosscor_is_conv_with_a_flipped_kernel(rng):
    x = rng.random((1, 6, 6, 1)).astype(np.float32)
    w = rng.random((2, 2, 1, 1)).astype(np.float32)
    y = fj.CrossCor(w, np.zeros(1))(x)
    assert float(y[0, 0, 0, 0]) == pytest.approx(
        float((w[..., 0, 0] * x[0, :2, :2, 0]).sum()), rel=1e-6
    )
    np.testing.assert_allclose(np.asarray(fj.CrossCor(w[::-1, ::-1], np.zeros(1))(x)),
                               np.asarray(fj.Conv(w, np.zeros(1))(x)), **TOL)  # fmt: skip
    assert not np.allclose(np.asarray(y), np.asarray(fj.Conv(w, np.zeros(1))(x)))


@pytest.mark.parametrize("k, stride, pad, pairs, dilation", CASES[:2])
def test_conv_transpose_matches_numpy_and_undoes_conv_shape(rng, k, stride, pad, pairs, dilation):
    n = len(k)
    x = rng.normal(size=(2, *([4] * n), 3)).astype(np.float32)
    w = rng.normal(size=(*k, 2, 3)).astype(np.float32)  # (k…, out, in)
    layer = fj.ConvTranspose(w, np.zeros(2, np.float32), stride=stride, pad=pad, dilation=dilation)
    want = np_conv_transpose(x, w, _tuple(stride, n), pairs, _tuple(dilation, n))
    np.testing.assert_allclose(np.asarray(layer(x)), want, **TOL)
    z = jnp.zeros((1, 28, 28, 1))  # Flux v0.9's "ConvTranspose" test
    assert fj.ConvTranspose((3, 3), 1, 1)(fj.Conv((3, 3), 1, 1)(z)).shape == z.shape


def test_depthwise_matches_per_channel_convs(rng):
    x = rng.normal(size=(2, 5, 6, 3)).astype(np.float32)
    w = rng.normal(size=(2, 3, 2, 3)).astype(np.float32)  # (k1, k2, multiplier, c_in)
    y = np.asarray(fj.DepthwiseConv(w, np.zeros(6, np.float32), pad=1)(x))
    for c in range(3):
        for j in range(2):
            want = np_conv(
                x[..., c : c + 1], w[:, :, j, c][..., None, None], (1, 1), ((1, 1),) * 2, (1, 1)
            )
            np.testing.assert_allclose(y[..., c * 2 + j], want[..., 0], **TOL)
    assert fj.DepthwiseConv((2, 2), 3, 15)(jnp.zeros((5, 28, 28, 3))).shape[-1] == 15
    with pytest.raises(ValueError, match="multiple"):
        fj.DepthwiseConv((2, 2), 3, 10)


def test_pooling_in_1d_and_3d_matches_numpy(rng):
    x1 = rng.normal(size=(2, 7, 3)).astype(np.float32)
    got = fj.maxpool(x1, (3,), pad=1, stride=2)
    np.testing.assert_allclose(np.asarray(got), np_pool(x1, (3,), (2,), ((1, 1),), "max"), **TOL)
    x3 = rng.normal(size=(1, 4, 4, 5, 2)).astype(np.float32)
    got = fj.MeanPool((2, 2, 3), stride=(2, 2, 1))(x3)
    np.testing.assert_allclose(
        np.asarray(got), np_pool(x3, (2, 2, 3), (2, 2, 1), ((0, 0),) * 3, "mean"), **TOL
    )


@pytest.mark.parametrize("kind", ["max", "mean"])
def test_pooling_matches_numpy(rng, kind):
    x = rng.normal(size=(2, 7, 6, 3)).astype(np.float32)
    fn, layer = (fj.maxpool, fj.MaxPool) if kind == "max" else (fj.meanpool, fj.MeanPool)
    got = fn(x, (3, 2), pad=(1, 0, 0, 1), stride=(2, 2))
    want = np_pool(x, (3, 2), (2, 2), ((1, 0), (0, 1)), kind)
    np.testing.assert_allclose(np.asarray(got), want, **TOL)
    np.testing.assert_allclose(
        np.asarray(layer((2, 2))(x)), np_pool(x, (2, 2), (2, 2), ((0, 0),) * 2, kind), **TOL
    )


def _twin(weights, x):
    """The model below written with jax.lax in NCHW layout (an independent path)."""
    w1, b1, W, b = weights
    xc = jnp.transpose(x, (0, 3, 1, 2))
    k = jnp.transpose(w1[::-1, ::-1], (3, 2, 0, 1))  # true convolution: flip, then OIHW
    h = jax.lax.conv_general_dilated(xc, k, (1, 1), ((1, 1), (1, 1)))
    h = jax.nn.relu(h + b1[:, None, None])
    h = jax.lax.reduce_window(h, -jnp.inf, jax.lax.max, (1, 1, 2, 2), (1, 1, 2, 2), "VALID")
    h = jnp.transpose(h, (0, 2, 3, 1)).reshape(x.shape[0], -1)
    return jnp.mean((h @ W.T + b) ** 2)


def test_gradients_match_a_jax_lax_twin(rng):
    m = fj.Chain(fj.Conv((3, 3), 1, 2, fj.relu, pad=1), fj.MaxPool((2, 2)),
                 lambda h: h.reshape(h.shape[0], -1), fj.Dense(8, 3))  # fmt: skip
    x = rng.normal(size=(2, 4, 4, 1)).astype(np.float32)
    (g,) = fj.gradient(lambda m: fj.numpy.mean(m(x) ** 2), m)
    ws = [m[0].weight.data, m[0].bias.data, m[3].W.data, m[3].b.data]
    want = jax.grad(_twin)(ws, x)
    got = [g[0].weight, g[0].bias, g[3].W, g[3].b]
    for a, b in zip(got, want):
        np.testing.assert_allclose(np.asarray(a), np.asarray(b), **TOL)
    fj.back_(fj.numpy.mean(m(x) ** 2))  # the imperative path reaches the same numbers
    np.testing.assert_allclose(np.asarray(m[0].weight.grad), np.asarray(want[0]), **TOL)


def test_transpose_and_depthwise_gradients_match_jax_grad(rng):
    x = rng.normal(size=(1, 3, 3, 2)).astype(np.float32)
    for layer in (fj.ConvTranspose((2, 2), 2, 3, stride=2), fj.DepthwiseConv((2, 2), 2, 4)):
        (g,) = fj.gradient(lambda m: (m(x) ** 2).sum(), layer)
        want = jax.grad(lambda m: (m(x) ** 2).sum())(layer)  # the model as a pytree
        np.testing.assert_allclose(np.asarray(g.weight), np.asarray(want.weight), **TOL)


def test_bad_inputs_are_rejected_naming_the_layer():
    c = fj.Conv((3, 3), 2, 4)
    with pytest.raises(ValueError, match=r"Conv\(\(3, 3\), 2, 4\).*2 input channels"):
        c(jnp.ones((1, 5, 5, 3)))
    with pytest.raises(ValueError, match="smaller than the kernel"):
        c(jnp.ones((1, 2, 5, 2)))
    with pytest.raises(ValueError, match="pad must be"):
        fj.Conv((3, 3), 1, 1, pad=(1, 2, 3))
    assert c(jnp.ones((5, 5, 2))).shape == (3, 3, 4)  # one unbatched sample


def test_reprs_and_params():
    assert repr(fj.Conv((3, 3), 1, 16, fj.relu, pad=1)) == "Conv((3, 3), 1, 16, relu, pad=1)"
    assert repr(fj.ConvTranspose((2, 2), 4, 1, stride=2)) == "ConvTranspose((2, 2), 4, 1, stride=2)"
    assert repr(fj.DepthwiseConv((2, 2), 3, 6)) == "DepthwiseConv((2, 2), 3, 6)"
    assert repr(fj.MeanPool((2, 2), pad=1)) == "MeanPool((2, 2), pad=1, stride=(2, 2))"
    nb = fj.Conv((3, 3), 1, 2, bias=False)
    assert repr(nb) == "Conv((3, 3), 1, 2, bias=False)" and len(fj.params(nb)) == 1
    assert nb(jnp.ones((1, 3, 3, 1))).shape == (1, 1, 1, 2)
    m = fj.Chain(fj.Conv((3, 3), 1, 2), fj.MaxPool((2, 2)), fj.ConvTranspose((2, 2), 2, 1))
    assert [tuple(p.shape) for p in fj.params(m)] == [(3, 3, 1, 2), (2,), (2, 2, 1, 2), (1,)]


def test_train_compiled_equals_eager(rng):
    x = rng.normal(size=(4, 5, 5, 1)).astype(np.float32)
    y = rng.normal(size=(4, 3, 3, 2)).astype(np.float32)
    results = []
    for jit in (True, False):
        fj.seed(3)
        m = fj.Chain(fj.Conv((3, 3), 1, 2, fj.tanh), fj.Conv((1, 1), 2, 2))
        losses = fj.train_(
            lambda a, b, m=m: fj.mse(m(a), b), m, [(x, y)] * 3, fj.Descent(0.1), jit=jit
        )
        results.append((np.asarray(losses), np.asarray(m[0].weight.data)))
    np.testing.assert_allclose(results[0][0], results[1][0], **TOL)
    np.testing.assert_allclose(results[0][1], results[1][1], **TOL)


def test_demo_offers_a_cnn():
    from fluxjax import demo

    m = demo.build_model(32, "cnn")
    assert m(jnp.ones((3, 64))).shape == (3, 10)
    assert [tuple(p.shape) for p in fj.params(m)][0] == (3, 3, 1, 4)
