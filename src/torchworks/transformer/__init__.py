"""Transformers: GPT, encoder-decoder translation, BERT, ViT, generation.

Importing this package registers the GPT variants in ``MODELS`` and the ``gpt_lm`` task in ``TASKS``. Tokenizers
(``tokenizers`` library) and HF conversion (``transformers``) import their optional dependencies only when used.
"""

from torchworks.transformer.generate import generate, sample_next_token, top_k_filter, top_p_filter
from torchworks.transformer.gpt import GPT, GPTConfig
from torchworks.transformer.task import GPTLMConfig, GPTLMTask, load_lm

__all__ = ["GPT", "GPTConfig", "GPTLMConfig", "GPTLMTask", "generate", "load_lm", "sample_next_token", "top_k_filter",
           "top_p_filter"]
