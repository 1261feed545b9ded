"""Tracker state is per thread, and every cache is bounded."""

import contextlib
import gc
import sys
import threading
import warnings
import weakref

import jax
import jax.numpy as jnp
import numpy as np

import fluxjax as fj
from fluxjax.tracker import cache_sizes
from fluxjax.tracker._cache import _ALL

X = jnp.asarray(np.random.default_rng(0).normal(size=(4, 3)), jnp.float32)
Y = jnp.asarray(np.random.default_rng(1).normal(size=(4, 2)), jnp.float32)


def eager(m):
    for _ in range(4):
        fj.back_(fj.mse(m(X), Y))
        for p in fj.params(m):
            fj.update_(p, -0.1 * fj.grad(p))


def with_gradient(m):
    ps = fj.params(m)
    for _ in range(4):
        gs = fj.gradient(lambda: fj.mse(m(X), Y), ps)
        for p in ps:
            fj.update_(p, -0.1 * gs[p])


def with_train(m):
    fj.train_(lambda: fj.mse(m(X), Y), m, [()] * 4, fj.Descent(0.1))


def with_jit(m):
    step = fj.jit(eager)
    step(m)


WAYS = [eager, with_gradient, with_train, with_jit]


def model(i):
    return fj.Dense(3, 2, key=jax.random.PRNGKey(i))


def test_eight_threads_equal_a_serial_run():
    serial = []
    for i in range(8):
        m = model(i)
        WAYS[i % 4](m)
        serial.append(np.asarray(m.W.data))
    models = [model(i) for i in range(8)]
    start, errors = threading.Barrier(8), []

    def work(i):
        try:
            start.wait()
            WAYS[i % 4](models[i])
        except Exception as e:  # reported below, with the thread's number
            errors.append((i, e))

    threads = [threading.Thread(target=work, args=(i,)) for i in range(8)]
    interval = sys.getswitchinterval()
    sys.setswitchinterval(1e-6)  # switch threads as often as possible: maximal interleaving
    try:
        for t in threads:
            t.start()
        for t in threads:
            t.join()
    finally:
        sys.setswitchinterval(interval)
    assert not errors
    for i, m in enumerate(models):
        np.testing.assert_allclose(m.W.data, serial[i], rtol=1e-5, atol=1e-6, err_msg=str(i))


@contextlib.contextmanager
def caches_bounded_at(size):
    """Every fluxjax cache holds at most ``size`` entries inside the block (restored after),
    so the bound is exercised with a few dozen compiles instead of thousands."""
    fj.clear_caches()  # entries of earlier tests would exceed the smaller bound
    caches = list(_ALL)
    before = [c.size for c in caches]
    for c in caches:
        c.size = size
    try:
        yield
    finally:
        for c, n in zip(caches, before):
            c.size = n


def test_a_new_function_every_step_stays_bounded():
    W = fj.param(jnp.ones(3))
    first, kept = None, []
    with warnings.catch_warnings(), caches_bounded_at(8):
        warnings.simplefilter("ignore")
        for i in range(24):
            f = fj.track(lambda v: v * 2.0)  # a new function object each step
            if first is None:
                first = weakref.ref(f)
            if i % 2:
                kept.append(f)  # half stay alive: only the bound can evict their entries
            fj.back_(f(W).sum())
            assert max(cache_sizes().values()) <= 8, cache_sizes()
        gc.collect()
        assert first() is None  # the caches do not keep every function alive
    fj.clear_caches()
    assert sum(cache_sizes().values()) == 0


def train_once(i):
    m = model(i)
    fj.train_(lambda: fj.mse(m(X), Y), m, [()], fj.Descent(0.1))
    return weakref.ref(m)


def test_train_of_many_discarded_models_frees_them():
    refs = [train_once(i) for i in range(10)]
    gc.collect()
    assert sum(r() is not None for r in refs) <= 8  # the step cache holds at most 8


def test_train_with_a_new_loss_each_call_warns_once():
    m = model(0)
    fj.tracker.clear_caches()
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        for k in range(3):
            scale = float(k + 1)  # one closure cell whose value changes: a different loss
            # (the lambda reads the loop variable on purpose: its step must not be reused)
            l0 = float(fj.mse(m(X), Y))
            ls = fj.train_(lambda: scale * fj.mse(m(X), Y), m, [()], fj.Descent(0.1))  # noqa: B023
            np.testing.assert_allclose(float(ls[0]), scale * l0, rtol=1e-5)
    assert sum("compiles its step again" in str(w.message) for w in caught) == 1


def test_a_new_lambda_with_the_same_code_and_closure_reuses_the_step():
    """Flux's habit: train_(() -> loss(x, y), ...) written inside the loop."""
    m, twin = model(0), model(0)
    fj.tracker.clear_caches()
    traces = []

    def loss(mm):
        traces.append(1)  # runs only while JAX traces the step
        return fj.mse(mm(X), Y)

    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        for _ in range(3):
            fj.train_(lambda: loss(m), m, [()] * 2, fj.Descent(0.1))
    assert len(traces) == 1 and not caught
    fj.train_(lambda: loss(twin), twin, [()] * 6, fj.Descent(0.1))  # a new closure: traced
    assert len(traces) == 2
    for p, q in zip(fj.params(m), fj.params(twin)):
        np.testing.assert_allclose(p.data, q.data, rtol=1e-5, atol=1e-6)


def test_optimisers_with_equal_settings_share_one_compiled_step():
    m, twin = model(0), model(0)
    traces = []

    def loss():
        traces.append(1)  # runs only while JAX traces the step
        return fj.mse(m(X), Y)

    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        for _ in range(3):
            fj.train_(loss, m, [()] * 2, fj.ADAM(0.05))  # Flux's habit: a new ADAM per call
    assert len(traces) == 1 and not caught
    for _ in range(3):
        fj.tracker.clear_caches()  # the twin compiles afresh each time
        fj.train_(lambda: fj.mse(twin(X), Y), twin, [()] * 2, fj.ADAM(0.05))
    np.testing.assert_allclose(m.W.data, twin.W.data, rtol=1e-6, atol=1e-7)
    a, b = fj.ADAM(0.05), fj.ADAM(0.05)
    fj.update_(a, m.W, jnp.ones_like(m.W.data))
    fj.update_(b, twin.W, jnp.ones_like(m.W.data))
    c = fj.ADAM(0.01)
    fj.update_(c, m.b, jnp.ones_like(m.b.data))
    assert a._book.apply is b._book.apply and c._book.apply is not a._book.apply
