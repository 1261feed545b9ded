"""Layers and model trees: ``treelike``, ``Dense``, ``Chain``, activations, tree utilities."""

from ._activations import (
    elu,
    gelu,
    identity,
    leakyrelu,
    logsigmoid,
    logsoftmax,
    logσ,
    relu,
    sigmoid,
    softmax,
    softplus,
    swish,
    tanh,
    σ,
)
from ._basic import Chain, Composed, Dense, activations, compose
from ._display import summary
from ._random import glorot_normal, glorot_uniform, seed
from ._tree import cpu, f32, f64, fmap, gpu, loadparams_, params
from ._treelike import treelike

__all__ = [
    "Chain",
    "Composed",
    "Dense",
    "activations",
    "compose",
    "cpu",
    "elu",
    "f32",
    "f64",
    "fmap",
    "gelu",
    "glorot_normal",
    "glorot_uniform",
    "gpu",
    "identity",
    "leakyrelu",
    "loadparams_",
    "logsigmoid",
    "logsoftmax",
    "logσ",
    "params",
    "relu",
    "seed",
    "sigmoid",
    "softmax",
    "softplus",
    "summary",
    "swish",
    "tanh",
    "treelike",
    "σ",
]
