"""Open a language model from wherever its weights come from: a torchworks checkpoint (:func:`load_lm`), a Hugging
Face GPT-2 folder, or a nanoGPT ``ckpt.pt`` (what ``torchworks generate --ckpt / --from-pretrained`` and the
``gpt_lm`` task's ``init_from:`` accept)."""

from __future__ import annotations

from pathlib import Path

from torch import nn

from torchworks.core.checkpoint import build_model, load_checkpoint, load_weights
from torchworks.core.errors import CheckpointError
from torchworks.transformer.gpt.tokenizers import tokenizer_from_json

__all__ = ["load_lm", "load_lm_source", "open_tokenizer"]


def open_tokenizer(path: str | Path):
    """A tokenizer from a file: a nanoGPT ``meta.pkl``, our character JSON, or a ``tokenizers`` JSON (e.g. GPT-2's
    ``tokenizer.json``).

    Raises:
        FileNotFoundError: No such file.
        ValueError: A file of none of these kinds.
    """
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"tokenizer file not found: {path}")
    if path.suffix == ".pkl":
        from torchworks.transformer.gpt.nanogpt import read_meta_pkl

        return read_meta_pkl(path)
    from torchworks.transformer.gpt.tokenizers import load_tokenizer

    return load_tokenizer(path)


def load_lm_source(source: str | Path, tokenizer: str | Path | None = None) -> tuple[nn.Module, object]:
    """``(GPT in eval mode, tokenizer)`` from ``source``.

    Args:
        source: A folder: a Hugging Face GPT-2 ``save_pretrained`` folder. A ``torch.save`` file: a nanoGPT
            ``ckpt.pt``. Anything else: a ``gpt_lm`` training checkpoint or ``save_model`` export.
        tokenizer: A tokenizer file (:func:`open_tokenizer`) replacing the one found with the model (needed for a
            nanoGPT checkpoint without ``meta.pkl``); its vocabulary must fit the model's.

    Raises:
        FileNotFoundError: No such file or folder (or a folder without config.json).
        CheckpointError: The source cannot be read or does not fit (see the loaders).
    """
    source = Path(source)
    tok = open_tokenizer(tokenizer) if tokenizer is not None else None
    if source.is_dir():
        from torchworks.transformer.gpt.hf import load_hf_folder

        model, found = load_hf_folder(source, with_tokenizer=tok is None)
    elif not source.is_file():
        raise FileNotFoundError(f"checkpoint not found: {source}")
    else:
        from torchworks.transformer.gpt.nanogpt import is_torch_pickle, load_nanogpt

        if is_torch_pickle(source):
            return load_nanogpt(source, tokenizer=tok)
        model, found = load_lm(source)
    tok = tok or found
    if tok.vocab_size != model.config.vocab_size:
        raise CheckpointError(f"the tokenizer has {tok.vocab_size} tokens but the model's vocab_size is "
                              f"{model.config.vocab_size}")
    return model, tok


def load_lm(path: str | Path):
    """Rebuild ``(model, tokenizer)`` offline from a training checkpoint or a :func:`save_model` export.

    A training checkpoint carries the tokenizer in ``task.tokenizer_json``; an export made with
    ``save_model(path, model, extra={"tokenizer": json_string})`` carries it as a string; otherwise a
    ``<stem>.tokenizer.json`` or ``tokenizer.json`` file next to the checkpoint is used.

    Returns:
        ``(GPT in eval mode, tokenizer)``.

    Raises:
        FileNotFoundError: No such file.
        CheckpointError: Not a torchworks checkpoint, no model spec, or no tokenizer inside.
    """
    try:
        state = load_checkpoint(path)
    except CheckpointError:
        with open(path, "rb") as fh:
            head = fh.read(4)
        if head[:2] == b"PK" or head[:1] == b"\x80":  # torch.save zip archive or a raw pickle
            raise CheckpointError(f"{path} is a torch.save/pickle file (e.g. nanoGPT's ckpt.pt), not a torchworks "
                                  "checkpoint; pass a gpt_lm training checkpoint or a save_model export") from None
        raise
    spec = state.get("model_spec")
    if not isinstance(spec, dict) or "name" not in spec or "model" not in state:
        raise CheckpointError(f"{path}: no model inside (expected a gpt_lm training checkpoint or a save_model "
                              "export with a tokenizer)")
    raw = state.get("tokenizer")
    if raw is None and isinstance(state.get("task"), dict) and "tokenizer_json" in state["task"]:
        raw = bytes(state["task"]["tokenizer_json"].tolist()).decode("utf-8")
    path = Path(path)
    for sidecar in (path.with_suffix(".tokenizer.json"), path.with_name("tokenizer.json")):
        if raw is None and sidecar.is_file():
            raw = sidecar.read_text(encoding="utf-8")
    if not isinstance(raw, str):
        raise CheckpointError(f"{path}: holds a {spec['name']!r} model but no tokenizer; it was not written by "
                              "the gpt_lm task or exported with extra={'tokenizer': ...}")
    model = build_model(spec["name"], **dict(spec.get("kwargs") or {}))
    load_weights(model, state["model"], source=str(path))
    return model.eval(), tokenizer_from_json(raw)
