"""Docstrings, comments and docs point users only at documents that ship with amtoolkit."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
SOURCE_DIRS = ("amtoolkit", "benchmarks", "examples", "configs")
DOCS = ROOT / "docs"

# "docs/analysis.md, *Comparing sets*", the section optional and possibly wrapped onto a
# comment line ("docs/analysis.md,\n#: *Comparing sets*")
DOC_REFERENCE = re.compile(r"docs/([\w-]+)\.md(?:,\s*(?:#:?\s*)?\*([^*]+)\*)?")
COMMENT_WRAP = re.compile(r"\n\s*#:?")
# a bold run-in label at the start of a line or list item: "- **Long analyses resume.** With"
BOLD_LABEL = re.compile(r"^(?:[-*]\s+)?\*\*([^*]+)\*\*", re.MULTILINE)


def shipped_text_files() -> list[Path]:
    """The Python, Markdown and YAML files of the package, benchmarks, examples, configs,
    docs and README."""
    files = [ROOT / "README.md", *sorted(DOCS.glob("*.md"))]
    for name in SOURCE_DIRS:
        for suffix in ("*.py", "*.md", "*.yaml"):
            files += sorted((ROOT / name).rglob(suffix))
    return [path for path in files if path.is_file()]


def sections(page: Path) -> list[str]:
    """The headings of `page` (without their leading #) and its bold run-in labels."""
    text = page.read_text(encoding="utf-8")
    titles = [line.lstrip("#").strip() for line in text.splitlines() if line.startswith("#")]
    return titles + [label.rstrip(".") for label in BOLD_LABEL.findall(text)]


def test_no_reference_to_the_unshipped_design_file():
    hits = [
        f"{path.relative_to(ROOT)}:{number}: {line.strip()}"
        for path in shipped_text_files()
        for number, line in enumerate(path.read_text(encoding="utf-8").splitlines(), 1)
        if re.search(r"\bDESIGN", line)
    ]
    assert not hits, "DESIGN.md does not ship; cite a docs page instead:\n" + "\n".join(hits)


def test_cited_docs_pages_and_sections_exist():
    cited = [
        (path, match)
        for path in shipped_text_files()
        for match in DOC_REFERENCE.finditer(path.read_text(encoding="utf-8"))
    ]
    if not cited:
        pytest.fail("no docs references found: the pattern no longer matches the sources")
    missing = []
    for path, match in cited:
        page = DOCS / f"{match[1]}.md"
        if not page.is_file():
            missing.append(f"{path.relative_to(ROOT)}: {match[0]!r} (no such page)")
            continue
        if match[2] is None:
            continue
        section = " ".join(COMMENT_WRAP.sub(" ", match[2]).split())
        if not any(heading.startswith(section) for heading in sections(page)):
            missing.append(f"{path.relative_to(ROOT)}: {match[0]!r} (no such section)")
    assert not missing, "\n".join(missing)
