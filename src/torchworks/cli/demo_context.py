"""What every section of ``torchworks demo`` shares: its settings, the "not shipped" state and the command lines.

The section modules (:mod:`torchworks.cli.demo_sections`, :mod:`torchworks.cli.demo_distill`) import from here and
never from each other, so the tour has no import circle. Standard library only.
"""

from __future__ import annotations

import os
import shlex
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

PACKAGE = Path(__file__).resolve().parents[1]
DEFAULT_SENTENCES = (
    "Ein kleines Mädchen spielt mit einem Hund im Park.",
    "Zwei Männer sitzen auf einer Bank und lesen Zeitung.",
    "Eine Frau fährt mit dem Fahrrad durch die Stadt.",
)


class NotShipped(Exception):
    """The section's model is not in the package yet (an expected state, not a failure)."""


@dataclass
class DemoContext:
    """Settings shared by the sections.

    Attributes:
        out: folder being filled (a temporary one; renamed to ``final_out`` when the tour is complete).
        final_out: where the page will live, used in the commands shown.
        note: reports a sub-step to the progress display.
    """

    out: Path
    final_out: Path
    data_dir: str | None = None
    seed: int = 0
    threads: int = 1
    cifar_limit: int = 2000
    tokens: int = 300
    prompt: str = "ROMEO:"
    sentences: list[str] = field(default_factory=lambda: list(DEFAULT_SENTENCES))
    beam: int = 4
    note: Callable[[str], None] = lambda msg: None


def shown(path: str | os.PathLike[str]) -> str:
    """A path as a user would type it here: relative to the working directory when that is short."""
    p = Path(path).resolve()
    try:
        rel = os.path.relpath(p)
    except ValueError:  # another drive (Windows)
        return str(p)
    return rel if rel.count("..") <= 1 else str(p)


def threads_flag(ctx: DemoContext) -> list[str]:
    """``--threads N`` when the tour runs with other than one thread, so that a command shown reproduces it."""
    return ["--threads", str(ctx.threads)] if ctx.threads != 1 else []


def demo_command(ctx: DemoContext, section: str, *extra: str) -> str:
    """The ``torchworks demo`` line that rebuilds one section, into a folder of its own (``--out`` is replaced as a
    whole, so reusing the tour's folder would drop the other sections)."""
    alone = ctx.final_out.with_name(f"{ctx.final_out.name}_{section}")
    return shlex.join(["torchworks", "demo", "--sections", section, "--out", shown(alone), *extra, *threads_flag(ctx)])
