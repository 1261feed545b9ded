"""Training epochs over a DataLoader: fluxjax `train_` against hand-written JAX (a `jax.jit`
step in a Python loop, and one `lax.scan` per epoch), Equinox, Flax NNX and PyTorch.

    python -m benchmarks.epochs [--rounds 7] [--first 3] [--tasks cnn lstm] [--json FILE]

Tasks (batch 64, Adam lr 1e-3, logit cross-entropy, no shuffling, every batch full):
**cnn**, scikit-learn's 8×8 digits (the first 1,792 of 1,797, 28 batches):
`Conv((3,3),1,16,relu; pad=1)`, `MaxPool((2,2))`, `Conv((3,3),16,32,relu; pad=1)`,
`MaxPool((2,2))`, flatten, `Dense(128,10)`. **lstm**, 1,280 random sequences of 20 steps
of 8 features (20 batches), labelled by a fixed linear map of their mean: `LSTM(8,64)`,
the last output, `Dense(64,10)`.

Every contender runs whole epochs: the hand-written ones over batches already on the
device; fluxjax over a `DataLoader` of NumPy arrays, as a user writes it. Steady state:
`_harness.interleave` (one epoch per call, medians over interleaved rounds, one process).
First epoch: each contender's first call (tracing, compiling and one epoch) in a fresh
process of its own, `--first` processes per contender, alternated; median seconds.
A contender whose library is missing (PyTorch here, often) is skipped with a message.
"""

from __future__ import annotations

import argparse
import json
import statistics
import subprocess
import sys
import time

import jax
import jax.numpy as jnp
import numpy as np
import optax

import fluxjax as fj
from benchmarks._harness import Step, interleave
from benchmarks.cnn_lstm import _conv, _pool

B, LR, HIDDEN = 64, 1e-3, 64
BASELINE = "jax.jit loop"


def task_data(task):
    """``(X, Y)`` as NumPy float32 arrays: inputs, one-hot labels."""
    if task == "cnn":
        from sklearn.datasets import load_digits

        images, labels = load_digits(return_X_y=True)
        X = (images[:1792] / 16.0).astype(np.float32).reshape(-1, 8, 8, 1)
        return X, np.eye(10, dtype=np.float32)[labels[:1792]]
    rng = np.random.default_rng(0)
    X = rng.standard_normal((1280, 20, 8), np.float32)
    labels = np.argmax(X.mean(axis=1) @ rng.standard_normal((8, 10)), axis=1)
    return X, np.eye(10, dtype=np.float32)[labels]


def _xent(logits, y):
    return optax.softmax_cross_entropy(logits, y).mean()


# ---- hand-written JAX ---------------------------------------------------------------------


def _init(task):
    k = iter(jax.random.split(jax.random.key(0), 8))
    n = lambda *s: 0.1 * jax.random.normal(next(k), s)  # noqa: E731
    if task == "cnn":
        return dict(
            w1=n(3, 3, 1, 16), b1=n(16), w2=n(3, 3, 16, 32), b2=n(32), W=n(128, 10), b=n(10)
        )
    lstm = dict(Wi=n(8, 4 * HIDDEN), Wh=n(HIDDEN, 4 * HIDDEN), bl=n(4 * HIDDEN))
    return dict(**lstm, W=n(HIDDEN, 10), b=n(10))


def _forward(task, p, x):
    if task == "cnn":
        h = _pool(_conv(_pool(_conv(x, p["w1"], p["b1"])), p["w2"], p["b2"]))
        return h.reshape(x.shape[0], -1) @ p["W"] + p["b"]

    def cell(hc, xt):
        h, c = hc
        i, f, g, o = jnp.split(xt @ p["Wi"] + h @ p["Wh"] + p["bl"], 4, axis=-1)
        c = jax.nn.sigmoid(f) * c + jax.nn.sigmoid(i) * jnp.tanh(g)
        return (jax.nn.sigmoid(o) * jnp.tanh(c), c), None

    zeros = jnp.zeros((x.shape[0], HIDDEN))
    (h, _), _ = jax.lax.scan(cell, (zeros, zeros), jnp.swapaxes(x, 0, 1))
    return h @ p["W"] + p["b"]


def _jax_step(task, tx):
    def step(p, s, x, y):
        l, g = jax.value_and_grad(lambda p: _xent(_forward(task, p, x), y))(p)
        u, s = tx.update(g, s, p)
        return optax.apply_updates(p, u), s, l

    return step


def _device_batches(task):
    X, Y = task_data(task)
    return [(jnp.asarray(X[i : i + B]), jnp.asarray(Y[i : i + B])) for i in range(0, len(X), B)]


def make_jax_loop(task):
    tx, batches = optax.adam(LR), _device_batches(task)
    p = _init(task)
    state = [p, tx.init(p)]
    step = jax.jit(_jax_step(task, tx), donate_argnums=(0, 1))

    def run():
        for x, y in batches:
            state[0], state[1], l = step(*state, x, y)
        return l

    return Step(run, steps=len(batches))


