"""CRD: contrastive representation distillation with two momentum memory banks (CPU-safe)."""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from torchworks.core.errors import ShapeError
from torchworks.core.registry import DISTILL_LOSSES
from torchworks.distill.losses._common import check_batch_vectors

_EPS = 1e-7


class ContrastMemory(nn.Module):
    """Two memory banks of L2-normalised embeddings, one per network, indexed by dataset position.

    ``memory_s`` holds student embeddings, ``memory_t`` teacher embeddings, both (n_data, dim) buffers (so they
    follow ``.to(device)`` and ``state_dict``; no ``.cuda()`` anywhere). After each training step the rows of the
    batch are updated as ``normalize(m * old + (1 - m) * new)``.

    Negatives: uniform over the whole data set (RepDistiller's alias sampler with equal weights), or, when
    ``labels`` are given, uniform over samples of *other* classes (what RepDistiller's ``CIFAR100InstanceSample``
    does in the data loader). Drawn with replacement: for K << N this differs negligibly from RepDistiller's
    ``np.random.choice(replace=False)`` and costs O(B K) instead of O(N) per sample.

    Scores (:meth:`scores`, the dot products of an anchor with its K+1 bank rows) are computed one of two ways
    with the same result: ``"gather"`` copies the B(K+1) rows out (``index_select``, as RepDistiller) and
    multiplies them by the anchors; ``"dense"`` multiplies the anchors by the whole bank (one (B, D) x (D, N)
    GEMM) and picks the K+1 scores per anchor. Dense reads each row once instead of copying it B(K+1)/N times,
    so it wins once the samples outnumber the bank enough: ``"auto"`` (default) takes dense when a call scores at
    least twice as many rows as the bank holds, B (K+1) >= 2 N (on one CPU thread the two cost about the same
    between 1.3 N and 5 N); at our CIFAR recipe (N = 50,000, K = 4096, B = 64: 5.2 N) dense takes about a fifth
    of gather's time (``benchmarks/distill/bench_losses.py`` measures both,
    with the crossover, in ``docs/results/distill.md``). Dense keeps a copy of each bank for backward while
    training (the update writes into the bank before backward runs): N x D floats.

    Args:
        dim: embedding size.
        n_data: number of training samples N (indices 0..N-1).
        k: negatives per anchor.
        labels: optional (N,) int class of every training sample, enables label-aware negatives.
        positive: ``"exact"`` (the sample itself) or ``"relax"`` (a random sample of the same class; needs labels).
        lookup: ``"auto"``, ``"dense"`` or ``"gather"`` (see above).
    """

    def __init__(self, dim: int, n_data: int, k: int, labels: Tensor | None = None, positive: str = "exact",
                 lookup: str = "auto") -> None:
        super().__init__()
        if k < 1 or n_data < 2:
            raise ValueError(f"crd: need k >= 1 and n_data >= 2, got k={k}, n_data={n_data}")
        if positive not in ("exact", "relax"):
            raise ValueError(f"crd: positive must be 'exact' or 'relax', got {positive!r}")
        if lookup not in ("auto", "dense", "gather"):
            raise ValueError(f"crd: lookup must be 'auto', 'dense' or 'gather', got {lookup!r}")
        self.lookup = lookup
        if positive == "relax" and labels is None:
            raise ValueError("crd: positive='relax' draws same-class positives and needs `labels`")
        self.n_data, self.k, self.positive = int(n_data), int(k), positive
        stdv = 1.0 / math.sqrt(dim / 3)  # RepDistiller's init: uniform in +-stdv
        self.register_buffer("memory_s", torch.rand(n_data, dim).mul_(2 * stdv).sub_(stdv))
        self.register_buffer("memory_t", torch.rand(n_data, dim).mul_(2 * stdv).sub_(stdv))
        self.label_aware = labels is not None
        if labels is not None:
            labels = torch.as_tensor(labels).long().flatten()
            if labels.numel() != n_data:
                raise ShapeError(f"crd: labels must have n_data={n_data} entries, got {tuple(labels.shape)}")
            n_cls = int(labels.max()) + 1
            counts = torch.bincount(labels, minlength=n_cls)
            if int(counts.max()) == n_data:
                raise ValueError("crd: label-aware negatives need at least two classes")
            # samples sorted by class: class c occupies order[start[c] : start[c] + count[c]]
            self.register_buffer("order", torch.argsort(labels, stable=True))
            self.register_buffer("class_start", torch.cumsum(counts, 0) - counts)
            self.register_buffer("class_count", counts)
            self.register_buffer("labels", labels)

    def sample(self, idx: Tensor, generator: torch.Generator | None = None) -> Tensor:
        """Indices (B, K+1): column 0 the positive, columns 1..K the negatives, for dataset indices idx (B,)."""
        b, dev = idx.shape[0], idx.device
        if not self.label_aware:
            neg = torch.randint(0, self.n_data, (b, self.k), device=dev, generator=generator)
            return torch.cat([idx[:, None], neg], 1)
        y = self.labels[idx]
        start, count = self.class_start[y][:, None], self.class_count[y][:, None]
        # uniform position among the N - n_y samples of other classes, then skip over the own-class block
        r = (torch.rand(b, self.k, device=dev, generator=generator) * (self.n_data - count)).long()
        r = torch.minimum(r, self.n_data - count - 1)
        neg = self.order[r + (r >= start) * count]
        if self.positive == "relax":
            p = (torch.rand(b, 1, device=dev, generator=generator) * count).long().clamp_max(count - 1)
            pos = self.order[start + p]
        else:
            pos = idx[:, None]
        return torch.cat([pos, neg], 1)

    def scores(self, v: Tensor, bank: Tensor, contrast_idx: Tensor) -> Tensor:
        """Dot products (B, K+1) of anchors ``v`` (B, D) with the rows ``contrast_idx`` (B, K+1) of ``bank``.

        Backward uses the bank as it is now even if :meth:`update` changes it in place before then.
        """
        if self.dense_for(contrast_idx.numel()):
            if v.requires_grad and self.training:  # the GEMM keeps the bank for backward; update() writes to it
                bank = bank.clone()
            return (v @ bank.t()).gather(1, contrast_idx)  # (B, N) -> (B, K+1)
        b, kp1 = contrast_idx.shape
        rows = torch.index_select(bank, 0, contrast_idx.flatten()).view(b, kp1, -1)  # (B, K+1, D)
        return torch.bmm(rows, v[:, :, None]).squeeze(2)

    def dense_for(self, rows: int) -> bool:
        """Whether scoring ``rows`` = B (K+1) bank rows takes the dense path (see the class docstring)."""
        return self.lookup == "dense" or (self.lookup == "auto" and rows >= 2 * self.n_data)

    @torch.no_grad()
    def update(self, v_s: Tensor, v_t: Tensor, idx: Tensor, momentum: float) -> None:
        for mem, v in ((self.memory_s, v_s), (self.memory_t, v_t)):
            old = torch.index_select(mem, 0, idx)
            new = F.normalize(old * momentum + v.detach() * (1 - momentum), dim=1)
            mem.index_copy_(0, idx, new.to(mem.dtype))


