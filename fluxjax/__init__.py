"""fluxjax: Flux.jl's model-building experience, in Python on JAX.

>>> import fluxjax as fj
>>> W = fj.param([[1.0, 2.0]])
>>> l = (W @ fj.numpy.array([3.0, 4.0])).sum()
>>> fj.back_(l)
>>> fj.grad(W)
Array([[3., 4.]], dtype=float32)
"""

from . import _config  # noqa: F401, I001  (first: settles JAX's CPU dispatch before anything runs)
from . import numpy, tracker
from ._io import load, save
from ._jit import jit
from .layers import (
    Chain,
    Composed,
    Dense,
    activations,
    compose,
    cpu,
    elu,
    f32,
    f64,
    fmap,
    gelu,
    glorot_normal,
    glorot_uniform,
    gpu,
    identity,
    leakyrelu,
    loadparams_,
    logsigmoid,
    logsoftmax,
    logσ,
    params,
    relu,
    seed,
    sigmoid,
    softmax,
    softplus,
    summary,
    swish,
    tanh,
    treelike,
    σ,
)
from .tracker import (
    Grads,
    Params,
    Tracked,
    TrackedArray,
    TrackedReal,
    back_,
    checkpoint,
    clear_caches,
    data,
    forward,
    grad,
    gradcheck,
    gradient,
    hessian,
    hook,
    jacobian,
    param,
    state,
    track,
)
from .train import (
    ADAM,
    ADAMW,
    NADAM,
    ADADelta,
    ADAGrad,
    AdaMax,
    AMSGrad,
    DataLoader,
    Descent,
    ExpDecay,
    InvDecay,
    Momentum,
    Nesterov,
    Optimiser,
    RMSProp,
    WeightDecay,
    binarycrossentropy,
    crossentropy,
    logitbinarycrossentropy,
    logitcrossentropy,
    mse,
    onecold,
    onehot,
    onehotbatch,
    stop,
    throttle,
    train_,
    update_,  # update_(x, Δ) as in the tracker, plus update_(opt, x, Δ) / update_(opt, ps, gs)
)

__version__ = "0.1.0"

__all__ = [
    # tracker
    "Grads", "Params", "Tracked", "TrackedArray", "TrackedReal", "back_", "checkpoint",
    "clear_caches", "data", "forward", "grad", "gradcheck", "gradient", "hessian", "hook",
    "jacobian", "param", "state", "track", "update_", "numpy", "tracker", "jit",
    # layers
    "Chain", "Composed", "Dense", "activations", "compose", "cpu", "elu", "f32", "f64", "fmap",
    "gelu", "glorot_normal", "glorot_uniform", "gpu", "identity", "leakyrelu", "loadparams_",
    "logsigmoid", "logsoftmax", "logσ", "params", "relu", "seed", "sigmoid", "softmax",
    "softplus", "summary", "swish", "tanh", "treelike", "σ",
    # training
    "ADADelta", "ADAGrad", "ADAM", "ADAMW", "AMSGrad", "NADAM", "AdaMax", "DataLoader",
    "Descent", "ExpDecay", "InvDecay", "Momentum", "Nesterov", "Optimiser", "RMSProp",
    "WeightDecay", "binarycrossentropy", "crossentropy", "logitbinarycrossentropy",
    "logitcrossentropy", "mse", "onecold", "onehot", "onehotbatch", "stop", "throttle", "train_",
    # files
    "load", "save",
]  # fmt: skip
