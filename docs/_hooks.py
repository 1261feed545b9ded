"""MkDocs hooks: pages made from files that live outside ``docs/`` (read at build time).

- Every executed notebook ``notebooks/NN_*.ipynb`` becomes a tutorial page
  ``tutorials/NN_*.md`` (text cells as they are, code cells as code, stored outputs as
  text blocks and inline images) and is added to the "Tutorials" section of the nav.
  Nothing runs: the outputs are the ones ``python -m notebooks.build`` stored.
- ``benchmarks/README.md`` becomes the "Performance" page, with its chart.
- A doctest line (``>>>``) outside a fenced code block is a warning, so ``--strict`` fails
  on it with the page, the line and the fix: Markdown would read it as nested quotes, and
  its output lines (``[(2, 5), (2, 5)]``) as cross-references.
- The API pages name no public name: a ``members: fluxjax.sub.LIST`` option becomes that
  list, and a line ``::: fluxjax.sub.LIST`` one ``::: fluxjax.sub.NAME`` block per name, read
  from the source (each public name is declared once, in a list such as its ``__all__``).

Plain nbformat JSON and a few lines of Markdown: fast, offline, no extra plugin.
"""

from __future__ import annotations

import ast
import json
import re
from pathlib import Path

from mkdocs.plugins import get_plugin_logger
from mkdocs.structure.files import File

ROOT = Path(__file__).resolve().parent.parent
NOTEBOOKS = ROOT / "notebooks"
BENCHMARKS = ROOT / "benchmarks"
_LOCAL_LINK = re.compile(r"(?<!!)\[([^\]]+)\]\((?![a-z]+:|#)[^)]*\)")
_FENCE = re.compile(r"^\s*(`{3,}|~{3,})")
_DOCTEST = re.compile(r"^ {0,3}>>>")
_LIST = r"(?P<module>fluxjax[\w.]*)\.(?P<list>__all__|[A-Z_]+)[ \t]*$"
_MEMBERS = re.compile(r"^(?P<indent>\s+)members: " + _LIST, re.M)
_BLOCKS = re.compile(r"^::: " + _LIST, re.M)
log = get_plugin_logger("fluxjax")


def _notebooks() -> list[Path]:
    return sorted(NOTEBOOKS.glob("[0-9][0-9]_*.ipynb"))


def _title(nb: dict, fallback: str) -> str:
    for cell in nb["cells"]:
        for line in "".join(cell["source"]).splitlines():
            if cell["cell_type"] == "markdown" and line.startswith("# "):
                return line[2:].strip().replace("`", "")
    return fallback


def _outputs(cell: dict) -> list[str]:
    """A code cell's stored outputs as Markdown: text in one block, images inline."""
    texts, images = [], []
    for o in cell.get("outputs", []):
        data = o.get("data", {})
        if o["output_type"] == "stream":
            texts.append("".join(o["text"]))
        elif "image/png" in data:
            images.append(f"![output](data:image/png;base64,{''.join(data['image/png'])})")
        elif "text/plain" in data:
            texts.append("".join(data["text/plain"]))
        elif o["output_type"] == "error":
            texts.append(f"{o['ename']}: {o['evalue']}")
    text = "\n".join(t.rstrip("\n") for t in texts)
    return ([f"```text\n{text}\n```"] if text else []) + images


def notebook_markdown(path: Path) -> str:
    """The Markdown page for the executed notebook at ``path``."""
    nb = json.loads(path.read_text(encoding="utf-8"))
    parts = []
    for cell in nb["cells"]:
        source = "".join(cell["source"])
        if cell["cell_type"] == "markdown":
            parts.append(source)
        elif cell["cell_type"] == "code":
            parts += [f"```python\n{source}\n```", *_outputs(cell)]
    note = (
        f"*This page is the notebook `notebooks/{path.name}`, with the outputs stored when "
        f"it last ran. Its source is the script `notebooks/{path.stem}.py`.*"
    )
    return "\n\n".join(parts[:1] + [note] + parts[1:]) + "\n"


def performance_markdown() -> str:
    """``benchmarks/README.md`` with its chart renamed and links to code made plain text."""
    text = (BENCHMARKS / "README.md").read_text(encoding="utf-8")
    for chart in _charts():
        text = text.replace(f"]({chart.name})", f"](performance-{chart.name})")
    return _LOCAL_LINK.sub(r"\1", text)


