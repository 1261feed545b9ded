"""Small leftovers of issue 22: each was silent or surprising before."""

import json
import struct

import jax
import jax.numpy as jnp
import numpy as np
import pytest

import fluxjax as fj
import fluxjax.numpy as fnp


def test_np_shape_of_a_tracked_value_is_python_ints():
    t = fj.param(np.ones((3, 4)))
    for x in (t, t * 2, (t * 2)[1:]):
        for shape in (np.shape(x), fnp.shape(x)):
            assert shape == tuple(x.shape)
            assert all(type(n) is int for n in shape)
    u = t * 2
    padded = fnp.pad(u, ((0, np.shape(u)[0] * 2), (0, 0)))  # the idiom that broke
    assert padded.shape == (9, 4) and isinstance(padded, fj.Tracked)
    fj.back_(padded.sum())
    np.testing.assert_array_equal(fj.grad(t), np.full((3, 4), 2.0))
    assert np.ndim(u) == 2 and np.size(u) == 12


def test_ops_with_only_integer_outputs_stay_plain_and_correct():
    t = fj.param(jnp.array([0.0, 2.0, 0.0, 3.0]))
    (idx,) = fnp.nonzero(t * 1 > 1)
    np.testing.assert_array_equal(idx, [1, 3])
    assert not isinstance(idx, fj.Tracked)


@pytest.mark.parametrize("jit", [False, True])
def test_train_with_explicit_empty_params_runs_the_loop_and_callbacks(jit):
    # Flux's own idiom: train!(loss, Params([]), data, opt; cb = () -> ... stop())
    calls = []

    def cb():
        calls.append(len(calls))
        if len(calls) == 3:
            fj.stop()

    losses = fj.train_(lambda: jnp.float32(1.5), fj.Params([]), [()] * 10, fj.Descent(), cb=cb,
                       jit=jit)  # fmt: skip
    assert calls == [0, 1, 2]
    np.testing.assert_array_equal(losses, [1.5, 1.5, 1.5])


def test_a_model_or_params_that_find_nothing_still_raise():
    m = fj.Chain(fj.relu)
    for ps in (m, fj.params(m), [], ()):
        with pytest.raises(ValueError, match="no params"):
            fj.train_(lambda x: m(x).sum(), ps, [jnp.ones(2)], fj.Descent())


@pytest.mark.parametrize("v", [1 + 2j, np.complex64(1), [1 + 2j, 0], np.array([1j])])
def test_param_refuses_complex(v):
    with pytest.raises(TypeError, match="complex"):
        fj.param(v)


def _safetensors(path, names):
    """A safetensors file whose header lists ``names`` (float32 scalars), duplicates kept."""
    entries = [
        f'"{n}": {{"dtype": "F32", "shape": [], "data_offsets": [{4 * i}, {4 * i + 4}]}}'
        for i, n in enumerate(names)
    ]
    header = ("{" + ", ".join(entries) + "}").encode()
    body = struct.pack(f"<{len(names)}f", *range(len(names)))
    path.write_bytes(struct.pack("<Q", len(header)) + header + body)


def test_load_refuses_a_header_naming_a_tensor_twice(tmp_path):
    pytest.importorskip("safetensors")
    m = fj.Diagonal(fj.param(jnp.float32(5.0)), fj.param(jnp.float32(7.0)))
    good, bad = tmp_path / "good.safetensors", tmp_path / "bad.safetensors"
    _safetensors(good, ["α", "β"])
    fj.load(good, m)
    assert (float(m.α.data), float(m.β.data)) == (0.0, 1.0)
    _safetensors(bad, ["α", "β", "β"])
    header = bad.read_bytes()[8:-12]
    assert header.count(b'"\\u03b2"') + header.count("β".encode()) == 2  # really twice
    json.loads(header)  # valid JSON: a reader would silently keep the last
    with pytest.raises(ValueError, match="β.*more than once"):
        fj.load(bad, m)
    assert (float(m.α.data), float(m.β.data)) == (0.0, 1.0)  # untouched


def test_dataloader_over_a_dict_yields_dict_batches():
    X, Y = np.arange(10.0).reshape(5, 2), np.arange(5.0)
    batches = list(fj.DataLoader({"x": X, "y": Y}, batchsize=2))
    assert [sorted(b) for b in batches] == [["x", "y"]] * 3
    np.testing.assert_array_equal(batches[2]["x"], X[4:])
    np.testing.assert_array_equal(batches[0]["y"], Y[:2])
    with pytest.raises(ValueError, match="first dimension"):
        fj.DataLoader({"x": X, "y": Y[:3]})


@pytest.mark.parametrize("jit", [False, True])
def test_train_passes_a_dict_batch_as_one_argument(jit):
    # as Flux's train! with NamedTuple batches: tuples are splatted, anything else is one arg
    W = fj.param(jnp.zeros((1, 2)))
    X = np.random.default_rng(0).standard_normal((8, 2)).astype(np.float32)
    data = {"x": X, "y": X @ np.array([[1.0], [-2.0]], np.float32)}

    def loss(batch):
        return fj.mse(batch["x"] @ W.T, batch["y"])

    fj.train_(loss, fj.Params([W]), fj.DataLoader(data, 4), fj.Descent(0.1), epochs=3, jit=jit)
    w = np.zeros((1, 2))  # the same steps by hand, in NumPy
    for _ in range(3):
        for k in (0, 4):
            x, y = X[k : k + 4].astype(np.float64), data["y"][k : k + 4]
            w -= 0.1 * 2 / 4 * (x @ w.T - y).T @ x
    np.testing.assert_allclose(W.data, w, rtol=1e-5, atol=1e-6)


@pytest.mark.parametrize(
    "make", [lambda: fj.Dense(2, 3), lambda: fj.Chain(fj.Dense(2, 3), fj.Dropout(0.5)),
             lambda: fj.BatchNorm(3), lambda: fj.LSTM(2, 3)],
)  # fmt: skip
def test_pytorch_habits_point_to_the_flux_way(make):
    m = make()
    for name, hint in [("eval", "testmode_"), ("train", "trainmode_"),
                       ("parameters", "params"), ("zero_grad", "update_")]:  # fmt: skip
        with pytest.raises(AttributeError, match=hint):
            getattr(m, name)
        assert not hasattr(m, name)


def test_pytorch_habits_on_user_treelike_classes_but_not_over_their_own_methods():
    @fj.treelike
    class Model:
        def __init__(self):
            self.d = fj.Dense(2, 2)

        def train(self):
            return "mine"

    m = Model()
    assert m.train() == "mine"
    with pytest.raises(AttributeError, match="testmode_"):
        m.eval()
    with pytest.raises(AttributeError, match="params"):
        m.parameters()
    assert len(jax.tree_util.tree_leaves(m)) == 2  # the hints are not children
