"""Argument checks for layer constructors: bad input is refused where it is given.

Each check raises with the cause and the fix, naming the layer, so a wrong size or a
swapped argument fails at ``Dense(...)``/``Chain(...)``, not at the first call.
"""

from __future__ import annotations

import numbers


def is_size(n) -> bool:
    """A whole number (``bool`` excluded): what a layer size may be."""
    return isinstance(n, numbers.Integral) and not isinstance(n, bool)


def looks_like_size(n) -> bool:
    """A value meant as a size rather than an array: a number, a string or None."""
    return isinstance(n, (numbers.Number, str)) or n is None


def sizes(layer: str, **named) -> tuple[int, ...]:
    """sizes(layer, **named) -> the sizes as ints, each checked: a whole number ≥ 1.

    >>> sizes("Dense", n_in=10, n_out=5)
    (10, 5)
    """
    for what, n in named.items():
        if not is_size(n):
            raise TypeError(
                f"{layer}: the size {what} must be a whole number (an int), got "
                f"{type(n).__name__} {n!r}; write e.g. {layer}(10, 5)"
            )
        if n < 1:
            shown = ", ".join(map(str, named.values()))
            raise ValueError(f"{layer}({shown}): sizes must be positive (at least 1), {what}={n}")
    return tuple(int(n) for n in named.values())


def callable_arg(layer: str, what: str, f, hint: str = "") -> None:
    """Refuses a non-callable ``f`` given as ``what`` to ``layer``."""
    if not callable(f):
        raise TypeError(
            f"{layer}: {what} must be callable (a function or a layer), got "
            f"{type(f).__name__} {f!r}{hint}"
        )


def dense_shapes(W, b) -> None:
    """``W`` is a matrix ``(out, in)`` and ``b`` (unless False) has shape ``(out,)``."""
    if len(W.shape) != 2:
        raise ValueError(f"Dense: W must be a matrix (out, in), got shape {tuple(W.shape)}")
    if b is not False and tuple(b.shape) != (W.shape[0],):
        raise ValueError(
            f"Dense: b must have shape {(W.shape[0],)} to match W of shape {tuple(W.shape)} "
            f"(out, in), got {tuple(b.shape)}; if W is (in, out), pass W.T"
        )
