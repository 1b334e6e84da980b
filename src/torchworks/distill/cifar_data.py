"""The CIFAR splits moved to :mod:`torchworks.classify.data` (one split for every classifier); this name stays for
the modules that read the split seed from here."""

from torchworks.classify.data import SPLIT_SEED

__all__ = ["SPLIT_SEED"]
