"""save / load: safetensors files keyed by tree path, checked strictly, written atomically."""

import errno
import os
import subprocess
import sys

import jax
import jax.numpy as jnp
import numpy as np
import pytest
import safetensors.numpy

import fluxjax as fj
from fluxjax import _io as fluxjax_io
from fluxjax._io import load, save
from fluxjax.layers import Chain, Dense, params, relu, treelike
from fluxjax.tracker import param


def chain(seed=0):
    k = jax.random.split(jax.random.key(seed), 3)
    return Chain(Dense(5, 4, relu, key=k[0]), Dense(4, 3, key=k[1]), Dense(3, 2, key=k[2]))


def test_round_trip_is_exact_and_keeps_identity(tmp_path):
    path = tmp_path / "m.safetensors"
    a, b = chain(0), chain(1)
    save(path, a)
    kept = list(params(b))
    assert load(path, b) is b
    assert list(params(b)) == kept  # same param objects
    for p, q in zip(params(a), params(b), strict=True):
        np.testing.assert_array_equal(p.data, q.data)
        assert q.data.dtype == p.data.dtype
    x = jnp.ones((2, 5))
    np.testing.assert_array_equal(a(x), b(x))


def test_keys_are_tree_paths(tmp_path):
    save(tmp_path / "c.safetensors", chain())
    keys = set(safetensors.numpy.load_file(tmp_path / "c.safetensors"))
    assert keys == {"0.W", "0.b", "1.W", "1.b", "2.W", "2.b"}
    save(tmp_path / "d.safetensors", Dense(3, 2))
    assert set(safetensors.numpy.load_file(tmp_path / "d.safetensors")) == {"W", "b"}


def test_shared_params_are_saved_once(tmp_path):
    d = Dense(3, 3)
    save(tmp_path / "s.safetensors", Chain(d, d))
    assert set(safetensors.numpy.load_file(tmp_path / "s.safetensors")) == {"0.W", "0.b"}
    e = Dense(3, 3)
    load(tmp_path / "s.safetensors", Chain(e, e))
    np.testing.assert_array_equal(e.W.data, d.W.data)


def test_nested_treelike_with_a_dict(tmp_path):
    @treelike
    class Net:
        def __init__(self, seed):
            self.enc = {"a": Dense(2, 2, key=jax.random.key(seed))}
            self.scale = param(jnp.full(2, float(seed)))

    save(tmp_path / "n.safetensors", Net(1))
    assert set(safetensors.numpy.load_file(tmp_path / "n.safetensors")) == {
        "enc.a.W",
        "enc.a.b",
        "scale",
    }
    n = load(tmp_path / "n.safetensors", Net(2))
    np.testing.assert_array_equal(n.scale.data, [1.0, 1.0])
    np.testing.assert_array_equal(n.enc["a"].W.data, Net(1).enc["a"].W.data)


def write(path, tensors):
    safetensors.numpy.save_file({k: np.asarray(v) for k, v in tensors.items()}, str(path))


def test_missing_entry(tmp_path):
    m = Dense(3, 2)
    write(tmp_path / "f", {"W": np.zeros((2, 3), np.float32)})
    with pytest.raises(ValueError, match=r"\bb\b"):
        load(tmp_path / "f", m)


def test_extra_entry(tmp_path):
    m = Dense(3, 2)
    before = np.asarray(m.W.data)
    write(tmp_path / "f", {"W": np.zeros((2, 3)), "b": np.zeros(2), "gamma": np.ones(2)})
    with pytest.raises(ValueError, match="gamma"):
        load(tmp_path / "f", m)
    np.testing.assert_array_equal(m.W.data, before)  # nothing changed


def test_misshaped_entry(tmp_path):
    save(tmp_path / "f", chain())
    with pytest.raises(ValueError, match=r"1\.W.*\(3, 4\).*\(3, 5\)"):
        load(tmp_path / "f", Chain(Dense(5, 4), Dense(5, 3), Dense(3, 2)))


def test_not_a_checkpoint(tmp_path):
    bad = tmp_path / "notes.txt"
    bad.write_text("hello, this is not a tensor file")
    with pytest.raises(ValueError, match="not a checkpoint"):
        load(bad, Dense(3, 2))
    with pytest.raises(FileNotFoundError):
        load(tmp_path / "absent.safetensors", Dense(3, 2))


def test_interrupted_save_leaves_the_old_file(tmp_path, monkeypatch):
    path = tmp_path / "m.safetensors"
    good = chain(0)
    save(path, good)
    before = path.read_bytes()

    def crash(filename, payload):
        with open(filename, "wb") as f:
            f.write(payload[: len(payload) // 2])
        raise KeyboardInterrupt

    monkeypatch.setattr(fluxjax_io, "_write_bytes", crash)
    with pytest.raises(KeyboardInterrupt):
        save(path, chain(1))
    assert path.read_bytes() == before
    assert os.listdir(tmp_path) == ["m.safetensors"]  # no temporary file left behind
    monkeypatch.undo()
    fresh = load(path, chain(2))
    for p, q in zip(params(good), params(fresh), strict=True):
        np.testing.assert_array_equal(p.data, q.data)


FULL_DISK = """
import os, resource, signal, sys
import fluxjax as fj
path = os.path.join(sys.argv[1], "m.safetensors")
fj.save(path, fj.Dense(2, 2, key=1))
before = open(path, "rb").read()
signal.signal(signal.SIGXFSZ, signal.SIG_IGN)  # writes past the limit fail with EFBIG
resource.setrlimit(resource.RLIMIT_FSIZE, (4096, resource.RLIM_INFINITY))
try:
    fj.save(path, fj.Dense(100, 100))  # 40 kB: the write fails as on a full disk
except OSError as e:
    print("OSError", e.errno)
assert open(path, "rb").read() == before
print(sorted(os.listdir(sys.argv[1])))
"""


def test_a_failed_write_raises_oserror_and_keeps_the_old_file(tmp_path):
    # a real write error from the kernel: a file-size limit in a child process
    out = subprocess.run(
        [sys.executable, "-c", FULL_DISK, str(tmp_path)],
        capture_output=True,
        text=True,
        timeout=300,
        check=True,
    ).stdout.split("\n")
    assert out[0] == f"OSError {errno.EFBIG}"
    assert out[1] == "['m.safetensors']"


def test_no_pickle_in_the_file(tmp_path):
    save(tmp_path / "m.safetensors", chain())
    raw = (tmp_path / "m.safetensors").read_bytes()
    assert b"\x80\x04" not in raw[:64]  # not a pickle stream
    header_len = int.from_bytes(raw[:8], "little")
    assert raw[8 : 8 + header_len].lstrip().startswith(b"{")


def test_a_saved_model_gets_the_usual_file_permissions(tmp_path):
    import os
    import stat

    fj.seed(0)
    m = fj.Chain(fj.Dense(4, 8, fj.relu), fj.Dense(8, 2))
    path = tmp_path / "m.safetensors"
    mask = os.umask(0o022)
    try:
        fj.save(str(path), m)
    finally:
        os.umask(mask)
    assert stat.S_IMODE(path.stat().st_mode) == 0o644
