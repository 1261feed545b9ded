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


def positive(layer: str, **named) -> None:
    """Each named int (or tuple of ints; None skipped) is at least 1, else ValueError.

    >>> positive("MaxPool", k=(2, 2), stride=None)
    >>> positive("Conv", stride=(1, 0))
    Traceback (most recent call last):
    ValueError: Conv: stride must be positive (at least 1) in every dimension, got stride=(1, 0)
    """
    for what, v in named.items():
        values = tuple(v) if isinstance(v, (tuple, list)) else (v,)
        if any(is_size(i) and i < 1 for i in values):
            raise ValueError(
                f"{layer}: {what} must be positive (at least 1) in every dimension, "
                f"got {what}={v!r}"
            )


def conv_args(layer: str, k, ch_in, ch_out, stride, dilation) -> None:
    """A conv-family constructor's sizes: the kernel ``k`` and the channels ``in``/``out``
    (when ``k`` is a size tuple), ``stride`` and ``dilation``, each at least 1."""
    if isinstance(k, tuple) and all(is_size(i) for i in k):
        positive(layer, k=k, **{"in": ch_in, "out": ch_out})
    positive(layer, stride=stride, dilation=dilation)


def axis_in_range(layer: str, what: str, d: int, ndim: int) -> int:
    """``d`` as an axis of an ``ndim``-dim input (negative counts from the end), else
    ValueError naming ``layer`` and ``what``, never a silent wrap-around."""
    if not -ndim <= d < ndim:
        raise ValueError(
            f"{layer}: {what}={d} is out of range for an input with {ndim} axes "
            f"(valid: {-ndim} … {ndim - 1})"
        )
    return d % ndim


def kernel_fits(fn: str, sizes, k, spec, out) -> None:
    """A convolution's output ``out`` has every spatial size ≥ 1, as NNlib requires: the
    (dilated) kernel must not span more than the padded input."""
    if min(out, default=1) < 1:
        span = tuple((kk - 1) * d + 1 for kk, d in zip(k, spec.dilation))
        padded = tuple(n + lo + hi for n, (lo, hi) in zip(sizes, spec.pad))
        raise ValueError(
            f"{fn}: the kernel {tuple(k)} with dilation {spec.dilation} spans {span}, more "
            f"than the padded input {padded}; use a smaller dilation or kernel, or more pad"
        )


def last_axis(layer, x, n: int) -> None:
    """``x``'s last axis has size ``n`` (or 1, broadcast), else ValueError naming ``layer``."""
    shape = getattr(x, "shape", None)
    if shape and shape[-1] not in (1, n):
        raise ValueError(f"{layer!r}: expected input of size {n} (last axis), got {tuple(shape)}")
