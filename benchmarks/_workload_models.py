"""Each library's model for a workload of `_workloads.py`: fluxjax, Equinox, Flax NNX and
PyTorch, each with its own layer types, layout and default initialiser. A feed-forward
`Net` is built by one builder per library; the LSTM by a second one. Third-party packages
are imported inside, so a missing one only removes its contender."""

from __future__ import annotations

import jax
import jax.numpy as jnp

import fluxjax as fj
from benchmarks._workloads import CLASSES, HIDDEN, NETS


def _flatten(h):
    return h.reshape(h.shape[0], -1)


def _dense_pairs(net):
    """(in, out, last?) per dense layer."""
    pairs = list(zip(net.dense, net.dense[1:]))
    return [(a, b, i == len(pairs) - 1) for i, (a, b) in enumerate(pairs)]


def fluxjax_model(task):
    fj.seed(0)
    if task == "lstm":
        return fj.Chain(fj.LSTM(8, HIDDEN), lambda h: h[:, -1], fj.Dense(HIDDEN, CLASSES))
    net, layers = NETS[task], []
    for i, o in net.convs:
        layers += [fj.Conv((3, 3), i, o, fj.relu, pad=1), fj.MaxPool((2, 2))]
    layers += [_flatten] if net.convs else []
    for a, b, last in _dense_pairs(net):
        layers.append(fj.Dense(a, b) if last else fj.Dense(a, b, fj.relu))
    return fj.Chain(*layers)


def equinox_model(task):
    """``(model, one)``: ``one(model, sample)`` is one sample's logits (vmapped by the step)."""
    import equinox as eqx

    keys = iter(jax.random.split(jax.random.key(0), 16))
    if task == "lstm":
        model = (
            eqx.nn.LSTMCell(8, HIDDEN, key=next(keys)),
            eqx.nn.Linear(HIDDEN, 10, key=next(keys)),
        )

        def one(m, xs):
            hc = (jnp.zeros(HIDDEN), jnp.zeros(HIDDEN))
            hc, _ = jax.lax.scan(lambda hc, xt: (m[0](xt, hc), None), hc, xs)
            return m[1](hc[0])

        return model, one
    net, relu, layers = NETS[task], eqx.nn.Lambda(jax.nn.relu), []
    for i, o in net.convs:
        layers += [eqx.nn.Conv2d(i, o, 3, padding=1, key=next(keys)), relu, eqx.nn.MaxPool2d(2, 2)]
    layers += [eqx.nn.Lambda(jnp.ravel)] if net.convs else []
    for a, b, last in _dense_pairs(net):
        layers += [eqx.nn.Linear(a, b, key=next(keys))] + ([] if last else [relu])
    model = eqx.nn.Sequential(layers)
    if net.convs:  # channels first, per sample
        return model, lambda m, x: m(jnp.transpose(x, (2, 0, 1)))
    return model, lambda m, x: m(x)


def nnx_model(task):
    from flax import nnx

    r = nnx.Rngs(0)
    if task == "lstm":
        rnn = nnx.RNN(nnx.LSTMCell(8, HIDDEN, rngs=r))
        return nnx.Sequential(rnn, lambda h: h[:, -1], nnx.Linear(HIDDEN, CLASSES, rngs=r))
    net, layers = NETS[task], []
    for i, o in net.convs:
        pool = lambda h: nnx.max_pool(h, (2, 2), (2, 2))  # noqa: E731
        layers += [nnx.Conv(i, o, (3, 3), rngs=r), jax.nn.relu, pool]
    layers += [_flatten] if net.convs else []
    for a, b, last in _dense_pairs(net):
        layers += [nnx.Linear(a, b, rngs=r)] + ([] if last else [jax.nn.relu])
    return nnx.Sequential(*layers)


def torch_model(task):
    """``(model, forward, to_torch)``: ``to_torch`` turns a NumPy input batch into a tensor."""
    import torch

    torch.manual_seed(0)
    nn = torch.nn
    if task == "lstm":
        lstm, out = nn.LSTM(8, HIDDEN, batch_first=True), nn.Linear(HIDDEN, CLASSES)
        forward = lambda v: out(lstm(v)[0][:, -1])  # noqa: E731
        return nn.ModuleList([lstm, out]), forward, torch.from_numpy
    net, layers = NETS[task], []
    for i, o in net.convs:
        layers += [nn.Conv2d(i, o, 3, padding=1), nn.ReLU(), nn.MaxPool2d(2)]
    layers += [nn.Flatten()] if net.convs else []
    for a, b, last in _dense_pairs(net):
        layers += [nn.Linear(a, b)] + ([] if last else [nn.ReLU()])
    model = nn.Sequential(*layers)
    if net.convs:  # NHWC → NCHW
        return model, model, lambda x: torch.from_numpy(x).permute(0, 3, 1, 2).contiguous()
    return model, model, torch.from_numpy
