"""A recurrent model's checkpoint resumes on both formats (a one-process safetensors file
and the orbax folder of a multi-process run): the carry has its batch's shape in the
checkpoint and the initial shape in a freshly built model. Oracle: the same training run
without interruption."""

import os

import jax
import numpy as np
import pytest
from _tol import assert_close

import fluxjax as fj
from fluxjax.train import _orbax


def _chain():
    return fj.Chain(
        fj.LSTM(3, 6, key=jax.random.PRNGKey(0)), fj.Dense(6, 2, key=jax.random.PRNGKey(1))
    )


def _data():
    rng = np.random.default_rng(0)
    return [
        (rng.normal(size=(4, 3)).astype(np.float32), rng.normal(size=(4, 2)).astype(np.float32))
        for _ in range(3)
    ]


def _train(m, data, epochs, folder=None):
    loss = lambda x, y: fj.mse(m(x), y)  # noqa: E731
    return fj.train_(loss, m, data, fj.ADAM(0.01), epochs=epochs, checkpoint=folder)


@pytest.mark.parametrize("fmt", ["safetensors", "orbax"])
def test_a_recurrent_chain_resumes_from_its_checkpoint_in_a_fresh_model(tmp_path, fmt, monkeypatch):
    if fmt == "orbax":  # the multi-process run's format, written by this one process
        monkeypatch.setattr(_orbax, "in_use", lambda: True)
    data, folder = _data(), str(tmp_path / "ckpt")
    want = _chain()
    want_losses = _train(want, data, 2)
    first = _chain()
    _train(first, data, 1, folder)
    assert first[0].state[0].shape == (4, 6)  # the checkpoint holds the batch's carry
    written = [f for f in os.listdir(folder) if f.startswith("step-")]
    assert written and all(f.endswith(fmt) for f in written), written
    fresh = _chain()
    assert fresh[0].state[0].shape == (6,)
    losses = _train(fresh, data, 2, folder)  # resumes after epoch 1 (the losses: all steps')
    assert_close(np.asarray(losses), np.asarray(want_losses))
    for a, b in zip(fj.params(fresh), fj.params(want)):
        assert_close(np.asarray(a.data), np.asarray(b.data))
    for a, b in zip(fresh[0].state, want[0].state):
        assert_close(np.asarray(a.data), np.asarray(b.data))
