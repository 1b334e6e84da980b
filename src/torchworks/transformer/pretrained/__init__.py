"""Models trained here and shipped with the package, so generation works offline out of the box.

``gpt_char_shakespeare``: a character-level GPT trained on tinyshakespeare through the ``gpt_lm`` task (see
``gpt_char_shakespeare.md`` for data, recipe, full-validation loss and training time). Files:

* ``gpt_char_shakespeare.safetensors``: :func:`~torchworks.core.checkpoint.save_model` export (registry spec + weights
  + the tokenizer JSON under ``tokenizer``);
* ``gpt_char_shakespeare.tokenizer.json``: the same tokenizer as a file (:func:`load_tokenizer`);
* ``gpt_char_shakespeare.md``: the model card.
"""

from __future__ import annotations

from pathlib import Path

from torch import nn

from torchworks.transformer.gpt.sources import load_lm_source

__all__ = ["DEFAULT_MODEL", "PRETRAINED_DIR", "default_checkpoint", "load_pretrained"]

PRETRAINED_DIR = Path(__file__).resolve().parent
DEFAULT_MODEL = "gpt_char_shakespeare"


def default_checkpoint() -> Path:
    """Path of the shipped character-level Shakespeare GPT."""
    return PRETRAINED_DIR / f"{DEFAULT_MODEL}.safetensors"


def load_pretrained(ckpt: str | Path | None = None, *, tokenizer: str | Path | None = None) -> tuple[nn.Module, object]:
    """``(model in eval mode, tokenizer)`` from ``ckpt`` or, by default, the shipped model.

    Args:
        ckpt: A ``gpt_lm`` training checkpoint or a ``save_model`` export carrying its tokenizer (inside, or as a
            ``<stem>.tokenizer.json`` / ``tokenizer.json`` file next to it), a nanoGPT ``ckpt.pt``, or a Hugging
            Face GPT-2 folder (see :func:`~torchworks.transformer.gpt.sources.load_lm_source`); None:
            :func:`default_checkpoint`.
        tokenizer: A tokenizer file to use instead of the one found with the model.

    Raises:
        FileNotFoundError: No such file (for the default: the package was installed without its data files).
        CheckpointError: Not a checkpoint of a language model, or no model/tokenizer inside.
    """
    path = Path(ckpt) if ckpt is not None else default_checkpoint()
    if ckpt is None and not path.is_file():
        raise FileNotFoundError(f"the shipped model {path} is missing: the package was installed without its data "
                                "files (pyproject [tool.setuptools.package-data]); pass --ckpt")
    return load_lm_source(path, tokenizer)
