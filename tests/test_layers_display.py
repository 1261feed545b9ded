"""summary and the HTML tables: counts worked out by hand (out·in + out per Dense)."""

import dataclasses
from typing import Any

import jax.numpy as jnp

from fluxjax.layers import Chain, Dense, relu, softmax, summary, treelike, σ
from fluxjax.tracker import param


def test_summary_of_the_seed_chain():
    text = summary(Chain(Dense(10, 5, σ), Dense(5, 2), softmax))
    lines = str(text).splitlines()
    assert lines[0] == "Chain("
    assert lines[1].startswith("  Dense(10, 5, σ),") and lines[1].endswith(
        "# 55 parameters: 5×10, 5"
    )
    assert lines[2].startswith("  Dense(5, 2),") and lines[2].endswith("# 12 parameters: 2×5, 2")
    assert lines[3] == "  softmax,"
    assert lines[4].startswith(")") and lines[4].endswith("# Total: 4 arrays, 67 parameters")
    assert len(lines) == 5
    assert repr(text) == str(text)  # shows as the table at the prompt
    comments = [line.index("#") for line in lines if "#" in line]
    assert len(set(comments)) == 1  # aligned


def test_summary_of_nested_and_single_layers():
    lines = str(summary(Chain(Chain(Dense(2, 3)), relu))).splitlines()
    assert [line.split("#")[0].rstrip() for line in lines] == [
        "Chain(",
        "  Chain(",
        "    Dense(2, 3),",
        "  ),",
        "  relu,",
        ")",
    ]
    assert lines[2].endswith("# 9 parameters: 3×2, 3")
    assert lines[-1].endswith("# Total: 2 arrays, 9 parameters")
    assert str(summary(Dense(4, 3))) == "Dense(4, 3)  # 15 parameters: 3×4, 3"
    assert str(summary(Dense(1000, 1000, bias=False))).endswith("# 1,000,000 parameters: 1000×1000")


def test_summary_of_a_treelike_without_repr():
    @treelike
    @dataclasses.dataclass(repr=False)
    class Affine:
        W: Any
        b: Any

    text = str(summary(Affine(param(jnp.ones((5, 10))), param(jnp.ones(5)))))
    assert text == "Affine  # 55 parameters: 5×10, 5"


def test_html_tables():
    m = Chain(Dense(10, 5, σ), Dense(5, 2), softmax, lambda x: x)
    page = m._repr_html_()
    assert page.startswith("<table") and page.endswith("</table>")
    for cell in ["<td>Dense(10, 5, σ)</td>", "<td>55</td>", "<td>12</td>", "<td>67</td>"]:
        assert cell in page
    assert "<tr><td>2</td><td>softmax</td><td>2</td><td>0</td></tr>" in page  # size carried
    assert "&lt;lambda&gt;" in page and "<lambda>" not in page  # escaped
    assert "<td>?</td>" in page  # a lambda's output size is unknown
    single = Dense(3, 4)._repr_html_()
    assert "<td>Dense(3, 4)</td><td>4</td><td>16</td>" in single
