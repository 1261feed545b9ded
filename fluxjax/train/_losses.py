"""Loss functions on batch-first arrays (features on the last axis).

Each loss is a plain JAX function lifted once with ``fluxjax.tracker.track``, so it takes
plain or tracked arrays and records a single node in the graph. Flux's column-major
``(classes, N)`` becomes ``(N, classes)`` here: cross-entropies sum over the last axis and
average over everything before it.
"""

import jax
import jax.numpy as jnp
from jax.scipy.special import xlogy

from fluxjax.tracker import track

__all__ = [
    "mse",
    "crossentropy",
    "logitcrossentropy",
    "binarycrossentropy",
    "logitbinarycrossentropy",
    "kldivergence",
    "hinge",
]


def _batch_mean(total, y):
    """``total`` divided by the number of samples: every axis of ``y`` but the last."""
    n = 1
    for d in jnp.shape(y)[:-1]:
        n *= d
    return total / n


@track
def mse(ŷ, y):
    """mse(ŷ, y) = mean((ŷ - y) ** 2) over every element.

    >>> import jax.numpy as jnp
    >>> float(mse(jnp.array([.9, .1, .1, .9]), jnp.array([1., 1, 0, 0])))
    0.41
    """
    return jnp.mean((ŷ - y) ** 2)


@track
def crossentropy(ŷ, y, weight=1):
    """crossentropy(ŷ, y, weight=1) = -sum(y * log(ŷ) * weight) / N for probabilities ŷ.

    Sums over classes (the last axis), ``weight`` broadcast along it, and averages over
    the ``N`` samples (all leading axes). ``0 * log(0)`` counts as 0. Prefer
    ``logitcrossentropy`` on raw scores: it is stable where ``ŷ`` underflows.

    >>> import jax.numpy as jnp
    >>> ŷ = jnp.array([[.1, .9], [.9, .1], [.9, .1], [.1, .9]])
    >>> y = jnp.array([[0., 1], [0, 1], [1, 0], [1, 0]])
    >>> float(crossentropy(ŷ, y))
    1.20397
    """
    return -_batch_mean(jnp.sum(xlogy(y, ŷ) * weight), y)


@track
def logitcrossentropy(logits, y, weight=1):
    """logitcrossentropy(logits, y, weight=1) = crossentropy(softmax(logits), y, weight).

    Computed as ``-sum(y * logsoftmax(logits) * weight) / N``, which never takes the log
    of a rounded-off probability.

    >>> import jax.numpy as jnp
    >>> float(logitcrossentropy(jnp.array([[0., 0.]]), jnp.array([[1., 0.]])))
    0.6931
    """
    return -_batch_mean(jnp.sum(y * jax.nn.log_softmax(logits, axis=-1) * weight), y)


@track
def binarycrossentropy(ŷ, y, *, ε=None):
    """binarycrossentropy(ŷ, y; ε=eps) = mean(-y * log(ŷ + ε) - (1 - y) * log(1 - ŷ + ε)).

    Every element is an independent yes/no prediction, so the mean is over all elements
    (for one number, the value is Flux's elementwise ``binarycrossentropy``). ``ε``
    defaults to the machine epsilon of ``ŷ``'s dtype and keeps ``log(0)`` finite; Flux's
    spelling ``ϵ=`` is the same keyword in Python.

    >>> round(float(binarycrossentropy(0.9, 1.0)), 4)
    0.1054
    >>> float(binarycrossentropy(0.0, 1.0, ε=0))
    inf
    """
    if ε is None:
        ε = jnp.finfo(jnp.result_type(ŷ, jnp.float32)).eps
    return jnp.mean(-xlogy(y, ŷ + ε) - xlogy(1 - y, 1 - ŷ + ε))


@track
def kldivergence(ŷ, y):
    """kldivergence(ŷ, y) = sum(y * log(y / ŷ)) / N, the Kullback-Leibler divergence.

    ``ŷ`` and ``y`` hold probability distributions along the last axis; summed over it
    and averaged over the ``N`` samples, as Flux's ``sum(y .* log.(y)) / N +
    crossentropy(ŷ, y)``. ``0 * log(0)`` counts as 0.

    >>> import jax.numpy as jnp
    >>> p = jnp.array([[0.5, 0.5]])
    >>> float(kldivergence(p, p)), round(float(kldivergence(jnp.array([[0.9, 0.1]]), p)), 4)
    (0.0, 0.5108)
    """
    return _batch_mean(jnp.sum(xlogy(y, y)) - jnp.sum(xlogy(y, ŷ)), y)


@track
def hinge(ŷ, y):
    """hinge(ŷ, y) = sum(max(0, 1 - ŷ * y)) / N for labels ``y`` in {-1, 1}.

    Summed over the last axis and averaged over the ``N`` samples, as Flux.

    >>> import jax.numpy as jnp
    >>> float(hinge(jnp.array([[2.0, 0.5]]), jnp.array([[1.0, -1.0]])))
    1.5
    """
    return _batch_mean(jnp.sum(jnp.maximum(0, 1 - ŷ * y)), y)


@track
def logitbinarycrossentropy(logits, y):
    """logitbinarycrossentropy(logits, y) = binarycrossentropy(σ(logits), y), stably.

    Computed as ``mean((1 - y) * logits - logσ(logits))``, exact for large ``|logits|``.

    >>> round(float(logitbinarycrossentropy(0.0, 1.0)), 4)
    0.6931
    """
    return jnp.mean((1 - y) * logits - jax.nn.log_sigmoid(logits))
