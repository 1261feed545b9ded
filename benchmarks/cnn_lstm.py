"""A CNN step and an LSTM step: fluxjax against a hand-written `jax.jit` step, Equinox,
Flax NNX and PyTorch.

    python -m benchmarks.cnn_lstm [--rounds 7] [--block 0.2]

CNN: a batch of 32 8×8 single-channel images, `Conv((3,3),1,16,relu; pad=1)`,
`MaxPool((2,2))`, `Conv((3,3),16,32,relu; pad=1)`, `MaxPool((2,2))`, flatten,
`Dense(128,10)`. LSTM: a batch of 32 sequences of 12 steps of 4 features, `LSTM(4,32)`,
the last output, `Dense(32,4)`. Both: mean squared error against fixed random targets,
Adam (lr 1e-3), float32, one random batch reused every step. Each contender is timed per
training step with `_harness.interleave` (medians over rounds), and reported as a ratio to
the hand-written `jax.jit` step.
"""

from __future__ import annotations

import argparse

import jax
import jax.numpy as jnp
import numpy as np
import optax

import fluxjax as fj
from benchmarks._harness import Step, interleave

BATCH, LR, PER_CALL, SCAN = 32, 1e-3, 50, 50
rng = np.random.default_rng(0)
DATA = {
    "cnn": (
        rng.standard_normal((BATCH, 8, 8, 1), np.float32),
        rng.standard_normal((BATCH, 10), np.float32),
    ),
    "lstm": (
        rng.standard_normal((BATCH, 12, 4), np.float32),
        rng.standard_normal((BATCH, 4), np.float32),
    ),
}


def _mse(a, b):
    return jnp.mean((a - b) ** 2)


# ---- fluxjax ------------------------------------------------------------------------------


def _fj_model(task):
    fj.seed(0)
    if task == "cnn":
        return fj.Chain(fj.Conv((3, 3), 1, 16, fj.relu, pad=1), fj.MaxPool((2, 2)),
                        fj.Conv((3, 3), 16, 32, fj.relu, pad=1), fj.MaxPool((2, 2)),
                        lambda h: h.reshape(h.shape[0], -1), fj.Dense(128, 10))  # fmt: skip
    return fj.Chain(fj.LSTM(4, 32), lambda h: h[:, -1], fj.Dense(32, 4))


def _fj_loss(task, m):
    def loss(x, y):
        if task == "lstm":
            fj.reset_(m)
        return fj.mse(m(x), y)

    return loss


def make_fj_train(task):
    m, x, y = _fj_model(task), *DATA[task]
    loss, ps, opt, data = _fj_loss(task, m), fj.params(m), fj.ADAM(LR), [(x, y)] * PER_CALL
    return Step(lambda: fj.train_(loss, ps, data, opt, progress=False), steps=PER_CALL)


def make_fj_scan(task):
    m, x, y = _fj_model(task), *DATA[task]
    loader = fj.DataLoader((np.concatenate([x] * SCAN), np.concatenate([y] * SCAN)), BATCH)
    loss, ps, opt = _fj_loss(task, m), fj.params(m), fj.ADAM(LR)
    run = lambda: fj.train_(loss, ps, loader, opt, progress=False, strategy="scan")  # noqa: E731
    return Step(run, steps=SCAN)


# ---- hand-written jax.jit ------------------------------------------------------------------


def _conv(x, w, b):
    dn = jax.lax.conv_dimension_numbers(x.shape, w.shape, ("NHWC", "HWIO", "NHWC"))
    return jax.nn.relu(jax.lax.conv_general_dilated(x, w, (1, 1), "SAME", dimension_numbers=dn) + b)


def _pool(x):
    return jax.lax.reduce_window(x, -jnp.inf, jax.lax.max, (1, 2, 2, 1), (1, 2, 2, 1), "VALID")


def _jax_forward(task, p, x):
    if task == "cnn":
        h = _pool(_conv(_pool(_conv(x, p["w1"], p["b1"])), p["w2"], p["b2"]))
        return h.reshape(x.shape[0], -1) @ p["W"] + p["b"]

    def cell(hc, xt):
        h, c = hc
        i, f, g, o = jnp.split(xt @ p["Wi"] + h @ p["Wh"] + p["bl"], 4, axis=-1)
        c = jax.nn.sigmoid(f) * c + jax.nn.sigmoid(i) * jnp.tanh(g)
        h = jax.nn.sigmoid(o) * jnp.tanh(c)
        return (h, c), None

    zeros = jnp.zeros((x.shape[0], 32))
    (h, _), _ = jax.lax.scan(cell, (zeros, zeros), jnp.swapaxes(x, 0, 1))
    return h @ p["W"] + p["b"]


def make_jax_jit(task):
    k = iter(jax.random.split(jax.random.key(0), 8))
    n = lambda *s: 0.1 * jax.random.normal(next(k), s)  # noqa: E731
    if task == "cnn":
        p = dict(w1=n(3, 3, 1, 16), b1=n(16), w2=n(3, 3, 16, 32), b2=n(32), W=n(128, 10), b=n(10))
    else:
        p = dict(Wi=n(4, 128), Wh=n(32, 128), bl=n(128), W=n(32, 4), b=n(4))
    tx, (x, y) = optax.adam(LR), (jnp.asarray(a) for a in DATA[task])
    state = [p, tx.init(p)]

    @jax.jit
    def step(p, s, x, y):
        l, g = jax.value_and_grad(lambda p: _mse(_jax_forward(task, p, x), y))(p)
        u, s = tx.update(g, s, p)
        return optax.apply_updates(p, u), s, l

    def run():
        state[0], state[1], l = step(*state, x, y)
        return l

    return Step(run)


