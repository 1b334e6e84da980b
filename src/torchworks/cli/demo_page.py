"""The tour's page model and renderer: what a section produced, and one self-contained HTML file showing it.

A section builder fills a :class:`SectionResult` (commands first, so they are shown even when the section fails
later), adding blocks: paragraphs, preformatted text, tables and rows of images. :func:`render_page` turns the
results into ``index.html`` with inline CSS, no script and no remote resource: images are PNG files beside the
page, linked by relative names, so the folder can be opened offline or copied elsewhere as a whole.

Standard library only.
"""

from __future__ import annotations

import html
import platform
import time
from dataclasses import dataclass, field
from typing import Any

OK, NOT_SHIPPED, NO_DATA, FAILED = "ok", "not shipped", "no data", "FAILED"
"""Section states. Only FAILED makes ``torchworks demo`` exit non-zero: the others are expected situations
(a model that has not been trained yet, a data set absent on this machine) and the page says how to fix them."""


@dataclass
class SectionResult:
    """What one section of the tour produced.

    Attributes:
        name: the key of ``--sections``.
        title: the heading on the page.
        status: one of ``ok``, ``not shipped``, ``no data``, ``FAILED``.
        summary: one line for the terminal summary and the table of contents.
        commands: shell commands that reproduce the section (the first is always ``torchworks demo``).
        blocks: ``(kind, payload)`` pairs rendered in order: ``p``, ``pre``, ``table``, ``images``.
        error: the failure or the reason the section could not run (shown in the page and the summary).
        detail: a traceback, for failures only.
        seconds: wall time of the section.
    """

    name: str
    title: str
    status: str = OK
    summary: str = ""
    commands: list[str] = field(default_factory=list)
    blocks: list[tuple[str, Any]] = field(default_factory=list)
    error: str | None = None
    detail: str | None = None
    seconds: float = 0.0

    def text(self, words: str) -> None:
        """A paragraph (plain text, escaped)."""
        self.blocks.append(("p", words))

    def pre(self, text: str) -> None:
        """Preformatted text (program output, generated text)."""
        self.blocks.append(("pre", text))

    def table(self, header: list[str], rows: list[list[Any]]) -> None:
        """A table; cells are converted with ``str``."""
        self.blocks.append(("table", (header, rows)))

    def images(self, items: list[tuple[str, str]], pixelated: bool = False) -> None:
        """A row of images: ``(file name beside index.html, caption)``; ``pixelated`` enlarges tiny images 3x
        without smoothing, so that every pixel stays visible."""
        self.blocks.append(("images", (items, pixelated)))

    def image_files(self) -> list[str]:
        """File names of every image the section shows."""
        return [f for kind, payload in self.blocks if kind == "images" for f, _ in payload[0]]


CSS = """
body { font: 15px/1.45 system-ui, sans-serif; max-width: 1100px; margin: 2em auto; padding: 0 1em; color: #222; }
h1 { margin-bottom: 0.2em; } h2 { border-bottom: 1px solid #ccc; padding-bottom: 0.2em; margin-top: 2em; }
.meta { color: #666; font-size: 0.9em; }
pre { background: #f5f5f5; padding: 0.6em 0.8em; overflow-x: auto; white-space: pre-wrap; }
pre.cmd { background: #1e1e1e; color: #e8e8e8; }
table { border-collapse: collapse; margin: 0.6em 0; }
td, th { border: 1px solid #ccc; padding: 0.25em 0.6em; text-align: left; vertical-align: top; }
th { background: #f0f0f0; }
.row { display: flex; flex-wrap: wrap; gap: 0.8em; margin: 0.6em 0; }
figure { margin: 0; } figcaption { font-size: 0.85em; color: #444; }
figure.px figcaption { max-width: 200px; }
img { max-width: 100%; border: 1px solid #ddd; }
img.px { width: 192px; image-rendering: pixelated; }
.status { font-weight: bold; padding: 0.05em 0.5em; border-radius: 0.3em; }
.ok { background: #d8f5d8; } .missing { background: #fff1c6; } .failed { background: #ffd5d5; }
.error { background: #fff4f4; border-left: 4px solid #d33; padding: 0.4em 0.8em; }
.note { background: #fffbea; border-left: 4px solid #e0b000; padding: 0.4em 0.8em; }
"""


def _status_class(status: str) -> str:
    return {OK: "ok", FAILED: "failed"}.get(status, "missing")


def _block(kind: str, payload: Any) -> str:
    esc = html.escape
    if kind == "p":
        return f"<p>{esc(payload)}</p>"
    if kind == "pre":
        return f"<pre>{esc(payload)}</pre>"
    if kind == "table":
        header, rows = payload
        head = "".join(f"<th>{esc(str(h))}</th>" for h in header)
        body = "".join("<tr>" + "".join(f"<td>{esc(str(c))}</td>" for c in row) + "</tr>" for row in rows)
        return f"<table><tr>{head}</tr>{body}</table>"
    if kind == "images":
        items, pixelated = payload
        cls = ' class="px"' if pixelated else ""
        figs = "".join(f'<figure{cls}><a href="{esc(f, quote=True)}"><img src="{esc(f, quote=True)}" alt="{esc(c)}"'
                       f"{cls}></a><figcaption>{esc(c)}</figcaption></figure>" for f, c in items)
        return f'<div class="row">{figs}</div>'
    raise ValueError(f"unknown block kind {kind!r}")


def _section(res: SectionResult) -> str:
    esc = html.escape
    parts = [f'<h2 id="{esc(res.name)}">{esc(res.title)} <span class="status {_status_class(res.status)}">'
             f"{esc(res.status)}</span></h2>",
             f'<p class="meta">section <code>{esc(res.name)}</code>, {res.seconds:.1f} s</p>']
    if res.commands:
        parts.append("<p>Reproduce:</p>")
        parts.append('<pre class="cmd">' + "\n".join(esc(c) for c in res.commands) + "</pre>")
    if res.error:
        cls = "error" if res.status == FAILED else "note"
        parts.append(f'<div class="{cls}"><p><strong>{esc(res.status)}:</strong> {esc(res.error)}</p></div>')
    parts += [_block(kind, payload) for kind, payload in res.blocks]
    if res.detail:
        parts.append(f"<details><summary>traceback</summary><pre>{esc(res.detail)}</pre></details>")
    return "\n".join(parts)


def render_page(results: list[SectionResult], *, wall: float, command: str, machine: str | None = None) -> str:
    """The whole ``index.html``: header, table of contents with each section's status, then the sections."""
    esc = html.escape
    machine = machine or f"{platform.system()} {platform.machine()}, Python {platform.python_version()}"
    toc = "".join(f'<tr><td><a href="#{esc(r.name)}">{esc(r.title)}</a></td><td><span class="status '
                  f'{_status_class(r.status)}">{esc(r.status)}</span></td><td>{esc(r.summary or r.error or "")}'
                  f"</td><td>{r.seconds:.1f} s</td></tr>" for r in results)
    body = "\n".join(_section(r) for r in results)
    return f"""<!DOCTYPE html>
<html lang="en">
<head>
<meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<title>torchworks tour</title>
<style>{CSS}</style>
</head>
<body>
<h1>torchworks: a tour</h1>
<p class="meta">Written {esc(time.strftime("%Y-%m-%d %H:%M:%S"))} by <code>{esc(command)}</code> in {wall:.1f} s
on {esc(machine)}. Everything below comes from models shipped inside the package and runs offline.</p>
<table><tr><th>section</th><th>status</th><th>result</th><th>time</th></tr>{toc}</table>
{body}
</body>
</html>
"""
