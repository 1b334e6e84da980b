"""Replace one marked section of a Markdown results file and keep everything else byte for byte.

A section is the text between ``<!-- NAME:start -->`` and ``<!-- NAME:end -->`` (markers included). Several
benchmarks write into ``docs/results/inpainting.md``, each into its own section, so none overwrites another's work.
"""

from __future__ import annotations

from pathlib import Path

__all__ = ["markers", "read_section", "replace_section", "write_section"]


def markers(name: str) -> tuple[str, str]:
    """``("<!-- name:start -->", "<!-- name:end -->")``."""
    return f"<!-- {name}:start -->", f"<!-- {name}:end -->"


def replace_section(doc: str, name: str, body: str, heading: str | None = None) -> str:
    """``doc`` with the section ``name`` holding ``body``; a missing section is appended (after ``heading``).

    Raises:
        ValueError: the markers are present but out of order, or one of them is missing or repeated.
    """
    start, end = markers(name)
    n_start, n_end = doc.count(start), doc.count(end)
    block = f"{start}\n{body.strip()}\n{end}"
    if n_start == n_end == 0:
        sep = "" if not doc or doc.endswith("\n\n") else ("\n" if doc.endswith("\n") else "\n\n")
        title = f"{heading}\n\n" if heading else ""
        return f"{doc}{sep}{title}{block}\n"
    if n_start != 1 or n_end != 1:
        raise ValueError(f"section {name!r}: expected one start and one end marker, found {n_start} and {n_end}")
    i, j = doc.index(start), doc.index(end)
    if j < i:
        raise ValueError(f"section {name!r}: the end marker comes before the start marker")
    return doc[:i] + block + doc[j + len(end):]


def read_section(doc: str, name: str) -> str | None:
    """The text between the markers of ``name`` (markers excluded), or None if the section is absent."""
    start, end = markers(name)
    if start not in doc or end not in doc:
        return None
    return doc[doc.index(start) + len(start):doc.index(end)].strip("\n")


def write_section(path: str | Path, name: str, body: str, heading: str | None = None) -> None:
    """Rewrites the section ``name`` of the file at ``path`` (created if absent)."""
    p = Path(path)
    doc = p.read_text() if p.exists() else ""
    p.write_text(replace_section(doc, name, body, heading))
