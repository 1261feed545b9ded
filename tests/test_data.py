"""onehot, onehotbatch, onecold and DataLoader."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from fluxjax.layers import seed
from fluxjax.tracker import param
from fluxjax.train import DataLoader, onecold, onehot, onehotbatch


def test_onehot_marks_the_label_position():
    np.testing.assert_array_equal(onehot("c", "abcd"), [0, 0, 1, 0])
    np.testing.assert_array_equal(onehot(3, [1, 2, 3]), [0, 0, 1])
    np.testing.assert_array_equal(onehot(np.int64(2), np.arange(4)), [0, 0, 1, 0])
    assert onehot(0, range(3)).dtype == jnp.float32


def test_onehot_unknown_label():
    with pytest.raises(ValueError, match="'z'"):
        onehot("z", "abc")
    np.testing.assert_array_equal(onehot("z", "abc", unk="c"), [0, 0, 1])
    with pytest.raises(ValueError, match="unk"):
        onehot("z", "abc", unk="q")


def test_onehotbatch_rows_are_samples():
    y = onehotbatch(["b", "a", "c", "b"], ["a", "b", "c"])
    assert y.shape == (4, 3)
    np.testing.assert_array_equal(y, [[0, 1, 0], [1, 0, 0], [0, 0, 1], [0, 1, 0]])
    np.testing.assert_array_equal(onehotbatch(jnp.array([2, 0]), range(3)), [[0, 0, 1], [1, 0, 0]])
    with pytest.raises(ValueError, match="7"):
        onehotbatch([0, 7], range(3))
    np.testing.assert_array_equal(onehotbatch([0, 7], range(3), unk=2), [[1, 0, 0], [0, 0, 1]])


def test_onecold_inverts_onehotbatch():
    labels = ["cat", "dog", "fish"]
    ls = ["dog", "fish", "cat", "dog"]
    y = onehotbatch(ls, labels)
    np.testing.assert_array_equal(onecold(y), [1, 2, 0, 1])
    assert list(onecold(y, labels)) == ls
    assert onecold(jnp.array([0.1, 0.2, 0.7]), labels) == "fish"
    assert int(onecold(jnp.array([0.1, 0.8, 0.1]))) == 1
    assert onecold(jnp.array([0.3, 0.2]), range(5, 7)) == 5


def test_onecold_takes_tracked_and_batched_arrays():
    y = param(jnp.array([[0.1, 0.9], [0.8, 0.2]]))
    np.testing.assert_array_equal(onecold(y), [1, 0])
    z = jnp.zeros((2, 3, 4)).at[..., 2].set(1.0)
    assert onecold(z).shape == (2, 3)


def test_dataloader_batches_along_the_first_axis():
    X, Y = np.arange(20).reshape(10, 2), np.arange(10)
    batches = list(DataLoader((X, Y), batchsize=4))
    assert [b[0].shape for b in batches] == [(4, 2), (4, 2), (2, 2)]
    np.testing.assert_array_equal(np.concatenate([y for _, y in batches]), Y)
    assert all(isinstance(b, tuple) and len(b) == 2 for b in batches)
    assert len(DataLoader((X, Y), batchsize=4)) == 3


def test_dataloader_single_array_and_partial():
    X = jnp.arange(7.0)
    d = DataLoader(X, batchsize=3, partial=False)
    assert len(d) == 2
    got = list(d)
    assert all(isinstance(b, jax.Array) for b in got)
    np.testing.assert_array_equal(jnp.concatenate(got), jnp.arange(6.0))
    assert len(DataLoader(X)) == 7


def test_dataloader_is_reiterable_and_reshuffles():
    X = np.arange(50)
    d = DataLoader(X, batchsize=10, shuffle=True, key=0)
    first, second = np.concatenate(list(d)), np.concatenate(list(d))
    assert sorted(first) == sorted(second) == list(X)
    assert not np.array_equal(first, second)
    assert not np.array_equal(first, X)
    again = DataLoader(X, batchsize=10, shuffle=True, key=jax.random.key(0))
    np.testing.assert_array_equal(np.concatenate(list(again)), first)


def test_dataloader_without_key_follows_the_global_seed():
    X = np.arange(40)
    seed(3)
    a = np.concatenate(list(DataLoader(X, 8, shuffle=True)))
    seed(3)
    b = np.concatenate(list(DataLoader(X, 8, shuffle=True)))
    np.testing.assert_array_equal(a, b)


def test_dataloader_keeps_pairs_together_when_shuffled():
    X = np.arange(30).reshape(15, 2)
    Y = X[:, 0] * 10
    for x, y in DataLoader((X, Y), batchsize=4, shuffle=True, key=3):
        np.testing.assert_array_equal(x[:, 0] * 10, y)


def test_dataloader_rejects_mismatched_sizes():
    with pytest.raises(ValueError, match=r"\(5, 2\).*\(4,\)"):
        DataLoader((np.zeros((5, 2)), np.zeros(4)))
    with pytest.raises(ValueError, match="batchsize"):
        DataLoader(np.zeros(3), batchsize=0)
