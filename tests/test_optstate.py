"""OptState as a value (save/load), and the explicit style's checks: update_ and setup
reject what is not shaped like the model, naming where, and change nothing."""

import os

import jax.numpy as jnp
import numpy as np
import pytest

import fluxjax as fj
from fluxjax.tracker import Params

X = jnp.asarray(np.random.default_rng(0).standard_normal((6, 3)), jnp.float32)
Y = jnp.asarray(np.random.default_rng(1).standard_normal((6, 1)), jnp.float32)


def model():
    fj.seed(1)
    return fj.Chain(fj.Dense(3, 4, fj.relu), fj.Dense(4, 1))


def loss(m, x, y):
    return fj.mse(m(x), y)


def snapshot(m, s):
    return [np.asarray(p.data) for p in fj.params(m)], {k: v.copy() for k, v in s.arrays().items()}


def same(a, b):
    assert all(np.array_equal(u, v) for u, v in zip(a[0], b[0], strict=True))
    assert a[1].keys() == b[1].keys() and all(np.array_equal(a[1][k], b[1][k]) for k in a[1])


def test_save_and_load_an_optstate_resumes_adam_exactly(tmp_path):
    path = os.path.join(tmp_path, "opt.safetensors")
    m1, m2 = model(), model()
    s1 = fj.setup(fj.ADAM(0.01), m1)
    for _ in range(3):
        fj.update_(s1, m1, fj.withgradient(loss, m1, X, Y)[1])
    fj.save(path, s1)
    fj.save(path + ".model", m1)
    fj.load(path + ".model", m2)
    s2 = fj.setup(fj.ADAM(0.01), m2)
    assert fj.load(path, s2) is s2
    assert s2.arrays()["0.0.count"] == 3
    for _ in range(2):
        fj.update_(s1, m1, fj.withgradient(loss, m1, X, Y)[1])
        fj.update_(s2, m2, fj.withgradient(loss, m2, X, Y)[1])
    same(snapshot(m1, s1), snapshot(m2, s2))


def test_loading_the_state_of_another_optimiser_or_model_raises(tmp_path):
    path = os.path.join(tmp_path, "opt.safetensors")
    fj.save(path, fj.setup(fj.ADAM(), model()))
    m = model()
    s = fj.setup(fj.Momentum(), m)
    before = snapshot(m, s)
    with pytest.raises(ValueError, match="another optimiser"):
        fj.load(path, s)
    same(before, snapshot(m, s))
    fj.seed(2)
    wide = fj.Chain(fj.Dense(3, 8, fj.relu), fj.Dense(8, 1))
    with pytest.raises(ValueError, match=r"0\.0\.mu\.0 has shape \(4, 3\) there, \(8, 3\) here"):
        fj.load(path, fj.setup(fj.ADAM(), wide))


def bad_grads(m):
    g = fj.withgradient(loss, m, X, Y)[1]
    fj.seed(3)
    other = fj.withgradient(loss, fj.Chain(fj.Dense(3, 8, fj.relu), fj.Dense(8, 1)), X, Y)[1]
    implicit = fj.gradient(lambda: loss(m, X, Y), fj.params(m))
    return [
        (fj.gradient(loss, m, X, Y), "a tuple where the model has a Chain.*pass its \\[0\\]"),
        (g.layers[0], "at the top is a Dense where the model has a Chain"),
        (implicit, "got Grads, the implicit style"),
        ([g.layers[0], g.layers[1]], "at the top is a list where the model has a Chain"),
        ("grads", "at the top is a str"),
        ({"layers": g.layers}, "at the top is a dict"),
        (None, "at the top is None where the model has params"),
        (other, r"grads at 0\.W has shape \(8, 3\), the param there has shape \(4, 3\)"),
    ]


@pytest.mark.parametrize("case", range(8))
def test_update_rejects_grads_not_shaped_like_the_model(case):
    m = model()
    s = fj.setup(fj.ADAM(), m)
    fj.update_(s, m, fj.withgradient(loss, m, X, Y)[1])
    grads, message = bad_grads(m)[case]
    before = snapshot(m, s)
    with pytest.raises(ValueError, match=message):
        fj.update_(s, m, grads)
    same(before, snapshot(m, s))


@pytest.mark.parametrize("thing", [3, object(), [1.0, 2.0], [], "model"])
def test_setup_of_something_without_params_raises(thing):
    with pytest.raises(ValueError, match="holding no params|is not a model"):
        fj.setup(fj.ADAM(), thing)


def test_train_with_a_rule_in_explicit_style_sets_it_up():
    m1, m2 = model(), model()
    data = [(X, Y)] * 4
    opt = fj.ADAM(0.01)
    l1 = fj.train_(loss, m1, data, opt)  # a rule, not setup(...)
    l2 = fj.train_(loss, m2, data, fj.setup(fj.ADAM(0.01), m2))
    np.testing.assert_array_equal(l1, l2)
    assert all(np.array_equal(a.data, b.data) for a, b in zip(fj.params(m1), fj.params(m2)))
    l1b = fj.train_(loss, m1, data, opt)  # continues opt's state, as the implicit style
    assert float(l1b[0]) < float(l1[-1])


def test_the_implicit_style_with_a_model_is_unchanged():
    m = model()
    losses = fj.train_(lambda x, y: loss(m, x, y), m, [(X, Y)] * 3, fj.Descent(0.1))
    assert losses.shape == (3,) and float(losses[-1]) < float(losses[0])
    assert isinstance(fj.params(m), Params)


def test_grads_with_no_gradient_for_any_param_raise():
    fj.seed(4)
    d = fj.Dense(3, 1)
    s = fj.setup(fj.Descent(0.1), d)
    before = np.asarray(d.W.data)
    bare = type(d).__new__(type(d))  # a Dense holding nothing: no gradient anywhere
    object.__setattr__(bare, "__dict__", {k: None for k in vars(d)})
    with pytest.raises(ValueError, match="holds no gradient for any param"):
        fj.update_(s, d, bare)
    assert np.array_equal(before, d.W.data)