def make_jax_scan(task):
    tx, batches = optax.adam(LR), _device_batches(task)
    xs, ys = jnp.stack([x for x, _ in batches]), jnp.stack([y for _, y in batches])
    p = _init(task)
    state = [p, tx.init(p)]
    step = _jax_step(task, tx)

    @jax.jit
    def epoch(p, s, xs, ys):
        def body(carry, xy):
            p, s, l = step(*carry, *xy)
            return (p, s), l

        (p, s), ls = jax.lax.scan(body, (p, s), (xs, ys))
        return p, s, ls

    def run():
        state[0], state[1], ls = epoch(*state, xs, ys)
        return ls

    return Step(run, steps=len(batches))


# ---- fluxjax ------------------------------------------------------------------------------


def _fj_model(task):
    fj.seed(0)
    if task == "cnn":
        return fj.Chain(fj.Conv((3, 3), 1, 16, fj.relu, pad=1), fj.MaxPool((2, 2)),
                        fj.Conv((3, 3), 16, 32, fj.relu, pad=1), fj.MaxPool((2, 2)),
                        lambda h: h.reshape(h.shape[0], -1), fj.Dense(128, 10))  # fmt: skip
    return fj.Chain(fj.LSTM(8, HIDDEN), lambda h: h[:, -1], fj.Dense(HIDDEN, 10))


def _fj_train(task, strategy="auto", explicit=False):
    m, loader = _fj_model(task), fj.DataLoader(task_data(task), B)

    def loss(model, x, y):
        if task == "lstm":
            fj.reset_(model)
        return fj.logitcrossentropy(model(x), y)

    if explicit:  # modern Flux: train_(loss, model, data, setup(opt, model))
        state = fj.setup(fj.ADAM(LR), m)
        args = (loss, m, loader, state)
    else:  # Flux v0.9: train_(loss, params(model), data, opt)
        args = (lambda x, y: loss(m, x, y), fj.params(m), loader, fj.ADAM(LR))
    run = lambda: fj.train_(*args, progress=False, strategy=strategy)  # noqa: E731
    return Step(run, steps=len(loader))


# ---- Equinox, Flax NNX, PyTorch (imported inside: a missing one is skipped) ---------------


def make_equinox(task):
    import equinox as eqx

    k = jax.random.split(jax.random.key(0), 3)
    if task == "cnn":
        conv = lambda i, o, key: eqx.nn.Conv2d(i, o, 3, padding=1, key=key)  # noqa: E731
        pool, relu = eqx.nn.MaxPool2d(2, 2), eqx.nn.Lambda(jax.nn.relu)
        head = [eqx.nn.Lambda(jnp.ravel), eqx.nn.Linear(128, 10, key=k[2])]
        body = [conv(1, 16, k[0]), relu, pool, conv(16, 32, k[1]), relu, pool]
        model = eqx.nn.Sequential([*body, *head])
        one = lambda m, x: m(jnp.transpose(x, (2, 0, 1)))  # noqa: E731  (channels first)
    else:
        model = (eqx.nn.LSTMCell(8, HIDDEN, key=k[0]), eqx.nn.Linear(HIDDEN, 10, key=k[1]))

        def one(m, xs):
            hc = (jnp.zeros(HIDDEN), jnp.zeros(HIDDEN))
            hc, _ = jax.lax.scan(lambda hc, xt: (m[0](xt, hc), None), hc, xs)
            return m[1](hc[0])

    tx, batches = optax.adam(LR), _device_batches(task)
    state = [model, tx.init(eqx.filter(model, eqx.is_inexact_array))]

    @eqx.filter_jit
    def step(m, s, x, y):
        l, g = eqx.filter_value_and_grad(lambda m: _xent(jax.vmap(lambda v: one(m, v))(x), y))(m)
        u, s = tx.update(g, s, eqx.filter(m, eqx.is_inexact_array))
        return eqx.apply_updates(m, u), s, l

    def run():
        for x, y in batches:
            state[0], state[1], l = step(*state, x, y)
        return l

    return Step(run, steps=len(batches))


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
                self.rnn = nnx.RNN(nnx.LSTMCell(8, HIDDEN, rngs=r))
                self.out = nnx.Linear(HIDDEN, 10, rngs=r)

            def __call__(self, x):
                return self.out(self.rnn(x)[:, -1])

    model, batches = Net(), _device_batches(task)
    opt = nnx.Optimizer(model, optax.adam(LR), wrt=nnx.Param)

    @nnx.jit(donate_argnames=("model", "opt"))
    def step(model, opt, x, y):
        l, g = nnx.value_and_grad(lambda m: _xent(m(x), y))(model)
        opt.update(model, g)
        return l

    def run():
        for x, y in batches:
            l = step(model, opt, x, y)
        return l

    return Step(run, steps=len(batches))


