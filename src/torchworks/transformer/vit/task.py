"""How the ViTs (and the same-size CNNs they are compared with) train: the shared ``image_classifier`` task.

The task itself lives in :mod:`torchworks.classify` (one image-classification task for the whole package); this
module names the pieces the ViT recipes use, under the paths the model cards cite.

The small-data recipe is what a ViT trained from scratch on 28-32 px images needs, and the CNN partner gets the
same, so a comparison differs only in the model: batch-level random crop with zero padding + horizontal flip
(``crop_padding``, ``flip``), label smoothing 0.1, AdamW with decoupled weight decay on the weight matrices only
(``weight_decay_scope: weights``, the default), and per step the engine's linear warm-up then cosine decay
(``warmup_steps``, ``total_steps``, ``min_lr_ratio``). The shared CIFAR-10 copy is class-major, so its holdout is
drawn with a fixed permutation (seed 12345), independent of the run seed.

References:
    Dosovitskiy et al., "An Image is Worth 16x16 Words", ICLR 2021 (AdamW, warm-up, label smoothing for ViT).
"""

from torchworks.classify.augment import crop_flip, random_crop_flip
from torchworks.classify.data import SPLIT_SEED, STATS, TensorImages, load_split
from torchworks.classify.task import ImageClassifier, ImageClassifierConfig

__all__ = ["SPLIT_SEED", "STATS", "ImageClassifier", "ImageClassifierConfig", "TensorImages", "crop_flip",
           "load_split", "random_crop_flip"]
