"""MkDocs hooks: the pages that are generated from the project itself, so that they cannot drift.

* ``<!-- aekit:cli -->`` becomes the ``--help`` of ``aekit`` and of every registered command.
* ``<!-- aekit:benchmarks -->`` becomes ``bench/RESULTS.md`` (or a sentence saying none is recorded).
* ``<!-- aekit:readme SECTION -->`` becomes the ``## SECTION`` of README.md (no SECTION: its introduction).
* Every ``examples/NN_name.py`` becomes the page ``gallery/NN_name.md``: its docstring, the figure
  and the numbers its last full run wrote (``docs/gallery/NN_name.{png,json}``), the claims checked,
  and its source. A missing or partial result fails the build.
* Every page under docs/ that the nav does not list is added to its "Applications" section.
* Relative links that leave docs/ point at the page that shows their target (bench/RESULTS.md: the
  benchmarks page), or become plain text naming the file.
"""

from __future__ import annotations

import argparse
import ast
import json
import os
import posixpath
import re
from pathlib import Path
from typing import Any

from mkdocs.config.defaults import MkDocsConfig
from mkdocs.exceptions import PluginError
from mkdocs.structure.files import File, Files
from mkdocs.structure.pages import Page

ROOT = Path(__file__).resolve().parents[1]
EXAMPLES = ROOT / "examples"
RESULTS = ROOT / "bench" / "RESULTS.md"
EXAMPLE_NAME = re.compile(r"^\d\d_[a-z0-9_]+$")
MARKER = re.compile(r"<!--\s*aekit:(\w+)\s*(.*?)\s*-->")
LINK = re.compile(r"(!?\[[^\]]*\])\(([^)\s]+)\)")
APPLICATIONS_SECTION = "Applications"
HELP_COLUMNS = "100"


# ------------------------------------------------------------------------------------------------ #
# hooks


def on_config(config: MkDocsConfig) -> MkDocsConfig:
    """Add the gallery pages and any page the nav does not list."""
    docs_dir = Path(config.docs_dir)
    nav = config.nav or []
    listed = set(_nav_paths(nav))
    for entry in nav:
        if isinstance(entry, dict) and "Lecture gallery" in entry:
            entry["Lecture gallery"] = ["gallery/index.md", *[f"gallery/{name}.md" for name in example_names()]]
            listed.update(entry["Lecture gallery"])
    unlisted = sorted(
        path.relative_to(docs_dir).as_posix()
        for path in docs_dir.rglob("*.md")
        if path.relative_to(docs_dir).as_posix() not in listed
    )
    if unlisted:
        section = next((e for e in nav if isinstance(e, dict) and APPLICATIONS_SECTION in e), None)
        if section is None:
            section = {APPLICATIONS_SECTION: []}
            nav.append(section)
        section[APPLICATIONS_SECTION].extend(unlisted)
    config.nav = nav
    return config


def on_files(files: Files, config: MkDocsConfig) -> Files:
    """Generate the gallery pages from the examples and their recorded results."""
    names = example_names()
    rows = []
    for name in names:
        record, docstring = _gallery_record(name, Path(config.docs_dir))
        title = _title(docstring)
        rows.append(f'| [{title}]({name}.md) | ![{title}]({name}.png){{ width="260" }} |')
        files.append(File.generated(config, f"gallery/{name}.md", content=gallery_page(name, record, docstring)))
    index = [
        "# Lecture gallery",
        "",
        "Every question of the lecture as a short script in `examples/`, with the figure and the numbers",
        "measured by its last full run. Each runs as a script (`python examples/NN_name.py`), cell by cell",
        "in Jupyter (`# %%` cells), and at a tiny size in the test suite, where its claims are checked.",
        "",
        "| example | figure |",
        "| --- | --- |",
        *rows,
        "",
    ]
    files.append(File.generated(config, "gallery/index.md", content="\n".join(index)))
    return files


def on_page_markdown(markdown: str, page: Page, config: MkDocsConfig, files: Files) -> str:
    """Expand the markers and fix the links that leave docs/."""
    page_path = page.file.src_uri
    expanders = {
        "cli": lambda _: cli_reference(),
        "benchmarks": lambda _: benchmarks(page_path, config, files),
        "readme": lambda section: readme_section(section, page_path, config, files),
    }

    def expand(match: re.Match) -> str:
        kind, argument = match.group(1), match.group(2)
        if kind not in expanders:
            raise PluginError(f"{page_path}: unknown marker aekit:{kind}")
        return expanders[kind](argument)

    markdown = MARKER.sub(expand, markdown)
    if not page.file.generated_by:
        markdown = rewrite_links(markdown, (Path(config.docs_dir) / page_path).parent, page_path, config, files)
    return markdown


