"""treelike and the tree utilities: params, fmap, gpu/cpu, f32/f64, loadparams_."""

import dataclasses
from collections import namedtuple
from collections.abc import Callable
from typing import Any

import jax
import jax.numpy as jnp
import numpy as np
import optax
import pytest

from fluxjax.layers import (
    Chain,
    Dense,
    cpu,
    f32,
    f64,
    fmap,
    gpu,
    identity,
    loadparams_,
    params,
    relu,
    treelike,
)
from fluxjax.tracker import Params, Tracked, data, gradient, param


def ids(xs):
    return [id(x) for x in xs]


@treelike
@dataclasses.dataclass(frozen=True)
class Lin:
    W: Any
    b: Any
    act: Callable = identity
    name: str = "lin"

    def __call__(self, x):
        return self.act(x @ self.W.T + self.b)


class Counted:
    inits = 0

    def __init__(self, W):
        Counted.inits += 1
        self.W = param(W)
        self.scale = 2.0
        self.tags = ["a", "b"]  # unhashable static value


treelike(Counted)


def lin():
    return Lin(param(jnp.ones((2, 3))), param(jnp.zeros(2)), relu)


# ---- treelike ------------------------------------------------------------------------


def test_flatten_gives_raw_arrays_and_unflatten_gives_fresh_params():
    m = lin()
    leaves, tree = jax.tree_util.tree_flatten(m)
    assert len(leaves) == 2 and not any(isinstance(l, Tracked) for l in leaves)
    assert leaves[0] is m.W.data
    back = jax.tree_util.tree_unflatten(tree, [l + 1 for l in leaves])
    assert type(back) is Lin and back.act is relu and back.name == "lin"
    assert isinstance(back.W, Tracked) and back.W.is_leaf and back.W is not m.W
    np.testing.assert_allclose(back.W.data, 2.0)


def test_unflatten_does_not_call_init():
    c = Counted(jnp.ones(2))
    before = Counted.inits
    c2 = jax.tree_util.tree_map(lambda a: a * 3, c)
    assert Counted.inits == before
    assert c2.scale == 2.0 and c2.tags is c.tags
    np.testing.assert_allclose(c2.W.data, [3.0, 3.0])
    assert list(vars(c2)) == ["W", "scale", "tags"]  # insertion order kept


def test_structure_is_hashable_and_stable():
    c = Counted(jnp.ones(2))
    t1, t2 = jax.tree_util.tree_structure(c), jax.tree_util.tree_structure(c)
    assert t1 == t2 and hash(t1) == hash(t2)
    assert jax.tree_util.tree_structure(lin()) == jax.tree_util.tree_structure(lin())
    other = Lin(param(jnp.ones((2, 3))), param(jnp.zeros(2)), jnp.tanh)
    assert jax.tree_util.tree_structure(other) != jax.tree_util.tree_structure(lin())


def test_jit_does_not_retrace_for_new_values_of_the_same_structure():
    traces = []

    @jax.jit
    def run(m, x):
        traces.append(1)
        assert not isinstance(m.W, Tracked)
        return m(x)

    x = jnp.ones(3)
    np.testing.assert_allclose(run(lin(), x), [3.0, 3.0])
    m = lin()
    m.W.data = -m.W.data
    np.testing.assert_allclose(run(m, x), [0.0, 0.0])  # relu(-3)
    assert len(traces) == 1


def test_fields_restrict_the_children():
    @treelike(fields=("W",))
    class OnlyW:
        def __init__(self):
            self.W = param(jnp.ones(2))
            self.b = param(jnp.ones(2))

    o = OnlyW()
    assert len(jax.tree_util.tree_leaves(o)) == 1
    assert ids(params(o)) == [id(o.W)]
    o2 = fmap(lambda a: a * 0, o)
    assert float(o2.W.data.sum()) == 0 and o2.b is o.b

    class Pair:
        def __init__(self):
            self.W, self.b = param(jnp.ones(2)), param(jnp.ones(2))

    treelike(Pair, ("b",))
    assert ids(params(Pair())) != []
    p = Pair()
    assert ids(params(p)) == [id(p.b)]


