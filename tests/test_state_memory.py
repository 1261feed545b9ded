"""Caches never own user objects: after ``del`` and ``gc.collect()``, a model trained by
``train_`` (either style, a fluxjax optimiser or a raw optax one), its data loader, its
loss closure, its ``fluxjax.jit`` step and its params are all freed (weakref checks)."""

from __future__ import annotations

import gc
import weakref

import jax
import numpy as np
import optax
import pytest

import fluxjax as fj
from fluxjax.tracker import Cache
from tests._tol import assert_close

LAYERS = {
    "BatchNorm": lambda: fj.BatchNorm(4),
    "LSTM": lambda: fj.LSTM(4, 4),
    "Dropout": lambda: fj.Dropout(0.2),
}


def _train_once(layer, style, optimiser):
    """Train a fresh model once; weak references to everything the user made."""
    m = fj.Chain(fj.Dense(3, 4), LAYERS[layer](), fj.Dense(4, 1))
    x, y = np.ones((8, 5, 3), np.float32), np.ones((8, 5, 1), np.float32)
    loader = fj.DataLoader((x, y), batchsize=4)
    opt = fj.ADAM(0.01) if optimiser == "flux" else optax.adam(0.01)
    first = [leaf.data for leaf in [*fj.params(m), *fj.states(m)]]  # the arrays it starts with
    if style == "implicit":
        loss = lambda x, y: fj.mse(m(x), y)  # noqa: E731
        fj.train_(loss, m, loader, opt)
        fj.train_(loss, m, [(x[:4], y[:4])], opt, jit=False)
        fj.train_(loss, m, [(x[4:], y[4:])], opt)  # a list: one compiled call per item
    else:
        loss = lambda m, x, y: fj.mse(m(x), y)  # noqa: E731
        fj.train_(loss, m, loader, fj.setup(opt, m))
    evaluate = fj.jit(lambda x: m(x))
    evaluate(x[:4])
    fj.testmode_(m)
    evaluate(x[:4])
    refs = [m, loader, loss, evaluate, *fj.params(m), *fj.states(m), *first]
    refs.append(opt if optimiser == "flux" else opt.update)  # optax's is a tuple: its function
    return [weakref.ref(r) for r in refs]


@pytest.mark.parametrize("optimiser", ["flux", "optax"])
@pytest.mark.parametrize("style", ["implicit", "explicit"])
@pytest.mark.parametrize("layer", list(LAYERS))
def test_nothing_of_a_deleted_model_stays_alive(layer, style, optimiser):
    refs = _train_once(layer, style, optimiser)
    gc.collect()
    alive = [r() for r in refs if r() is not None]
    assert alive == [], [type(a).__name__ for a in alive]


def test_a_weak_cache_forgets_an_entry_when_its_key_dies():
    class Key:
        pass

    cache, k = Cache(4, "test weak", weak=True), Key()
    cache[k] = "value"
    assert cache.get(k) == "value" and k in cache
    del k
    gc.collect()
    assert len(cache) == 0


def test_a_raw_optax_transformation_and_its_moments_go_with_the_model():
    def train_once():
        m = fj.Chain(fj.Dense(3, 4), fj.Dense(4, 1))
        x, y = np.ones((8, 3), np.float32), np.ones((8, 1), np.float32)
        tx = optax.adam(0.01)
        fj.train_(lambda x, y: fj.mse(m(x), y), m, [(x, y)], tx)
        moments = fj.setup(tx, m).state  # the state stored for tx and these params
        refs = [weakref.ref(a) for a in jax.tree_util.tree_leaves(moments) if a.ndim]
        return refs + [weakref.ref(tx.update), weakref.ref(tx.init)]  # and tx itself

    refs = train_once()
    assert len(refs) > 2
    gc.collect()  # the params' weakref callbacks drop the stored state...
    gc.collect()  # ...whose leaves (a cycle of leaf and cell) go in the next pass
    assert sum(r() is not None for r in refs) == 0


class _Loss:
    """A plain Python class used as a loss closure."""

    def __init__(self, a):
        self.a = a

    def __call__(self, x):
        return x @ self.a


def _closure(a, p):
    f = fj.track(lambda x: x @ a)
    return lambda: fj.back_(f(p).sum())


def _plain_class(a, p):
    f = fj.track(_Loss(a))
    return lambda: fj.back_(f(p).sum())


def _jitted_closure(a, p):
    f = fj.track(jax.jit(lambda x: x @ a))  # a user's jitted function: held weakly too
    return lambda: fj.back_(f(p).sum())


STEPS = {"closure": _closure, "class": _plain_class, "jitted closure": _jitted_closure}