def nce_loss(p: Tensor, n_data: int) -> Tensor:
    """NCE objective (CRD Eq. 18) for normalised scores p (B, K+1), column 0 positive, noise Pn = 1/N."""
    k_pn = (p.shape[1] - 1) / n_data
    log_d1 = torch.log(p[:, 0] / (p[:, 0] + k_pn + _EPS))
    log_d0 = torch.log(k_pn / (p[:, 1:] + k_pn + _EPS))
    return -(log_d1.sum() + log_d0.sum()) / p.shape[0]


@DISTILL_LOSSES.register("crd")
class CRDLoss(nn.Module):
    """Contrastive representation distillation.

    Both penultimate features are embedded (``embed_s``, ``embed_t``: Linear -> L2 norm, trainable) to v_s,
    v_t. With the teacher as anchor, positives/negatives come from the student memory bank, and vice versa:

    .. math::
        h(v_t, v_s) = \\frac{\\exp(v_t^\\top v_s / \\tau)}{\\exp(v_t^\\top v_s / \\tau) + K/N \\cdot Z}, \\quad
        L_{CRD} = -\\mathbb{E}_{pos}[\\log h] - K \\, \\mathbb{E}_{neg}[\\log(1 - h)]

    (paper Eq. 18, NCE; scores exp(./tau) are divided by a constant Z fixed on the first batch as
    mean(exp) * N, as in the reference), summed over the two directions. ``objective="softmax"`` replaces NCE by
    the (K+1)-way cross-entropy of the logits v.w / tau (the paper's "CRD softmax" variant).

    Defaults are RepDistiller's CIFAR-100 settings: feat_dim 128, K 16384, tau 0.07, momentum 0.5; loss
    weight 0.8 (or KD weight 1 + CRD 0.8 for CRD+KD). Memory: two N x feat_dim float banks (51 MB for N=50k).

    Args:
        s_dim: student feature size (flattened), e.g. 64 for resnet20's pooled vector.
        t_dim: teacher feature size.
        n_data: training-set size N; ``idx`` passed to forward are positions in it.
        feat_dim: embedding size.
        k: negatives per anchor.
        T: temperature tau.
        momentum: memory update momentum.
        objective: ``"nce"`` or ``"softmax"``.
        labels: optional (N,) class of every training sample; enables label-aware negatives (other classes only).
        positive: ``"exact"`` or ``"relax"`` (needs labels), see :class:`ContrastMemory`.
        lookup: how bank scores are computed, ``"auto"`` / ``"dense"`` / ``"gather"`` (same values), see
            :class:`ContrastMemory`.

    Inputs:
        f_s: student features (B, s_dim) (any (B, ...) is flattened).
        f_t: teacher features (B, t_dim); detached inside.
        idx: dataset indices of the batch (B,) int64, required.
        contrast_idx: optional precomputed (B, K+1) indices (positive first), e.g. from a data loader;
            otherwise drawn by :meth:`ContrastMemory.sample`.

    References:
        Tian, Krishnan, Isola, "Contrastive Representation Distillation", ICLR 2020, arXiv:1910.10699.
        Reference implementation: HobbitLong/RepDistiller ``crd/criterion.py``, ``crd/memory.py``.
    """

    inputs = "feature"
    init_only = False
    needs_index = True

    def __init__(
        self,
        s_dim: int,
        t_dim: int,
        n_data: int,
        feat_dim: int = 128,
        k: int = 16384,
        T: float = 0.07,
        momentum: float = 0.5,
        objective: str = "nce",
        labels: Tensor | None = None,
        positive: str = "exact",
        lookup: str = "auto",
    ) -> None:
        super().__init__()
        if objective not in ("nce", "softmax"):
            raise ValueError(f"crd: objective must be 'nce' or 'softmax', got {objective!r}")
        self.s_dim, self.t_dim, self.T, self.momentum, self.objective = s_dim, t_dim, float(T), momentum, objective
        self.embed_s = nn.Linear(s_dim, feat_dim)
        self.embed_t = nn.Linear(t_dim, feat_dim)
        self.memory = ContrastMemory(feat_dim, n_data, k, labels=labels, positive=positive, lookup=lookup)
        self.register_buffer("z", torch.full((2,), -1.0))  # Z for (student-anchor, teacher-anchor), set lazily

    def forward(
        self, f_s: Tensor, f_t: Tensor, idx: Tensor | None = None, contrast_idx: Tensor | None = None
    ) -> Tensor:
        s, t = check_batch_vectors("crd", f_s, f_t)
        if s.shape[1] != self.s_dim or t.shape[1] != self.t_dim:
            raise ShapeError(
                f"crd: built for s_dim={self.s_dim}, t_dim={self.t_dim}, got student {tuple(f_s.shape)} "
                f"and teacher {tuple(f_t.shape)}"
            )
        n, b = self.memory.n_data, s.shape[0]
        if idx is None:
            raise ValueError("crd: needs the dataset indices `idx` (B,) of the batch (use an indexed data set)")
        idx = idx.to(device=s.device, dtype=torch.long).flatten()
        if idx.shape[0] != b or int(idx.min()) < 0 or int(idx.max()) >= n:
            raise ValueError(f"crd: idx must be {b} indices in [0, {n}), got shape {tuple(idx.shape)}")
        if contrast_idx is None:
            contrast_idx = self.memory.sample(idx)
        elif contrast_idx.dim() != 2 or contrast_idx.shape[0] != b:
            raise ShapeError(f"crd: contrast_idx must be (B, K+1) with B={b}, got {tuple(contrast_idx.shape)}")
        v_s = F.normalize(self.embed_s(s), dim=1)
        v_t = F.normalize(self.embed_t(t), dim=1)
        contrast_idx = contrast_idx.to(device=s.device, dtype=torch.long)
        logit_s = self.memory.scores(v_s, self.memory.memory_t, contrast_idx) / self.T  # student as anchor
        logit_t = self.memory.scores(v_t, self.memory.memory_s, contrast_idx) / self.T  # teacher as anchor
        if self.objective == "softmax":
            zero = torch.zeros(b, dtype=torch.long, device=s.device)
            loss = F.cross_entropy(logit_s, zero) + F.cross_entropy(logit_t, zero)
        else:
            p_s, p_t = logit_s.exp(), logit_t.exp()
            if self.z[0] < 0:  # first call: fix the normalisation constants, as the reference does
                self.z.copy_(torch.stack([p_s.detach().mean(), p_t.detach().mean()]) * n)
            loss = nce_loss(p_s / self.z[0], n) + nce_loss(p_t / self.z[1], n)
        if self.training:
            self.memory.update(v_s, v_t, idx, self.momentum)
        return loss

    def extra_repr(self) -> str:
        return (f"objective={self.objective!r}, T={self.T}, momentum={self.momentum}, k={self.memory.k}, "
                f"lookup={self.memory.lookup!r}")
