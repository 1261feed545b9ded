"""The scenario of tests/test_state_paths.py: one stateful layer in a small chain, three
Descent steps on each path, then ``reset_`` and three more. Imported by the test and by
its ``devices=2`` child process (tests/_state_paths_child.py)."""

from __future__ import annotations

import numpy as np

import fluxjax as fj

LAYERS = {
    "BatchNorm": lambda: fj.BatchNorm(4),
    "InstanceNorm": lambda: fj.InstanceNorm(4),
    "GroupNorm": lambda: fj.GroupNorm(4, 2),
    "Dropout": lambda: fj.Dropout(0.3),
    "AlphaDropout": lambda: fj.AlphaDropout(0.3),
    "RNN": lambda: fj.RNN(4, 4),
    "LSTM": lambda: fj.LSTM(4, 4),
    "GRU": lambda: fj.GRU(4, 4),
}


def build(name):
    """``Chain(Dense(3, 4), layer, Dense(4, 1))`` on ``(n, 5, 3)``: a sequence for a
    recurrent layer, a spatial axis for a normalisation layer."""
    fj.seed(7)
    return fj.Chain(fj.Dense(3, 4), LAYERS[name](), fj.Dense(4, 1))


def batches(n=3, size=4):
    rng = np.random.default_rng(11)
    return [
        (
            rng.normal(size=(size, 5, 3)).astype(np.float32),
            rng.normal(size=(size, 5, 1)).astype(np.float32),
        )
        for _ in range(n)
    ]


def _explicit_loss(m, x, y):
    return fj.mse(m(x), y)


def _hand_loop(m, data, step):
    losses = []
    for x, y in data:
        losses.append(float(step(x, y)))
        fj.truncate_(m)  # what train_ does at the start of each step
    return losses


def train(path, m, data, lr=0.1):
    """The losses of ``len(data)`` steps of ``Descent(lr)`` on ``m`` along ``path``."""
    ps, opt = fj.params(m), fj.Descent(lr)
    loss = lambda x, y: fj.mse(m(x), y)  # noqa: E731

    def eager(x, y):
        l = loss(x, y)
        fj.back_(l)
        fj.update_(opt, ps, [p.grad for p in ps])
        return l

    def gradient(x, y):
        seen = []
        gs = fj.gradient(lambda: seen.append(loss(x, y)) or seen[-1], ps)
        fj.update_(opt, ps, gs)
        return seen[-1]

    if path == "eager":
        return _hand_loop(m, data, eager)
    if path == "gradient":
        return _hand_loop(m, data, gradient)
    if path == "jit":
        return _hand_loop(m, data, fj.jit(eager))
    if path in ("step", "train_eager"):
        return np.asarray(fj.train_(loss, m, data, opt, jit=path == "step")).tolist()
    if path == "scan":
        xs, ys = (np.concatenate(t) for t in zip(*data))
        loader = fj.DataLoader((xs, ys), batchsize=len(data[0][0]))
        return np.asarray(fj.train_(loss, m, loader, opt)).tolist()
    if path == "explicit":
        st = fj.setup(opt, m)
        return np.asarray(fj.train_(_explicit_loss, m, data, st)).tolist()
    if path == "devices":
        return np.asarray(fj.train_(loss, m, data, opt, devices=2)).tolist()
    raise ValueError(path)


def scenario(name, path):
    """``{"losses", "params", "states"}`` after 3 steps from a fresh model, and after
    ``reset_`` and 3 more steps (keys suffixed ``_reset``)."""
    m, data = build(name), batches()
    out = {"losses": np.asarray(train(path, m, data))}
    out["params"] = [np.asarray(p.data) for p in fj.params(m)]
    out["states"] = [np.asarray(s.data) for s in fj.states(m)]
    fj.reset_(m)
    out["losses_reset"] = np.asarray(train(path, m, data[::-1]))
    out["params_reset"] = [np.asarray(p.data) for p in fj.params(m)]
    out["states_reset"] = [np.asarray(s.data) for s in fj.states(m)]
    return out
