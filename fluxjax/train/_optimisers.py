"""Flux's optimisers as thin constructors of optax chains.

Flux applies each optimiser to the gradient and then *subtracts* the result
(``x -= apply!(opt, x, Δ)``); ``Optimiser(a, b)`` feeds ``a``'s output to ``b``. Here every
optimiser holds ``piece``, an ``optax.GradientTransformation`` that maps a gradient to
Flux's step in that same direction (``optax.scale_by_adam`` then ``optax.scale(η)``, ...),
and ``tx = optax.chain(piece, optax.scale(-1))``, the full optax optimiser that descends.
So ``Optimiser(ADAM(), WeightDecay(1e-4))`` composes exactly as in Flux.

Every update rule is optax's where optax's formula is Flux's; where it differs (NADAM,
AMSGrad, ADAGrad) and for the rules optax lacks (RADAM, OADAM) the rule is written out
in ``_rules.py`` as an optax transformation.
Any raw ``optax.GradientTransformation`` is accepted wherever an optimiser is; inside
``Optimiser(...)`` it is used as a piece (see ``Optimiser``).
"""

import jax.numpy as jnp
import optax

from . import _rules

__all__ = [
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
    "RADAM",
    "OADAM",
    "AdaBelief",
    "Lion",
    "Optimiser",
    "InvDecay",
    "ExpDecay",
    "WeightDecay",
]

ϵ = 1e-8  # Flux's epsilon


class FluxOptimiser:
    """Base class: a named optimiser with hyperparameters, ``piece`` and ``tx``.

    ``update_`` keeps the optax state of each set of params on the optimiser object, so
    the same object continues where it left off (as Flux's ``IdDict`` state does).
    """

    def __init__(self, piece: optax.GradientTransformation, **hyper):
        self.piece = piece
        self.tx = optax.chain(piece, optax.scale(-1.0))
        self._hyper = hyper

    def __repr__(self):
        args = ", ".join(f"{v!r}" for v in self._hyper.values())
        return f"{type(self).__name__}({args})"


def _scaled(transform, η):
    return optax.chain(transform, optax.scale(η))


class Descent(FluxOptimiser):
    """Descent(η=0.1): plain gradient descent, ``x -= η * Δ`` (optax ``sgd``)."""

    def __init__(self, η=0.1):
        super().__init__(optax.scale(η), η=η)


class Momentum(FluxOptimiser):
    """Momentum(η=0.01, ρ=0.9): ``v = ρ v - η Δ; x += v`` (optax ``trace`` then scale).

    optax keeps ``t = Δ + ρ t`` and steps ``-η t``: the same iterates for a fixed ``η``.
    """

    def __init__(self, η=0.01, ρ=0.9):
        super().__init__(_scaled(optax.trace(decay=ρ), η), η=η, ρ=ρ)


class Nesterov(FluxOptimiser):
    """Nesterov(η=0.001, ρ=0.9): Nesterov momentum (optax ``trace(nesterov=True)``).

    Flux steps ``ρ² v - (1 + ρ) η Δ``; optax's ``-η (Δ + ρ t)`` with ``t = Δ + ρ t`` is
    the same step for a fixed ``η``.
    """

    def __init__(self, η=0.001, ρ=0.9):
        super().__init__(_scaled(optax.trace(decay=ρ, nesterov=True), η), η=η, ρ=ρ)


class RMSProp(FluxOptimiser):
    """RMSProp(η=0.001, ρ=0.9): ``a = ρ a + (1 - ρ) Δ²; x -= η Δ / (√a + ϵ)``.

    optax ``scale_by_rms`` with ``eps_in_sqrt=False`` so ``ϵ = 1e-8`` sits outside the root
    as in Flux.
    """

    def __init__(self, η=0.001, ρ=0.9):
        rms = optax.scale_by_rms(decay=ρ, eps=ϵ, eps_in_sqrt=False)
        super().__init__(_scaled(rms, η), η=η, ρ=ρ)


class ADAM(FluxOptimiser):
    """ADAM(η=0.001, β=(0.9, 0.999)): Adam with bias correction, ``ϵ = 1e-8``.

    optax ``scale_by_adam``: the same formula as Flux.
    """

    def __init__(self, η=0.001, β=(0.9, 0.999)):
        adam = optax.scale_by_adam(b1=β[0], b2=β[1], eps=ϵ)
        super().__init__(_scaled(adam, η), η=η, β=tuple(β))


class AdaMax(FluxOptimiser):
    """AdaMax(η=0.001, β=(0.9, 0.999)): Adam with the infinity norm (optax ``scale_by_adamax``)."""

    def __init__(self, η=0.001, β=(0.9, 0.999)):
        adamax = optax.scale_by_adamax(b1=β[0], b2=β[1], eps=ϵ)
        super().__init__(_scaled(adamax, η), η=η, β=tuple(β))


