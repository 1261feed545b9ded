"""Every model walker is a use of the one walk (``children``/``mapchildren``): each meets the
same leaves, in the same order, under the same names, as ``jax.tree_util`` flattens them
(the oracle: a model with no shared leaves and dicts in key order, where the two agree)."""

import jax
import jax.numpy as jnp

import fluxjax as fj
from fluxjax._io import _entries
from fluxjax.layers import (
    BatchNorm,
    Chain,
    Dense,
    Dropout,
    children,
    fmap,
    is_tracked_leaf,
    leaf_owners,
    mapchildren,
    params,
    path_of,
    states,
    testmode_,
    trainmode_,
    treelike,
    walk,
)
from fluxjax.tracker import Tracked, param, state


@treelike
class Block:
    def __init__(self):
        self.dense = Dense(3, 4)
        self.extra = [param(jnp.ones(2)), {"a": state(jnp.zeros(1)), "b": param(jnp.ones(3))}]
        self.norm = BatchNorm(4)
        self.scale = jnp.full(4, 2.0)  # a plain array: walked, saved, not a param

    def __call__(self, x):
        return self.norm(self.dense(x)) * self.scale


def model():
    fj.seed(0)
    return Chain(Block(), Dropout(0.5), Dense(4, 2))


STATES = {"0.extra.1.a", "0.norm.μ", "0.norm.σ2", "1.key"}  # by hand, from the layers
PLAIN = {"0.scale"}


def jax_names(m) -> list[str]:
    """The oracle's name of each leaf: its key path, without a boxed param's ``.data``."""
    names = []
    for path, _ in jax.tree_util.tree_flatten_with_path(m)[0]:
        keys = [getattr(k, "name", getattr(k, "idx", getattr(k, "key", None))) for k in path]
        names.append(".".join(map(str, keys[:-1] if keys[-1] == "data" else keys)))
    return names


def array_of(x):
    return x.data if isinstance(x, Tracked) else x


def walked(m):
    """The arrays ``walk`` meets: tracked leaves and plain arrays, with their ``Found``."""
    return [f for f in walk(m) if is_tracked_leaf(f.value) or isinstance(f.value, jax.Array)]


def same_objects(xs, ys) -> bool:
    return len(xs) == len(ys) and all(x is y for x, y in zip(xs, ys, strict=True))


def test_the_walk_meets_jax_leaves_in_order_under_their_key_paths():
    m = model()
    leaves = jax.tree_util.tree_leaves(m)
    assert len(leaves) == 13
    found = walked(m)
    assert same_objects([array_of(f.value) for f in found], leaves)
    assert [".".join(path_of(f)) for f in found] == jax_names(m)


def test_params_and_states_are_the_walk_filtered_in_jax_order():
    m = model()
    named = list(zip(jax_names(m), jax.tree_util.tree_leaves(m), strict=True))
    trainable = [x for n, x in named if n not in STATES | PLAIN]
    assert same_objects([p.data for p in params(m)], trainable)
    assert same_objects([s.data for s in states(m)], [x for n, x in named if n in STATES])


def test_leaf_owners_give_each_jax_leaf_its_walked_leaf():
    m = model()
    owners = leaf_owners(m)
    names = jax_names(m)
    assert [o is None for o in owners] == [n in PLAIN for n in names]
    tracked = [f.value for f in walked(m) if isinstance(f.value, Tracked)]
    assert same_objects([o for o in owners if o is not None], tracked)
    assert [o.trainable for o in owners if o is not None] == [
        n not in STATES for n in names if n not in PLAIN
    ]


def test_fmap_calls_f_on_the_jax_leaves_in_order_and_keeps_the_structure():
    m, calls = model(), []

    def f(a):
        calls.append(a)
        return a + 1

    new = fmap(f, m)
    leaves = jax.tree_util.tree_leaves(m)
    assert same_objects(calls, leaves)
    assert jax.tree_util.tree_structure(new) == jax.tree_util.tree_structure(m)
    for a, b in zip(jax.tree_util.tree_leaves(new), leaves, strict=True):
        assert a.dtype == b.dtype and bool(jnp.all(a == b + 1))
    assert [o is None for o in leaf_owners(new)] == [o is None for o in leaf_owners(m)]


def test_save_names_the_walked_arrays_by_their_jax_paths():
    m = model()
    entries = _entries(m)
    assert list(entries) == jax_names(m)
    assert same_objects([array_of(f.value) for f in entries.values()], jax.tree_util.tree_leaves(m))


def test_testmode_and_trainmode_reach_every_layer_with_a_mode():
    m = model()
    moded = [m[0].norm, m[1]]  # by hand: the BatchNorm inside the Block, the Dropout
    testmode_(m)
    assert [x.active for x in moded] == [False, False]
    trainmode_(m)
    assert [x.active for x in moded] == [True, True]


def test_children_and_mapchildren_agree_with_one_level_of_jax():
    m = model()
    for x in [m, m[0], m[0].extra, m[0].extra[1], m[0].dense]:
        kids = [f.value for f in children(x)]
        copy = mapchildren(lambda v: v, x, {})
        assert type(copy) is type(x) and copy is not x
        assert same_objects([f.value for f in children(copy)], kids)
    plain = [f.name for f in children(m[0])]
    assert plain == ["dense", "extra", "norm", "scale"]
