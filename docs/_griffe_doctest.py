"""Griffe extension for the API reference: doctest examples become ``pycon`` code blocks.

fluxjax's docstrings follow Flux's style (signature, formula, example) rather than a
sectioned style, so their ``>>>`` examples sit in the running text. Markdown would read
``>>>`` as nested quotes; this wraps each example (prompts, continuation lines and the
expected output, up to a blank line) in a fenced block instead.
"""

from __future__ import annotations

import griffe


def fence_doctests(text: str) -> str:
    """``text`` with every run of doctest lines wrapped in a ```` ```pycon ```` fence."""
    out, block = [], []
    for line in text.splitlines():
        if line.lstrip().startswith(">>>") or (block and line.strip()):
            block.append(line)
            continue
        if block:
            out += ["```pycon", *block, "```"]
            block = []
        out.append(line)
    if block:
        out += ["```pycon", *block, "```"]
    return "\n".join(out)


class DoctestFences(griffe.Extension):
    """Applies ``fence_doctests`` to every docstring griffe loads."""

    def on_instance(self, *, obj: griffe.Object, **kwargs) -> None:
        if obj.docstring is not None:
            obj.docstring.value = fence_doctests(obj.docstring.value)
