"""What every verb shares: -o/--out on each verb that writes, created parent folders, atomic outputs, a port
checked before "serving", --data-dir honoured, and Python defaults equal to the CLI's (translate)."""

from __future__ import annotations

import argparse
import inspect
import socket
from pathlib import Path

import pytest

from torchworks.cli import _common
from torchworks.cli.main import build_parser, main

ROOT = Path(__file__).resolve().parents[2]

# Every verb that writes a file or a folder, with the arguments that make it parse.
WRITERS = {
    ("train",): ["cfg.yaml"],
    ("distill",): [],
    ("inpaint",): ["photo.png", "--mask", "m.png"],
    ("inpaint-eval",): ["--images", "photos"],
    ("geometry", "two-view"): ["a.png", "b.png"],
    ("sequence", "run"): ["counter"],
    ("forecast",): ["--csv", "x.csv", "--column", "y"],
    ("translate",): ["Hallo."],
    ("transformer", "attention"): ["--text", "hi"],
    ("demo",): [],
}


def _parsers(parser: argparse.ArgumentParser, path=()):
    """(verb path, parser) for every parser and sub-parser."""
    yield path, parser
    for action in parser._actions:
        if isinstance(action, argparse._SubParsersAction):
            for name, sub in action.choices.items():
                yield from _parsers(sub, (*path, name))


@pytest.mark.parametrize("verb", list(WRITERS), ids=" ".join)
def test_every_writing_verb_takes_o_and_out(verb, tmp_path):
    parser = build_parser()
    target = str(tmp_path / "new" / "folder" / "result.png")
    short = parser.parse_args([*verb, *WRITERS[verb], "-o", target])
    long = parser.parse_args([*verb, *WRITERS[verb], "--out", target])
    assert vars(short) == vars(long)
    assert target in vars(short).values()
    assert not (tmp_path / "new").exists()  # checking the path at parse time creates nothing


def test_o_and_out_always_come_together_with_the_folder_rule():
    seen = []
    for path, parser in _parsers(build_parser()):
        for action in parser._actions:
            flags = set(action.option_strings)
            if flags & {"-o", "--out"}:
                seen.append(path)
                assert {"-o", "--out"} <= flags, (path, action.option_strings)
                if path in WRITERS:  # (verbs added since keep at least the -o/--out pair)
                    assert _common.OUT_RULE in action.help, (path, action.help)
    assert set(WRITERS) <= set(seen)


def test_the_output_rule_is_documented():
    assert main(["--help"]) == 0
    readme = (ROOT / "README.md").read_text(encoding="utf-8")
    assert "missing parent folders" in readme and "exit code 2" in readme and "-o/--out" in readme