# ---- Equinox, Flax NNX, PyTorch -------------------------------------------------------------


def make_equinox(task):
    import equinox as eqx

    k = jax.random.split(jax.random.key(0), 4)
    if task == "cnn":
        conv = lambda i, o, key: eqx.nn.Conv2d(i, o, 3, padding=1, key=key)  # noqa: E731
        pool, relu = eqx.nn.MaxPool2d(2, 2), eqx.nn.Lambda(jax.nn.relu)
        head = [eqx.nn.Lambda(jnp.ravel), eqx.nn.Linear(128, 10, key=k[2])]
        model = eqx.nn.Sequential(
            [conv(1, 16, k[0]), relu, pool, conv(16, 32, k[1]), relu, pool, *head]
        )
        one = lambda m, x: m(jnp.transpose(x, (2, 0, 1)))  # noqa: E731  (channels first, per sample)
    else:
        model = (eqx.nn.LSTMCell(4, 32, key=k[0]), eqx.nn.Linear(32, 4, key=k[1]))

        def one(m, xs):
            hc, _ = jax.lax.scan(
                lambda hc, xt: (m[0](xt, hc), None), (jnp.zeros(32), jnp.zeros(32)), xs
            )
            return m[1](hc[0])

    tx, (x, y) = optax.adam(LR), (jnp.asarray(a) for a in DATA[task])
    state = [model, tx.init(eqx.filter(model, eqx.is_inexact_array))]

    @eqx.filter_jit
    def step(m, s, x, y):
        l, g = eqx.filter_value_and_grad(lambda m: _mse(jax.vmap(lambda v: one(m, v))(x), y))(m)
        u, s = tx.update(g, s, eqx.filter(m, eqx.is_inexact_array))
        return eqx.apply_updates(m, u), s, l

    def run():
        state[0], state[1], l = step(*state, x, y)
        return l

    return Step(run)


def make_flax_nnx(task):
    from flax import nnx

    r = nnx.Rngs(0)
    if task == "cnn":

        class Net(nnx.Module):
            def __init__(self):
                self.c1, self.c2 = nnx.Conv(1, 16, (3, 3), rngs=r), nnx.Conv(16, 32, (3, 3), rngs=r)
                self.out = nnx.Linear(128, 10, rngs=r)

            def __call__(self, x):
                pool = lambda h: nnx.max_pool(h, (2, 2), (2, 2))  # noqa: E731
                h = pool(jax.nn.relu(self.c2(pool(jax.nn.relu(self.c1(x))))))
                return self.out(h.reshape(h.shape[0], -1))

    else:

        class Net(nnx.Module):
            def __init__(self):
                self.rnn = nnx.RNN(nnx.LSTMCell(4, 32, rngs=r))
                self.out = nnx.Linear(32, 4, rngs=r)

            def __call__(self, x):
                return self.out(self.rnn(x)[:, -1])

    model = Net()
    opt = nnx.Optimizer(model, optax.adam(LR), wrt=nnx.Param)
    x, y = (jnp.asarray(a) for a in DATA[task])

    @nnx.jit(donate_argnames=("model", "opt"))
    def step(model, opt, x, y):
        l, g = nnx.value_and_grad(lambda m: _mse(m(x), y))(model)
        opt.update(model, g)
        return l

    return Step(lambda: step(model, opt, x, y))


def make_torch(task):
    import torch

    torch.set_num_threads(2)
    torch.manual_seed(0)
    nn = torch.nn
    if task == "cnn":
        model = nn.Sequential(nn.Conv2d(1, 16, 3, padding=1), nn.ReLU(), nn.MaxPool2d(2),
                              nn.Conv2d(16, 32, 3, padding=1), nn.ReLU(), nn.MaxPool2d(2),
                              nn.Flatten(), nn.Linear(128, 10))  # fmt: skip
        x = torch.from_numpy(DATA[task][0]).permute(0, 3, 1, 2).contiguous()
        forward = model
    else:
        lstm, out = nn.LSTM(4, 32, batch_first=True), nn.Linear(32, 4)
        model = nn.ModuleList([lstm, out])
        x = torch.from_numpy(DATA[task][0])
        forward = lambda v: out(lstm(v)[0][:, -1])  # noqa: E731
    y = torch.from_numpy(DATA[task][1])
    opt = torch.optim.Adam(model.parameters(), lr=LR)

    def run():
        opt.zero_grad()
        l = torch.nn.functional.mse_loss(forward(x), y)
        l.backward()
        opt.step()
        return l

    return Step.eager(run)


CONTENDERS = {
    "jax.jit": make_jax_jit,
    "fluxjax train_": make_fj_train,
    "fluxjax train_ scan": make_fj_scan,
    "equinox": make_equinox,
    "flax nnx": make_flax_nnx,
    "torch": make_torch,
}


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=7)
    parser.add_argument("--block", type=float, default=0.2, help="seconds per block")
    args = parser.parse_args(argv)
    print("| task | " + " | ".join(CONTENDERS) + " |")
    print("|---|" + "---|" * len(CONTENDERS))
    for task in ("cnn", "lstm"):
        steps = {name: make(task) for name, make in CONTENDERS.items()}
        res = interleave(steps, rounds=args.rounds, block_s=args.block)
        base = res["jax.jit"].median
        cells = [f"{r.median:,.0f} µs ({r.median / base:.2f}×)" for r in res.values()]
        print(f"| {task} | " + " | ".join(cells) + " |", flush=True)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
