"""Distillation losses, one module per family, each registered in ``DISTILL_LOSSES`` by its short name.

Build by name or by class::

    from torchworks.core.registry import DISTILL_LOSSES
    import torchworks.distill  # registers the losses and the model zoo

    kd = DISTILL_LOSSES.build("kd", T=4)
    loss = kd(student_logits, teacher_logits)            # (B, K), (B, K) -> scalar

Conventions shared by every loss:

* ``forward(student, teacher, ...)``: student first; the teacher side is detached inside, so passing teacher
  tensors that require grad never leaks gradient into the teacher.
* Class attribute ``inputs`` says what to feed: ``"logits"`` (B, K); ``"feature"`` one tensor (a map
  (B, C, H, W) or a vector (B, D), see the class); ``"features"`` a list of maps (a single tensor is accepted
  as a list of one); ``"preact_features"`` a list of pre-ReLU maps.
* ``init_only`` is True for losses meant for an initialisation stage before the main training (AB, FSP, and
  FitNet in ``mode="paper"``); ``FTLoss.has_init_stage`` marks the paraphraser pre-training.
* ``needs_target`` (DKD) and ``needs_index`` (CRD) mark extra inputs.
* Learnable parts (regressors, connectors, embeddings, variances) are submodules: optimise ``loss.parameters()``
  together with the student.
* Bad shapes raise :class:`~torchworks.core.errors.ShapeError` (a ``ValueError``) naming the method and shapes.
"""

from torchworks.distill.losses.ab import ABLoss
from torchworks.distill.losses.attention import ATLoss, attention_map
from torchworks.distill.losses.cc import CCLoss
from torchworks.distill.losses.crd import ContrastMemory, CRDLoss
from torchworks.distill.losses.dist import DISTLoss
from torchworks.distill.losses.dkd import DKDLoss
from torchworks.distill.losses.fitnet import ConvRegressor, FitNetLoss
from torchworks.distill.losses.fsp import FSPLoss, fsp_matrix
from torchworks.distill.losses.ft import FTLoss, Paraphraser, Translator
from torchworks.distill.losses.kd import KDLoss
from torchworks.distill.losses.nst import NSTLoss
from torchworks.distill.losses.ofd import OFDLoss, margin_from_bn
from torchworks.distill.losses.pkt import PKTLoss
from torchworks.distill.losses.rkd import RKDLoss
from torchworks.distill.losses.similarity import SPLoss
from torchworks.distill.losses.vid import VIDLoss

__all__ = [
    "ABLoss", "ATLoss", "CCLoss", "CRDLoss", "ContrastMemory", "ConvRegressor", "DISTLoss", "DKDLoss", "FSPLoss",
    "FTLoss", "FitNetLoss", "KDLoss", "NSTLoss", "OFDLoss", "PKTLoss", "Paraphraser", "RKDLoss", "SPLoss",
    "Translator", "VIDLoss", "attention_map", "fsp_matrix", "margin_from_bn",
]
