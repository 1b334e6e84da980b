"""Translation figures: decoder cross-attention over the source (matplotlib, imported only when drawing)."""

from __future__ import annotations

from pathlib import Path

from torchworks.core.atomic import atomic_path
from torchworks.transformer.common import token_label as _label

__all__ = ["plot_cross_attention"]


def plot_cross_attention(model, tokenizer, source: str, translation: str, out: str | Path, *,
                         title: str | None = None) -> Path:
    """Draw which source subwords each target subword reads: one heat map per decoder layer, heads averaged.

    The translation is fed back teacher-forced (``<bos>`` + its tokens), so row i is the distribution the decoder
    used when it predicted target token i (the last row predicts ``<eos>``).

    Args:
        model: A :class:`~torchworks.transformer.seq2seq.Seq2SeqTransformer`.
        tokenizer: Its :class:`~torchworks.transformer.seq2seq.data.TranslationTokenizer`.
        source: The source sentence; ``translation`` the model's output for it.
        out: PNG path (parent folders are created; written atomically).

    Returns:
        The written path.
    """
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    import torch

    src_ids = tokenizer.encode(source)[: model.config.max_len - 1] + [tokenizer.eos_id]
    tgt_ids = tokenizer.encode(translation)[: model.config.max_len - 2]
    maps = model.cross_attention_maps(torch.tensor([src_ids]), torch.tensor([[tokenizer.bos_id] + tgt_ids]))
    src_labels = [_label(tokenizer.tokenizer.decode([i]) if i != tokenizer.eos_id else "</s>") for i in src_ids]
    tgt_labels = [_label(tokenizer.tokenizer.decode([i])) for i in tgt_ids] + ["</s>"]
    n = len(maps)
    w, h = max(3.0, 0.32 * len(src_ids) + 1.2), max(2.5, 0.3 * len(tgt_labels) + 1.2)
    fig, axes = plt.subplots(1, n, figsize=(w * n, h), squeeze=False)
    for layer, m in enumerate(maps):
        ax = axes[0][layer]
        ax.imshow(m[0].mean(0).float().numpy(), cmap="viridis", vmin=0.0, vmax=1.0, aspect="auto")
        ax.set_xticks(range(len(src_labels)), src_labels, fontsize=7, rotation=90)
        ax.set_yticks(range(len(tgt_labels)), tgt_labels, fontsize=7)
        ax.set_title(f"decoder layer {layer} (heads averaged)", fontsize=8)
    fig.suptitle(title or "cross-attention (rows: target token predicted, columns: source token)", fontsize=9)
    fig.tight_layout()
    out = Path(out)
    try:
        with atomic_path(out) as tmp:
            fig.savefig(tmp, dpi=110, format="png")
    finally:
        plt.close(fig)
    return out
