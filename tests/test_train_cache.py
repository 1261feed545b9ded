"""train_ compiles its step once and reuses it across calls, never with stale constants."""

import jax.numpy as jnp
import numpy as np

import fluxjax as fj


def setup():
    fj.seed(0)
    m = fj.Chain(fj.Dense(4, 8, fj.relu), fj.Dense(8, 2))
    rng = np.random.default_rng(0)
    x = rng.normal(size=(16, 4)).astype("float32")
    y = rng.normal(size=(16, 2)).astype("float32")
    return m, [(x, y)] * 3


def test_second_call_reuses_the_compiled_step():
    m, data = setup()
    traces = []

    def loss(x, y):
        traces.append(1)  # runs only while JAX traces the step
        return fj.mse(m(x), y)

    opt = fj.Descent(0.1)
    fj.train_(loss, fj.params(m), data, opt)
    after_first = len(traces)
    fj.train_(loss, fj.params(m), data, opt)
    assert len(traces) == after_first


def test_reused_step_continues_from_current_values():
    m, data = setup()
    loss = lambda x, y: fj.mse(m(x), y)  # noqa: E731
    opt = fj.Descent(0.1)
    first = fj.train_(loss, fj.params(m), data, opt)
    second = fj.train_(loss, fj.params(m), data, opt)
    assert float(second[0]) < float(first[0])
    x, y = data[0]
    assert float(second[-1]) > float(loss(x, y))  # params were written back after the step


def test_param_outside_ps_is_not_a_stale_constant():
    m, data = setup()
    head = fj.Dense(2, 2)  # read by the loss, not trained
    loss = lambda x, y: fj.mse(head(m(x)), y)  # noqa: E731
    opt = fj.Descent(0.1)
    fj.train_(loss, fj.params(m), data, opt)
    head.W.data = jnp.zeros((2, 2))
    head.b.data = jnp.zeros(2)
    losses = fj.train_(loss, fj.params(m), data[:1], opt)
    x, y = data[0]
    np.testing.assert_allclose(float(losses[0]), float((y**2).mean()), rtol=1e-5)


def test_a_nan_step_does_not_poison_the_optimiser_state():
    m, data = setup()
    loss = lambda x, y: fj.mse(m(x), y)  # noqa: E731
    opt = fj.ADAM(0.01)
    fj.train_(loss, fj.params(m), data, opt)
    x, y = data[0]
    before = [np.asarray(p.data) for p in fj.params(m)]
    bad = [(x, y), (x, y * np.nan), (x, y)]
    try:
        fj.train_(loss, fj.params(m), bad, opt)
        raise AssertionError("a NaN loss must raise")
    except FloatingPointError as e:
        assert "step 1" in str(e)
    after_one = fj.params(m)
    # params: the values after step 0, the last finite one
    assert not all(np.allclose(a, np.asarray(p.data)) for a, p in zip(before, after_one))
    assert all(np.isfinite(np.asarray(p.data)).all() for p in after_one)
    # the optimiser carries on with finite moments
    losses = fj.train_(loss, fj.params(m), data, opt)
    assert np.isfinite(np.asarray(losses)).all()
    assert all(np.isfinite(np.asarray(p.data)).all() for p in fj.params(m))
