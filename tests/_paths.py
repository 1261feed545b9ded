"""Run one layer on every path (eager + ``back_``, ``gradient``, ``jax.jit``, ``fluxjax.jit``,
``train_`` compiled and eager) and compare each with an independent twin.

``twin(arrays, *xs)`` is a plain JAX function of the model's param arrays (in
``params(model)`` order) written without fluxjax; ``jax.grad`` of it is the oracle for the
gradients, and one ``Descent`` step of it the oracle for ``train_``.
"""

from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np

import fluxjax as fj
from tests._tol import assert_close

STEP = 0.1


def _weights(y, seed=1):
    """Fixed random weights shaped like ``y``: the loss ``Σ y·R`` reaches every output."""
    return jax.tree_util.tree_map(
        lambda a: jnp.asarray(np.random.default_rng(seed).normal(size=np.shape(a)), jnp.float32),
        y,
    )


def _dot(y, r):
    parts = [fj.numpy.sum(a * b) for a, b in zip(jax.tree_util.tree_leaves(y), r)]
    return sum(parts[1:], parts[0])


def check_paths(make, xs, twin, *, tol=None, pick=lambda y: y):
    """Every path of ``make()(*xs)`` (``pick`` chooses what the loss reads) against ``twin``.

    ``make`` builds the model from ``fj.seed(0)``, so each path starts from equal params.
    Returns the model of the eager path.
    """
    tol = tol or {}

    def fresh():
        fj.seed(0)
        return make()

    model = fresh()
    arrays = [p.data for p in fj.params(model)]
    want_y = pick(twin(arrays, *xs))
    r = [jnp.asarray(a) for a in jax.tree_util.tree_leaves(_weights(want_y))]

    def pure(arrays):
        return _dot(pick(twin(arrays, *xs)), r)

    want_g = jax.grad(pure)(arrays)

    def loss(m, *xs):
        return _dot(pick(m(*xs)), r)

    # eager forward and back_
    got = jax.tree_util.tree_leaves(pick(model(*xs)))
    for a, b in zip(got, jax.tree_util.tree_leaves(want_y), strict=True):
        assert_close(fj.data(a), b, **tol, err_msg="eager output")
    fj.back_(loss(model, *xs))
    _same_grads([p.grad for p in fj.params(model)], want_g, tol, "back_")

    # gradient over Params and over the model as a tree
    m2 = fresh()
    gs = fj.gradient(lambda: loss(m2, *xs), fj.params(m2))
    _same_grads([gs[p] for p in fj.params(m2)], want_g, tol, "gradient(Params)")
    (tree,) = fj.gradient(lambda m: loss(m, *xs), m2)
    _same_grads([p.data for p in fj.params(tree)], want_g, tol, "gradient(model)")

    # jax.jit over the model as a pytree
    m3 = fresh()
    out = jax.jit(lambda m, *xs: pick(m(*xs)))(m3, *xs)
    for a, b in zip(jax.tree_util.tree_leaves(out), jax.tree_util.tree_leaves(want_y)):
        assert_close(a, b, **tol, err_msg="jax.jit output")
    g = jax.jit(jax.grad(lambda m, *xs: loss(m, *xs)))(m3, *xs)
    _same_grads([p.data for p in fj.params(g)], want_g, tol, "jax.jit(jax.grad)")

    # fluxjax.jit: back_ inside one compiled step
    m5 = fresh()

    def step(*xs):
        value = loss(m5, *xs)
        fj.back_(value)
        return value

    fj.jit(step)(*xs)
    _same_grads([p.grad for p in fj.params(m5)], want_g, tol, "fluxjax.jit + back_")

    # one train_ step, compiled and eager: params move by -STEP·gradient
    for jit in (True, False):
        m4 = fresh()
        fj.train_(lambda *xs, m=m4: loss(m, *xs), m4, [tuple(xs)], fj.Descent(STEP), jit=jit)
        moved = [p.data for p in fj.params(m4)]
        want = [a - STEP * b for a, b in zip(arrays, want_g)]
        _same_grads(moved, want, tol, f"train_(jit={jit})")
    return model


def _same_grads(got, want, tol, where):
    assert len(got) == len(want), where
    for i, (a, b) in enumerate(zip(got, want)):
        assert_close(a, b, **{"rtol": 2e-5, "atol": 2e-6, **tol}, err_msg=f"{where}, param {i}")
