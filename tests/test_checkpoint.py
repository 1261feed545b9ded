"""``train_(checkpoint=)`` in one process: rerun after completion, ``epochs`` as the total,
mismatched or damaged checkpoints, and ``DataLoader.position``."""

import glob
import os

import numpy as np
import pytest

import fluxjax as fj

rng = np.random.default_rng(0)
X = rng.standard_normal((24, 3)).astype(np.float32)
Y = rng.standard_normal((24, 1)).astype(np.float32)


def setup(width=5, seed=7):
    fj.seed(seed)
    m = fj.Chain(fj.Dense(3, width), fj.BatchNorm(width, fj.relu), fj.Dense(width, 1))
    return m, fj.DataLoader((X, Y), 4, shuffle=True)


def train(m, data, folder, opt=None, **kw):
    opt = fj.ADAM(0.01) if opt is None else opt
    return fj.train_(lambda x, y: fj.mse(m(x), y), m, data, opt, checkpoint=folder, **kw)


def values(m):
    return [np.asarray(v) for v in fj.states(m)] + [np.asarray(p.data) for p in fj.params(m)]


def assert_same(a, b):
    assert all(np.array_equal(u, v) for u, v in zip(values(a), values(b), strict=True))


def test_rerun_after_completion_does_nothing(tmp_path):
    m1, d1 = setup()
    l1 = train(m1, d1, tmp_path, epochs=2)
    m2, d2 = setup()
    calls = []
    l2 = train(m2, d2, tmp_path, epochs=2, cb=lambda: calls.append(1))
    assert calls == [] and np.array_equal(l1, l2) and l1.shape == (12,)
    assert_same(m1, m2)
    assert tuple(d2.position) == (2, 0)


def test_epochs_is_the_total(tmp_path):
    m1, d1 = setup()
    train(m1, d1, tmp_path / "a", epochs=3)
    m2, d2 = setup()
    train(m2, d2, tmp_path / "b", epochs=1)
    m3, d3 = setup()
    losses = train(m3, d3, tmp_path / "b", epochs=3)  # two more epochs, not three
    assert losses.shape == (18,)
    assert_same(m1, m3)


def test_a_checkpoint_of_another_model_or_optimiser_raises(tmp_path):
    m, d = setup()
    train(m, d, tmp_path)
    wide, d2 = setup(width=6)
    before = values(wide)
    message = r"another model: entry .* has shape \(5, 3\) there, \(6, 3\)"
    with pytest.raises(ValueError, match=message):
        train(wide, d2, tmp_path)
    assert all(np.array_equal(u, v) for u, v in zip(before, values(wide)))
    m3, d3 = setup()
    message = r"is of ADAM\(0.01, \(0.9, 0.999\)\), this training uses Momentum"
    with pytest.raises(ValueError, match=message):
        train(m3, d3, tmp_path, opt=fj.Momentum())


def test_a_damaged_newest_checkpoint_falls_back_to_the_one_before(tmp_path):
    m1, d1 = setup()
    train(m1, d1, tmp_path / "ref", checkpoint_every=2)
    m2, d2 = setup()
    calls = []

    def stop_after_5():
        calls.append(1)
        if len(calls) == 5:
            fj.stop()

    train(m2, d2, tmp_path, checkpoint_every=2, cb=stop_after_5)  # stops after step 5
    files = sorted(glob.glob(str(tmp_path / "step-*.safetensors")))
    assert [os.path.basename(f)[5:14] for f in files] == ["000000004", "000000005"]
    with open(files[-1], "r+b") as f:  # flip a byte in the arrays
        f.seek(-3, os.SEEK_END)
        b = f.read(1)
        f.seek(-3, os.SEEK_END)
        f.write(bytes([b[0] ^ 0xFF]))
    m3, d3 = setup()
    with pytest.warns(UserWarning, match="damaged"):
        losses = train(m3, d3, tmp_path, checkpoint_every=2)
    assert losses.shape == (6,)
    assert_same(m1, m3)


