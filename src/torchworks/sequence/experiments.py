"""``torchworks sequence run NAME``: the memory experiments as recipes trained through the shared engine.

Each recipe is a plain-data run config (``configs/seq_<name>.yaml`` holds the same data, for
``torchworks train``) plus the criterion that says whether the network solved the task on the held-out test
split. :func:`run_experiment` trains, evaluates, adds the experiment's own analysis (the counting neuron, the
letter neuron, the MLP that fails, the forward-only LSTM that cannot see the future) and saves a figure.
"""

from __future__ import annotations

import copy
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch

from torchworks.sequence import memory_data as md
from torchworks.sequence.introspect import cell_states, plot_cell_heatmap, plot_step_probabilities, tracking_neuron
from torchworks.sequence.memory_task import EXPERIMENTS, MemoryTask

_TRAINER = {"batch_size": 32, "log_every": 10, "threads": 1, "progress": False, "tensorboard": False,
            "plots": True}

# name -> (task settings, max_steps, criterion (metric, minimum) on the test split)
RECIPES: dict[str, tuple[dict[str, Any], int, tuple[str, float]]] = {
    "counter": ({"hidden_size": 8, "params": {"n_min": 1, "n_max": 10}}, 600, ("seq_acc", 0.99)),
    # Chrono-style gate biases (forget +4, input -4): with Keras' default (+1, 0) lag 100 does not train at all.
    "ab-memory": ({"hidden_size": 8, "forget_bias": 4.0, "input_bias": -4.0, "params": {"lag": 100}}, 500,
                  ("seq_acc", 0.99)),
    "conflict": ({"hidden_size": 20, "n_train": 64, "n_val": 2, "n_test": 2}, 200, ("seq_acc", 1.0)),
    "echo": ({"hidden_size": 32, "lr": 0.02, "n_train": 2048, "params": {"length": 10, "index": 2}}, 800,
             ("seq_acc", 0.95)),
    "many-to-one": ({"hidden_size": 32, "n_train": 2048, "params": {"length": 10}}, 1500, ("seq_acc", 0.9)),
    "many-to-many": ({"hidden_size": 16, "params": {"length": 10}}, 1500, ("acc", 0.97)),
    "bidirectional": ({"hidden_size": 16, "params": {"length": 10}}, 600, ("acc", 0.97)),
}


