"""Looking inside a trained LSTM: per-step cell states, the neuron that tracks a signal, and their figures.

The heat maps follow E. Chen's "Exploring LSTMs": one row per cell-state neuron, one column per input symbol,
colour = c_t. They come from the layer's ``record=True`` path, which returns every step's gates and states.

References:
    E. Chen, "Exploring LSTMs" (2017); A. Karpathy, J. Johnson, L. Fei-Fei, "Visualizing and Understanding
    Recurrent Networks", ICLR 2016 workshop.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

import torch
from torch import Tensor

from torchworks.core.errors import ShapeError
from torchworks.nn.lstm import LSTM


@torch.no_grad()
def cell_states(lstm: LSTM, x: Tensor, layer: int = -1) -> Tensor:
    """Every step's cell state c_t of one layer.

    Args:
        lstm: the layer (e.g. ``SequenceNet.lstm``).
        x: (B, T, F) inputs.
        layer: which stacked layer (default the top one).

    Returns:
        (B, T, U) float: c_t in processing order.
    """
    was_training = lstm.training
    lstm.eval()
    try:
        _, rec = lstm(x, record=True)
    finally:
        lstm.train(was_training)
    c = rec["c"]
    return c[layer] if c.dim() == 4 else c  # stacked layers record (L, B, T, U)


def tracking_neuron(states: Tensor, signal: Tensor, valid: Tensor | None = None) -> tuple[int, Tensor]:
    """The neuron whose state correlates most with ``signal`` (highest |Pearson r| over all valid steps).

    Args:
        states: (B, T, U) per-step states.
        signal: (B, T) the quantity to track (e.g. the running count), or (B,) constant per sequence.
        valid: (B, T) bool, steps to use (default all).

    Returns:
        ``(index, r)``: the neuron and every neuron's correlation r (U,) (0 for a constant neuron).
    """
    if states.dim() != 3:
        raise ShapeError(f"states must be (batch, steps, units), got {tuple(states.shape)}")
    if signal.dim() == 1:
        signal = signal.unsqueeze(1).expand(states.shape[:2])
    if valid is None:
        valid = torch.ones(states.shape[:2], dtype=torch.bool)
    s = states[valid].double()  # (N, U)
    g = signal[valid].double()  # (N,)
    s = s - s.mean(0)
    g = g - g.mean()
    denom = s.norm(dim=0) * g.norm()
    r = torch.where(denom > 0, (s * g.unsqueeze(1)).sum(0) / denom.clamp_min(1e-300), torch.zeros_like(denom))
    return int(r.abs().argmax()), r.float()


def plot_cell_heatmap(panels: Sequence[tuple[str, Tensor, Sequence[str]]], path: str | Path, neuron: int,
                      r: float, what: str) -> Path:
    """Draws cell-state heat maps (neurons x input steps), one panel per example, and marks ``neuron``.

    Args:
        panels: ``(title, states (T, U), labels of the T input steps)`` per example.
        path: PNG to write.
        neuron: index of the tracking neuron (outlined and named in the title).
        r: its correlation with the tracked quantity.
        what: the tracked quantity, e.g. "the count".
    """
    from matplotlib.figure import Figure

    steps = max(len(p[2]) for p in panels)
    fig = Figure(figsize=(min(16.0, max(7.0, 0.22 * steps + 2)), 2.6 + 2.6 * len(panels)))
    axes = fig.subplots(len(panels) + 1, 1, squeeze=False)[:, 0]
    vmax = max(float(p[1].abs().max()) for p in panels) or 1.0
    for ax, (title, c, labels) in zip(axes, panels, strict=False):
        im = ax.imshow(c.t().numpy(), aspect="auto", cmap="RdBu_r", vmin=-vmax, vmax=vmax, interpolation="nearest")
        every = max(1, len(labels) // 40)  # long lags: label every k-th step only, but always the last one
        ticks = sorted({*range(0, len(labels), every), len(labels) - 1})
        ax.set_xticks(ticks, [labels[i] for i in ticks])
        ax.set_yticks(range(c.shape[1]))
        ax.set_ylabel("cell neuron")
        ax.axhspan(neuron - 0.5, neuron + 0.5, fill=False, edgecolor="black", linewidth=1.5)
        ax.set_title(title, fontsize="medium")
        fig.colorbar(im, ax=ax, label="c_t")
    trace = axes[-1]  # the tracking neuron alone, where the heat map's shared colour scale hides it
    for title, c, _ in panels:
        trace.plot(c[:, neuron].numpy(), marker=".", label=title)
    trace.set_xlabel("input step")
    trace.set_ylabel(f"c_t of neuron {neuron}")
    trace.grid(True, alpha=0.3)
    trace.legend(fontsize="small")
    fig.suptitle(f"cell state per neuron (record=True)\nneuron {neuron} tracks {what}, r = {r:+.2f}")
    fig.tight_layout()
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=100)
    return path


def plot_step_probabilities(panels: Sequence[tuple[str, Tensor, Sequence[str]]], path: str | Path,
                            title: str) -> Path:
    """Per-step class probabilities (classes x steps) for a few labelled examples, one panel each.

    Args:
        panels: ``(title, probabilities (T, C), labels of the T steps)``.
        path: PNG to write.
        title: figure title.
    """
    from matplotlib.figure import Figure

    cols = min(2, len(panels))
    rows = (len(panels) + cols - 1) // cols
    fig = Figure(figsize=(4.2 * cols, 3.0 * rows))
    axes = fig.subplots(rows, cols, squeeze=False).flat
    for ax, (name, p, labels) in zip(axes, panels, strict=False):
        ax.imshow(p.t().numpy(), aspect="auto", cmap="Greens", vmin=0, vmax=1, origin="lower")
        ax.set_xticks(range(len(labels)), labels)
        ax.set_xlabel("input step")
        ax.set_ylabel("predicted next value")
        ax.set_title(name, fontsize="medium")
        for t in range(p.shape[0]):
            k = int(p[t].argmax())
            ax.text(t, k, f"{float(p[t, k]):.2f}", ha="center", va="center", fontsize="small")
    fig.suptitle(title)
    fig.tight_layout()
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=100)
    return path
