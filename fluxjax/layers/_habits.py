"""PyTorch habits on fluxjax models: ``m.eval()``, ``m.train()``, ``m.parameters()``,
``m.zero_grad()`` raise an ``AttributeError`` that names the Flux way instead of a bare
"no attribute". Installed on every class ``register``/``treelike`` sees, unless the class
has that attribute itself.
"""

from __future__ import annotations

from ..tracker import Hint

_HINTS = {
    "eval": "fluxjax models have no .eval(): fj.testmode_(m) switches Dropout and "
    "normalisation layers to evaluation (fj.trainmode_(m) switches them back), as in Flux",
    "train": "fluxjax models have no .train(): fj.trainmode_(m) switches Dropout and "
    "normalisation layers on (fj.testmode_(m) off); to fit a model, fj.train_(loss, m, data, opt)",
    "parameters": "fluxjax models have no .parameters(): fj.params(m) gives the params "
    "(a Params set), as Flux's params(m)",
    "zero_grad": "fluxjax models have no .zero_grad(): update_ resets each param's .grad "
    "after its step (update_(opt, ps, gs) / update_(x, Δ)), and fj.gradient(f, ps) never "
    "accumulates into .grad",
}


def install(cls) -> None:
    """Give ``cls`` the hints for the PyTorch method names it does not define itself.

    >>> class M: ...
    >>> install(M)
    >>> M().eval()
    Traceback (most recent call last):
    AttributeError: fluxjax models have no .eval(): fj.testmode_(m) switches Dropout ...
    """
    for name, message in _HINTS.items():
        if not hasattr(cls, name):
            setattr(cls, name, Hint(message))
