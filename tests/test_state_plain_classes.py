"""Plain Python classes holding layers: registered with ``@fj.treelike`` every model
walker sees inside them; unregistered, each raises ``TypeError`` naming ``fj.treelike``
instead of finding "0 params" or leaving Dropout on."""

from __future__ import annotations

import numpy as np
import pytest

import fluxjax as fj


class Net:
    def __init__(self):
        fj.seed(0)
        self.l1, self.drop, self.l2 = fj.Dense(3, 4), fj.Dropout(0.5), fj.Dense(4, 1)

    def __call__(self, x):
        return self.l2(self.drop(self.l1(x)))


@fj.treelike
class Registered(Net):
    pass


class Holder:  # layers inside a list
    def __init__(self):
        self.layers = [fj.Dense(3, 1)]


X = np.ones((2, 3), np.float32)
WALKERS = {
    "params": lambda m: fj.params(m),
    "states": lambda m: fj.states(m),
    "testmode_": lambda m: fj.testmode_(m),
    "reset_": lambda m: fj.reset_(m),
    "setup": lambda m: fj.setup(fj.ADAM(), m),
    "gradient": lambda m: fj.gradient(lambda m: fj.numpy.sum(m(X)), m),
    "train_": lambda m: fj.train_(lambda x: fj.numpy.sum(m(x)), m, [X], fj.Descent(0.1)),
    "save": lambda m: fj.save("unused.safetensors", m),
}


@pytest.mark.parametrize("walker", list(WALKERS))
@pytest.mark.parametrize("make", [Net, Holder, lambda: [Net()]])
def test_an_unregistered_class_holding_layers_raises_naming_treelike(walker, make):
    with pytest.raises(TypeError, match=r"fj\.treelike"):
        WALKERS[walker](make())


def test_a_class_registered_with_the_decorator_is_walked():
    m = Registered()
    assert [p.shape for p in fj.params(m)] == [(4, 3), (4,), (1, 4), (1,)]
    fj.testmode_(m)
    assert m.drop.active is False
    assert_same = np.testing.assert_allclose
    assert_same(np.asarray(m(X)), np.asarray(m.l2(m.l1(X))))  # dropout is off
    gs = fj.gradient(lambda m: fj.numpy.sum(m(X)), m)[0]
    assert_same(np.asarray(gs.l2.b), [2.0])  # d/db of the sum over 2 rows
