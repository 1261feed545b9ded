"""Activation functions: plain JAX formulas, each lifted once with ``track``.

Each works on plain arrays (then it is just JAX) and on tracked values (then it is one
node of the recorded graph, differentiated by JAX). All are elementwise except
``softmax`` and ``logsoftmax``, which normalise along ``axis``. The formulas avoid
overflow: nothing here calls ``exp`` on a large positive number.
"""

from __future__ import annotations

import math

import jax
import jax.numpy as jnp

from ..tracker import track


def _lift(fn):
    """track(fn), keeping fn's name and docstring so reprs and doctests see them."""
    lifted = track(fn)
    try:
        for attr in ("__name__", "__qualname__", "__doc__", "__module__"):
            setattr(lifted, attr, getattr(fn, attr))
    except (AttributeError, TypeError):  # a callable object that refuses attributes

        def lifted(*args, _inner=lifted, **kwargs):
            return _inner(*args, **kwargs)

        for attr in ("__name__", "__qualname__", "__doc__", "__module__"):
            setattr(lifted, attr, getattr(fn, attr))
    return lifted


def identity(x):
    """identity(x) = x, the default activation of ``Dense``.

    >>> identity(3)
    3
    """
    return x


# ---- sigmoid family ------------------------------------------------------------------


def _abs(x):
    """|x| with derivative +1 at 0, so the one-sided formulas below agree there."""
    return jnp.where(x >= 0, x, -x)


def _sigmoid(x):
    z = jnp.exp(-_abs(x))  # in (0, 1]: never overflows
    return jnp.where(x >= 0, 1 / (1 + z), z / (1 + z))


def _softplus(x):
    return jnp.where(x >= 0, x, 0) + jnp.log1p(jnp.exp(-_abs(x)))


@_lift
def σ(x):
    """σ(x) = 1 / (1 + exp(-x)), the logistic sigmoid; also called ``sigmoid``.

    >>> float(σ(0.0)), float(σ(-1000.0)), float(σ(1000.0))
    (0.5, 0.0, 1.0)
    """
    return _sigmoid(x)


@_lift
def softplus(x):
    """softplus(x) = log(1 + exp(x)), a smooth ``relu``.

    >>> round(float(softplus(0.0)), 6) == round(math.log(2), 6), float(softplus(1000.0))
    (True, 1000.0)
    """
    return _softplus(x)


@_lift
def logσ(x):
    """logσ(x) = log(σ(x)) = -softplus(-x); also called ``logsigmoid``.

    >>> float(logσ(-1000.0))
    -1000.0
    """
    return -_softplus(-x)


@_lift
def swish(x):
    """swish(x) = x * σ(x) (also known as SiLU).

    >>> float(swish(0.0)), float(swish(100.0))
    (0.0, 100.0)
    """
    return x * _sigmoid(x)


# ---- rectifiers ----------------------------------------------------------------------


@_lift
def relu(x):
    """relu(x) = max(0, x).

    >>> relu(jnp.array([-2.0, 0.0, 3.0])).tolist()
    [0.0, 0.0, 3.0]
    """
    return jnp.where(x > 0, x, 0)


@_lift
def leakyrelu(x, a=0.01):
    """leakyrelu(x, a=0.01) = x if x > 0 else a * x.

    >>> leakyrelu(jnp.array([-100.0, 2.0])).tolist()
    [-1.0, 2.0]
    """
    return jnp.where(x > 0, x, a * x)


@_lift
def elu(x, α=1):
    """elu(x, α=1) = x if x > 0 else α * (exp(x) - 1).

    >>> [round(v, 4) for v in elu(jnp.array([-1.0, 2.0])).tolist()]
    [-0.6321, 2.0]
    """
    return jnp.where(x > 0, x, α * jnp.expm1(jnp.where(x > 0, 0, x)))


@_lift
def gelu(x):
    """gelu(x) = x/2 * (1 + tanh(√(2/π) * (x + 0.044715 x³))), Flux's tanh approximation.

    >>> float(gelu(0.0)), round(float(gelu(1.0)), 4)
    (0.0, 0.8412)
    """
    return 0.5 * x * (1 + jnp.tanh(math.sqrt(2 / math.pi) * (x + 0.044715 * x**3)))


@_lift
def tanh(x):
    """tanh(x) = (exp(x) - exp(-x)) / (exp(x) + exp(-x)).

    >>> float(tanh(0.0)), float(tanh(1000.0))
    (0.0, 1.0)
    """
    return jnp.tanh(x)


# ---- normalising ---------------------------------------------------------------------


@_lift
def softmax(x, axis=-1):
    """softmax(x, axis=-1) = exp(x) / sum(exp(x)) along ``axis`` (the class axis).

    Shifted by the maximum first, so huge or tiny inputs give no ``inf``/``nan``.

    >>> softmax(jnp.array([-1e5, -1e5])).tolist()
    [0.5, 0.5]
    """
    e = jnp.exp(x - jax.lax.stop_gradient(jnp.max(x, axis=axis, keepdims=True)))
    return e / jnp.sum(e, axis=axis, keepdims=True)


@_lift
def logsoftmax(x, axis=-1):
    """logsoftmax(x, axis=-1) = x - log(sum(exp(x))) along ``axis``.

    >>> logsoftmax(jnp.array([1.0, 2.0, 3000.0])).tolist()
    [-2999.0, -2998.0, 0.0]
    """
    shifted = x - jax.lax.stop_gradient(jnp.max(x, axis=axis, keepdims=True))
    return shifted - jnp.log(jnp.sum(jnp.exp(shifted), axis=axis, keepdims=True))


sigmoid = σ
logsigmoid = logσ


# ---- self-normalising and other NNlib v0.6 activations -------------------------------

_SELU_λ = 1.0507009873554804934193349852946
_SELU_α = 1.6732632423543772848170429916717


@_lift
def selu(x):
    """selu(x) = λ * (x if x > 0 else α * (exp(x) - 1)), λ ≈ 1.0507, α ≈ 1.6733.

    The scaled ELU of self-normalising networks (Klambauer et al. 2017).

    >>> [round(v, 4) for v in selu(jnp.array([-1.0, 0.0, 2.0])).tolist()]
    [-1.1113, 0.0, 2.1014]
    """
    return _SELU_λ * jnp.where(x > 0, x, _SELU_α * jnp.expm1(jnp.where(x > 0, 0, x)))


@_lift
def softsign(x):
    """softsign(x) = x / (1 + |x|).

    >>> softsign(jnp.array([-3.0, 0.0, 1.0])).tolist()
    [-0.75, 0.0, 0.5]
    """
    return x / (1 + jnp.abs(x))


@_lift
def logcosh(x):
    """logcosh(x) = log(cosh(x)) = x + softplus(-2x) - log(2), finite for any x.

    >>> float(logcosh(0.0)), round(float(logcosh(1000.0)), 2)
    (0.0, 999.31)
    """
    return x + _softplus(-2 * x) - math.log(2)
