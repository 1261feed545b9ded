"""Training: losses, optimisers, ``update_``, ``train_``, callbacks and data helpers."""

from ._callbacks import stop, throttle
from ._data import DataLoader, onecold, onehot, onehotbatch
from ._explicit import OptState, setup, withgradient
from ._losses import (
    binarycrossentropy,
    crossentropy,
    hinge,
    kldivergence,
    logitbinarycrossentropy,
    logitcrossentropy,
    mse,
)
from ._optimisers import (
    ADAM,
    ADAMW,
    NADAM,
    ADADelta,
    ADAGrad,
    AdaMax,
    AMSGrad,
    Descent,
    ExpDecay,
    InvDecay,
    Momentum,
    Nesterov,
    Optimiser,
    RMSProp,
    WeightDecay,
)
from ._train import train_
from ._update import update_

__all__ = [
    "mse",
    "crossentropy",
    "logitcrossentropy",
    "binarycrossentropy",
    "logitbinarycrossentropy",
    "kldivergence",
    "hinge",
    "Descent",
    "Momentum",
    "Nesterov",
    "RMSProp",
    "ADAM",
    "AdaMax",
    "ADAGrad",
    "ADADelta",
    "AMSGrad",
    "NADAM",
    "ADAMW",
    "Optimiser",
    "InvDecay",
    "ExpDecay",
    "WeightDecay",
    "update_",
    "train_",
    "throttle",
    "stop",
    "onehot",
    "onehotbatch",
    "onecold",
    "DataLoader",
    "OptState",
    "setup",
    "withgradient",
]