def test_help_returns_zero_and_bad_flags_two(capsys):
    assert main(["inpaint", "--help"]) == 0
    assert "-o PATH, --out PATH, --output PATH" in capsys.readouterr().out
    assert main(["inpaint", "a.png", "--mask", "m.png", "--no-such-flag"]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "unrecognized arguments: --no-such-flag" in err[0]  # no usage block before it
    assert main(["inpaint"]) == 2
    assert "the following arguments are required: input, --mask" in capsys.readouterr().err


def test_missing_parent_folders_are_created_and_nothing_else_is_left(tmp_path, capsys):
    out = tmp_path / "a" / "b" / "attention.png"
    assert main(["transformer", "attention", "--text", "ROMEO:", "-o", str(out)]) == 0
    assert out.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    assert sorted(p.name for p in out.parent.iterdir()) == ["attention.png"]  # no temporary file beside it


def test_translate_out_file_matches_stdout(tmp_path, capsys):
    sentences = ["Ein Mann fährt Fahrrad.", "Zwei Hunde spielen im Schnee."]
    assert main(["translate", *sentences]) == 0
    printed = capsys.readouterr().out.splitlines()
    out = tmp_path / "new" / "out.en"
    assert main(["translate", *sentences, "--out", str(out)]) == 0
    assert capsys.readouterr().out == ""
    assert out.read_text(encoding="utf-8").splitlines() == printed and len(printed) == 2


def test_python_translate_defaults_are_the_cli_defaults(capsys):
    from torchworks.transformer.translation_data import load_translator, translate

    params = inspect.signature(translate).parameters
    args = build_parser().parse_args(["translate", "x"])
    assert (params["beam_size"].default, params["alpha"].default) == (args.beam, args.alpha) == (4, 1.4)
    # Behaviour, not only signatures: the shipped model gives the same text through both doors.
    sentences = ["Eine Gruppe von Menschen steht vor einem Iglu.", "Ein Junge springt ins Wasser."]
    model, tokenizer = load_translator()
    assert main(["translate", *sentences]) == 0
    default = translate(model, tokenizer, sentences)
    assert capsys.readouterr().out.splitlines() == default
    assert default != translate(model, tokenizer, sentences, beam_size=1)  # greedy (the old default) differs here


def test_ui_port_in_use_fails_before_serving(capsys):
    pytest.importorskip("uvicorn")
    pytest.importorskip("fastapi")
    with socket.socket() as busy:
        busy.bind(("127.0.0.1", 0))
        busy.listen()
        port = busy.getsockname()[1]
        assert main(["ui", "--port", str(port)]) == 2
    captured = capsys.readouterr()
    assert captured.out == ""  # no "serving" line before the failure
    lines = captured.err.strip().splitlines()
    assert len(lines) == 1 and f"cannot listen on 127.0.0.1:{port}" in lines[0] and "--port" in lines[0]


def test_data_verify_checks_the_copy_in_data_dir(tmp_path, capsys):
    from torchworks.data import find_dataset

    found = find_dataset("fashion_mnist")
    if found is None:
        pytest.skip("fashion_mnist not on this machine (torchworks data path fashion_mnist --download)")
    (tmp_path / found.path.name).symlink_to(found.path, target_is_directory=True)
    assert main(["data", "verify", "fashion_mnist", "--data-dir", str(tmp_path)]) == 0
    rows = capsys.readouterr().out.splitlines()
    assert rows and all(str(tmp_path) in r and r.startswith("ok") for r in rows)
    assert main(["data", "--data-dir", str(tmp_path / "nope"), "verify", "fashion_mnist"]) == 2
    assert "not an existing folder" in capsys.readouterr().err


@pytest.mark.parametrize("text, ok", [("3", True), ("0", False), ("-2", False), ("x", False), ("1e3", False)])
def test_int_type(text, ok):
    parse = _common.int_in(1, 10)
    if ok:
        assert parse(text) == 3
    else:
        with pytest.raises(argparse.ArgumentTypeError):
            parse(text)


@pytest.mark.parametrize("text", ["nan", "inf", "-inf", "0", "abc", "1.5"])
def test_float_type_refuses_non_finite_and_out_of_range(text):
    with pytest.raises(argparse.ArgumentTypeError):
        _common.float_in(0, 1, lo_open=True)(text)
    assert _common.float_in(0, 1, lo_open=True)("1") == 1.0


def test_read_text_names_what_the_file_is(tmp_path):
    from torchworks.core.errors import ConfigError

    (tmp_path / "a.gz").write_bytes(b"\x1f\x8b\x08\x00rest")
    with pytest.raises(ConfigError, match="a.gz is a gzip archive, not a YAML config"):
        _common.read_text(tmp_path / "a.gz", "config", "a YAML config")
    (tmp_path / "bom.txt").write_bytes("\ufeffHallo\n".encode())
    assert _common.read_text(tmp_path / "bom.txt", "--file") == "Hallo\n"
    with pytest.raises(IsADirectoryError, match="is a folder"):
        _common.read_text(tmp_path, "--file")


def test_one_line_for_multi_line_user_errors():
    from torchworks.core.errors import DataNotFoundError

    msg = _common.user_error_message(DataNotFoundError("not found. Searched:\n  a: x\n  b: y"))
    assert msg == "not found. Searched:; a: x; b: y"
    assert _common.user_error_message(RuntimeError("a bug")) is None  # bugs keep their traceback
