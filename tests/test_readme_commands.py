"""Every ``torchworks`` command in the README's shell blocks parses with the real CLI parser, and every name it
gives (config file, inpainter, mask family, distillation method, model, data set) exists. The commands are not run
(most need data or minutes); the Python snippets are run by ``test_snippets.py``."""

from __future__ import annotations

import contextlib
import io
import re
import shlex
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]


def readme_commands() -> list[str]:
    """The argument strings of the README's ``torchworks`` shell lines (continuations joined, comments, shell
    redirections and ``$`` transcript lines dropped)."""
    text = (ROOT / "README.md").read_text()
    out = []
    for block in re.findall(r"```bash\n(.*?)```", text, re.S):
        for line in block.replace("\\\n", " ").splitlines():
            line = line.strip()
            m = re.search(r"(?:^|\s)(?:\.venv/bin/)?torchworks\s+(.*)", line)
            if m and not line.startswith("$"):
                out.append(re.split(r"\s+#", m.group(1))[0].split(" > ")[0].strip())
    return out


COMMANDS = readme_commands()


def test_the_readme_has_commands_for_every_verb_family():
    verbs = {shlex.split(c)[0] for c in COMMANDS}
    assert {"train", "eval", "inpaint", "inpaint-eval", "geometry", "forecast", "distill", "translate", "ui",
            "data"} <= verbs, verbs


@pytest.mark.parametrize("cmd", COMMANDS)
def test_readme_command_parses_and_names_exist(cmd, tmp_path, monkeypatch):
    from torchworks.catalog import load_all
    from torchworks.cli.main import build_parser
    from torchworks.core.registry import DATASETS, DISTILL_LOSSES, INPAINTERS, MASKS, MODELS

    monkeypatch.chdir(tmp_path)  # parsing checks output paths: nothing may land in the repository
    err = io.StringIO()
    with contextlib.redirect_stderr(err):
        try:
            args = build_parser().parse_args(shlex.split(cmd))
        except SystemExit as exc:
            pytest.fail(f"`torchworks {cmd}` does not parse (exit {exc.code}): {err.getvalue().strip()}")
    load_all()
    opts = vars(args)
    if args.verb in ("train", "eval"):
        assert (ROOT / args.config).is_file(), f"no such config: {args.config}"
    if args.verb == "inpaint":
        assert opts["method"] in INPAINTERS, f"unknown inpainter {opts['method']!r}; known: {INPAINTERS.names()}"
    if args.verb == "inpaint-eval":
        for name in (opts.get("methods") or "").split(","):
            assert not name or name in INPAINTERS, f"unknown inpainter {name!r}"
        for name in (opts.get("masks") or "").split(","):
            assert not name or name in MASKS or f"{name}_256" in MASKS, f"unknown mask family {name!r}"
    if args.verb == "distill":
        for part in args.method.split("+"):
            assert part in DISTILL_LOSSES, f"unknown distillation method {part!r}"
        assert args.teacher in MODELS and args.student in MODELS
    if args.verb == "data" and opts.get("name"):
        assert opts["name"] in DATASETS, f"unknown data set {opts['name']!r}"
