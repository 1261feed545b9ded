"""Layers and model trees: ``treelike``, ``Dense``, ``Chain``, activations, tree utilities."""

from ..tracker import register_leaf_finder
from ._activations import (
    elu,
    gelu,
    identity,
    leakyrelu,
    logcosh,
    logsigmoid,
    logsoftmax,
    logσ,
    relu,
    selu,
    sigmoid,
    softmax,
    softplus,
    softsign,
    swish,
    tanh,
    σ,
)
from ._adaptive import AdaptiveMaxPool, AdaptiveMeanPool, GlobalMaxPool, GlobalMeanPool
from ._attention import MultiHeadAttention
from ._basic import Chain, Composed, Dense, activations, compose
from ._conv import SamePad, conv, depthwiseconv
from ._convlayers import Conv, ConvTranspose, CrossCor, DepthwiseConv
from ._display import summary
from ._dropout import AlphaDropout, Dropout
from ._embedding import Embedding
from ._misc import Diagonal, Maxout, SkipConnection, normalise
from ._modern import Bilinear, Parallel, flatten
from ._norm import BatchNorm, GroupNorm, InstanceNorm, LayerNorm
from ._opaque import UnregisteredModelError  # noqa: F401 (LAYERS_ONLY)
from ._partition import combine, partition
from ._pool import MaxPool, MeanPool, maxpool, meanpool
from ._random import glorot_normal, glorot_uniform, host_rng, seed, set_stream_state, stream_state  # noqa: F401 (LAYERS_ONLY)
from ._recur import (
    GRU,
    LSTM,
    RNN,
    Recur,
    fitting,  # noqa: F401 (LAYERS_ONLY)
    reset_,
    truncate_,
    truncating,  # noqa: F401 (LAYERS_ONLY)
)
from ._recurrent import GRUCell, LSTMCell, RNNCell
from ._stateful import leaf_owners, states, testmode_, trainmode_
from ._tree import cpu, f32, f64, fmap, gpu, loadparams_, params
from ._treelike import items, treelike  # noqa: F401 (items: LAYERS_ONLY)
from ._upsample import PixelShuffle, Upsample
from ._walk import (  # noqa: F401 (the LAYERS_ONLY names, below)
    children,
    is_tracked_leaf,
    is_transient,
    mapchildren,
    path_of,
    put,
    walk,
)

__all__ = [
    "AlphaDropout",
    "BatchNorm",
    "Chain",
    "Composed",
    "Conv",
    "ConvTranspose",
    "CrossCor",
    "Dense",
    "DepthwiseConv",
    "Diagonal",
    "Dropout",
    "GRU",
    "GRUCell",
    "GroupNorm",
    "InstanceNorm",
    "LSTM",
    "LSTMCell",
    "LayerNorm",
    "MaxPool",
    "Maxout",
    "MeanPool",
    "RNN",
    "RNNCell",
    "Recur",
    "SkipConnection",
    "activations",
    "combine",
    "compose",
    "conv",
    "cpu",
    "depthwiseconv",
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
    "logcosh",
    "logsigmoid",
    "logsoftmax",
    "logσ",
    "maxpool",
    "meanpool",
    "normalise",
    "params",
    "partition",
    "relu",
    "reset_",
    "seed",
    "selu",
    "sigmoid",
    "softmax",
    "softplus",
    "softsign",
    "states",
    "summary",
    "swish",
    "tanh",
    "testmode_",
    "trainmode_",
    "treelike",
    "truncate_",
    "σ",
    "AdaptiveMaxPool",
    "AdaptiveMeanPool",
    "Bilinear",
    "Embedding",
    "GlobalMaxPool",
    "GlobalMeanPool",
    "MultiHeadAttention",
    "Parallel",
    "PixelShuffle",
    "SamePad",
    "Upsample",
    "flatten",
]

# Not public, and only as ``fluxjax.layers.NAME``: the one model walk (docs/INTERNALS.md),
# for ``save``/``load`` (``fluxjax/_io.py``), ``fluxjax.train``'s checkpoints and the explicit
# style's gradients (``train/_grads_check.py``); the global random stream and the truncation
# of recurrent carries for ``train_``.
LAYERS_ONLY = [
    "UnregisteredModelError", "children", "is_tracked_leaf", "is_transient", "items",
    "mapchildren", "path_of", "put", "walk", "host_rng", "stream_state", "set_stream_state",
    "truncating", "fitting",
]  # fmt: skip

register_leaf_finder(leaf_owners)  # gradient(f, model) threads the model's state leaves
