"""Encoder-decoder Transformer for translation: the model, greedy and beam decoding, data, the ``translation`` task.

Importing this package registers the encoder-decoder variants in ``MODELS``; the ``translation`` task registers
when :mod:`torchworks.transformer.seq2seq.task` is imported (the catalog does it on demand).
"""

from torchworks.transformer.seq2seq.beam import Hypothesis, beam_search, greedy_decode, length_penalty
from torchworks.transformer.seq2seq.model import Seq2SeqCache, Seq2SeqConfig, Seq2SeqTransformer, label_smoothed_loss

__all__ = ["Hypothesis", "Seq2SeqCache", "Seq2SeqConfig", "Seq2SeqTransformer", "beam_search", "greedy_decode",
           "label_smoothed_loss", "length_penalty"]
