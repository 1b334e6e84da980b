"""Forecasting error per series: LSTM vs persistence vs seasonal naive (vs ARIMA when statsmodels is installed).

Every method is scored on the same test windows (the chronological last 15 % of each series), in original
units; the LSTM is trained through the shared engine with ``run_forecast`` (scaler fitted on the first 70 %,
best validation checkpoint restored), ``--repeats`` seeds per series. The result replaces the
"Forecasting" section of ``docs/results/sequence.md`` and leaves the other sections as they are.

    .venv/bin/python benchmarks/sequence/bench_forecast.py                 # all series, 3 seeds
    .venv/bin/python benchmarks/sequence/bench_forecast.py --quick         # 1 seed, 200 steps, no ARIMA
"""

from __future__ import annotations

import argparse
import datetime
import shlex
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import torch

ROOT = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(ROOT / "benchmarks"))

from _common import Machine, write_section  # noqa: E402


def clean_pollution(src: Path, dst: Path) -> Path:
    """Beijing PM2.5 with its NA gaps forward-filled (leading NAs dropped) and only numeric columns kept."""
    import csv

    with src.open() as fh:
        rows = list(csv.DictReader(fh))
    keep = ["pm2.5", "DEWP", "TEMP", "PRES", "Iws"]
    last, out = None, []
    for r in rows:
        value = r["pm2.5"]
        if value == "NA":
            if last is None:
                continue
            value = last
        last = value
        date = f"{r['year']}-{int(r['month']):02d}-{int(r['day']):02d} {int(r['hour']):02d}:00"
        out.append([date, value, *(r[k] for k in keep[1:])])
    with dst.open("w", newline="") as fh:
        w = csv.writer(fh)
        w.writerow(["Date", *keep])
        w.writerows(out)
    return dst


def series_list(tmp: Path) -> list[dict]:
    from torchworks.data import dataset_path

    tata = dataset_path("stockprice_tataglobal") / "NSE-TATAGLOBAL.csv"
    msft = dataset_path("pmdarima_msft") / "msft.csv"
    jb = dataset_path("jbrownlee_timeseries")
    return [
        {"name": "TATAGLOBAL Close", "csv": tata, "target": "Close", "window": 30, "horizon": 1},
        {"name": "TATAGLOBAL Close", "csv": tata, "target": "Close", "window": 30, "horizon": 5},
        {"name": "MSFT Close", "csv": msft, "target": "Close", "window": 30, "horizon": 1},
        {"name": "airline passengers", "csv": jb / "airline-passengers.csv", "target": "Passengers", "window": 12,
         "horizon": 1},
        {"name": "Melbourne min temp", "csv": jb / "daily-min-temperatures.csv", "target": "Temp", "window": 30,
         "horizon": 1, "season": 365},
        {"name": "Beijing PM2.5 (+4 features)", "csv": clean_pollution(jb / "pollution.csv", tmp / "pollution.csv"),
         "target": "pm2.5", "window": 24, "horizon": 1, "features": ["DEWP", "TEMP", "PRES", "Iws"],
         "arima": False},
    ]


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--steps", type=int, default=600)
    p.add_argument("--repeats", type=int, default=3)
    p.add_argument("--quick", action="store_true", help="1 seed, 200 steps, no ARIMA")
    p.add_argument("--out", default=str(ROOT / "docs" / "results" / "sequence.md"))
    p.add_argument("--runs", default=str(ROOT / "runs" / "bench_forecast"))
    args = p.parse_args()
    if args.quick:
        args.steps, args.repeats = 200, 1
    torch.set_num_threads(1)
    from torchworks.sequence.baselines import arima_forecasts  # noqa: F401  (fail early on import errors)
    from torchworks.sequence.forecasting import run_forecast

    try:
        import statsmodels

        have_arima = not args.quick
        arima_note = f"statsmodels {statsmodels.__version__}"
    except ImportError:
        have_arima, arima_note = False, "statsmodels not installed"
    machine = Machine.measure(threads=1)
    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        for i, s in enumerate(series_list(Path(tmp))):
            t0 = time.perf_counter()
            cpu0 = time.process_time()
            rep = run_forecast(s["csv"], s["target"], s["horizon"], s["window"], steps=args.steps,
                               out_dir=Path(args.runs) / f"{i}", repeats=args.repeats, patience=5,
                               season=s.get("season"), arima=have_arima and s.get("arima", True),
                               features=s.get("features", []))
            rows.append((s, rep, time.perf_counter() - t0, time.process_time() - cpu0))
            print("\n".join(rep.lines()), flush=True)
    write(args, rows, machine.finish(), arima_note)


