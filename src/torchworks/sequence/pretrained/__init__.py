"""Models trained here and shipped with the package, so the sequence verbs work offline out of the box.

Each model is ``<name>.safetensors`` (written by :func:`torchworks.core.checkpoint.save_model`: weights plus
the registry spec that rebuilds it), ``<name>.yaml`` (the run config it was trained with) and ``<name>.md``
(the model card: data, recipe, metrics, time). Use::

    from torchworks.sequence import pretrained
    model = pretrained.load("counter_lstm")
    torchworks sequence run counter --pretrained          # analysis and figure, no training
    torchworks forecast --csv daily-min-temperatures.csv --column Temp --pretrained melbourne_temp_lstm

``python -m torchworks.sequence.pretrained NAME`` retrains one of them and rewrites its three files (``__main__``;
kept out of this module, which the experiments and forecasting import, so that nothing imports in a circle).
"""

from __future__ import annotations

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
