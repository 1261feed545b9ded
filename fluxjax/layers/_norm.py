"""Normalisation layers: ``BatchNorm``, ``InstanceNorm``, ``GroupNorm``, ``LayerNorm``.

The channel axis is the last one (Flux's ``N-1``-th of WHCN). While active, a layer
normalises with the statistics of the batch and moves its running statistics ``μ``,
``σ2`` (``state`` leaves) towards them as Flux v0.9 does::

    μ  ← (1 - momentum)·μ  + momentum·mean
    σ2 ← (1 - momentum)·σ2 + momentum·var·m/(m - 1)      (m values per statistic)

with ``var`` the uncorrected batch variance. After ``testmode_`` it normalises with
``μ``, ``σ2`` and leaves them alone. The normalisation itself is one lifted function.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import jax.numpy as jnp

from ..tracker import check, data, param, state, static, track
from ._activations import identity
from ._misc import Diagonal, normalise
from ._stateful import write
from ._treelike import register


def _all_finite(μ, σ2):
    return jnp.isfinite(μ).all() & jnp.isfinite(σ2).all()


def _grouped(x, groups):
    return x if groups == 0 else x.reshape(*x.shape[:-1], groups, x.shape[-1] // groups)


@track
def _batch_norm(x, γ, β, ε, axes, groups):
    """(y, mean, var): ``x`` normalised with its own statistics over ``axes``."""
    g = _grouped(x, groups)
    μ = jnp.mean(g, axis=axes, keepdims=True)
    σ2 = jnp.mean((g - μ) ** 2, axis=axes, keepdims=True)
    x̂ = ((g - μ) / jnp.sqrt(σ2 + ε)).reshape(x.shape)
    return γ * x̂ + β, μ, σ2


@track
def _running_norm(x, γ, β, μ, σ2, ε, groups):
    """``x`` normalised with the running statistics ``μ``, ``σ2``."""
    g = _grouped(x, groups)
    if groups:
        μ, σ2 = μ[:, None], σ2[:, None]
    x̂ = ((g - μ) / jnp.sqrt(σ2 + ε)).reshape(x.shape)
    return γ * x̂ + β


@dataclass(eq=False, repr=False, init=False)
class BatchNorm:
    """BatchNorm(channels, λ=identity; momentum=0.1, ε=1e-5, initβ=zeros, initγ=ones)

    Batch normalisation (Ioffe & Szegedy 2015): each channel (the last axis) is
    normalised over every other axis (the batch and spatial axes), then scaled by ``γ``
    and shifted by ``β`` (trainable), then ``λ`` is applied. Running statistics ``μ``,
    ``σ2`` (state, not trained) move with ``momentum`` while active and are used after
    ``testmode_``. Fields ``λ``, ``β``, ``γ``, ``μ``, ``σ2``, ``ε``, ``momentum``,
    ``active``; Flux's ``ϵ=`` keyword is the same as ``ε=``.

    >>> import jax.numpy as jnp
    >>> m = BatchNorm(2)
    >>> y = m(jnp.array([[1.0, 2.0], [3.0, 4.0], [5.0, 6.0]]))
    >>> m, m.μ.data.tolist()
    (BatchNorm(2), [0.30000001192092896, 0.4000000059604645])
    """

    λ: Callable
    β: Any
    γ: Any
    μ: Any
    σ2: Any
    ε: float
    momentum: float
    active: bool

    _has_mode = True
    _groups = 0
    _min_dims = 2

    def __init__(self, channels, λ=identity, *, momentum=0.1, ε=1e-5,
                 initβ=jnp.zeros, initγ=jnp.ones):  # fmt: skip
        self.λ, self.ε, self.momentum, self.active = λ, float(ε), float(momentum), True
        self.β = param(initβ(int(channels), jnp.float32))
        self.γ = param(initγ(int(channels), jnp.float32))
        n = self._stat_size(int(channels))
        self.μ, self.σ2 = state(jnp.zeros(n, jnp.float32)), state(jnp.ones(n, jnp.float32))

    def _stat_size(self, channels):
        return channels

    def _axes(self, ndim):
        """The axes of the (grouped) input that one statistic reduces over."""
        return tuple(range(ndim - 1))

    def _check(self, x):
        c = self.β.shape[0]
        if len(x.shape) < self._min_dims or x.shape[-1] != c:
            raise ValueError(
                f"{self!r}: expected at least {self._min_dims} dims with {c} channels on the "
                f"last axis (batch first, channels last), got shape {tuple(x.shape)}"
            )

    def __call__(self, x):
        x = x if hasattr(x, "shape") else jnp.asarray(x)
        self._check(x)
        if not static(self, "active"):
            y = _running_norm(x, self.γ, self.β, self.μ, self.σ2, self.ε, self._groups)
            return y if self.λ is identity else self.λ(y)
        axes = self._axes(len(x.shape) + (self._groups > 0))
        y, μ, σ2 = _batch_norm(x, self.γ, self.β, self.ε, axes, self._groups)
        y = y if self.λ is identity else self.λ(y)
        μ, σ2 = data(μ), data(σ2)
        check(  # compiled code returns the flag and raises after the call
            _all_finite(μ, σ2),
            f"{self!r}: the batch holds NaN or Inf; in train mode a normalisation layer "
            "refuses it, and its running statistics were left as they were",
        )
        self._update(x.shape, axes, μ, σ2)  # last: an error leaves μ, σ2 alone
        return y

    def _update(self, shape, axes, μ, σ2):
        """Moves the running statistics towards the batch's (Flux v0.9's rule)."""
        grouped = (*shape[:-1], self._groups, shape[-1] // self._groups) if self._groups else shape
        m = math.prod(grouped[a] for a in axes)
        if m < 2:
            raise ValueError(
                f"{self!r}: one value per statistic in shape {tuple(shape)}; a variance needs "
                "at least two (use a bigger batch, or testmode_ for single samples)"
            )
        lead = shape[0] if 0 not in axes else 1
        μ, σ2 = μ.reshape(lead, -1).mean(0), σ2.reshape(lead, -1).mean(0)
        mtm = self.momentum
        write(self, "μ", (1 - mtm) * data(self.μ) + mtm * μ)
        write(self, "σ2", (1 - mtm) * data(self.σ2) + (mtm * m / (m - 1)) * σ2)

    def __repr__(self):
        λ = "" if self.λ is identity else f", {getattr(self.λ, '__name__', repr(self.λ))}"
        return f"{type(self).__name__}({self.β.shape[0]}{self._extra()}{λ})"

    def _extra(self):
        return ""


class InstanceNorm(BatchNorm):
    """InstanceNorm(channels, λ=identity; momentum=0.1, ε=1e-5, initβ=zeros, initγ=ones)

    Instance normalisation (Ulyanov et al. 2016): as ``BatchNorm`` but each sample's
    channel is normalised over its spatial axes alone; needs at least 3 dims
    ``(n, spatial…, c)``. The running statistics average the per-sample ones over the
    batch.

    >>> import jax.numpy as jnp
    >>> InstanceNorm(2)(jnp.arange(12.0).reshape(2, 3, 2))[0, :, 0].round(4).tolist()
    [-1.2247, 0.0, 1.2247]
    """

    _min_dims = 3

    def _axes(self, ndim):
        return tuple(range(1, ndim - 1))


@dataclass(eq=False, repr=False, init=False)
class GroupNorm(BatchNorm):
    """GroupNorm(channels, groups, λ=identity; momentum=0.1, ε=1e-5, initβ, initγ)

    Group normalisation (Wu & He 2018): the channels split into ``groups`` blocks of
    ``channels ÷ groups`` neighbours; each sample's block is normalised over its spatial
    axes and its channels. Needs at least 3 dims; running statistics have one entry per
    group. Field ``G`` holds the number of groups.

    >>> import jax.numpy as jnp
    >>> m = GroupNorm(4, 2)
    >>> m, m(jnp.ones((1, 3, 4))).shape, m.μ.shape
    (GroupNorm(4, 2), (1, 3, 4), (2,))
    """

    G: int = 1
    _min_dims = 3

    def __init__(self, channels, groups, λ=identity, **kwargs):
        if groups < 1 or channels % groups:
            raise ValueError(
                f"GroupNorm: the number of groups ({groups}) must divide the number of "
                f"channels ({channels})"
            )
        self.G = int(groups)
        super().__init__(channels, λ, **kwargs)

    @property
    def _groups(self):
        return self.G

    def _stat_size(self, channels):
        return self.G

    def _axes(self, ndim):  # ndim of the grouped input (n, spatial…, G, c/G)
        return (*range(1, ndim - 2), ndim - 1)

    def _extra(self):
        return f", {self.G}"


@dataclass(eq=False, repr=False, init=False)
class LayerNorm:
    """LayerNorm(n)

    Layer normalisation (Ba et al. 2016), as Flux v0.9: ``diag(normalise(x))``, each
    sample normalised over its features (the last axis, no ε) and then scaled and shifted
    by the trainable ``Diagonal(n)`` in field ``diag`` (``diag.α``, ``diag.β``). It keeps no
    running statistics, so ``testmode_`` does not change it.

    >>> import jax.numpy as jnp
    >>> LayerNorm(3)(jnp.array([[1.0, 2.0, 3.0]])).round(4).tolist()
    [[-1.2247, 0.0, 1.2247]]
    """

    diag: Any

    def __init__(self, n):
        self.diag = n if isinstance(n, Diagonal) else Diagonal(int(n))

    def __call__(self, x):
        return self.diag(normalise(x, axis=-1))

    def __repr__(self):
        return f"LayerNorm({self.diag.α.shape[-1]})"


for _cls in (BatchNorm, InstanceNorm, GroupNorm, LayerNorm):
    register(_cls)
