"""Nothing silent outside the tracker: save/load see what params() sees, fmap(data, m) is
plain, and bad arguments are rejected at the call that received them."""

import os
import subprocess
import sys

import jax
import jax.numpy as jnp
import numpy as np
import pytest
import safetensors.numpy

from fluxjax._io import load, save
from fluxjax.layers import Chain, Dense, fmap, loadparams_, params, treelike
from fluxjax.tracker import Tracked, data, param
from fluxjax.train import DataLoader


def linear(rng, n_in, n_out):
    """README's closure layer: a function closing over two params."""
    W, b = param(rng.standard_normal((n_out, n_in))), param(rng.standard_normal(n_out))
    return lambda x: W @ x + b


def closure_chain(seed):
    rng = np.random.default_rng(seed)
    return Chain(linear(rng, 3, 2), linear(rng, 2, 1))


def keys(path):
    return set(safetensors.numpy.load_file(str(path)))


# ---- save / load find params exactly as params() does ------------------------------


def test_save_of_closure_layers_writes_every_param_and_load_restores_them(tmp_path):
    path = tmp_path / "c.safetensors"
    a, b = closure_chain(0), closure_chain(1)
    save(path, a)
    assert keys(path) == {"0.W", "0.b", "1.W", "1.b"}
    kept = list(params(b))
    load(path, b)
    assert [id(p) for p in params(b)] == [id(p) for p in kept]  # same param objects
    for p, q in zip(params(a), params(b), strict=True):
        np.testing.assert_array_equal(np.asarray(p.data), np.asarray(q.data))
    x = np.ones(3, np.float32)
    np.testing.assert_array_equal(np.asarray(data(a(x))), np.asarray(data(b(x))))


def test_every_param_that_params_finds_is_saved(tmp_path):
    rng = np.random.default_rng(0)
    inner = linear(rng, 2, 2)
    shared = param(np.ones(2))
    model = {"a": [Dense(2, 2), inner], "f": lambda x: inner(x) * shared, "t": (shared,)}
    save(tmp_path / "m", model)
    saved = safetensors.numpy.load_file(str(tmp_path / "m"))
    assert len(saved) == len(params(model)) == 5
    found = {id(p) for p in params(model)}
    assert len(found) == 5


def test_load_of_a_checkpoint_missing_closure_entries_names_them(tmp_path):
    m = closure_chain(0)
    before = [np.asarray(p.data) for p in params(m)]
    safetensors.numpy.save_file({"0.W": np.zeros((2, 3), np.float32)}, str(tmp_path / "f"))
    with pytest.raises(ValueError, match=r"0\.b.*1\.W.*1\.b"):
        load(tmp_path / "f", m)
    for p, old in zip(params(m), before, strict=True):
        np.testing.assert_array_equal(np.asarray(p.data), old)  # nothing changed


def test_save_refuses_a_model_with_no_arrays(tmp_path):
    with pytest.raises(ValueError, match="no arrays"):
        save(tmp_path / "e", Chain(lambda x: x + 1))
    assert not os.listdir(tmp_path)


def test_save_refuses_params_hidden_in_an_unregistered_object(tmp_path):
    class Plain:  # not treelike: params() cannot see inside, so neither can save
        def __init__(self):
            self.W = param(np.ones((2, 2)))

        def __call__(self, x):
            return self.W @ x

    with pytest.raises(ValueError, match=r"Plain at 1.*treelike"):
        save(tmp_path / "p", Chain(Dense(2, 2), Plain()))
    assert not os.listdir(tmp_path)


def test_load_refuses_an_array_it_cannot_replace_before_changing_anything(tmp_path):
    @treelike
    class Frozen:
        def __init__(self, seed):
            self.W = param(np.full(2, float(seed)))
            self.consts = (jnp.full(2, float(seed)),)  # a plain array inside a tuple

    save(tmp_path / "f", Frozen(1))
    m = Frozen(2)
    with pytest.raises(ValueError, match=r"consts\.0.*tuple"):
        load(tmp_path / "f", m)
    np.testing.assert_array_equal(np.asarray(m.W.data), [2.0, 2.0])


def test_the_next_save_removes_what_a_killed_save_left_beside_it(tmp_path):
    path = tmp_path / "m.safetensors"
    save(path, Dense(2, 2))
    gone = subprocess.run(
        [sys.executable, "-c", "import os; print(os.getpid())"],
        capture_output=True,
        text=True,
        check=True,
    )
    pid = int(gone.stdout)  # a process that has ended: its temporary file is stale
    stale = tmp_path / f".m.safetensors.{pid}.abc123.tmp"
    stale.write_bytes(b"half a file")
    save(path, Dense(2, 2))
    assert sorted(os.listdir(tmp_path)) == ["m.safetensors"]


# ---- fmap ----------------------------------------------------------------------------


def test_fmap_data_gives_plain_leaves():
    m = Chain(Dense(3, 2), Dense(2, 1))
    plain = fmap(data, m)
    leaves = [plain[0].W, plain[0].b, plain[1].W, plain[1].b]
    assert not any(isinstance(v, Tracked) for v in leaves)
    assert len(params(plain)) == 0
    for v, p in zip(leaves, params(m), strict=True):
        np.testing.assert_array_equal(np.asarray(v), np.asarray(p.data))
    assert all(isinstance(p, Tracked) for p in params(fmap(jnp.zeros_like, m)))


