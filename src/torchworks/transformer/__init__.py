"""Transformers: GPT, encoder-decoder translation, BERT, ViT, generation.

Importing this package registers the GPT variants in ``MODELS``. Tokenizers (``tokenizers`` library) and HF
conversion (``transformers``) import their optional dependencies only when used.
"""

from torchworks.transformer.generate import generate, sample_next_token, top_k_filter, top_p_filter
from torchworks.transformer.gpt import GPT, GPTConfig

__all__ = ["GPT", "GPTConfig", "generate", "sample_next_token", "top_k_filter", "top_p_filter"]
