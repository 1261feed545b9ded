"""The recorded graph: printing, the compiled-replay cache, and its recompile warning.

A large graph runs uncompiled the first time its structure is seen and compiled from the
second time on (a small one compiles at once); with ``fresh_cache`` every graph counts as
large, so these tests check that the three runs (uncompiled, compiling, cached) agree,
that a steady training loop stops adding cache entries, and that the warning fires for a
function re-made at every step and only then.
"""

from __future__ import annotations

import warnings

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from _tol import assert_close

import fluxjax.numpy as fnp
from fluxjax import Tracked, back_, data, grad, param, track, update_
from fluxjax.tracker import Cache, _graph


def uniform(rng, *shape, lo=-1.0, hi=1.0):
    return rng.uniform(lo, hi, shape).astype(np.float32)


@pytest.fixture
def fresh_cache(monkeypatch):
    """An empty compiled-replay cache and a re-armed recompile warning for this test."""
    monkeypatch.setattr(_graph, "_SEEN", Cache(1024, "test replays"))
    monkeypatch.setattr(_graph, "_LOOSE", Cache(256, "test misses"))
    monkeypatch.setattr(_graph, "_WARNED", Cache(1, "test warning"))
    monkeypatch.setattr(_graph, "SMALL_GRAPH", 0)  # every graph takes the uncompiled first run
    return _graph


def test_a_small_graph_compiles_the_first_time_it_is_seen(monkeypatch):
    monkeypatch.setattr(_graph, "_SEEN", Cache(1024, "test replays"))
    W = param([1.0, 2.0])
    back_((W * W).sum())
    compiled = [f for f in _graph._SEEN.values() if f is not None]
    assert len(compiled) == 1 and hasattr(compiled[0], "lower")  # a jax.jit function
    assert_close(grad(W), [2.0, 4.0])


def test_a_large_graph_runs_uncompiled_first_then_compiles(monkeypatch):
    monkeypatch.setattr(_graph, "_SEEN", Cache(1024, "test replays"))
    monkeypatch.setattr(_graph, "SMALL_GRAPH", 3)
    W = param([0.5, -1.0])
    for run in range(2):
        x = W
        for _ in range(5):
            x = fnp.sin(x) * 1.5
        back_(x.sum())
        W.grad = None  # the same structure next time (an existing .grad changes the key)
        (entry,) = _graph._SEEN.values()
        assert entry is None if run == 0 else hasattr(entry, "lower")


# -- printing ------------------------------------------------------------------------------
def test_repr_of_a_tracked_real():
    assert repr(param(2)) == "2.0 (tracked)"
    assert repr(param(-0.5)) == "-0.5 (tracked)"
    assert repr(param(1.0) * 3) == "3.0 (tracked)"
    assert str(param(2)) == "2.0 (tracked)"


def test_repr_of_a_tracked_array():
    r = repr(param(np.arange(15).reshape(3, 5) / 4))
    assert r.startswith("Tracked ")
    assert "3×5" in r and "float32" in r
    assert r.index("3×5") < r.index("float32")
    assert "0.25" in r and "3.5" in r  # then the values
    assert str(param(np.ones(4)) * 2).startswith("Tracked 4 float32")


def test_format_of_a_tracked_real():
    assert format(param(2.0) / 3, ".2f") == "0.67"
    assert f"loss = {param(1.5) ** 2:.1f}" == "loss = 2.2"


# -- compiled replay -----------------------------------------------------------------------
def _step(W, b, x, y):
    l = ((fnp.tanh(W @ x) + b - y) ** 2).sum()
    back_(l)
    gW, gb = grad(W), grad(b)
    update_(W, -0.1 * gW)
    update_(b, -0.1 * gb)
    return float(l), np.asarray(gW), np.asarray(gb)


def _twin_step(W, b, x, y):
    def loss(W, b):
        return ((jnp.tanh(W @ x) + b - y) ** 2).sum()

    l, (gW, gb) = jax.value_and_grad(loss, argnums=(0, 1))(W, b)
    return W - 0.1 * gW, b - 0.1 * gb, float(l), gW, gb


def test_steady_loop_stops_adding_cache_entries(fresh_cache, rng):
    Wv, bv, x, y = uniform(rng, 2, 5), uniform(rng, 2), uniform(rng, 5), uniform(rng, 2)
    W, b = param(Wv), param(bv)
    keys, compiled = [], []
    for _ in range(5):
        _step(W, b, x, y)
        keys.append(list(fresh_cache._SEEN))
        compiled.append(sum(fn is not None for fn in fresh_cache._SEEN.values()))
    assert keys[1] == keys[2] == keys[3] == keys[4]  # no new entry after the second step
    assert compiled[2] == compiled[3] == compiled[4] >= 1  # compiled once, then reused


def test_compiled_replay_equals_the_first_uncompiled_run(fresh_cache, rng):
    Wv, bv, x, y = uniform(rng, 2, 5), uniform(rng, 2), uniform(rng, 5), uniform(rng, 2)
    W, b = param(Wv), param(bv)
    tW, tb = jnp.asarray(Wv), jnp.asarray(bv)
    for step in range(5):  # run 1 uncompiled, 2 compiles, 3.. cached
        l, gW, gb = _step(W, b, x, y)
        tW, tb, tl, tgW, tgb = _twin_step(tW, tb, x, y)
        assert l == pytest.approx(tl, rel=1e-5), step
        np.testing.assert_allclose(gW, tgW, rtol=1e-5, atol=1e-6)
        np.testing.assert_allclose(gb, tgb, rtol=1e-5, atol=1e-6)
    np.testing.assert_allclose(np.asarray(W.data), tW, rtol=1e-5, atol=1e-6)
    assert any(fn is not None for fn in fresh_cache._SEEN.values())


