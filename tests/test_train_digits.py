"""An MLP trained with train_ on scikit-learn's bundled 8×8 digits (no download)."""

import jax
import numpy as np
from sklearn import datasets

from fluxjax.layers import Chain, Dense, params, relu
from fluxjax.train import ADAM, DataLoader, logitcrossentropy, onecold, onehotbatch, train_


def test_mlp_on_digits_reaches_95_percent():
    digits = datasets.load_digits()
    X = (digits.data / 16.0).astype(np.float32)  # (1797, 64), pixels 0..16
    y = digits.target
    order = np.random.default_rng(0).permutation(len(X))
    train, test = order[:1500], order[1500:]
    assert len(test) == 297
    Y = onehotbatch(y[train], range(10))

    keys = jax.random.split(jax.random.key(0), 2)
    model = Chain(Dense(64, 32, relu, key=keys[0]), Dense(32, 10, key=keys[1]))

    def loss(x, t):
        return logitcrossentropy(model(x), t)

    data = DataLoader((X[train], Y), 32, shuffle=True, key=1)
    losses = train_(loss, params(model), data, ADAM(0.01), epochs=15)
    assert losses.shape == (15 * 47,)
    accuracy = float(np.mean(np.asarray(onecold(model(X[test]))) == y[test]))
    assert accuracy > 0.95, accuracy