@pytest.mark.parametrize("kind", list(STEPS))
def test_the_arrays_a_dead_tracked_function_captured_are_freed(kind):
    refs = []
    for i in range(40):
        a = jax.numpy.full((16, 16), float(i + 1), np.float32)
        p = fj.param(np.ones((2, 16), np.float32))
        step = STEPS[kind](a, p)
        for _ in range(2):  # the second time compiles the replay
            step()
        np.testing.assert_allclose(fj.grad(p), np.full((2, 16), 32.0 * (i + 1)))
        refs.append(weakref.ref(a))
        del step, a, p
    gc.collect()
    alive = sum(r() is not None for r in refs)
    assert alive == 0, f"{alive} of 40 arrays still alive"


def _boom(_):
    raise ValueError("boom")


def _jit_arrays(kind):
    """A model used through ``fluxjax.jit`` (its first trace finds the params and retraces);
    weak references to the model and the arrays its leaves held."""
    m = fj.Chain(fj.Dense(3, 4), LAYERS[kind](), fj.Dense(4, 1))
    x = np.ones((2, 5, 3), np.float32)
    arrays = [p.data for p in fj.params(m)] + [s.data for s in fj.states(m)]
    ps = fj.params(m)

    def step(x):
        loss = m(x).sum()
        fj.back_(loss)
        for p in ps:
            fj.update_(p, -0.1 * fj.grad(p))
        return loss

    jitted = fj.jit(step)
    for _ in range(2):
        jitted(x)
    fj.jit(lambda x: m(x))(x)
    return [weakref.ref(r) for r in (m, jitted, *arrays)]


@pytest.mark.parametrize("kind", list(LAYERS))
def test_a_model_used_through_fluxjax_jit_is_freed_arrays_included(kind):
    refs = _jit_arrays(kind)
    gc.collect()
    alive = [r() for r in refs if r() is not None]
    assert alive == [], [type(a).__name__ for a in alive]


def test_an_error_inside_fluxjax_jit_leaves_nothing_alive():
    def fail_once():
        m = fj.Dense(3, 4)
        arrays = [p.data for p in fj.params(m)]
        with pytest.raises(ValueError, match="boom"):
            fj.jit(lambda x: _boom(m(x)))(np.ones((3, 3), np.float32))
        return [weakref.ref(r) for r in (m, *arrays)]

    refs = fail_once()
    gc.collect()
    assert sum(r() is not None for r in refs) == 0


def _checkpointed(m, x):
    return fj.checkpoint(m, x)


def _checkpointed_closure(m, x):
    return fj.checkpoint(lambda v: m(v), x)


def _tracked_model(m, x):
    return fj.track(m)(x)


READERS = {"checkpoint": _checkpointed, "closure": _checkpointed_closure, "track": _tracked_model}


@pytest.mark.parametrize("way", list(READERS))
def test_a_model_whose_params_an_op_reads_by_itself_is_freed(way):
    """``checkpoint(m, x)``/``track(m)``: the op reads m's params itself (not as arguments);
    no cache keeps m, its params or their arrays after the graph is gone."""

    def use():
        m = fj.Chain(fj.Dense(3, 4), fj.Dense(4, 1))
        x = np.ones((2, 3), np.float32)
        for _ in range(2):  # the second time compiles the replay
            fj.back_(READERS[way](m, x).sum())
        ps = fj.params(m)
        twin = lambda a: ((x @ a[0].T + a[1]) @ a[2].T + a[3]).sum()  # noqa: E731
        for p, g in zip(ps, jax.grad(twin)([p.data for p in ps])):
            assert_close(fj.grad(p), 2 * g)  # two back_ calls accumulate
        return [weakref.ref(r) for r in (m, *ps, *(p.data for p in ps))]

    refs = use()
    gc.collect()
    alive = [r() for r in refs if r() is not None]
    assert alive == [], [type(a).__name__ for a in alive]


def test_a_dead_hook_function_and_what_it_captured_are_freed():
    def use(i):
        a = jax.numpy.full(3, float(i + 2))
        p = fj.param(np.ones(3, np.float32))
        h = lambda g: g * a  # noqa: E731
        for _ in range(2):
            fj.back_(fj.hook(h, p * 2).sum())
        np.testing.assert_allclose(fj.grad(p), np.full(3, 4.0 * (i + 2)))  # 2 steps of 2·a
        return [weakref.ref(a), weakref.ref(h), weakref.ref(p)]

    refs = [r for i in range(3) for r in use(i)]
    gc.collect()
    alive = [r() for r in refs if r() is not None]
    assert alive == [], [type(a).__name__ for a in alive]