def test_every_checkpoint_damaged_raises_rather_than_restart(tmp_path):
    m, d = setup()
    train(m, d, tmp_path, checkpoint_every=3)
    for f in glob.glob(str(tmp_path / "step-*.safetensors")):
        with open(f, "wb") as out:
            out.write(b"not a checkpoint")
    m2, d2 = setup()
    with pytest.raises(ValueError, match="every checkpoint in the folder is damaged"):
        train(m2, d2, tmp_path)


def test_bad_arguments_raise(tmp_path):
    m, d = setup()
    with pytest.raises(ValueError, match="checkpoint_every must be a whole number"):
        train(m, d, tmp_path, checkpoint_every=0)
    with pytest.raises(ValueError, match="a DataLoader or a non-empty list"):
        train(m, iter([(X, Y)]), tmp_path)


def test_dataloader_position_is_settable_and_replays_the_order():
    d = fj.DataLoader(np.arange(10), 3, shuffle=True, key=1)
    assert tuple(d.position) == (0, 0)
    epochs = [[b.tolist() for b in d] for _ in range(3)]
    assert tuple(d.position) == (3, 0)
    d.position = (1, 2)
    assert [b.tolist() for b in d] == epochs[1][2:]
    assert [b.tolist() for b in d] == epochs[2]
    it = iter(d)
    next(it)
    assert tuple(d.position) == (3, 1)
    d.position = (2, 4)  # the end of epoch 2 is the start of epoch 3
    assert tuple(d.position) == (3, 0)
    with pytest.raises(ValueError, match="between 0 and 4"):
        d.position = (0, 5)


@pytest.mark.parametrize("jit", [True, False])
def test_train_starts_where_the_position_says(jit):
    m1, d1 = setup()
    full = fj.train_(lambda x, y: fj.mse(m1(x), y), m1, d1, fj.Descent(0.1), jit=jit)
    m2, d2 = setup()
    d2.position = (0, 4)
    rest = fj.train_(lambda x, y: fj.mse(m2(x), y), m2, d2, fj.Descent(0.1), jit=jit)
    assert rest.shape == (2,) and tuple(d2.position) == (1, 0)
    assert tuple(d1.position) == (1, 0)
    assert full.shape == (6,)


def test_checkpoint_every_without_a_folder_raises():
    m, d = setup()
    with pytest.raises(ValueError, match="checkpoint_every= needs checkpoint=folder"):
        fj.train_(lambda x, y: fj.mse(m(x), y), m, d, fj.ADAM(), checkpoint_every=2)


def test_an_eager_loss_that_needs_values_resumes(tmp_path):
    def run(folder, stop_after=None):
        m, d = setup()
        seen = []

        def loss(x, y):
            l = fj.mse(m(x), y)
            seen.append(float(fj.data(l)))  # needs a concrete value: jit=False
            return l

        def cb():
            if len(seen) == stop_after:
                fj.stop()

        fj.train_(loss, m, d, fj.ADAM(0.01), jit=False, cb=cb, epochs=2, checkpoint=folder)
        return m

    run(tmp_path / "a", stop_after=8)  # stops inside epoch 1 (the epoch-0 checkpoint is kept)
    assert_same(run(tmp_path / "a"), run(tmp_path / "b"))


def test_the_explicit_style_names_entries_by_their_place_in_the_model(tmp_path):
    from safetensors import safe_open

    m, d = setup()
    fj.train_(lambda m, x, y: fj.mse(m(x), y), m, d, fj.setup(fj.ADAM(), m), checkpoint=tmp_path)
    (path,) = glob.glob(str(tmp_path / "step-*.safetensors"))
    with safe_open(path, framework="np") as f:
        names = set(f.keys())  # noqa: SIM118
    assert {"leaf/model.0.W", "leaf/model.2.b", "opt/0.0.count", "losses"} <= names
    assert any(n.startswith("leaf/model.1.") for n in names)  # BatchNorm's statistics
