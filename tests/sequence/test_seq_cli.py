"""The ``sequence`` and ``forecast`` verbs: parsing, one-line user errors with exit 2, and a short real run."""

from __future__ import annotations

import argparse
import subprocess
import sys

import pytest

from torchworks.cli import sequence_cmd


def _parser():
    p = argparse.ArgumentParser(prog="torchworks")
    sequence_cmd.add_parser(p.add_subparsers(dest="verb"))
    return p


def test_module_import_stays_light():
    code = ("import sys; import torchworks.cli.sequence_cmd as m; import argparse\n"
            "p = argparse.ArgumentParser(); m.add_parser(p.add_subparsers(dest='verb'))\n"
            "print(sorted(k for k in ('torch', 'numpy', 'matplotlib', 'lightning_fabric') if k in sys.modules))")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60)
    assert out.stdout.strip() == "[]", out.stderr


def test_parser_registers_both_verbs():
    args = _parser().parse_args(["sequence", "run", "counter", "--steps", "5", "--out", "x"])
    assert (args.verb, args.sequence_verb, args.experiment, args.steps, args.out) == ("sequence", "run", "counter",
                                                                                      5, "x")
    args = _parser().parse_args(["forecast", "--csv", "a.csv", "--column", "Close", "--horizon", "5"])
    assert (args.horizon, args.window, args.repeats) == (5, 30, 1)
    with pytest.raises(SystemExit):
        _parser().parse_args(["sequence", "run", "nope"])


@pytest.mark.parametrize("argv, match", [
    (["--column", "Clos"], "no column 'Clos'; available columns: Date, Value, Other"),
    (["--column", "Value", "--window", "390"], "too few for window=390"),
    (["--column", "Value", "--horizon", "0"], "--horizon must be >= 1"),
])
def test_bad_forecast_input_is_one_line_and_exit_2(sine_csv, capsys, argv, match):
    code = sequence_cmd.main(["forecast", "--csv", str(sine_csv), *argv])
    err = capsys.readouterr().err
    assert code == 2 and match in err and err.count("\n") == 1 and "Traceback" not in err


def test_nan_in_series_is_a_one_line_error(tmp_path, capsys):
    p = tmp_path / "gap.csv"
    p.write_text("Date,Close\n" + "".join(f"2020-01-{d:02d},{'NA' if d == 5 else d}\n" for d in range(1, 29)))
    assert sequence_cmd.main(["forecast", "--csv", str(p), "--column", "Close", "--window", "3"]) == 2
    assert "line 6: column 'Close' is missing a value" in capsys.readouterr().err


def test_sequence_list_and_a_short_run_print_results(tmp_path, capsys):
    assert sequence_cmd.main(["sequence", "list"]) == 0
    assert "ab-memory" in capsys.readouterr().out
    assert sequence_cmd.main(["sequence", "run", "many-to-many", "--steps", "20", "--out", str(tmp_path)]) == 0
    out = capsys.readouterr().out
    assert "many-to-many: running sum" in out and "LSTM test: acc=" in out
    assert (tmp_path / "curves.png").is_file()


def test_sequence_repeats_plot_all_runs_in_one_figure(tmp_path, capsys):
    argv = ["sequence", "run", "many-to-many", "--steps", "20", "--repeats", "2", "--out", str(tmp_path)]
    assert sequence_cmd.main(argv) == 0
    out = capsys.readouterr().out
    assert "many-to-many: 2 runs, test acc" in out and "+-" in out and "diagnosis:" in out
    assert (tmp_path / "runs.png").is_file() and (tmp_path / "run1" / "metrics.csv").is_file()
