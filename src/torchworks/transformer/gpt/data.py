"""Language-model data: a text corpus as one token stream, windows over it, and full-split evaluation.

The stream is split by position, not shuffled: the first 90 % trains and the last 10 % validates (nanoGPT's
``prepare.py``; for tinyshakespeare at character level that is 1,003,854 / 111,540 tokens). A training
example is a window of ``block_size + 1`` consecutive tokens: inputs are the first ``block_size``, targets the
same window shifted by one.

References:
    Karpathy, nanoGPT ``data/shakespeare_char/prepare.py`` (split) and ``train.py`` ``get_batch`` (random windows).
"""

from __future__ import annotations

from pathlib import Path

import torch
from torch import Tensor, nn
from torch.utils.data import Dataset

__all__ = ["TokenWindows", "full_val_loss", "load_text", "random_batch", "split_tokens"]


def load_text(name: str = "tinyshakespeare", filename: str = "input.txt") -> str:
    """Read a registered text corpus (UTF-8), e.g. tinyshakespeare's ``input.txt`` (1,115,394 characters).

    Raises:
        DataNotFoundError: The data set is in none of the searched places (the message says how to get it).
    """
    from torchworks.data import dataset_path

    path = Path(dataset_path(name)) / filename
    if not path.is_file():
        raise FileNotFoundError(f"{path} not found in data set {name!r}")
    return path.read_text(encoding="utf-8")


def split_tokens(tokens: Tensor | list[int], val_fraction: float = 0.1) -> tuple[Tensor, Tensor]:
    """Split a token stream into (train, val) by position: val is the last ``val_fraction``.

    Args:
        tokens: 1-D ids (N,).
        val_fraction: In (0, 1); the train part has ``int(N * (1 - val_fraction))`` tokens, as nanoGPT.

    Returns:
        ``(train (N_train,), val (N - N_train,))`` int64 views of one tensor.
    """
    if not 0.0 < val_fraction < 1.0:
        raise ValueError(f"val_fraction must be in (0, 1), got {val_fraction}")
    tokens = torch.as_tensor(tokens, dtype=torch.long)
    if tokens.dim() != 1:
        raise ValueError(f"tokens must be 1-D, got shape {tuple(tokens.shape)}")
    n_train = int(len(tokens) * (1.0 - val_fraction))
    return tokens[:n_train], tokens[n_train:]


class TokenWindows(Dataset):
    """Map-style data set of (inputs, targets) windows over a token stream.

    Item i covers ``tokens[i * stride : i * stride + block_size + 1]``. With ``stride=1`` and a shuffling
    sampler, batches are nanoGPT's random windows (every start offset equally likely); with
    ``stride=block_size`` the windows tile the stream without overlapping inputs.

    Args:
        tokens: 1-D ids (N,), N > block_size.
        block_size: Context length T.
        stride: Distance between consecutive window starts (>= 1).
    """

    def __init__(self, tokens: Tensor | list[int], block_size: int, stride: int = 1) -> None:
        self.tokens = torch.as_tensor(tokens, dtype=torch.long)
        if self.tokens.dim() != 1 or len(self.tokens) <= block_size:
            raise ValueError(f"need a 1-D stream longer than block_size {block_size}, got {tuple(self.tokens.shape)}")
        if block_size < 1 or stride < 1:
            raise ValueError(f"block_size and stride must be >= 1, got {block_size}, {stride}")
        self.block_size, self.stride = block_size, stride

    def __len__(self) -> int:
        return (len(self.tokens) - self.block_size - 1) // self.stride + 1

    def __getitem__(self, i: int) -> tuple[Tensor, Tensor]:
        """Return ``(x, y)``, each (T,) int64, with ``y[t] = x[t + 1]`` inside the stream."""
        if not -len(self) <= i < len(self):
            raise IndexError(f"window {i} out of range for {len(self)} windows")
        start = (i % len(self)) * self.stride
        chunk = self.tokens[start : start + self.block_size + 1]
        return chunk[:-1], chunk[1:]


def random_batch(tokens: Tensor, block_size: int, batch_size: int,
                 generator: torch.Generator | None = None) -> tuple[Tensor, Tensor]:
    """nanoGPT's ``get_batch``: ``batch_size`` windows at uniformly random offsets.

    Returns:
        ``(x, y)``, each (B, T) int64.
    """
    starts = torch.randint(len(tokens) - block_size, (batch_size,), generator=generator)
    offsets = starts[:, None] + torch.arange(block_size + 1)  # (B, T + 1)
    windows = tokens[offsets]
    return windows[:, :-1], windows[:, 1:]


@torch.no_grad()
def full_val_loss(model: nn.Module, tokens: Tensor, block_size: int, batch_size: int = 64) -> float:
    """Mean next-token cross-entropy over a whole split (nats per token), deterministic.

    The stream is cut into ``n = (N - 1) // block_size`` non-overlapping windows: window j has inputs
    ``tokens[j*T : (j+1)*T]`` and targets ``tokens[j*T + 1 : (j+1)*T + 1]``, so every target from position 1 to
    ``n*T`` is scored exactly once; the last ``(N - 1) % T`` targets (51 for tinyshakespeare's char val split at
    T=64: 111,488 of 111,539 scored) are dropped so that all windows have the full length. Each window starts
    without earlier context, exactly like training windows. The result is the token-weighted mean, so it does
    not depend on ``batch_size``.

    Args:
        model: Called as ``model(x, y) -> (logits, mean_loss)`` (e.g. :class:`GPT`); eval mode while it runs.
        tokens: 1-D ids (N,), N > block_size.
        block_size: Window length T (<= the model's block size).
        batch_size: Windows per forward pass (memory only).
    """
    tokens = torch.as_tensor(tokens, dtype=torch.long)
    n = (len(tokens) - 1) // block_size
    if n < 1:
        raise ValueError(f"a split of {len(tokens)} tokens has no full window of {block_size} + 1")
    device = next(model.parameters()).device
    x = tokens[: n * block_size].view(n, block_size)  # (n, T)
    y = tokens[1 : n * block_size + 1].view(n, block_size)  # (n, T)
    was_training = model.training
    model.eval()
    total = 0.0
    try:
        for i in range(0, n, batch_size):
            xb, yb = x[i : i + batch_size].to(device), y[i : i + batch_size].to(device)
            _, loss = model(xb, yb)
            total += float(loss) * yb.numel()  # mean over the batch -> sum, so the last short batch weighs right
    finally:
        model.train(was_training)
    return total / (n * block_size)