class ADAGrad(FluxOptimiser):
    """ADAGrad(η=0.1): ``a += Δ²; x -= η Δ / (√a + ϵ)``, with ``a`` starting at ``ϵ`` (Flux).

    Written out (``_rules.adagrad``): optax's ``scale_by_rss`` puts ``ϵ`` inside the root.
    """

    def __init__(self, η=0.1):
        super().__init__(_rules.adagrad(η, ϵ), η=η)


class ADADelta(FluxOptimiser):
    """ADADelta(ρ=0.9): step ``Δ √(d + ϵ) / √(a + ϵ)``, no learning rate.

    optax ``scale_by_adadelta``: the same formula as Flux, with Flux's ``ϵ = 1e-8``
    (optax's default is ``1e-6``).
    """

    def __init__(self, ρ=0.9):
        super().__init__(optax.scale_by_adadelta(rho=ρ, eps=ϵ), ρ=ρ)


class AMSGrad(FluxOptimiser):
    """AMSGrad(η=0.001, β=(0.9, 0.999)): Adam with the running maximum ``v̂`` of ``v``.

    Flux's rule, written out (``_rules.amsgrad``): the moments start at ``ϵ``, no bias
    correction, step ``η m / (√v̂ + ϵ)``. optax's ``scale_by_amsgrad`` starts them at 0,
    which differs several-fold while ``g²`` is near ``ϵ``.
    """

    def __init__(self, η=0.001, β=(0.9, 0.999)):
        super().__init__(_rules.amsgrad(η, β[0], β[1], ϵ), η=η, β=tuple(β))


class NADAM(FluxOptimiser):
    """NADAM(η=0.001, β=(0.9, 0.999)): Adam with Nesterov momentum, Flux's formula.

    Written out (``_rules.nadam``): Flux multiplies the second moment by ``β[1]`` inside
    the root, which optax's ``scale_by_adam(nesterov=True)`` does not.
    """

    def __init__(self, η=0.001, β=(0.9, 0.999)):
        super().__init__(_rules.nadam(η, β[0], β[1], ϵ), η=η, β=tuple(β))


class RADAM(FluxOptimiser):
    """RADAM(η=0.001, β=(0.9, 0.999)): rectified Adam, Flux's rule (``_rules.radam``).

    With ``ρ∞ = 2 / (1 - β₂) - 1`` and ``ρ = ρ∞ - 2t β₂ᵗ / (1 - β₂ᵗ)``: Adam's step times
    ``r = √((ρ-4)(ρ-2)ρ∞ / ((ρ∞-4)(ρ∞-2)ρ))`` when ``ρ > 4``, else ``η m / (1 - β₁ᵗ)``
    (the first five steps with the default ``β``).
    """

    def __init__(self, η=0.001, β=(0.9, 0.999)):
        super().__init__(_rules.radam(η, β[0], β[1], ϵ), η=η, β=tuple(β))


class OADAM(FluxOptimiser):
    """OADAM(η=0.001, β=(0.5, 0.9)): optimistic Adam, Optimisers.jl's rule and defaults.

    Step ``2 aₜ - aₜ₋₁``, ``aₜ`` being Adam's step and ``a₀ = 0``: the first step is
    twice Adam's (``_rules.oadam``).
    """

    def __init__(self, η=0.001, β=(0.5, 0.9)):
        super().__init__(_rules.oadam(η, β[0], β[1], ϵ), η=η, β=tuple(β))


class AdaBelief(FluxOptimiser):
    """AdaBelief(η=0.001, β=(0.9, 0.999), ϵ=1e-16): Optimisers.jl's defaults.

    ``s = β₂ s + (1 - β₂)(Δ - m)² + ϵ``, step ``η m̂ / (√ŝ + ϵ)``: optax's
    ``scale_by_belief`` with ``eps = eps_root = ϵ``, the same formula.
    """

    def __init__(self, η=0.001, β=(0.9, 0.999), ϵ=1e-16):
        belief = optax.scale_by_belief(b1=β[0], b2=β[1], eps=ϵ, eps_root=ϵ)
        super().__init__(_scaled(belief, η), η=η, β=tuple(β), ϵ=ϵ)


class Lion(FluxOptimiser):
    """Lion(η=0.001, β=(0.9, 0.999)): the paper's rule (optax ``scale_by_lion``).

    Step ``η sign(β₁ m + (1 - β₁) Δ)``, then ``m = β₂ m + (1 - β₂) Δ``; Optimisers.jl's
    defaults, no weight decay (compose ``WeightDecay`` for it). Optimisers.jl's own code
    weights the momentum update the other way round (``β₂ Δ + (1 - β₂) m``); fluxjax
    follows the paper, as ``optax.lion`` does.
    """

    def __init__(self, η=0.001, β=(0.9, 0.999)):
        lion = optax.scale_by_lion(b1=β[0], b2=β[1])
        super().__init__(_scaled(lion, η), η=η, β=tuple(β))


