"""Vision Transformer: the model (with HF weight import and attention rollout), the same-size CNN partner and
rollout figures; they train through the shared ``image_classifier`` task (:mod:`torchworks.classify`, named
again in :mod:`~torchworks.transformer.vit.task`).

Importing this package registers the ViT and CNN variants in ``MODELS`` (and, through the task, ``image_classifier``
in ``TASKS``).
"""

from torchworks.transformer.vit.cnn import ConvNet
from torchworks.transformer.vit.model import (
    ViT,
    ViTConfig,
    attention_rollout,
    attention_rollout_matrix,
    hf_vit_state_dict_to_ours,
    vit_from_hf,
)
from torchworks.transformer.vit.task import STATS, ImageClassifier, ImageClassifierConfig, load_split

__all__ = ["STATS", "ConvNet", "ImageClassifier", "ImageClassifierConfig", "ViT", "ViTConfig", "attention_rollout",
           "attention_rollout_matrix", "hf_vit_state_dict_to_ours", "load_split", "vit_from_hf"]