# ---- argument validation -------------------------------------------------------------


@pytest.mark.parametrize(
    "args, error, text",
    [
        ((0, 5), ValueError, "positive"),
        ((3, -1), ValueError, "positive"),
        ((3, 0), ValueError, "positive"),
        ((2.5, 3), TypeError, "whole number"),
        ((True, 3), TypeError, "whole number"),
        ((3, "4"), TypeError, "whole number"),
        ((10, 5, 3), TypeError, "callable"),
    ],
)
def test_dense_sizes_are_checked(args, error, text):
    with pytest.raises(error, match=text):
        Dense(*args)


def test_chain_refuses_a_layer_that_cannot_be_called():
    with pytest.raises(TypeError, match=r"Chain: layer 1 must be callable.*int 3"):
        Chain(Dense(2, 2), 3)


def test_dense_from_arrays_checks_shapes_and_names_the_fix():
    with pytest.raises(ValueError, match=r"\(2,\).*W\.T"):
        Dense(jnp.ones((3, 2)), jnp.zeros(2))  # W given as (in, out)
    with pytest.raises(ValueError, match="matrix"):
        Dense(jnp.ones(3), jnp.zeros(3))
    with pytest.raises(TypeError, match="init"):
        Dense(3, 2, init="glorot")


@pytest.mark.parametrize(
    "size, error, text",
    [
        (0, ValueError, "at least 1"),
        (-2, ValueError, "at least 1"),
        (2.5, TypeError, "whole number"),
        ("3", TypeError, "whole number"),
        (True, TypeError, "whole number"),
    ],
)
def test_dataloader_batchsize_is_checked(size, error, text):
    with pytest.raises(error, match=text):
        DataLoader(np.arange(10), size)


def test_dataloader_batch_larger_than_the_data_without_partial():
    with pytest.raises(ValueError, match=r"batchsize=20.*10 observations.*partial=True"):
        DataLoader(np.arange(10), 20, partial=False)
    assert len(DataLoader(np.arange(10), 20)) == 1  # partial=True: one short batch


def test_loadparams_rejects_bad_arrays_before_changing_anything():
    m = Dense(3, 2)
    before = [np.asarray(p.data) for p in params(m)]
    with pytest.raises(ValueError, match=r"2 params, got 3.*params\(model\)"):
        loadparams_(m, [jnp.ones((2, 3)), jnp.ones(2), jnp.ones(2)])
    with pytest.raises(ValueError, match=r"param 0 has shape \(2, 3\), got \(3, 2\)"):
        loadparams_(m, [jnp.ones((3, 2)), jnp.ones(2)])
    with pytest.raises(TypeError, match=r"param 1.*real numbers"):
        loadparams_(m, [jnp.ones((2, 3)), np.array(["a", "b"])])
    with pytest.raises(TypeError, match=r"param 0.*real numbers"):
        loadparams_(m, [jnp.ones((2, 3), jnp.complex64), jnp.ones(2)])
    for p, old in zip(params(m), before, strict=True):
        np.testing.assert_array_equal(np.asarray(p.data), old)


def test_a_jax_key_still_drives_dense():
    a = Dense(4, 3, key=jax.random.key(7))
    b = Dense(4, 3, key=jax.random.key(7))
    np.testing.assert_array_equal(np.asarray(a.W.data), np.asarray(b.W.data))


def test_a_bound_method_in_a_chain_exposes_its_models_params(tmp_path):
    d = Dense(2, 2)
    m = Chain(d.__call__, lambda x: x * 2)
    assert [id(p) for p in params(m)] == [id(d.W), id(d.b)]
    save(tmp_path / "b", m)
    assert keys(tmp_path / "b") == {"0.__self__.W", "0.__self__.b"}


def test_keys_and_seeds_of_the_wrong_kind_are_refused():
    from fluxjax.layers import seed

    with pytest.raises(TypeError, match="JAX key"):
        DataLoader(np.arange(4), 2, shuffle=True, key="a")
    with pytest.raises(TypeError, match="JAX key"):
        Dense(2, 2, key=1.5)
    with pytest.raises(TypeError, match="int"):
        seed(1.5)


def test_fmap_maps_the_params_of_closures_so_f32_and_gpu_reach_them():
    rng = np.random.default_rng(0)
    W = param(rng.standard_normal((2, 3)))

    def layer(x):
        return W @ x

    layer.W = W  # README's pattern: the same param as an attribute and in the closure
    m = Chain(layer, jnp.tanh)
    z = fmap(jnp.zeros_like, m)
    (new,) = params(z)
    assert new is not W and isinstance(new, Tracked) and z[0].W is new
    np.testing.assert_array_equal(np.asarray(data(z[0](np.ones(3, np.float32)))), [0.0, 0.0])
    np.testing.assert_array_equal(
        np.asarray(data(m[0](np.ones(3, np.float32)))), np.asarray(W.data).sum(1)
    )  # the original is untouched
    assert z[1] is jnp.tanh  # functions without arrays are kept
    d = Dense(3, 2)
    bound = fmap(data, Chain(d.__call__))
    assert bound[0].__self__ is not d and len(params(bound)) == 0
