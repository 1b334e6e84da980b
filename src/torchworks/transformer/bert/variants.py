"""The registered BERT variants (``bert_minilm_l6``, ``bert_tiny``, ``bert_mini``) with their heads.

They live apart from :mod:`~torchworks.transformer.bert.model` because ``pretrained=True`` loads the real MiniLM
weights through :mod:`~torchworks.transformer.bert.hf`, which itself builds on the model module.
"""

from __future__ import annotations

from torch import nn

from torchworks.core.registry import MODELS
from torchworks.transformer.bert.hf import load_minilm_into
from torchworks.transformer.bert.model import (
    BertConfig,
    BertForPreTraining,
    BertForSequenceClassification,
    BertForTokenClassification,
    BertModel,
)

__all__ = ["HEADS"]

HEADS = {"none": BertModel, "pretraining": BertForPreTraining, "classification": BertForSequenceClassification,
         "tagging": BertForTokenClassification}
_VARIANTS = {
    # sentence-transformers/all-MiniLM-L6-v2 (22.7M); pretrained=True loads the real weights offline.
    "bert_minilm_l6": dict(),
    # Small from-scratch BERTs for CPU pre-training (vocab defaults to BERT's 30522; override for own WordPiece).
    "bert_tiny": dict(hidden_size=128, num_layers=2, num_heads=2, intermediate_size=512, max_position=128),
    "bert_mini": dict(hidden_size=256, num_layers=4, num_heads=4, intermediate_size=1024, max_position=128),
}


def _register(name: str, base: dict) -> None:
    def factory(head: str = "none", num_labels: int = 2, pretrained: bool = False, **overrides) -> nn.Module:
        if head not in HEADS:
            raise ValueError(f"head must be one of {sorted(HEADS)}, got {head!r}")
        cfg = BertConfig.from_dict({**base, **overrides})
        model = HEADS[head](cfg) if head in ("none", "pretraining") else HEADS[head](cfg, num_labels)
        if pretrained:
            if name != "bert_minilm_l6":
                raise ValueError(f"pretrained weights exist only for bert_minilm_l6, not {name!r}")
            load_minilm_into(model)
        return model

    factory.__name__ = factory.__qualname__ = name
    factory.__doc__ = (f"BERT variant {name!r}: {base or 'BertConfig defaults'}; ``head`` in {sorted(HEADS)}, "
                       "``num_labels``, ``pretrained`` (MiniLM only) and any BertConfig field as override.")
    MODELS.add(name, factory, family="bert", config=BertConfig)


for _name, _base in _VARIANTS.items():
    _register(_name, _base)