def make_torch(task):
    import torch

    torch.set_num_threads(2)
    torch.manual_seed(0)
    nn = torch.nn
    if task == "cnn":
        model = nn.Sequential(nn.Conv2d(1, 16, 3, padding=1), nn.ReLU(), nn.MaxPool2d(2),
                              nn.Conv2d(16, 32, 3, padding=1), nn.ReLU(), nn.MaxPool2d(2),
                              nn.Flatten(), nn.Linear(128, 10))  # fmt: skip
        forward, to_torch = model, lambda x: torch.from_numpy(x).permute(0, 3, 1, 2).contiguous()
    else:
        lstm, out = nn.LSTM(8, HIDDEN, batch_first=True), nn.Linear(HIDDEN, 10)
        model, to_torch = nn.ModuleList([lstm, out]), torch.from_numpy
        forward = lambda v: out(lstm(v)[0][:, -1])  # noqa: E731
    X, Y = task_data(task)
    labels = torch.from_numpy(Y.argmax(1))
    batches = [(to_torch(X[i : i + B]), labels[i : i + B]) for i in range(0, len(X), B)]
    opt = torch.optim.Adam(model.parameters(), lr=LR)

    def run():
        for x, y in batches:
            opt.zero_grad()
            l = torch.nn.functional.cross_entropy(forward(x), y)
            l.backward()
            opt.step()
        return l

    return Step.eager(run, steps=len(batches))


CONTENDERS = {
    BASELINE: make_jax_loop,
    "jax lax.scan": make_jax_scan,
    "fluxjax train_": _fj_train,
    "fluxjax explicit train_": lambda task: _fj_train(task, explicit=True),
    "train_ step": lambda task: _fj_train(task, "step"),
    "train_ scan": lambda task: _fj_train(task, "scan"),
    "equinox": make_equinox,
    "flax nnx": make_flax_nnx,
    "torch": make_torch,
}


def build(task, names):
    steps = {}
    for name in names:
        try:
            steps[name] = CONTENDERS[name](task)
        except ImportError as err:
            print(f"  skipped {name}: {type(err).__name__}: {err}", file=sys.stderr)
    return steps


# ---- first epoch, each in a fresh process --------------------------------------------------


def first_epoch(task, name):
    """Seconds of ``name``'s first call (one epoch, compiling included), in this process.
    XLA's first compile in a process also starts its compiler: a trivial one runs first,
    so that no contender pays that (the hand-written ones would otherwise pay it while
    building their params, outside the timing)."""
    jax.jit(lambda x: x + 1)(jnp.ones(3)).block_until_ready()
    step = build(task, [name])[name]
    t0 = time.perf_counter()
    step.sync(step.run())
    return time.perf_counter() - t0


def first_epochs(task, names, repeats):
    """name -> median seconds of the first epoch, over ``repeats`` fresh processes each."""
    seconds = {name: [] for name in names}
    for _ in range(repeats):
        for name in names:
            cmd = [sys.executable, "-m", "benchmarks.epochs", "--first-of", task, name]
            out = subprocess.run(cmd, capture_output=True, text=True, check=True).stdout
            seconds[name].append(float(out.split()[-1]))
    return {name: statistics.median(s) for name, s in seconds.items()}


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=7)
    parser.add_argument("--block", type=float, default=0.3, help="seconds per block")
    parser.add_argument("--first", type=int, default=3, help="fresh processes per contender")
    parser.add_argument("--tasks", nargs="+", default=["cnn", "lstm"])
    parser.add_argument("--json", help="write the figures to this file")
    parser.add_argument("--first-of", nargs=2, metavar=("TASK", "NAME"), help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.first_of:
        print(first_epoch(*args.first_of))
        return 0
    figures = {}
    for task in args.tasks:
        steps = build(task, CONTENDERS)
        res = interleave(steps, rounds=args.rounds, block_s=args.block, warmup=2)
        epoch_ms = {n: r.median * steps[n].steps / 1e3 for n, r in res.items()}
        spread = {n: r.spread for n, r in res.items()}
        first = first_epochs(task, list(steps), args.first) if args.first else {}
        figures[task] = {"epoch_ms": epoch_ms, "spread": spread, "first_s": first}
        report(task, figures[task])
    if args.json:
        with open(args.json, "w") as f:
            json.dump(figures, f, indent=1)
    return 0


def report(task, fig):
    """Markdown rows: ms per epoch (× the jax.jit loop), first epoch s (× its first)."""
    ms, first = fig["epoch_ms"], fig["first_s"]
    print(f"\n**{task}** | ms/epoch | × jax.jit loop | spread | first epoch s | × jax.jit loop")
    print("|---|---:|---:|---:|---:|---:|")
    for name in ms:
        f = first.get(name)
        cells = [f"{ms[name]:,.1f}", f"{ms[name] / ms[BASELINE]:.2f}", f"{fig['spread'][name]:.0%}"]
        cells += [f"{f:.2f}", f"{f / first[BASELINE]:.2f}"] if f else ["–", "–"]
        print(f"| {name} | " + " | ".join(cells) + " |", flush=True)


if __name__ == "__main__":
    raise SystemExit(main())
