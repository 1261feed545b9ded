"""The tree utilities: params, fmap, gpu/cpu, f32/f64, loadparams_."""

import dataclasses
from collections import namedtuple
from typing import Any

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from _tol import assert_close

from fluxjax.layers import (
    Chain,
    Dense,
    cpu,
    f32,
    f64,
    fmap,
    gpu,
    loadparams_,
    params,
    relu,
    treelike,
)
from fluxjax.tracker import Params, Tracked, data, param


def ids(xs):
    return [id(x) for x in xs]


@treelike
class Holder:
    def __init__(self, W):
        self.W = param(W)


# ---- params --------------------------------------------------------------------------


def test_params_depth_first_shared_once_and_containers():
    d1, d2 = Dense(2, 3), Dense(3, 1)
    m = Chain(d1, Chain(d2, d1))
    assert ids(params(m)) == ids([d1.W, d1.b, d2.W, d2.b])
    raw = {"a": [d2, (d1.W,)], "b": jnp.ones(2), "c": "text"}
    assert ids(params(raw)) == ids([d2.W, d2.b, d1.W])
    assert ids(params(d1, d2, d1)) == ids([d1.W, d1.b, d2.W, d2.b])
    assert isinstance(params(), Params) and len(params()) == 0
    assert ids(params(Params([d2.b]))) == [id(d2.b)]


def test_params_skip_non_leaves_and_plain_arrays():
    W = param(jnp.ones(2))
    y = W * 2
    assert ids(params([y, jnp.ones(3), W])) == [id(W)]


def test_params_never_loop_on_self_reference():
    class Node:
        def __init__(self):
            self.W = param(jnp.ones(2))
            self.me = self
            self.friends = [self]

    treelike(Node)
    n = Node()
    assert ids(params(n)) == [id(n.W)]
    loop = [param(jnp.ones(1))]
    loop.append(loop)
    assert len(params(loop)) == 1
    n2 = fmap(lambda a: a + 1, n)
    assert n2.me is n2 and n2.friends[0] is n2
    assert_close(n2.W.data, [2.0, 2.0])


# ---- fmap ----------------------------------------------------------------------------


def test_fmap_preserves_sharing_and_calls_f_once_per_leaf():
    d = Dense(2, 2)
    calls = []

    def f(a):
        calls.append(a.shape)
        return a * 10

    m2 = fmap(f, Chain(d, d))
    assert m2[0] is m2[1] and m2[0] is not d
    assert sorted(calls) == [(2,), (2, 2)]
    assert len(params(m2)) == 2

    @treelike
    @dataclasses.dataclass
    class Tied:
        enc: Any
        dec: Any

    W = param(jnp.ones((2, 2)))
    t2 = fmap(lambda a: a * 2, Tied(W, W))
    assert t2.enc is t2.dec and t2.enc is not W


def test_fmap_on_containers_arrays_and_params():
    Point = namedtuple("Point", "x y")
    W = param(jnp.ones(2))
    tree = {"list": [W, jnp.ones(3), "s", None], "pt": Point(jnp.zeros(1), 3), "f": relu}
    out = fmap(lambda a: a + 1, tree)
    assert isinstance(out["list"][0], Tracked) and out["list"][0].is_leaf
    assert_close(out["list"][0].data, [2.0, 2.0])
    assert not isinstance(out["list"][1], Tracked)
    assert_close(out["list"][1], [2.0] * 3)
    assert out["list"][2:] == ["s", None] and out["f"] is relu
    assert type(out["pt"]) is Point and out["pt"].y == 3
    assert_close(out["pt"].x, [1.0])
    assert_close(data(fmap(jnp.sin, param(0.0))), 0.0)


# ---- devices and precision -----------------------------------------------------------


def _gpus():
    try:
        return jax.devices("gpu")
    except RuntimeError:
        return []


def test_gpu_and_cpu_keep_params_tracked():
    m = Chain(Dense(3, 2), relu)
    g = gpu(m)
    x = jnp.ones(3)
    if not _gpus():
        assert g is m  # unchanged without a GPU
    else:
        assert g[0].W.data.devices() == {_gpus()[0]}
        assert isinstance(g[0].W, Tracked) and g[0].W.is_leaf
        np.testing.assert_allclose(
            np.asarray(data(g(jax.device_put(x, _gpus()[0])))), data(m(x)), rtol=1e-5
        )
    c = cpu(g)
    assert type(c) is Chain and c[1] is relu
    assert isinstance(c[0].W, Tracked) and c[0].W.is_leaf
    assert c[0].W.data.devices() == {jax.devices("cpu")[0]}
    assert_close(data(c(x)), data(m(x)))
    assert cpu(jnp.ones(2)).devices() == {jax.devices("cpu")[0]}


def test_f32_and_f64():
    m = Holder(jnp.ones(2, jnp.float16))
    m.ints = jnp.arange(3)
    m32 = f32(m)
    assert m32.W.dtype == jnp.float32 and isinstance(m32.W, Tracked)
    assert m32.ints.dtype == jnp.arange(3).dtype  # integers are left alone
    with pytest.raises(RuntimeError, match="jax_enable_x64"):
        f64(m)
    with jax.enable_x64(True):
        m64 = f64(Dense(3, 2))
        assert m64.W.dtype == jnp.float64 and m64.W.is_leaf
        assert m64(jnp.ones(3)).dtype == jnp.float64


# ---- loadparams_ ---------------------------------------------------------------------


def test_loadparams_copies_in_order_keeping_identity():
    m = Chain(Dense(3, 2), Dense(2, 1))
    W0 = m[0].W
    src = Chain(Dense(3, 2), Dense(2, 1))
    assert loadparams_(m, params(src)) is m
    assert m[0].W is W0
    for p, q in zip(params(m), params(src), strict=True):
        np.testing.assert_array_equal(p.data, q.data)
    loadparams_(m, [np.full(p.shape, 2.0, np.float64) for p in params(m)])
    assert all(p.dtype == jnp.float32 and float(p.data.mean()) == 2.0 for p in params(m))


def test_loadparams_mismatches():
    m = Dense(3, 2)
    before = m.W.data
    with pytest.raises(ValueError, match="2 params, got 1"):
        loadparams_(m, [jnp.ones((2, 3))])
    with pytest.raises(ValueError, match=r"param 1 has shape \(2,\), got \(3,\)"):
        loadparams_(m, [jnp.zeros((2, 3)), jnp.ones(3)])
    assert m.W.data is before  # nothing changed by a failed load
