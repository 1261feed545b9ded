"""fluxjax.jit's warm call (a variant already compiled): it follows the layer modes without
compiling again, threads a leaf that a new input shape's trace finds, files a mode that
such a trace reads, and a call that raises changes nothing. Oracles: the same step run
eagerly on a twin, or hand computations."""

from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from _tol import assert_close
from test_state_compiles import compilations

import fluxjax as fj


def test_warm_calls_follow_the_mode_both_ways_without_compiling(rng):
    fj.seed(0)
    m = fj.Chain(fj.Dense(3, 4), fj.BatchNorm(4))
    x = jnp.asarray(rng.normal(size=(8, 3)), jnp.float32)
    c = jnp.asarray(rng.normal(size=(8, 4)), jnp.float32)  # so a batch-normalised sum is not 0
    f = fj.jit(lambda x: (m(x) * c).sum())
    f(x)  # train mode: the statistics move
    fj.testmode_(m)
    f(x)  # test mode: a second variant
    compiled = []
    for mode in ("train", "test", "train", "test"):
        (fj.trainmode_ if mode == "train" else fj.testmode_)(m)
        μ = np.asarray(m[1].μ.data)
        with compilations() as found:
            got = float(f(x))
        compiled += found
        moved = not np.allclose(np.asarray(m[1].μ.data), μ)
        m[1].μ.data = jnp.asarray(μ)  # the eager oracle starts from the same statistics
        assert got == pytest.approx(float((m(x) * c).sum()), rel=1e-5, abs=1e-5), mode
        assert moved == (mode == "train"), mode
        m[1].μ.data = jnp.asarray(μ)
    assert compiled == []


def test_a_new_input_shape_whose_trace_finds_a_new_leaf_threads_it(rng):
    a, extra = fj.param([2.0, 3.0]), fj.param(5.0)

    def step(x):
        loss = (a * x[:2]).sum()
        if x.shape[0] > 2:  # only the longer input reads ``extra``
            loss = loss + extra * x[2]
        fj.back_(loss)
        fj.update_(a, -0.5 * fj.grad(a))
        return loss

    f = fj.jit(step)
    assert float(f(jnp.ones(2))) == pytest.approx(5.0)  # compiled without ``extra``
    assert_close(np.asarray(a.data), np.asarray([1.5, 2.5]))  # a.grad was [1, 1]
    # warm variant, new shape: JAX traces again, the trace touches ``extra``; it is threaded
    assert float(f(jnp.ones(3))) == pytest.approx(1.5 + 2.5 + 5.0)
    assert_close(np.asarray(a.data), np.asarray([1.0, 2.0]))  # update_ zeroed it: one step
    assert float(extra.grad) == pytest.approx(1.0) and float(extra.data) == 5.0
    assert {id(p) for p in f.params} == {id(a), id(extra)}


class _Switch:
    """A Python value a compiled step bakes in, read through ``tracker.static``."""

    on = True


def test_a_mode_first_read_by_a_new_input_shapes_trace_selects_the_variant():
    a, switch = fj.param(2.0), _Switch()

    def f(x):
        scale = 3.0 if x.shape[0] > 2 and fj.tracker.static(switch, "on") else 1.0
        return (a * x).sum() * scale

    g = fj.jit(f)
    assert float(g(jnp.ones(2))) == pytest.approx(4.0)
    assert float(g(jnp.ones(3))) == pytest.approx(18.0)  # a new shape's trace reads ``on``
    switch.on = False
    assert float(g(jnp.ones(3))) == pytest.approx(6.0)  # the variant follows it
    switch.on = True
    with compilations() as found:
        assert float(g(jnp.ones(3))) == pytest.approx(18.0)
        assert float(g(jnp.ones(2))) == pytest.approx(4.0)
    assert found == []


def test_a_warm_call_that_fails_its_check_changes_nothing():
    W, n = fj.param([1.0, 4.0]), fj.state(0.0)
    opt = fj.Momentum(0.1)

    def step(x):
        loss = fj.numpy.sqrt(W * x).sum()  # NaN where W * x < 0
        fj.back_(loss)
        n.data = n.data + 1
        fj.update_(opt, W, fj.grad(W))
        return loss

    f = fj.jit(step)
    f(jnp.ones(2))
    f(jnp.ones(2))
    before = [np.asarray(v) for v in (W.data, W.grad, n.data)]
    with pytest.raises(FloatingPointError, match="not finite"):
        f(-jnp.ones(2))
    for was, now in zip(before, (W.data, W.grad, n.data)):
        np.testing.assert_array_equal(np.asarray(now), was)
    twin, opt_twin = fj.param([1.0, 4.0]), fj.Momentum(0.1)  # the eager oracle: 3 good steps
    for _ in range(3):
        loss = fj.numpy.sqrt(twin * jnp.ones(2)).sum()
        fj.back_(loss)
        fj.update_(opt_twin, twin, fj.grad(twin))
    f(jnp.ones(2))  # the momentum is as if the failed call never happened
    assert_close(np.asarray(W.data), np.asarray(twin.data))
    assert float(n.data) == 3.0


def test_a_step_called_inside_jax_jit_is_refused_and_changes_nothing():
    W = fj.param([1.0, 2.0])

    @fj.jit
    def step(x):
        loss = (W * x).sum()
        fj.back_(loss)
        fj.update_(W, -0.5 * fj.grad(W))
        return loss

    step(jnp.ones(2))  # warm now; W is [0.5, 1.5]
    with pytest.raises(RuntimeError, match="fluxjax.jit"):  # W would keep a tracer
        jax.jit(step)(jnp.ones(2))
    assert isinstance(W.data, jax.Array) and not isinstance(W.data, jax.core.Tracer)
    np.testing.assert_array_equal(np.asarray(W.data), [0.5, 1.5])
    evaluate = fj.jit(lambda x: (W * x).sum())  # writes no leaf: fine inside jax.jit
    evaluate(jnp.ones(2))
    assert float(jax.jit(evaluate)(jnp.asarray([2.0, 1.0]))) == pytest.approx(2.5)
    np.testing.assert_array_equal(np.asarray(W.data), [0.5, 1.5])
    # inside fluxjax's own transformations the step's writes are threaded as usual
    outer = fj.jit(lambda x: step(x))
    assert float(outer(jnp.ones(2))) == pytest.approx(2.0)
    np.testing.assert_array_equal(np.asarray(W.data), [0.0, 1.0])
    with pytest.raises(FloatingPointError, match="loss is not finite"):  # the inner check
        outer(jnp.asarray([np.nan, 1.0]))
    np.testing.assert_array_equal(np.asarray(W.data), [0.0, 1.0])


def test_a_traced_check_keeps_its_error_type():
    m = fj.Embedding(5, 2)
    f = fj.jit(lambda x: m(x).sum())
    f(jnp.asarray([1, 2]))
    before = np.asarray(m.weight.data)
    with pytest.raises(IndexError, match=r"Embedding\(5, 2\).*0 to 4"):
        f(jnp.asarray([1, 9]))  # the index is only known inside the compiled call
    np.testing.assert_array_equal(np.asarray(m.weight.data), before)
