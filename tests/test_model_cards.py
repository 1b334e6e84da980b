"""Every shipped model's card holds ONE command that reproduces a number printed on the card, and it does.

A card's ``## Reproduce`` section has the command in a ```bash block (run from the repository root), the
expected output as "prints `KEY VALUE`" (or "prints `VALUE`" for a bare number) and the data it "needs" as
"the `NAME` data set". The output must round to the card's value at the card's precision. The two synthetic
sequence models run in the default suite; the rest need data sets and 10-40 CPU-seconds each, so they are
``slow`` (``make test-slow``) and skip, naming the fetch command, when their data set is missing.
"""

from __future__ import annotations

import os
import re
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
PACKAGE = ROOT / "src" / "torchworks"
CARDS = sorted(p.with_suffix(".md") for p in PACKAGE.rglob("*.safetensors"))
FAST = {"counter_lstm", "ab_memory_lstm"}  # synthetic data, a few CPU-seconds


@dataclass
class Reproduce:
    command: str
    expected: list[tuple[str, str]]  # (key, value as printed on the card); key "" for a bare number
    datasets: list[str]
    card_text: str  # the card without its Reproduce section


def parse_card(card: Path) -> Reproduce:
    """The Reproduce section of a model card.

    Raises:
        AssertionError: no such section, no command, or no expected value.
    """
    text = card.read_text(encoding="utf-8")
    start = text.find("\n## Reproduce\n")
    assert start >= 0, f"{card.name}: no '## Reproduce' section"
    end = text.find("\n## ", start + 1)
    section = text[start:] if end < 0 else text[start:end]
    blocks = re.findall(r"```bash\n(.*?)```", section, re.S)
    assert len(blocks) == 1, f"{card.name}: the Reproduce section needs exactly one ```bash block"
    command = blocks[0].replace("\\\n", " ").strip()
    assert command and "\n" not in command, f"{card.name}: the reproduce command must be one line"
    expected = [(m.group(1) or "", m.group(2)) for m in re.finditer(r"prints `(?:(\S+) )?(-?\d+\.\d+)`", section)]
    expected += [(m.group(1), m.group(2)) for m in re.finditer(r"(?:and|,) `(\S+) (-?\d+\.\d+)`", section)
                 if (m.group(1), m.group(2)) not in expected]
    assert expected, f"{card.name}: the Reproduce section names no printed value (\"prints `KEY VALUE`\")"
    datasets = re.findall(r"the `(\w+)` data set", section)
    return Reproduce(command, expected, datasets, text[:start] + ("" if end < 0 else text[end:]))


def _decimals(value: str) -> int:
    return len(value.partition(".")[2])


def printed_value(output: str, key: str) -> str:
    """The number printed after ``key`` at the start of a line (or on a line of its own when key is "")."""
    for line in output.splitlines():
        parts = line.split()
        if key and len(parts) == 2 and parts[0] == key:
            return parts[1]
        if not key and len(parts) == 1 and re.fullmatch(r"-?\d+(\.\d+)?", parts[0]):
            return parts[0]
    raise AssertionError(f"no line '{key} <number>' in the output:\n{output}")


def matches(printed: str, card: str) -> bool:
    """True when ``printed`` rounds to ``card`` at the card's precision (both are rounded, so allow both halves)."""
    tol = 0.5 * 10 ** -_decimals(card) + 0.5 * 10 ** -_decimals(printed) + 1e-12
    return abs(float(printed) - float(card)) <= tol


def on_card(key: str, value: str, text: str) -> bool:
    """The expected value is a number of the card: as printed, or as a percentage for an accuracy."""
    forms = {value}
    if key.endswith("acc") and _decimals(value) >= 2:
        forms.add(f"{100 * float(value):.{_decimals(value) - 2}f} %")
    return any(form in text for form in forms)


def run_card(card: Path) -> None:
    rep = parse_card(card)
    for name in rep.datasets:
        from torchworks.core.errors import DataNotFoundError
        from torchworks.data import dataset_path

        try:
            dataset_path(name)
        except DataNotFoundError:
            pytest.skip(f"needs the {name} data set: torchworks data path {name} --download")
    env = {**os.environ, "PATH": f"{Path(sys.executable).parent}{os.pathsep}{os.environ.get('PATH', '')}"}
    res = subprocess.run(["bash", "-o", "pipefail", "-c", rep.command], cwd=ROOT, env=env, capture_output=True,
                         text=True, timeout=1200)
    assert res.returncode == 0, f"{card.name}: {rep.command}\n{res.stderr[-3000:]}"
    for key, value in rep.expected:
        got = printed_value(res.stdout, key)
        assert matches(got, value), f"{card.name}: {key or 'output'} {got}, the card says {value}"


def test_the_card_parser_and_tolerance():
    assert matches("0.771", "0.7710") and matches("1.74935", "1.7493") and matches("0.000121494", "0.0001")
    assert not matches("0.00345722", "0.0034") and not matches("0.7722", "0.7710")
    assert printed_value("test/acc                 0.9012\ntest/loss 0.3\n", "test/acc") == "0.9012"
    assert printed_value("34.45\n", "") == "34.45"
    assert on_card("test/acc", "0.7110", "accuracy **71.10 %** on") and not on_card("test/acc", "0.7110", "71.1 %")


@pytest.mark.parametrize("card", CARDS, ids=[c.stem for c in CARDS])
def test_card_has_one_reproduce_command_for_a_number_on_the_card(card):
    rep = parse_card(card)
    assert rep.command.split()[0] in ("torchworks", "zcat"), rep.command
    for key, value in rep.expected:
        assert on_card(key, value, rep.card_text), f"{card.name}: {value} ({key}) is not a number of the card"


@pytest.mark.parametrize("card", [c for c in CARDS if c.stem in FAST], ids=lambda c: c.stem)
def test_card_command_reproduces_its_number(card):
    run_card(card)


@pytest.mark.slow
@pytest.mark.parametrize("card", [c for c in CARDS if c.stem not in FAST], ids=lambda c: c.stem)
def test_card_command_reproduces_its_number_slow(card):
    run_card(card)