def write(args: argparse.Namespace, rows: list, machine: Machine, arima_note: str) -> None:
    lines = ["## Forecasting: LSTM vs naive baselines", "",
             f"Command: `python {shlex.join(['benchmarks/sequence/bench_forecast.py', *sys.argv[1:]])}`", "",
             f"Machine: {machine.describe()}; ARIMA: {arima_note}", "",
             f"Date: {datetime.datetime.now(datetime.UTC).strftime('%Y-%m-%d %H:%M UTC')}", "",
             "Protocol: chronological split 70/15/15 of the rows; min-max scaler fitted on the training rows; LSTM(32) "
             f"on windows predicting the change from the last value (so it starts at persistence), Adam 3e-3, "
             f"batch 32, up to {args.steps} steps, early stopping after 5 evaluations without a better validation "
             f"loss and the best validation checkpoint restored; {args.repeats} seed(s) per series (mean +- std). "
             "Persistence repeats the last value; seasonal naive repeats the value one season back; ARIMA(2,1,2) is "
             "fitted on the training rows and forecasts dynamically from every test origin with those parameters. "
             "RMSE in the series' own units over all test windows and horizon steps.", "",
             "| series | rows | window / horizon | test windows | LSTM RMSE | persistence | seasonal naive (m) | "
             "ARIMA(2,1,2) | LSTM / persistence | LSTM beats persistence? | wall s (CPU s) |",
             "|---|---|---|---|---|---|---|---|---|---|---|"]
    for s, rep, wall, cpu in rows:
        e = rep.errors
        runs = np.asarray(rep.lstm_rmse_runs)
        lstm = f"{runs.mean():.4g} +- {runs.std(ddof=1):.2g}" if len(runs) > 1 else f"{runs[0]:.4g}"
        seasonal = next(v for k, v in e.items() if k.startswith("seasonal"))[0]
        arima = next((v[0] for k, v in e.items() if k.startswith("arima")), None)
        ratio = runs.mean() / e["persistence"][0]
        verdict = "yes" if ratio < 1 else "no"
        lines.append(f"| {s['name']} | {rep.n_rows} | {rep.window} / {rep.horizon} | {rep.n_test} | {lstm} | "
                     f"{e['persistence'][0]:.4g} | {seasonal:.4g} (m={rep.season}) | "
                     f"{'-' if arima is None else f'{arima:.4g}'} | {ratio:.3f} | {verdict} | {wall:.0f} ({cpu:.0f}) |")
    wins = [f"{s['name']} (h={rep.horizon})" for s, rep, _, _ in rows
            if np.mean(rep.lstm_rmse_runs) < rep.errors["persistence"][0]]
    losses = [f"{s['name']} (h={rep.horizon})" for s, rep, _, _ in rows
              if np.mean(rep.lstm_rmse_runs) >= rep.errors["persistence"][0]]
    lines += ["", f"Reading: the LSTM beats persistence on {', '.join(wins) or 'no series'}; it does **not** on "
              f"{', '.join(losses) or 'any series'}. Daily stock prices are close to a random walk, for which the "
              "last value is the best forecast one can make from past prices alone; a ratio near 1 there means the "
              "LSTM learnt (close to) persistence, not that it predicts prices."]
    shaky = [f"{s['name']} (RMSE {np.mean(rep.lstm_rmse_runs):.3g} +- {np.std(rep.lstm_rmse_runs, ddof=1):.2g} over "
             f"seeds, {rep.n_test} test windows)" for s, rep, _, _ in rows
             if len(rep.lstm_rmse_runs) > 1 and np.std(rep.lstm_rmse_runs, ddof=1) > 0.05 * np.mean(rep.lstm_rmse_runs)]
    if shaky:
        lines += ["", f"Unstable across seeds, so its verdict is weak: {'; '.join(shaky)}. A short trending series "
                  "whose test period lies above the training range (the scaler saw only the first 70 %) is where "
                  "one lucky seed can beat persistence and the next cannot."]
    write_section(args.out, "bench_forecast", "\n".join(lines), title="# Sequence models: measured results")
    print(f"wrote {args.out}")


if __name__ == "__main__":
    main()