# ------------------------------------------------------------------------------------------------ #
# the CLI reference


def _subcommands(parser: argparse.ArgumentParser) -> dict[str, argparse.ArgumentParser]:
    for action in parser._actions:
        if isinstance(action, argparse._SubParsersAction):
            return dict(action.choices)
    return {}


def cli_reference() -> str:
    """``aekit --help`` and ``aekit COMMAND --help`` for every registered command, as Markdown."""
    from aekit.cli import build_parser
    from aekit.cli.base import _COMMANDS

    previous = os.environ.get("COLUMNS")
    os.environ["COLUMNS"] = HELP_COLUMNS  # argparse wraps to the terminal width: fix it
    try:
        parser = build_parser()
        parts = ["## aekit", "", "```text", parser.format_help().rstrip(), "```", ""]
        subcommands = _subcommands(parser)
        for name, (_, _, summary, _) in _COMMANDS.items():
            parts += [f"## aekit {name}", "", summary[0].upper() + summary[1:] + ".", ""]
            parts += ["```text", _help_text(subcommands[name]), "```", ""]
    finally:
        if previous is None:
            os.environ.pop("COLUMNS", None)
        else:
            os.environ["COLUMNS"] = previous
    return "\n".join(parts)


def _help_text(parser: argparse.ArgumentParser) -> str:
    text = parser.format_help().rstrip()
    for sub in _subcommands(parser).values():  # commands with their own subcommands (aekit hash build)
        text += f"\n\n$ {sub.prog} --help\n" + _help_text(sub)
    return text


# ------------------------------------------------------------------------------------------------ #
# included Markdown: bench/RESULTS.md and README sections


def benchmarks(page_path: str, config: MkDocsConfig, files: Files) -> str:
    if not RESULTS.is_file():
        return "No benchmark results are recorded in this version: `bench/RESULTS.md` does not exist.\n"
    text = RESULTS.read_text(encoding="utf-8")
    text = re.sub(r"\A#\s[^\n]*\n", "", text)  # the page has its own title
    return rewrite_links(text, RESULTS.parent, page_path, config, files)


def readme_section(title: str, page_path: str, config: MkDocsConfig, files: Files) -> str:
    """The ``## title`` section of README.md; with no title, the introduction before the first section."""
    readme = (ROOT / "README.md").read_text(encoding="utf-8")
    if not title:
        intro = re.sub(r"\A#\s[^\n]*\n", "", readme.split("\n## ", 1)[0])
        return rewrite_links(intro, ROOT, page_path, config, files)
    match = re.search(rf"^## {re.escape(title)}\s*\n(.*?)(?=^## |\Z)", readme, flags=re.M | re.S)
    if match is None:
        raise PluginError(f"{page_path}: README.md has no section '## {title}'")
    return rewrite_links(match.group(1), ROOT, page_path, config, files)


def rewrite_links(markdown: str, source_dir: Path, page_path: str, config: MkDocsConfig, files: Files) -> str:
    """Relative links in Markdown read from ``source_dir``, rewritten for the page at ``page_path``.

    Links between pages of docs/ are left to MkDocs (which checks them). From included text, a
    target inside docs/ is linked relative to the page when the site has it; bench/RESULTS.md goes
    to the benchmarks page; anything else becomes its repository path as code (the site cannot
    serve it). Fenced code blocks are left alone.
    """
    docs_dir = Path(config.docs_dir).resolve()
    page_dir = posixpath.dirname(page_path)
    from_docs = source_dir.resolve().is_relative_to(docs_dir)

    def fix(match: re.Match) -> str:
        text, target = match.group(1), match.group(2)
        if re.match(r"^[a-z][a-z0-9+.-]*:|^#|^/", target):
            return match.group(0)
        path_part, _, anchor = target.partition("#")
        resolved = (source_dir / path_part).resolve()
        if from_docs and resolved.is_relative_to(docs_dir):
            return match.group(0)  # a link between pages: MkDocs checks it
        if resolved == RESULTS.resolve():
            resolved = docs_dir / "benchmarks.md"
        if resolved.is_relative_to(docs_dir):
            in_docs = resolved.relative_to(docs_dir).as_posix()
            if files.get_file_from_path(in_docs) is not None:
                relative = posixpath.relpath(in_docs, page_dir or ".")
                return f"{text}({relative}{'#' + anchor if anchor else ''})"
        shown = resolved.relative_to(ROOT).as_posix() if resolved.is_relative_to(ROOT) else path_part
        label = text[1:-1] if not text.startswith("!") else text[2:-1]
        return label if label.strip("`") == shown else f"{label} (`{shown}`)"

    pieces = re.split(r"(^```.*?^```)", markdown, flags=re.M | re.S)
    return "".join(piece if piece.startswith("```") else LINK.sub(fix, piece) for piece in pieces)


