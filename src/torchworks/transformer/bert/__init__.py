"""BERT: the encoder with its pre-training and task heads, HF / MiniLM weights, WordPiece, data and engine tasks.

Importing this package registers the BERT variants in ``MODELS``; the ``bert_pretrain`` task registers when
:mod:`torchworks.transformer.bert.task` is imported and ``bert_classify`` / ``bert_tag`` with
:mod:`torchworks.transformer.bert.finetune` (the catalog does both on demand).
"""

from torchworks.transformer.bert.hf import embed_sentences, encode_texts, load_minilm, minilm_dir, minilm_tokenizer
from torchworks.transformer.bert.model import (
    IGNORE,
    BertConfig,
    BertForPreTraining,
    BertForSequenceClassification,
    BertForTokenClassification,
    BertMLMHead,
    BertModel,
    BertOutput,
    PreTrainingOutput,
    mean_pool,
)
from torchworks.transformer.bert.variants import HEADS
from torchworks.transformer.bert.wordpiece import WordPieceTokenizer

__all__ = ["HEADS", "IGNORE", "BertConfig", "BertForPreTraining", "BertForSequenceClassification",
           "BertForTokenClassification", "BertMLMHead", "BertModel", "BertOutput", "PreTrainingOutput",
           "WordPieceTokenizer", "embed_sentences", "encode_texts", "load_minilm", "mean_pool", "minilm_dir",
           "minilm_tokenizer"]
