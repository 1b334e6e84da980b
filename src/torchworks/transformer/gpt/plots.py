"""GPT self-attention figures: per-layer, per-head attention maps (matplotlib, imported only when drawing)."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

from torch import Tensor

from torchworks.transformer.common import token_label as _label

__all__ = ["plot_attention"]


def plot_attention(maps: Sequence[Tensor], tokens: Sequence[str], out: str | Path, *, title: str | None = None,
                   max_ticks: int = 48) -> Path:
    """Draw a grid of attention heat maps: one row per layer, one column per head.

    Args:
        maps: One (H, T, T) float tensor per layer, rows = query positions, columns = key positions, each row a
            probability distribution (e.g. ``GPT.attention_maps(idx)[layer][0]``).
        tokens: The T token strings (tick labels; hidden when T > ``max_ticks``).
        out: PNG path (parent folders are created).
        title: Figure title; default says what is shown.
        max_ticks: Most tokens labelled on the axes.

    Returns:
        The written path.

    Raises:
        ValueError: No maps, or maps whose shapes disagree with ``tokens``.
    """
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    if not maps:
        raise ValueError("no attention maps to draw")
    n_layer, (n_head, t, t2) = len(maps), tuple(maps[0].shape)
    if t != t2 or t != len(tokens) or any(tuple(m.shape) != (n_head, t, t) for m in maps):
        raise ValueError(f"need {n_layer} maps of shape (H, T, T) with T = {len(tokens)} tokens; got "
                         f"{[tuple(m.shape) for m in maps]}")
    size = min(3.2, max(1.8, 0.12 * t))
    fig, axes = plt.subplots(n_layer, n_head, figsize=(size * n_head + 0.8, size * n_layer + 0.8), squeeze=False)
    labels = [_label(s) for s in tokens] if t <= max_ticks else None
    for layer, layer_maps in enumerate(maps):
        for head in range(n_head):
            ax = axes[layer][head]
            ax.imshow(layer_maps[head].detach().float().cpu().numpy(), cmap="viridis", vmin=0.0, vmax=1.0)
            ax.set_title(f"layer {layer} head {head}", fontsize=8)
            if labels is not None:
                ax.set_xticks(range(t), labels, fontsize=5, rotation=90)
                ax.set_yticks(range(t), labels, fontsize=5)
            else:
                ax.set_xticks([])
                ax.set_yticks([])
    fig.suptitle(title or "causal self-attention (rows: query, columns: key)", fontsize=10)
    fig.tight_layout()
    out = Path(out)
    out.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(out, dpi=110)
    plt.close(fig)
    return out
