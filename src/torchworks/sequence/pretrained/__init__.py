"""Models trained here and shipped with the package, so the sequence verbs work offline out of the box.

Each model is ``<name>.safetensors`` (written by :func:`torchworks.core.checkpoint.save_model`: weights plus
the registry spec that rebuilds it), ``<name>.yaml`` (the run config it was trained with) and ``<name>.md``
(the model card: data, recipe, metrics, time). Use::

    from torchworks.sequence import pretrained
    model = pretrained.load("counter_lstm")
    torchworks sequence run counter --pretrained          # analysis and figure, no training
    torchworks forecast --csv daily-min-temperatures.csv --column Temp --pretrained melbourne_temp_lstm

``python -m torchworks.sequence.pretrained NAME`` retrains one of them and rewrites its three files.
"""

from __future__ import annotations

import sys
import time
from pathlib import Path
from typing import Any

HERE = Path(__file__).resolve().parent

# name -> how it is made: a memory recipe, or a forecasting run on a registered data set's file
SHIPPED: dict[str, dict[str, Any]] = {
    "counter_lstm": {"experiment": "counter"},
    "ab_memory_lstm": {"experiment": "ab-memory"},
    "melbourne_temp_lstm": {"dataset": "jbrownlee_timeseries", "file": "daily-min-temperatures.csv",
                            "target": "Temp", "window": 30, "horizon": 1, "steps": 600, "season": 365},
}


def available() -> list[str]:
    """Names of the shipped models whose files are present."""
    return [n for n in SHIPPED if (HERE / f"{n}.safetensors").is_file()]


def path_of(name: str) -> Path:
    """The weights file of a shipped model, or a path given directly.

    Raises:
        CheckpointError: neither a shipped name nor an existing file.
    """
    from torchworks.core.errors import CheckpointError

    if name in SHIPPED and (HERE / f"{name}.safetensors").is_file():
        return HERE / f"{name}.safetensors"
    if Path(name).is_file():
        return Path(name)
    raise CheckpointError(f"no shipped sequence model or file {name!r}; shipped: {', '.join(available()) or 'none'}")


def load(name: str):
    """Rebuilds a shipped model (or a ``save_model`` file) with its weights, in eval mode."""
    from torchworks.core.checkpoint import load_model  # the package import registered the model factories

    return load_model(path_of(name)).eval()


def config(name: str) -> dict[str, Any]:
    """The run config a shipped model was trained with."""
    from torchworks.core.config import load_yaml

    return load_yaml(HERE / f"{name}.yaml")


def rebuild(name: str) -> Path:
    """Retrains shipped model ``name`` and rewrites its weights, config and model card; returns the weights."""
    import tempfile

    import torch
    import yaml

    from torchworks.core.checkpoint import save_model

    torch.set_num_threads(1)
    spec = SHIPPED[name]
    start, cpu = time.perf_counter(), time.process_time()
    with tempfile.TemporaryDirectory() as tmp:
        if "experiment" in spec:
            from torchworks.sequence.experiments import format_value, recipe_config, run_experiment

            result = run_experiment(spec["experiment"], out_dir=tmp)
            cfg = recipe_config(spec["experiment"])
            model = result.model
            metrics = [f"- test split ({cfg['task'].get('n_test', 512)} fresh sequences): "
                       f"acc {result.metrics['acc']:.3f}, seq_acc {result.metrics['seq_acc']:.3f}, "
                       f"loss {result.metrics['loss']:.4f}"]
            metrics += [f"- {k}: {format_value(v)}" for k, v in result.extra.items()]
            data = f"synthetic ({spec['experiment']} generator, torchworks.sequence.memory_data)"
        else:
            from torchworks.data import dataset_path
            from torchworks.sequence.forecasting import forecast_config, run_forecast

            csv = dataset_path(spec["dataset"]) / spec["file"]
            report = run_forecast(csv, spec["target"], spec["horizon"], spec["window"], steps=spec["steps"],
                                  out_dir=tmp, patience=5, season=spec["season"])
            cfg = forecast_config(f"<{spec['dataset']}>/{spec['file']}", spec["target"], spec["horizon"],
                                  spec["window"], steps=spec["steps"], out_dir="runs/seq_forecast", patience=5)
            from torchworks.core.checkpoint import load_model

            model = load_model(report.model_path)
            metrics = ["- test split (last 15 % of rows, chronological):", "", "```", *report.lines()[1:-2], "```"]
            data = f"{spec['dataset']}/{spec['file']} column {spec['target']}"
        weights = save_model(HERE / f"{name}.safetensors", model)
        weights.chmod(0o644)  # written through mkstemp (0600); shipped files must be readable by everyone
    wall, cpu = time.perf_counter() - start, time.process_time() - cpu
    (HERE / f"{name}.yaml").write_text(yaml.safe_dump(cfg, sort_keys=False))
    params = sum(p.numel() for p in model.parameters())
    card = [f"# {name}", "", f"- model: `{model.__class__.__name__}` ({params} parameters), registry spec inside "
            "the safetensors file (`torchworks.core.checkpoint.load_model`)", f"- data: {data}",
            f"- recipe: `{name}.yaml` (rebuild: `python -m torchworks.sequence.pretrained {name}`)",
            f"- training time: {wall:.0f} s wall, {cpu:.0f} s CPU, 1 thread, {time.strftime('%Y-%m-%d')}",
            "", "## Metrics", "", *metrics, ""]
    (HERE / f"{name}.md").write_text("\n".join(card))
    return weights


def main(argv: list[str] | None = None) -> None:
    """Rebuilds the named shipped models (default: all)."""
    for name in (sys.argv[1:] if argv is None else argv) or list(SHIPPED):
        print(rebuild(name))
