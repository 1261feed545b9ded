"""Showing models: ``summary`` (plain text, Flux style) and the HTML tables notebooks use.

This module knows no layer class (layers import it, never the reverse). A layer takes part
through two optional methods: ``_sublayers()`` (a container such as ``Chain`` lists its
layers) and ``_out_size()`` (the size of its output's last axis, as ``Dense`` knows).
"""

from __future__ import annotations

import html
import math

from . import _activations as A
from ._tree import params

# activations keep the size of their input, so a table can carry it through them
_SIZE_KEEPING = (
    A.identity,
    A.σ,
    A.logσ,
    A.relu,
    A.leakyrelu,
    A.elu,
    A.gelu,
    A.swish,
    A.softplus,
    A.tanh,
    A.softmax,
    A.logsoftmax,
)


class Table(str):
    """A string that shows as itself (not quoted) at the prompt."""

    def __repr__(self):
        return str(self)


def layer_name(f) -> str:
    """How a layer or activation prints inside a model's repr: its name, else its repr."""
    name = getattr(f, "__name__", None)
    return name if isinstance(name, str) and name else repr(f)


def _sublayers(model):
    """The layers of a container layer (``Chain``), or None for any other layer."""
    method = getattr(model, "_sublayers", None)
    return None if method is None else list(method())


def _shape(shape) -> str:
    return "×".join(map(str, shape))


def _counts(model) -> tuple[int, int, str]:
    """(number of arrays, number of parameters, their shapes) of ``model``."""
    ps = list(params(model))
    shapes = ", ".join(_shape(p.shape) for p in ps)
    return len(ps), sum(math.prod(p.shape) for p in ps), shapes


def _label(layer) -> str:
    text = layer_name(layer)
    return type(layer).__name__ if text.startswith("<") and " object at " in text else text


def _lines(model, indent: str) -> list[tuple[str, str]]:
    """(code, comment) lines of the Flux-style display of ``model``."""
    layers = _sublayers(model)
    if layers is None:
        n, total, shapes = _counts(model)
        return [(indent + _label(model), f"# {total:,} parameters: {shapes}" if n else "")]
    out = [(indent + f"{type(model).__name__}(", "")]
    for layer in layers:
        inner = _lines(layer, indent + "  ")
        code, comment = inner[-1]
        out += inner[:-1] + [(code + ",", comment)]
    return out + [(indent + ")", "")]


def summary(model) -> Table:
    """summary(model) -> the model's layers with their parameter shapes and counts.

    Returns a string that displays as the table at the prompt (``print`` it in a script).

    >>> from fluxjax.layers import Chain, Dense, σ, softmax
    >>> print(summary(Chain(Dense(10, 5, σ), Dense(5, 2), softmax)))
    Chain(
      Dense(10, 5, σ),  # 55 parameters: 5×10, 5
      Dense(5, 2),      # 12 parameters: 2×5, 2
      softmax,
    )                   # Total: 4 arrays, 67 parameters
    """
    lines = _lines(model, "")
    n, total, _ = _counts(model)
    if len(lines) > 1 or not n:
        lines[-1] = (lines[-1][0], f"# Total: {n} arrays, {total:,} parameters")
    width = max(len(code) for code, _ in lines) + 2
    text = "\n".join((code.ljust(width) + comment).rstrip() for code, comment in lines)
    return Table(text)


def _rows(model):
    """(layer, output size, parameter count) rows for the HTML table."""
    size, rows = "", []
    for layer in _sublayers(model) or [model]:
        if hasattr(layer, "_out_size"):
            size = str(layer._out_size())
        elif not any(layer is f for f in _SIZE_KEEPING):
            size = "?"
        rows.append((_label(layer), size, _counts(layer)[1]))
    return rows


def html_table(model) -> str:
    """An HTML table of ``model``'s layers: layer, output size, parameter count."""
    cell = "<td>{}</td>".format
    body = "".join(
        f"<tr>{cell(i)}{cell(html.escape(name))}{cell(size)}{cell(f'{count:,}')}</tr>"
        for i, (name, size, count) in enumerate(_rows(model))
    )
    total = f"{_counts(model)[1]:,}"
    return (
        "<table><thead><tr><th>#</th><th>Layer</th><th>Output size</th>"
        f"<th>Parameters</th></tr></thead><tbody>{body}</tbody><tfoot><tr><td></td>"
        f"<td>Total</td><td></td><td>{total}</td></tr></tfoot></table>"
    )
