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
    if style == "implicit":
        loss = lambda x, y: fj.mse(m(x), y)  # noqa: E731
        fj.train_(loss, m, loader, opt)
        fj.train_(loss, m, [(x[:4], y[:4])], opt, jit=False)
    else:
        loss = lambda m, x, y: fj.mse(m(x), y)  # noqa: E731
        fj.train_(loss, m, loader, fj.setup(opt, m))
    evaluate = fj.jit(lambda x: m(x))
    evaluate(x[:4])
    fj.testmode_(m)
    evaluate(x[:4])
    refs = [m, loader, loss, evaluate, *fj.params(m), *fj.states(m)]
    if optimiser == "flux":
        refs.append(opt)
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


def test_a_raw_optax_transformations_moments_go_with_the_model():
    def train_once():
        m = fj.Chain(fj.Dense(3, 4), fj.Dense(4, 1))
        x, y = np.ones((8, 3), np.float32), np.ones((8, 1), np.float32)
        tx = optax.adam(0.01)
        fj.train_(lambda x, y: fj.mse(m(x), y), m, [(x, y)], tx)
        moments = fj.setup(tx, m).state  # the state stored for tx and these params
        return [weakref.ref(a) for a in jax.tree_util.tree_leaves(moments) if a.ndim]

    refs = train_once()
    assert refs
    gc.collect()  # the params' weakref callbacks drop the stored state...
    gc.collect()  # ...whose leaves (a cycle of leaf and cell) go in the next pass
    assert sum(r() is not None for r in refs) == 0
