"""The bridge's guarantees (API.md "Guarantees that hold across every path"), one test per
failure seen before: each reproduces what a user did and checks the result against a
pure JAX twin or the values from before the call."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest

import fluxjax as fj

x4 = jnp.asarray(np.random.default_rng(0).normal(size=(4, 3)), jnp.float32)
y4 = jnp.asarray(np.random.default_rng(1).normal(size=(4, 2)), jnp.float32)


def snapshot(ps):
    return [(np.asarray(p.data), np.asarray(p.grad)) for p in ps]


def assert_same(ps, snap):
    for p, (v, g) in zip(ps, snap, strict=True):
        np.testing.assert_array_equal(np.asarray(p.data), v)
        np.testing.assert_array_equal(np.asarray(p.grad), g)


def twin_grads(W, b):
    return jax.grad(lambda W, b: jnp.mean((x4 @ W.T + b - y4) ** 2), (0, 1))(W, b)


def test_jit_of_a_step_that_ran_eagerly_once():
    W = fj.param([1.0, 2.0])

    def step(x):
        l = (W * x).sum()
        fj.back_(l)
        fj.update_(W, -0.5 * fj.grad(W))  # pending until the next read
        return l

    step(jnp.ones(2))
    assert float(fj.jit(step)(jnp.ones(2))) == 2.0  # (W = [0.5, 1.5]) · 1
    np.testing.assert_array_equal(W.data, [0.0, 1.0])
    assert "Tracer" not in repr(W) and isinstance(W.data, jax.Array)
    step(jnp.ones(2))
    np.testing.assert_array_equal(W.data, [-0.5, 0.5])


def test_an_exception_inside_a_jit_step_changes_nothing():
    d = fj.Dense(3, 2)
    fj.back_(fj.mse(d(x4), y4))
    ps = fj.params(d)
    before = snapshot(ps)

    @fj.jit
    def step(x):
        fj.back_(fj.mse(d(x), y4))
        fj.update_(d.W, -fj.grad(d.W))
        raise ValueError("boom")

    with pytest.raises(ValueError, match="boom"):
        step(x4)
    assert_same(ps, before)
    fj.back_(fj.mse(d(x4), y4))  # still a working model


def test_gradient_and_optimiser_inside_jit_equal_eager():
    a, b = fj.Dense(3, 2, key=jax.random.PRNGKey(0)), fj.Dense(3, 2, key=jax.random.PRNGKey(0))
    opt_a, opt_b = fj.ADAM(0.1), fj.ADAM(0.1)

    def step(m, opt):
        ps = fj.params(m)
        gs = fj.gradient(lambda: fj.mse(m(x4), y4), ps)
        fj.update_(opt, ps, gs)

    jitted = fj.jit(lambda: step(a, opt_a))
    for _ in range(3):
        jitted()
        step(b, opt_b)
    np.testing.assert_allclose(a.W.data, b.W.data, rtol=1e-5, atol=1e-6)
    # the optimiser is not poisoned: eager use and train_ carry on from the same state
    step(a, opt_a)
    step(b, opt_b)
    fj.train_(lambda: fj.mse(a(x4), y4), fj.params(a), [()], opt_a)
    fj.train_(lambda: fj.mse(b(x4), y4), fj.params(b), [()], opt_b)
    np.testing.assert_allclose(a.W.data, b.W.data, rtol=1e-5, atol=1e-6)


def test_a_failed_trace_never_touches_the_optimiser():
    key = jax.random.PRNGKey(3)
    a, b = fj.Dense(3, 2, key=key), fj.Dense(3, 2, key=key)
    opt_a, opt_b = fj.Momentum(0.1), fj.Momentum(0.1)

    def step(m, opt):
        ps = fj.params(m)
        fj.update_(opt, ps, fj.gradient(lambda: fj.mse(m(x4), y4), ps))

    step(a, opt_a)
    step(b, opt_b)

    @fj.jit
    def bad():
        step(a, opt_a)
        raise RuntimeError("after the step")

    with pytest.raises(RuntimeError, match="after the step"):
        bad()
    step(a, opt_a)  # momentum from one step only, as for b
    step(b, opt_b)
    np.testing.assert_allclose(a.W.data, b.W.data, rtol=1e-6, atol=1e-7)


@pytest.mark.parametrize("tracked", [False, True])
def test_checkpoint_of_a_model_gives_its_params_gradients(tracked):
    d = fj.Dense(3, 2)
    x = fj.param(x4) if tracked else x4
    fj.back_(fj.mse(fj.checkpoint(d, x), y4))
    gW, gb = twin_grads(d.W.data, d.b.data)
    np.testing.assert_allclose(d.W.grad, gW, rtol=1e-5, atol=1e-6)
    np.testing.assert_allclose(d.b.grad, gb, rtol=1e-5, atol=1e-6)


@pytest.mark.parametrize("tracked", [False, True])
def test_track_of_a_closure_over_a_param(tracked):
    P = fj.param(3.0)
    f = fj.track(lambda v: v * P)
    v = fj.param(2.0) if tracked else 2.0
    fj.back_(f(v) * f(v))  # d/dP (v P)^2 = 2 v^2 P
    np.testing.assert_allclose(P.grad, 2 * 2.0**2 * 3.0, rtol=1e-6)


def test_inplace_operators_update_the_param_itself():
    c = fj.Chain(fj.Dense(3, 2))
    fj.back_(fj.mse(c(x4), y4))
    W = c[0].W
    before, g = np.asarray(W.data), np.asarray(W.grad)
    c[0].W -= 0.1 * c[0].W.grad
    assert c[0].W is W and W in fj.params(c) and W.is_leaf and W.trainable
    np.testing.assert_allclose(W.data, before - 0.1 * g, rtol=1e-6)
    W += 1.0
    W *= 2.0
    np.testing.assert_allclose(W.data, (before - 0.1 * g + 1.0) * 2.0, rtol=1e-6)
    with pytest.raises((TypeError, ValueError), match="shape"):
        W += jnp.ones((5, 5))
    y = W * 1.0
    y += 1.0  # an operation's result: a new value, as for any immutable number
    assert not y.is_leaf


def test_update_validates_its_step_at_the_call():
    P = fj.param([1.0, 2.0])
    with pytest.raises(TypeError, match="real numbers"):
        fj.update_(P, np.array(["a", "b"]))
    with pytest.raises(ValueError, match="shape"):
        fj.update_(P, jnp.ones(3))
    with pytest.raises(TypeError):
        fj.update_(P, None)
    fj.update_(P, [1.0, 1.0])
    np.testing.assert_array_equal(P.data, [2.0, 3.0])
    assert "Tracked" in repr(P)


def test_gradient_forward_are_transactional():
    d = fj.Dense(3, 2)
    fj.back_(fj.mse(d(x4), y4))
    n = fj.state(0)
    ps = fj.params(d)
    before = snapshot(ps)

    def f():
        n.data = n.data + 1
        fj.update_(d.W, jnp.ones_like(d.W.data))
        raise KeyError("inside")

    for run in (fj.gradient, fj.forward):
        with pytest.raises(KeyError):
            run(f, ps)
        assert_same(ps, before)
        assert int(n.data) == 0


def test_train_without_params_says_so():
    # params() of a model that holds none raises; an explicit Params([]) runs, as in Flux
    # (tests/test_leftovers.py)
    with pytest.raises(ValueError, match="no params"):
        fj.train_(lambda: jnp.float32(0.0), fj.params(fj.Chain(abs)), [()], fj.Descent())


def test_jax_jit_assignment_of_a_tracer_is_refused():
    s = fj.state(0.0)

    def f(x):
        s.data = x  # would leave a tracer in s after the trace
        return x

    with pytest.raises(RuntimeError, match="fluxjax.jit"):
        jax.jit(f)(1.0)
    assert float(s.data) == 0.0


def test_a_loss_that_raises_while_train_traces_it_changes_nothing():
    key = jax.random.PRNGKey(5)
    d, twin = fj.Dense(3, 2, key=key), fj.Dense(3, 2, key=key)
    opt, opt_twin = fj.ADAM(0.1), fj.ADAM(0.1)
    n = fj.state(0)
    fj.train_(lambda: fj.mse(d(x4), y4), d, [()], opt)
    fj.train_(lambda: fj.mse(twin(x4), y4), twin, [()], opt_twin)
    fj.back_(fj.mse(d(x4), y4))
    before = snapshot(fj.params(d))

    def bad():
        n.data = n.data + 1
        fj.update_(d.W, jnp.ones_like(d.W.data))
        raise ArithmeticError("in the loss")

    with pytest.raises(ArithmeticError):
        fj.train_(bad, d, [()] * 3, opt)
    assert_same(fj.params(d), before)
    assert int(n.data) == 0
    fj.train_(lambda: fj.mse(d(x4), y4), d, [()], opt)  # Adam's moments as before the call
    fj.train_(lambda: fj.mse(twin(x4), y4), twin, [()], opt_twin)
    np.testing.assert_allclose(d.W.data, twin.W.data, rtol=1e-6, atol=1e-7)


def test_a_compiled_loss_that_assigns_its_params_is_refused():
    d = fj.Dense(3, 2)
    before = snapshot(fj.params(d))

    def loss():
        d.W.data = jnp.clip(d.W.data, -0.1, 0.1)  # would be lost in a compiled step
        return fj.mse(d(x4), y4)

    with pytest.raises(ValueError, match="jit=False"):
        fj.train_(loss, d, [()], fj.Descent(0.1))
    assert_same(fj.params(d), before)
    fj.train_(loss, d, [()], fj.Descent(0.1), jit=False)  # the eager loop does it
    assert not np.allclose(np.asarray(d.W.data), before[0][0])