def test_key_paths_name_fields_and_positions():
    m = Chain(Dense(2, 3), relu, Dense(3, 1))
    paths = [jax.tree_util.keystr(p) for p, _ in jax.tree_util.tree_flatten_with_path(m)[0]]
    assert paths == ["[0].W", "[0].b", "[2].W", "[2].b"]


def test_params_in_lists_and_dicts_of_a_treelike():
    @treelike
    class Stack:
        def __init__(self):
            self.Ws = [param(jnp.eye(2)), param(2 * jnp.eye(2))]
            self.extra = {"b": param(jnp.ones(2))}

        def __call__(self, x):
            for W in self.Ws:
                x = W @ x
            return x + self.extra["b"]

    s = Stack()
    assert ids(params(s)) == ids([*s.Ws, s.extra["b"]])
    np.testing.assert_allclose(jax.jit(lambda s, x: s(x))(s, jnp.ones(2)), [3.0, 3.0])
    s2 = jax.tree_util.tree_map(lambda a: a * 0, s)
    assert all(isinstance(W, Tracked) and W.is_leaf for W in s2.Ws)
    (g,) = gradient(lambda s: s(jnp.ones(2)).sum(), s)
    np.testing.assert_allclose(
        data(g.Ws[0]), jax.grad(lambda W: (2 * W @ jnp.ones(2)).sum())(s.Ws[0].data)
    )


def test_mask_trees_keep_the_model_structure():
    m = Chain(Dense(3, 2), relu)
    mask = jax.tree_util.tree_map(lambda a: a.ndim > 1, m)  # Python bools
    assert jax.tree_util.tree_structure(mask) == jax.tree_util.tree_structure(m)
    picked = jax.tree_util.tree_map(lambda a, keep: a if keep else a * 0, m, mask)
    assert float(jnp.abs(picked[0].W.data).sum()) > 0
    nones = jax.tree_util.tree_map(lambda a: None, m)
    kept = jax.tree_util.tree_map(lambda a, n: a if n is None else n, m, nones)
    np.testing.assert_allclose(kept[0].W.data, m[0].W.data)
    tx = optax.masked(
        optax.add_decayed_weights(0.1), lambda ps: jax.tree_util.tree_map(lambda a: a.ndim > 1, ps)
    )
    upd, _ = tx.update(jax.tree_util.tree_map(jnp.zeros_like, m), tx.init(m), m)
    np.testing.assert_allclose(upd[0].W.data, 0.1 * m[0].W.data)
    np.testing.assert_allclose(upd[0].b.data, 0.0)


def test_vmap_with_model_shaped_in_axes():
    m = Dense(3, 2)
    xs = jnp.ones((4, 3))
    axes = jax.tree_util.tree_map(lambda a: None, m)
    ys = jax.vmap(lambda m, x: data(m(x)), in_axes=(axes, 0))(m, xs)
    np.testing.assert_allclose(ys, data(m(xs)), rtol=1e-6)


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
    np.testing.assert_allclose(n2.W.data, [2.0, 2.0])


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
    np.testing.assert_allclose(out["list"][0].data, [2.0, 2.0])
    assert not isinstance(out["list"][1], Tracked)
    np.testing.assert_allclose(out["list"][1], [2.0] * 3)
    assert out["list"][2:] == ["s", None] and out["f"] is relu
    assert type(out["pt"]) is Point and out["pt"].y == 3
    np.testing.assert_allclose(out["pt"].x, [1.0])
    np.testing.assert_allclose(data(fmap(jnp.sin, param(0.0))), 0.0)


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
    np.testing.assert_allclose(data(c(x)), data(m(x)), rtol=1e-6)
    assert cpu(jnp.ones(2)).devices() == {jax.devices("cpu")[0]}


def test_f32_and_f64():
    m = Counted(jnp.ones(2, jnp.float16))
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


def test_treelike_plain_class_with_slots():
    @treelike
    class Slotted:
        __slots__ = ("W", "act")

        def __init__(self):
            self.W = param(jnp.ones(2))
            self.act = relu

    s = Slotted()
    assert ids(params(s)) == [id(s.W)]
    s2 = jax.tree_util.tree_map(lambda a: -a, s)
    assert type(s2) is Slotted and s2.act is relu and s2.W.is_leaf
    np.testing.assert_allclose(s2.W.data, [-1.0, -1.0])