def recipe_config(name: str, steps: int | None = None, out_dir: str | Path | None = None, seed: int = 0,
                  **task_overrides: Any) -> dict[str, Any]:
    """The plain-data run config of recipe ``name`` (``steps`` replaces its budget)."""
    if name not in RECIPES:
        from torchworks.core.errors import ConfigError

        raise ConfigError(f"unknown experiment {name!r}; known: {', '.join(RECIPES)}")
    task, max_steps, _ = RECIPES[name]
    max_steps = steps or max_steps
    return {
        "task": {"name": "seq_memory", "experiment": name, **copy.deepcopy(task), **task_overrides},
        "trainer": {**_TRAINER, "max_steps": max_steps, "eval_every": max(1, max_steps // 5)},
        "seed": seed,
        "out_dir": str(out_dir or f"runs/seq_{name.replace('-', '_')}"),
    }


@dataclass
class ExperimentResult:
    """What one experiment run measured.

    Attributes:
        name: the experiment.
        metrics: test-split ``loss``, ``acc``, ``seq_acc`` of the LSTM.
        criterion: ``(metric, minimum)`` that defines "solved"; solved whether it was met.
        extra: experiment-specific numbers (tracking neuron, MLP metrics, generalisation, ...).
        figure: the saved PNG; out_dir the run directory (engine logs, curves.png, checkpoints).
    """

    name: str
    metrics: dict[str, float]
    criterion: tuple[str, float]
    solved: bool
    extra: dict[str, Any] = field(default_factory=dict)
    figure: Path | None = None
    out_dir: Path | None = None
    model: Any = field(default=None, repr=False)

    def lines(self) -> list[str]:
        """Human-readable summary, one fact per line."""
        m, low = self.criterion
        out = [f"{self.name}: {EXPERIMENTS[self.name].summary}",
               f"  LSTM test: acc={self.metrics['acc']:.3f} seq_acc={self.metrics['seq_acc']:.3f} "
               f"loss={self.metrics['loss']:.4f} -> {'SOLVED' if self.solved else 'not solved'} ({m} >= {low})"]
        out += [f"  {k}: {format_value(v)}" for k, v in self.extra.items()]
        if self.figure:
            out.append(f"  figure: {self.figure}")
        return out


def format_value(v: Any) -> str:
    """Short text of a result value (floats to 3 decimals, dicts as key=value pairs)."""
    if isinstance(v, dict):
        return " ".join(f"{k}={format_value(x)}" for k, x in v.items())
    return f"{v:.3f}" if isinstance(v, float) else str(v)


def run_experiment(name: str, steps: int | None = None, out_dir: str | Path | None = None, seed: int = 0,
                   pretrained: bool = False, **task_overrides: Any) -> ExperimentResult:
    """Trains recipe ``name`` through the engine, evaluates it on the test split and saves its figure.

    Args:
        name: a key of :data:`RECIPES`.
        steps: training steps (default: the recipe's budget).
        out_dir: run directory (default ``runs/seq_<name>``); its earlier checkpoints are replaced.
        seed: run seed (weights and data order).
        pretrained: skip training and analyse the shipped model (``torchworks.sequence.pretrained``).
        **task_overrides: task settings replacing the recipe's (e.g. ``hidden_size=4``).
    """
    from torchworks.engine.run import train

    cfg = recipe_config(name, steps, out_dir, seed, **task_overrides)
    if pretrained:
        task, run_dir = _shipped_task(name), Path(cfg["out_dir"])
    else:
        run = train(cfg, overwrite=True)
        task, run_dir = run.task, run.out_dir
    metrics = task.evaluate(task.make_split("test"))
    metric, low = RECIPES[name][2]
    result = ExperimentResult(name, metrics, (metric, low), metrics[metric] >= low, out_dir=run_dir,
                              model=task.model)
    analysis = _ANALYSES.get(name, _no_analysis)
    result.extra, result.figure = analysis(task, cfg, run_dir)
    return result


def repeat_experiment(name: str, repeats: int, steps: int | None = None, out_dir: str | Path | None = None,
                      **task_overrides: Any) -> list[str]:
    """Runs recipe ``name`` with seeds 0..repeats-1, plots every run's curves in one figure and diagnoses them.

    Returns:
        Summary lines: the test metric as mean +- std, solved count, the fit verdicts and the figure path.
    """
    from torchworks.sequence import diagnostics as dg

    out = Path(out_dir or recipe_config(name)["out_dir"])
    results = [run_experiment(name, steps, out / f"run{i}", seed=i, **task_overrides) for i in range(repeats)]
    curves = [dg.read_curves(r.out_dir / "metrics.csv") for r in results]
    verdicts = [dg.diagnose(c.train, c.val) for c in curves if len(c.train) >= 4 and len(c.val) >= 2]
    metric, low = RECIPES[name][2]
    m, s = dg.mean_std([r.metrics[metric] for r in results])
    fig = dg.plot_runs(curves, out / "runs.png", title=f"{name}: {repeats} runs")
    return [f"{name}: {repeats} runs, test {metric} {m:.3f} +- {s:.3f}; solved in "
            f"{sum(r.solved for r in results)}/{repeats} ({metric} >= {low})",
            f"  diagnosis: {dg.majority(verdicts) if verdicts else 'n/a'} "
            f"({', '.join(v.verdict for v in verdicts)})", f"  curves of all runs: {fig}"]


def _shipped_task(name: str) -> MemoryTask:
    """The memory task of a shipped model, with its trained weights (no training)."""
    from torchworks.core.config import from_dict
    from torchworks.core.errors import ConfigError
    from torchworks.sequence import pretrained
    from torchworks.sequence.memory_task import MemoryConfig

    shipped = next((n for n, s in pretrained.SHIPPED.items() if s.get("experiment") == name), None)
    if shipped is None or shipped not in pretrained.available():
        raise ConfigError(f"no shipped model for {name!r}; shipped: {', '.join(pretrained.available()) or 'none'}")
    settings = {k: v for k, v in pretrained.config(shipped)["task"].items() if k != "name"}
    task = MemoryTask(from_dict(MemoryConfig, settings))
    task.model.load_state_dict(pretrained.load(shipped).state_dict())
    return task


def _no_analysis(task: MemoryTask, cfg: dict, out: Path) -> tuple[dict, Path | None]:
    return {}, None


def _counter(task: MemoryTask, cfg: dict, out: Path) -> tuple[dict, Path]:
    params = {"n_min": 1, "n_max": 10, **task.cfg.params}
    longer = {"n_min": params["n_max"] + 1, "n_max": params["n_max"] + 5}
    general = task.evaluate(task.make_split("test", n=256, **longer))
    data = task.make_split("test", n=256)
    c = cell_states(task.model.lstm, data["x"])  # (B, T, U)
    valid = data["x"].sum(-1) > 0  # real (non-padding) steps
    neuron, r = tracking_neuron(c, md.count_signal(data["x"]), valid)
    k = params["n_max"] - 2
    example = {"x": md.one_hot(torch.tensor([[0] * k + [1] + [2] * k]), 3)}
    labels = ["a"] * k + ["X"] + ["b"] * k
    ce = cell_states(task.model.lstm, example["x"])[0]
    fig = plot_cell_heatmap([(f"input a^{k} X b^{k}", ce, labels)], out / "cell_states.png", neuron,
                            float(r[neuron]), "the count (a's minus b's seen)")
    extra = {"counting neuron": neuron, "|r| with the count": abs(float(r[neuron])),
             f"longer strings n={longer['n_min']}..{longer['n_max']} seq_acc": general["seq_acc"]}
    return extra, fig


def _ab_memory(task: MemoryTask, cfg: dict, out: Path) -> tuple[dict, Path]:
    data = task.make_split("test", n=256)
    c = cell_states(task.model.lstm, data["x"])  # (B, T, U)
    sign = data["y"].float() * -2 + 1  # A -> +1, B -> -1
    neuron, r = tracking_neuron(c, sign)
    panels = []
    for first in (0, 1):
        i = int((data["y"] == first).nonzero()[0])
        labels = ["AB"[first]] + ["x"] * (c.shape[1] - 2) + ["Y"]
        panels.append((f"{labels[0]} x..x Y -> {'ab'[first]}", c[i], labels))
    fig = plot_cell_heatmap(panels, out / "cell_states.png", neuron, float(r[neuron]), "the first letter (A/B)")
    # The neuron must hold the letter through the whole lag: threshold its state at Y halfway between the means.
    at_y = c[:, -1, neuron]
    mean_a, mean_b = float(at_y[data["y"] == 0].mean()), float(at_y[data["y"] == 1].mean())
    says_a = (at_y > (mean_a + mean_b) / 2) == (mean_a > mean_b)
    extra = {"letter neuron": neuron, "|r| with the first letter": abs(float(r[neuron])),
             "its c at Y (mean A, mean B)": f"{mean_a:+.2f}, {mean_b:+.2f}",
             "letter read from that neuron alone at Y": float((says_a == (data["y"] == 0)).float().mean())}
    return extra, fig


def _conflict(task: MemoryTask, cfg: dict, out: Path) -> tuple[dict, Path]:
    from torchworks.engine.run import train

    mlp_cfg = copy.deepcopy(cfg)
    mlp_cfg["task"]["model"] = "mlp"
    mlp_cfg["out_dir"] = str(Path(cfg["out_dir"]) / "mlp")
    mlp_task: MemoryTask = train(mlp_cfg, overwrite=True).task
    data = task.make_split("test", n=2)
    mlp_metrics = mlp_task.evaluate(data)
    lstm_stateful = stateful_predictions(task, data["x"])
    panels = []
    for name, t in (("LSTM", task), ("MLP", mlp_task)):
        with torch.no_grad():
            p = t.model(data["x"]).softmax(-1)  # (2, 4, 5)
        for i, seq in enumerate(md.CONFLICT_SEQUENCES):
            panels.append((f"{name}: {','.join(map(str, seq))}", p[i], [str(v) for v in seq[:-1]]))
    fig = plot_step_probabilities(panels, out / "conflict.png", "next-value probabilities: LSTM vs MLP")
    extra = {"LSTM params": task.model.count_params(), "MLP params": mlp_task.model.count_params(),
             "MLP test": {"acc": mlp_metrics["acc"], "seq_acc": mlp_metrics["seq_acc"]},
             "stateful one-step-at-a-time predictions equal": bool(torch.equal(lstm_stateful,
                                                                           task.model(data["x"]).argmax(-1)))}
    return extra, fig


@torch.no_grad()
def stateful_predictions(task: MemoryTask, x: torch.Tensor) -> torch.Tensor:
    """Brownlee's way: a ``stateful`` LSTM fed one step per call, ``reset_state()`` between sequences.

    Args:
        task: a trained ``seq_lstm`` memory task (unidirectional, one layer).
        x: (B, T, F) sequences.

    Returns:
        (B, T) predicted classes, which must equal the whole-sequence predictions.
    """
    from torchworks.nn.lstm import LSTM

    src = task.model.lstm
    lstm = LSTM(src.input_size, src.hidden_size, return_sequences=True, stateful=True)
    lstm.load_state_dict(src.state_dict())
    preds = []
    for seq in x:
        lstm.reset_state()
        steps = [task.model.head(lstm(seq[t].view(1, 1, -1))) for t in range(seq.shape[0])]  # each (1, 1, O)
        preds.append(torch.cat(steps, dim=1)[0].argmax(-1))
    return torch.stack(preds)


def _bidirectional(task: MemoryTask, cfg: dict, out: Path) -> tuple[dict, Path | None]:
    from torchworks.engine.run import train

    fw_cfg = copy.deepcopy(cfg)
    fw_cfg["task"]["bidirectional"] = False
    fw_cfg["out_dir"] = str(Path(cfg["out_dir"]) / "forward_only")
    fw_task: MemoryTask = train(fw_cfg, overwrite=True).task
    fw = fw_task.evaluate(task.make_split("test"))
    return {"forward-only LSTM test": {"acc": fw["acc"], "seq_acc": fw["seq_acc"]}}, out / "curves.png"


_ANALYSES = {"counter": _counter, "ab-memory": _ab_memory, "conflict": _conflict, "bidirectional": _bidirectional}
