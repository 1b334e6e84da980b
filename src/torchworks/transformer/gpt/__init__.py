"""GPT: the decoder-only language model, its generation, tokenizers, data, the ``gpt_lm`` task and HF import.

Importing this package registers the GPT variants in ``MODELS`` and the ``gpt_lm`` task in ``TASKS``.
"""

from torchworks.transformer.gpt.generate import (
    TextStreamer,
    generate,
    generate_text,
    sample_next_token,
    top_k_filter,
    top_p_filter,
)
from torchworks.transformer.gpt.model import GPT, POSITIONS, GPTConfig
from torchworks.transformer.gpt.task import GPTLMConfig, GPTLMTask, load_lm

__all__ = ["GPT", "POSITIONS", "GPTConfig", "GPTLMConfig", "GPTLMTask", "TextStreamer", "generate", "generate_text",
           "load_lm", "sample_next_token", "top_k_filter", "top_p_filter"]
