"""treelike: flattening, unflattening, structure, jit, masks, key paths."""

import dataclasses
from collections.abc import Callable
from typing import Any

import jax
import jax.numpy as jnp
import optax
from _tol import assert_close

from fluxjax.layers import (
    Chain,
    Dense,
    fmap,
    identity,
    params,
    relu,
    treelike,
)
from fluxjax.tracker import Tracked, data, gradient, param


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
    assert_close(back.W.data, 2.0)


def test_unflatten_does_not_call_init():
    c = Counted(jnp.ones(2))
    before = Counted.inits
    c2 = jax.tree_util.tree_map(lambda a: a * 3, c)
    assert Counted.inits == before
    assert c2.scale == 2.0 and c2.tags is c.tags
    assert_close(c2.W.data, [3.0, 3.0])
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
    assert_close(run(lin(), x), [3.0, 3.0])
    m = lin()
    m.W.data = -m.W.data
    assert_close(run(m, x), [0.0, 0.0])  # relu(-3)
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
    assert_close(jax.jit(lambda s, x: s(x))(s, jnp.ones(2)), [3.0, 3.0])
    s2 = jax.tree_util.tree_map(lambda a: a * 0, s)
    assert all(isinstance(W, Tracked) and W.is_leaf for W in s2.Ws)
    (g,) = gradient(lambda s: s(jnp.ones(2)).sum(), s)
    assert_close(data(g.Ws[0]), jax.grad(lambda W: (2 * W @ jnp.ones(2)).sum())(s.Ws[0].data))


def test_mask_trees_keep_the_model_structure():
    m = Chain(Dense(3, 2), relu)
    mask = jax.tree_util.tree_map(lambda a: a.ndim > 1, m)  # Python bools
    assert jax.tree_util.tree_structure(mask) == jax.tree_util.tree_structure(m)
    picked = jax.tree_util.tree_map(lambda a, keep: a if keep else a * 0, m, mask)
    assert float(jnp.abs(picked[0].W.data).sum()) > 0
    nones = jax.tree_util.tree_map(lambda a: None, m)
    kept = jax.tree_util.tree_map(lambda a, n: a if n is None else n, m, nones)
    assert_close(kept[0].W.data, m[0].W.data)
    tx = optax.masked(
        optax.add_decayed_weights(0.1), lambda ps: jax.tree_util.tree_map(lambda a: a.ndim > 1, ps)
    )
    upd, _ = tx.update(jax.tree_util.tree_map(jnp.zeros_like, m), tx.init(m), m)
    assert_close(upd[0].W.data, 0.1 * m[0].W.data)
    assert_close(upd[0].b.data, 0.0)


def test_vmap_with_model_shaped_in_axes():
    m = Dense(3, 2)
    xs = jnp.ones((4, 3))
    axes = jax.tree_util.tree_map(lambda a: None, m)
    ys = jax.vmap(lambda m, x: data(m(x)), in_axes=(axes, 0))(m, xs)
    assert_close(ys, data(m(xs)))


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
    assert_close(s2.W.data, [-1.0, -1.0])
