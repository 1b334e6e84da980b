"""``python -m torchworks.sequence.pretrained [NAME ...]``: retrain shipped models and rewrite their files."""

from __future__ import annotations

import sys
import time
from pathlib import Path

from torchworks.sequence.pretrained import HERE, SHIPPED


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


if __name__ == "__main__":
    main()
