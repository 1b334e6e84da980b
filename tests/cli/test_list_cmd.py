"""``torchworks list``: every loss under ``losses``, only kinds that hold something, one-line errors otherwise."""

from __future__ import annotations

import pytest

from torchworks.cli import list_cmd
from torchworks.cli.main import LIST_KINDS, main
from torchworks.core.registry import DISTILL_LOSSES, LOSSES, REGISTRIES


def _run(capsys, *argv):
    code = main(["list", *argv])
    out, err = capsys.readouterr()
    return code, out, err


def test_list_losses_shows_every_loss_including_the_distillation_ones(capsys):
    code, out, _ = _run(capsys, "losses")
    rows = [line.split() for line in out.splitlines()]
    assert code == 0 and len(DISTILL_LOSSES) == 16
    assert [r[0] for r in rows] == sorted([*LOSSES.names(), *DISTILL_LOSSES.names()])
    assert {r[1] for r in rows if r[0] in DISTILL_LOSSES} == {"[distill_losses]"}  # where each comes from
    assert next(r for r in rows if r[0] == "kd")[2:] == ["Knowledge", "distillation", "with", "soft", "targets."]


def test_every_offered_kind_holds_something_and_the_help_names_them_all(capsys):
    assert set(LIST_KINDS) == set(list_cmd.KINDS)
    assert all(key in REGISTRIES for keys in list_cmd.KINDS.values() for key in keys)
    code, out, _ = _run(capsys)
    counts = {line.split()[0]: int(line.split()[1]) for line in out.splitlines()}
    assert code == 0 and counts == list_cmd.offered() and all(n > 0 for n in counts.values())
    assert counts["losses"] == len(LOSSES) + len(DISTILL_LOSSES) and counts["distill_losses"] == 16


@pytest.mark.parametrize(("kind", "fragment"), [
    ("modelz", "unknown kind 'modelz'; did you mean models?"),
    ("loss", "unknown kind 'loss'; did you mean losses"),
    ("zebra", "unknown kind 'zebra'; kinds: models, losses,"),
])
def test_unknown_kind_is_one_line_with_close_matches_and_exit_2(capsys, kind, fragment):
    code, out, err = _run(capsys, kind)
    assert code == 2 and out == ""
    lines = err.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("torchworks list: error: ") and fragment in lines[0], err


def test_a_kind_with_nothing_registered_is_not_offered(capsys, monkeypatch):
    monkeypatch.setitem(list_cmd.KINDS, "losses", ("losses",))  # as if only the (empty) generic registry counted
    if len(LOSSES):
        pytest.skip("the generic LOSSES registry is not empty any more")
    assert "losses" not in list_cmd.offered()
    code, out, err = _run(capsys, "losses")
    assert code == 2 and out == "" and "nothing is registered as 'losses'" in err


def test_pattern_filters_across_the_registries_of_a_kind(capsys):
    code, out, _ = _run(capsys, "losses", "*k*")
    assert code == 0 and [line.split()[0] for line in out.splitlines()] == ["dkd", "kd", "pkt", "rkd"]
