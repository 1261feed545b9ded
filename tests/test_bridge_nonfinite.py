"""The NaN guard covers the loss, the gradient and the updated params on every path."""

import jax.numpy as jnp
import numpy as np
import pytest

import fluxjax as fj
import fluxjax.numpy as fnp

PATHS = ["per-step", "scan", "eager"]


def run(path, loss, ps, X):
    data = fj.DataLoader(X, batchsize=1) if path == "scan" else [X[i] for i in range(len(X))]
    return fj.train_(loss, ps, data, fj.Descent(0.1), jit=path != "eager")


@pytest.mark.parametrize("path", PATHS)
def test_finite_loss_with_an_infinite_gradient(path):
    W = fj.param([1.0, 2.0])
    # at x = (0, 1) the loss is finite but its slope in W[0] is 0 * inf = NaN
    loss = lambda x: fnp.sqrt(fnp.abs(W * x)).sum()  # noqa: E731
    X = jnp.asarray([[1.0, 1.0], [0.0, 1.0], [1.0, 1.0]])
    before = np.asarray(W.data)
    with pytest.raises(FloatingPointError, match="step 1") as e:
        run(path, loss, fj.Params([W]), X)
    assert "gradient" in str(e.value)
    assert np.isfinite(np.asarray(W.data)).all()
    assert not np.allclose(np.asarray(W.data), before)  # step 0 was kept


@pytest.mark.parametrize("path", PATHS)
def test_one_nan_in_the_data(path):
    W = fj.param([1.0, 2.0])
    loss = lambda x: ((W * x).sum() - 1.0) ** 2  # noqa: E731
    X = np.ones((3, 2), np.float32)
    X[2, 1] = np.nan
    with pytest.raises(FloatingPointError, match="step 2"):
        run(path, loss, fj.Params([W]), jnp.asarray(X))
    assert np.isfinite(np.asarray(W.data)).all()


def test_update_with_an_optimiser_refuses_a_nan_gradient():
    W, twin = fj.param([1.0, 2.0]), fj.param([1.0, 2.0])
    opt, opt_twin = fj.Momentum(0.1), fj.Momentum(0.1)
    g = jnp.asarray([1.0, 1.0])
    fj.update_(opt, W, g)
    fj.update_(opt_twin, twin, g)
    before = np.asarray(W.data)
    with pytest.raises(FloatingPointError, match="not finite"):
        fj.update_(opt, W, jnp.asarray([jnp.nan, 1.0]))
    np.testing.assert_array_equal(W.data, before)
    fj.update_(opt, W, g)  # the momentum is as before the bad call: W follows its twin
    fj.update_(opt_twin, twin, g)
    np.testing.assert_array_equal(W.data, twin.data)


def test_jit_step_with_a_nan_loss_or_gradient_changes_nothing():
    W, twin = fj.param([1.0, 2.0]), fj.param([1.0, 2.0])
    opt, opt_twin = fj.Momentum(0.1), fj.Momentum(0.1)

    def step(W, opt, x):
        l = fnp.sqrt(fnp.abs(W * x)).sum()  # NaN slope at x = 0
        fj.back_(l)
        fj.update_(opt, W, fj.grad(W))
        return l

    jitted = fj.jit(lambda x: step(W, opt, x))
    ones = jnp.asarray([1.0, 1.0])
    jitted(ones)  # fine: compiles and steps
    step(twin, opt_twin, ones)
    before, g = np.asarray(W.data), np.asarray(W.grad)
    with pytest.raises(FloatingPointError, match="not finite"):
        jitted(jnp.asarray([0.0, 1.0]))
    np.testing.assert_array_equal(W.data, before)
    np.testing.assert_array_equal(W.grad, g)
    with pytest.raises(FloatingPointError, match="loss is not finite"):
        jitted(jnp.asarray([np.nan, 1.0]))
    np.testing.assert_array_equal(W.data, before)
    jitted(ones)  # the momentum is as if the failed calls never happened
    step(twin, opt_twin, ones)
    np.testing.assert_allclose(W.data, twin.data, rtol=1e-6)