class WeightDecay(FluxOptimiser):
    """WeightDecay(wd=0): adds ``wd * x`` to the step (optax ``add_decayed_weights``).

    Used in composition: ``Optimiser(WeightDecay(1e-4), ADAM())`` is L2 regularisation.
    """

    def __init__(self, wd=0):
        super().__init__(optax.add_decayed_weights(wd), wd=wd)


class ADAMW(FluxOptimiser):
    """ADAMW(η=0.001, β=(0.9, 0.999), decay=0) = ``Optimiser(ADAM(η, β), WeightDecay(decay))``.

    As in Flux the decay is added after Adam's scaling, so each step removes
    ``decay * x``. optax's ``adamw`` removes ``η * decay * x`` instead: to reproduce
    ``optax.adamw(η, weight_decay=wd)`` use ``ADAMW(η, decay=η * wd)``.
    """

    def __init__(self, η=0.001, β=(0.9, 0.999), decay=0):
        piece = optax.chain(ADAM(η, β).piece, optax.add_decayed_weights(decay))
        super().__init__(piece, η=η, β=tuple(β), decay=decay)


class InvDecay(FluxOptimiser):
    """InvDecay(γ=0.001): scales the ``n``-th step (1-based) by ``1 / (1 + γ n)``.

    A schedule, used in composition: ``Optimiser(InvDecay(), Descent(0.1))``.
    """

    def __init__(self, γ=0.001):
        super().__init__(optax.scale_by_schedule(lambda n: 1 / (1 + γ * (n + 1))), γ=γ)


class ExpDecay(FluxOptimiser):
    """ExpDecay(η=0.001, decay=0.1, decay_step=1000, clip=1e-4): a step-decay learning rate.

    Flux's documented rule: ``η`` times ``decay`` every ``decay_step`` steps, never below
    ``clip``; step ``n`` (1-based) is scaled by ``max(η * decay ** (n // decay_step), clip)``
    (Flux v0.9's code scaled by ``decay`` instead). Compose it: ``Optimiser(ExpDecay(1.0),
    ADAM())``. Below: 1, then 0.5 from step 2, then 0.25 from step 4, clipped to 0.3.

    >>> import jax.numpy as jnp
    >>> o = ExpDecay(1.0, 0.5, 2, 0.3)
    >>> s, rates = o.piece.init(jnp.zeros(1)), []
    >>> for _ in range(5):
    ...     step, s = o.piece.update(jnp.ones(1), s)
    ...     rates.append(round(float(step[0]), 4))
    >>> rates
    [1.0, 0.5, 0.5, 0.3, 0.3]
    """

    def __init__(self, η=0.001, decay=0.1, decay_step=1000, clip=1e-4):
        def rate(count):
            return jnp.maximum(η * decay ** ((count + 1) // decay_step), clip)

        super().__init__(
            optax.scale_by_schedule(rate), η=η, decay=decay, decay_step=decay_step, clip=clip
        )


class Optimiser(FluxOptimiser):
    """Optimiser(opt1, opt2, ...): apply each optimiser's step in turn, then descend.

    Each element maps the previous element's output, starting from the gradient, exactly
    as Flux's ``Optimiser``. A raw ``optax.GradientTransformation`` inside is applied as
    is to the running step in the *gradient* direction, like a building block in an
    ``optax.chain`` before the learning rate (``optax.clip_by_global_norm(1.0)``,
    ``optax.scale_by_adam()``); a complete optax optimiser such as ``optax.adam(1e-3)``
    already descends, so pass it on its own rather than inside ``Optimiser``.

    >>> Optimiser(ExpDecay(1.0), Descent(0.1))
    Optimiser(ExpDecay(1.0, 0.1, 1000, 0.0001), Descent(0.1))
    """

    def __init__(self, *opts):
        self.opts = opts
        pieces = [o.piece if isinstance(o, FluxOptimiser) else _check_tx(o) for o in opts]
        super().__init__(optax.chain(*pieces) if pieces else optax.identity())

    def __repr__(self):
        return f"Optimiser({', '.join(repr(o) for o in self.opts)})"


def _check_tx(tx):
    if not isinstance(tx, optax.GradientTransformation):
        raise TypeError(
            f"expected a fluxjax optimiser (Descent, ADAM, ...) or an "
            f"optax.GradientTransformation, got {type(tx).__name__}"
        )
    return tx


def as_transformation(opt) -> optax.GradientTransformation:
    """The optax transformation that ``opt`` stands for: ``opt.tx``, or ``opt`` if raw optax."""
    return opt.tx if isinstance(opt, FluxOptimiser) else _check_tx(opt)