def _charts():
    """The benchmark charts the benchmarks README shows (``results.png``, ``epochs.png``)."""
    return sorted(BENCHMARKS.glob("*.png"))


def bare_doctest_lines(markdown: str) -> list[int]:
    """The numbers (from 1) of the ``>>>`` lines of ``markdown`` outside fenced code blocks.

    >>> bare_doctest_lines("text\\n>>> 1 + 1\\n2\\n```pycon\\n>>> 1 + 1\\n2\\n\\n```")
    [2]
    """
    fence, found = None, []
    for number, line in enumerate(markdown.splitlines(), 1):
        marker = _FENCE.match(line)
        if marker and fence is None:
            fence = marker.group(1)
        elif marker and marker.group(1).startswith(fence) and not line.strip(" `~"):
            fence = None
        elif fence is None and _DOCTEST.match(line):
            found.append(number)
    return found


def _module_path(module: str) -> Path:
    path = ROOT.joinpath(*module.split("."))
    return path / "__init__.py" if path.is_dir() else path.with_suffix(".py")


def declared(module: str, name: str = "__all__") -> list[str]:
    """The names of the list literal ``name = [...]`` in ``module``'s source, less submodules.

    Read statically (nothing is imported); for ``fluxjax.__all__`` that is the top level's
    own names, before it appends each subpackage's ``__all__``. A submodule has its own page.

    >>> declared("fluxjax", "__all__")
    ['jit', 'load', 'save']
    """
    tree = ast.parse(_module_path(module).read_text(encoding="utf-8"))
    for node in tree.body:
        if isinstance(node, ast.Assign) and [getattr(t, "id", None) for t in node.targets] == [
            name
        ]:
            names = ast.literal_eval(node.value)
            return [n for n in names if not _module_path(f"{module}.{n}").exists()]
    raise LookupError(f"{module} has no list literal {name} = [...] in its source")


def with_members(markdown: str) -> str:
    """``markdown`` with each ``members: fluxjax.sub.LIST`` option replaced by that list and
    each ``::: fluxjax.sub.LIST`` line by one ``::: fluxjax.sub.NAME`` block per name.

    >>> print(with_members("::: fluxjax.__all__\\n\\n::: fluxjax\\n    members: fluxjax.__all__"))
    ::: fluxjax.jit
    <BLANKLINE>
    ::: fluxjax.load
    <BLANKLINE>
    ::: fluxjax.save
    <BLANKLINE>
    ::: fluxjax
        members: [jit, load, save]
    """

    def members(match: re.Match) -> str:
        names = ", ".join(declared(match["module"], match["list"]))
        return f"{match['indent']}members: [{names}]"

    def blocks(match: re.Match) -> str:
        names = declared(match["module"], match["list"])
        return "\n\n".join(f"::: {match['module']}.{name}" for name in names)

    return _BLOCKS.sub(blocks, _MEMBERS.sub(members, markdown))


def on_page_markdown(markdown, page, **kwargs):
    """Fill in the API pages' member lists; warn (an error under ``--strict``) about each
    doctest line outside a fence."""
    if page.file.src_uri.startswith("api/"):
        markdown = with_members(markdown)
    for number in bare_doctest_lines(markdown):
        log.warning(
            f"{page.file.src_uri}:{number}: doctest line outside a fenced code block; "
            "put the example in a ```pycon fence, with a blank line before the closing "
            "fence so doctest stops there"
        )
    return markdown


def on_config(config, **kwargs):
    """Fill the nav's "Tutorials" section with one entry per notebook."""
    for entry in config.nav or []:
        if isinstance(entry, dict) and "Tutorials" in entry:
            pages = [(json.loads(p.read_text(encoding="utf-8")), p.stem) for p in _notebooks()]
            entry["Tutorials"] = [{_title(nb, stem): f"tutorials/{stem}.md"} for nb, stem in pages]
    return config


def on_files(files, config, **kwargs):
    """Add the generated pages (and the benchmark charts) to the site's files."""
    for path in _notebooks():
        files.append(
            File.generated(config, f"tutorials/{path.stem}.md", content=notebook_markdown(path))
        )
    files.append(File.generated(config, "performance.md", content=performance_markdown()))
    for chart in _charts():
        name = f"performance-{chart.name}"
        files.append(File.generated(config, name, abs_src_path=str(chart)))
    return files
