"""The compiled loop donates its carry; what it starts from (the params' own arrays, the
optimiser state's stored arrays) is never consumed, whether the carry is copied when a
compiled call first takes it (one CPU) or on the device as the call begins."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest

import fluxjax as fj
from fluxjax.train import _steps
from fluxjax.train._opt_arrays import named_state


@pytest.fixture(params=["host", "device"])
def copies(request, monkeypatch):
    monkeypatch.setattr(_steps, "_on_cpu", lambda: request.param == "host")


@pytest.mark.parametrize("loader", [False, True])
def test_the_arrays_a_call_starts_from_stay_valid(copies, loader):
    W = fj.param(jnp.ones((2, 3)))
    opt, ps = fj.ADAM(0.1), fj.Params([W])
    X = np.arange(12, dtype=np.float32).reshape(4, 3)
    data = fj.DataLoader(X, 2) if loader else [X[:2], X[2:]]
    loss = lambda x: jnp.mean((x @ W.T) ** 2)  # noqa: E731
    fj.train_(loss, ps, data, opt)  # the optimiser state now exists
    held, state = W.data, named_state(opt, [W])
    copy, state_copy = np.array(held), {k: np.array(v) for k, v in state.items()}
    fj.train_(loss, ps, data, opt)
    np.testing.assert_array_equal(np.asarray(held), copy)  # readable, unchanged
    for name, value in state.items():
        np.testing.assert_array_equal(np.asarray(value), state_copy[name])
    assert not np.array_equal(np.asarray(W.data), copy)  # it trained


def test_a_call_with_no_steps_leaves_the_params_as_they_were(copies):
    W = fj.param(jnp.ones(3))
    before = W.data
    losses = fj.train_(lambda x: (W * x).sum(), fj.Params([W]), [], fj.Descent(0.1))
    assert losses.shape == (0,)
    assert isinstance(W.data, jax.Array)
    np.testing.assert_array_equal(np.asarray(W.data), np.asarray(before))