# ------------------------------------------------------------------------------------------------ #
# the gallery


def example_names() -> list[str]:
    return sorted(path.stem for path in EXAMPLES.glob("*.py") if EXAMPLE_NAME.match(path.stem))


def _title(docstring: str) -> str:
    return docstring.strip().splitlines()[0].lstrip("# ").strip()


def _gallery_record(name: str, docs_dir: Path) -> tuple[dict[str, Any], str]:
    source = (EXAMPLES / f"{name}.py").read_text(encoding="utf-8")
    docstring = ast.get_docstring(ast.parse(source)) or ""
    if not docstring.startswith("# "):
        raise PluginError(f"examples/{name}.py: its docstring must start with a '# Title' line")
    result, figure = docs_dir / "gallery" / f"{name}.json", docs_dir / "gallery" / f"{name}.png"
    if not (result.is_file() and figure.is_file()):
        raise PluginError(
            f"examples/{name}.py has no recorded results: run `python examples/{name}.py` "
            f"to write docs/gallery/{name}.png and docs/gallery/{name}.json"
        )
    record = json.loads(result.read_text(encoding="utf-8"))
    if record.get("size") != "full":
        raise PluginError(f"docs/gallery/{name}.json was written by a {record.get('size')!r} run, not a full one")
    return record, docstring


def _number(value: Any) -> str:
    if isinstance(value, int):  # bools too
        return str(value)
    if value == 0 or 1e-3 <= abs(value) < 1e5:
        return f"{value:.4g}"
    return f"{value:.3e}"


def gallery_page(name: str, record: dict[str, Any], docstring: str) -> str:
    """The Markdown of one gallery page."""
    source = (EXAMPLES / f"{name}.py").read_text(encoding="utf-8")
    body = ast.get_source_segment(source, ast.parse(source).body[0]) or ""
    code = source.replace(body, "", 1).lstrip("\n")  # the docstring is the page's text
    claims = [f"- {'✅' if holds else '❌'} {text}" for text, holds in record["claims"].items()]
    numbers = [f"| {record['labels'][key]} | {_number(value)} |" for key, value in record["numbers"].items()]
    return "\n".join(
        [
            docstring,
            "",
            f"![{_title(docstring)}]({name}.png){{ .gallery-figure }}",
            "",
            "## What the run measured",
            "",
            record["answer"],
            "",
            *claims,
            "",
            "| measured | value |",
            "| --- | --- |",
            *numbers,
            "",
            f"Data: {record['data']}. Run on {record['date']}: {record['seconds']:.0f} s on "
            f"{record['threads']} CPU thread(s), torch {record['torch']}. Raw numbers: [{name}.json]({name}.json).",
            "",
            "## Run it",
            "",
            "```bash",
            f"python examples/{name}.py                 # full size: writes docs/gallery/{name}.png and .json",
            f"python examples/{name}.py --size tiny --out /tmp/gallery   # seconds: the test suite's size",
            "```",
            "",
            '??? example "The script"',
            "",
            "    ```python",
            *[f"    {line}" if line else "" for line in code.splitlines()],
            "    ```",
            "",
        ]
    )


def _nav_paths(nav: Any):
    if isinstance(nav, str):
        yield nav
    elif isinstance(nav, list):
        for item in nav:
            yield from _nav_paths(item)
    elif isinstance(nav, dict):
        for value in nav.values():
            yield from _nav_paths(value)
