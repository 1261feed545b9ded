"""Sharded checkpoints on orbax (``fluxjax.train._orbax``) in one process: round trips,
mismatches named, placement on read, the folder of ``train_(checkpoint=)``'s checkpoints.
The two-process writes are in ``test_distributed_loop.py``."""

import os
import sys

import jax
import numpy as np
import pytest
from jax.sharding import Mesh, NamedSharding
from jax.sharding import PartitionSpec as P

from fluxjax.train import _orbax


def _tree():
    return {
        "leaf": {"layers.0.W": np.arange(6, dtype=np.float32).reshape(2, 3)},
        "opt": {"0.0.count": np.asarray(3, np.int32), "0.0.mu.0": np.ones(2, np.float32)},
    }


def test_round_trip_keeps_values_dtypes_and_the_record(tmp_path):
    tree = _tree()
    _orbax.save_sharded(tmp_path / "c", tree, {"step": 7, "key": {"state": [1, 2]}})
    like = jax.tree.map(np.zeros_like, tree)
    got, meta = _orbax.load_sharded(tmp_path / "c", like)
    assert meta == {"step": 7, "key": {"state": [1, 2]}}
    for a, b in zip(jax.tree.leaves(got), jax.tree.leaves(tree), strict=True):
        assert isinstance(a, np.ndarray) and a.dtype == b.dtype
        np.testing.assert_array_equal(a, b)


def test_reads_onto_the_placement_asked_for(tmp_path):
    tree = _tree()
    _orbax.save_sharded(tmp_path / "c", tree)
    where = NamedSharding(Mesh(np.array(jax.devices()[:1]), ("data",)), P())
    like = jax.tree.map(lambda a: jax.ShapeDtypeStruct(a.shape, a.dtype, sharding=where), tree)
    got, _ = _orbax.load_sharded(tmp_path / "c", like)
    for a, b in zip(jax.tree.leaves(got), jax.tree.leaves(tree), strict=True):
        assert isinstance(a, jax.Array) and a.sharding == where
        np.testing.assert_array_equal(np.asarray(a), b)


@pytest.mark.parametrize(
    "change, words",
    [
        (lambda t: t["leaf"].update({"layers.0.W": np.zeros((3, 2), np.float32)}), "float32[2, 3]"),
        (lambda t: t["opt"].update({"0.0.count": np.zeros((), np.float32)}), "int32[] there"),
        (lambda t: t["opt"].update({"0.0.nu.0": np.zeros(2, np.float32)}), "no entry"),
        (lambda t: t["opt"].pop("0.0.mu.0"), "not asked for"),
    ],
)
def test_a_checkpoint_that_does_not_match_is_named(tmp_path, change, words):
    _orbax.save_sharded(tmp_path / "c", _tree())
    like = _tree()
    change(like)
    with pytest.raises(ValueError, match="does not match") as found:
        _orbax.load_sharded(tmp_path / "c", like)
    assert words in str(found.value)


# orbax's failed read of the damaged one leaves a callback for its closed event loop
@pytest.mark.filterwarnings("ignore::pytest.PytestUnraisableExceptionWarning")
def test_folder_keeps_the_newest_two_and_skips_a_damaged_one(tmp_path):
    folder = str(tmp_path)
    for step in (1, 2, 3):
        tree = jax.tree.map(lambda a, s=step: a + s, _tree())
        _orbax.write(folder, step, tree, {"step": step})
    assert sorted(os.listdir(folder)) == ["step-000000002.orbax", "step-000000003.orbax"]
    like = lambda path, meta: _tree()  # noqa: E731
    path, tree, meta = _orbax.newest(folder, like)
    assert meta == {"step": 3} and path.endswith("step-000000003.orbax")
    np.testing.assert_array_equal(tree["opt"]["0.0.mu.0"], [4.0, 4.0])
    newest = os.path.join(folder, "step-000000003.orbax", "arrays")
    for root, _, names in os.walk(newest):
        for name in names:  # damage the newest: its array data gone, its records kept
            if os.path.basename(root) == "d":
                os.remove(os.path.join(root, name))
    with pytest.warns(UserWarning, match="skipped damaged"):
        path, tree, meta = _orbax.newest(folder, like)
    assert meta == {"step": 2}
    np.testing.assert_array_equal(tree["opt"]["0.0.mu.0"], [3.0, 3.0])


def test_empty_folder_has_no_checkpoint(tmp_path):
    assert _orbax.newest(str(tmp_path), lambda path, meta: _tree()) is None


def test_without_orbax_the_error_names_the_distributed_extra(monkeypatch, tmp_path):
    monkeypatch.setitem(sys.modules, "orbax.checkpoint", None)
    extra = r"pip install 'fluxjax\[distributed\]'"
    with pytest.raises(ImportError, match=r"sharded checkpoints.*" + extra):
        _orbax.save_sharded(tmp_path / "c", _tree())
    with pytest.raises(ImportError, match=extra):  # before any training, folder empty
        _orbax.newest_named(str(tmp_path), lambda path, meta: {})
    assert not os.listdir(tmp_path)