def test_a_tracked_function_sees_the_current_value_of_its_closure(fresh_cache):
    """A Python number the lifted function reads from its closure (a schedule, a
    temperature) may change between steps: the compiled replay (steps 3 and 4) must see
    the new value, as the uncompiled first run and the compiling second run do."""
    scale = 2.0
    scaled = track(lambda x: x * scale)
    for s in [2.0, 3.0, 4.0, 5.0]:
        scale = s
        W = param(np.ones(2))
        l = (scaled(W) + 0).sum()
        back_(l)
        assert float(l) == 2 * s
        np.testing.assert_array_equal(np.asarray(W.grad), [s, s])


def test_reading_values_compiled_or_not_gives_the_same_numbers(fresh_cache, rng):
    a = uniform(rng, 3, 4)
    runs = []
    for _ in range(4):
        W = param(a)
        runs.append(np.asarray(data(fnp.exp(W) @ W.T - W.sum(axis=1))))
    for r in runs[1:]:
        np.testing.assert_array_equal(r, runs[0])
    np.testing.assert_allclose(runs[0], np.exp(a) @ a.T - a.sum(axis=1), rtol=1e-5)


def test_a_cached_graph_never_reuses_a_different_static_argument(fresh_cache, rng):
    x = param(np.ones(3))
    for _ in range(3):  # 0.0 is compiled into the cached graph
        np.testing.assert_array_equal(np.asarray(data(1.0 / (x * 0.0))), np.full(3, np.inf))
    np.testing.assert_array_equal(np.asarray(data(1.0 / (x * -0.0))), np.full(3, -np.inf))


def test_dtype_is_known_before_computing_and_matches_the_data():
    b = param(jnp.ones(3, jnp.bfloat16))
    for other in [jnp.asarray(1.0), jnp.ones((), jnp.float32), 1.0, np.float32(1.0)]:
        y = b + other
        assert y.dtype == data(y).dtype, other


# -- the recompile warning -----------------------------------------------------------------
def test_warns_when_a_function_is_remade_at_every_step(fresh_cache, rng):
    W = param(uniform(rng, 3))
    with pytest.warns(UserWarning, match="recompiled"):
        for _ in range(5):
            double = track(lambda v: v * 2)  # a new function object each step
            back_(double(W).sum())


def test_no_warning_in_a_steady_loop(fresh_cache, rng):
    W, b = param(uniform(rng, 2, 5)), param(uniform(rng, 2))
    x, y = uniform(rng, 5), uniform(rng, 2)
    double = track(lambda v: v * 2)  # defined once, outside the loop
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        for _ in range(5):
            back_(((double(W) @ x + b - y) ** 2).sum())
            _step(W, b, x, y)


def test_no_warning_when_reading_every_output_of_a_multi_output_op(fresh_cache, rng):
    """``q, r = qr(W)``; reading q and r (or every piece of a split) is not a user's
    function being re-made, and there is nothing to "pass as an array"."""
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        W = param(uniform(rng, 4, 4))
        parts = fnp.split(W, 4)
        assert all(isinstance(p, Tracked) for p in parts)
        for p, want in zip(parts, np.split(np.asarray(W.data), 4)):
            np.testing.assert_array_equal(np.asarray(data(p)), want)
        q, r = fnp.linalg.qr(W * 1.0)
        np.testing.assert_allclose(np.asarray(data(q) @ data(r)), np.asarray(W.data), atol=1e-5)


def test_nested_lists_of_tracked_values_are_tracked(rng):
    a, b = uniform(rng, 2, 2), uniform(rng, 2, 2)
    A, B = param(a), param(b)
    blocked = fnp.block([[A, B], [B, A]])
    assert isinstance(blocked, Tracked)
    np.testing.assert_array_equal(np.asarray(data(blocked)), np.block([[a, b], [b, a]]))
    back_((blocked * np.arange(16.0).reshape(4, 4)).sum())
    w = np.arange(16.0).reshape(4, 4)
    assert_close(np.asarray(A.grad), w[:2, :2] + w[2:, 2:])


def test_nested_outputs_are_tracked(rng):
    """``histogramdd`` returns ``(hist, [edges, ...])``: a list inside the output tuple."""
    a = uniform(rng, 5, 2)
    hist, edges = fnp.histogramdd(param(a), bins=3)
    want_hist, want_edges = jnp.histogramdd(a, bins=3)
    np.testing.assert_array_equal(np.asarray(data(hist)), want_hist)
    assert len(edges) == 2 and all(isinstance(e, Tracked) for e in edges)
    for e, w in zip(edges, want_edges):
        assert_close(np.asarray(data(e)), w)


def test_a_cache_key_keeps_jax_functions_and_holds_a_users_jitted_function_weakly():
    """``jnp.tanh`` lives as long as the program: a key keeps it as it is (compared by
    identity); a user's ``jax.jit`` of a closure is held weakly (the entry goes with it)."""
    from fluxjax.tracker._cache import WeakFn, hold_weakly

    assert hold_weakly(jnp.tanh, None) is jnp.tanh
    assert hold_weakly(jnp.matmul, None) is jnp.matmul
    assert hold_weakly(uniform, None) is uniform  # a module's plain function
    a = jnp.ones(2)
    user = jax.jit(lambda x: x * a)
    held = hold_weakly(user, None)
    assert isinstance(held, WeakFn) and held == user and float(held(2.0)[0]) == 2.0
