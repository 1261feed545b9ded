"""fluxjax.jit: a Tracker-style step compiled, with the same results as running it eagerly."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest

import fluxjax as fj


def mlp(rng, sizes=((8, 4), (3, 8))):
    W = [fj.param(rng.normal(size=s) * 0.3) for s in sizes]
    b = [fj.param(rng.normal(size=s[0]) * 0.1) for s in sizes]
    return W, b


def make_step(W, b, lr=0.1):
    ps = W + b

    def loss(x, y):
        h = fj.relu(x @ W[0].T + b[0])
        return ((h @ W[1].T + b[1] - y) ** 2).mean()

    def step(x, y):
        l = loss(x, y)
        fj.back_(l)
        for p in ps:
            fj.update_(p, -lr * fj.grad(p))
        return l

    return loss, step, ps


@pytest.fixture
def data():
    rng = np.random.default_rng(1)
    x = jnp.asarray(rng.normal(size=(16, 4)), jnp.float32)
    y = jnp.asarray(rng.normal(size=(16, 3)), jnp.float32)
    return rng, x, y


def snapshot(ps):
    return [np.asarray(p.data) for p in ps]


def test_compiled_step_equals_eager_loop(data):
    rng, x, y = data
    W, b = mlp(rng)
    _, step, ps = make_step(W, b)
    start = snapshot(ps)
    eager_losses = [float(step(x, y)) for _ in range(6)]
    eager = snapshot(ps)
    fj.loadparams_(ps, start)
    compiled = fj.jit(step)
    jit_losses = [float(compiled(x, y)) for _ in range(6)]
    np.testing.assert_allclose(jit_losses, eager_losses, rtol=1e-5)
    for a, e in zip(snapshot(ps), eager):
        np.testing.assert_allclose(a, e, rtol=1e-5, atol=1e-6)
    assert len(compiled.params) == len(ps)
    assert all(any(p is q for q in ps) for p in compiled.params)


def test_loss_decreases_and_equals_pure_jax(data):
    rng, x, y = data
    W, b = mlp(rng)
    _, step, ps = make_step(W, b, lr=0.05)
    arrays = snapshot(ps)

    def pure_loss(a):
        W0, W1, b0, b1 = a
        return ((jax.nn.relu(x @ W0.T + b0) @ W1.T + b1 - y) ** 2).mean()

    compiled = fj.jit(step)
    for _ in range(3):
        expected_l, g = jax.value_and_grad(pure_loss)(arrays)
        arrays = [a - 0.05 * gi for a, gi in zip(arrays, g)]
        np.testing.assert_allclose(float(compiled(x, y)), float(expected_l), rtol=1e-5)
    for p, a in zip(ps, arrays):
        np.testing.assert_allclose(np.asarray(p.data), np.asarray(a), rtol=1e-5, atol=1e-6)


def test_grad_is_written_back_and_accumulates(data):
    rng, x, y = data
    W, b = mlp(rng)
    loss, _, ps = make_step(W, b)
    accumulate = fj.jit(lambda x, y: fj.back_(loss(x, y)))
    accumulate(x, y)
    once = [np.asarray(p.grad) for p in ps]
    expected = fj.gradient(lambda: loss(x, y), fj.Params(ps))
    for p, g in zip(ps, once):
        np.testing.assert_allclose(g, np.asarray(expected[p]), rtol=1e-5, atol=1e-7)
    accumulate(x, y)
    for p, g in zip(ps, once):
        np.testing.assert_allclose(np.asarray(p.grad), 2 * g, rtol=1e-5, atol=1e-7)


def test_param_changed_outside_is_read_fresh_not_baked(data):
    rng, x, y = data
    W, b = mlp(rng)
    loss, _, _ = make_step(W, b)
    evaluate = fj.jit(loss)
    first = float(evaluate(x, y))
    fj.update_(W[1], jnp.ones(W[1].shape))
    fresh = float(loss(x, y))
    assert fresh != pytest.approx(first, rel=1e-5)
    assert float(evaluate(x, y)) == pytest.approx(fresh, rel=1e-5)
    W[0].data = jnp.zeros(W[0].shape)
    assert float(evaluate(x, y)) == pytest.approx(float(loss(x, y)), rel=1e-5)


def test_param_first_read_later_is_added_by_retrace(data):
    rng, x, y = data
    a, extra = fj.param(2.0), fj.param(5.0)
    use_extra = {"on": False}

    def f(x):
        out = (a * x).sum()
        return out + extra if use_extra["on"] else out

    compiled = fj.jit(f)
    assert float(compiled(x)) == pytest.approx(2 * float(x.sum()), rel=1e-5)
    use_extra["on"] = True
    extra.data = 7.0
    # a new trace is needed for the new Python path; a new static argument forces it here
    g = fj.jit(f)
    assert float(g(x)) == pytest.approx(2 * float(x.sum()) + 7.0, rel=1e-5)
    assert {id(p) for p in g.params} == {id(a), id(extra)}
    extra.data = 9.0
    assert float(g(x)) == pytest.approx(2 * float(x.sum()) + 9.0, rel=1e-5)


def test_abandoned_trace_leaves_params_untouched(data):
    rng, x, y = data
    W, b = mlp(rng)
    _, step, ps = make_step(W, b)
    before = snapshot(ps)
    compiled = fj.jit(step)
    compiled(x, y)  # the first trace discovers the params, is abandoned, then redone
    # exactly one step was applied: compare with one eager step from the same start
    after = snapshot(ps)
    fj.loadparams_(ps, before)
    step(x, y)
    for a, e in zip(after, snapshot(ps)):
        np.testing.assert_allclose(a, e, rtol=1e-5, atol=1e-6)
