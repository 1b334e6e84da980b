"""CRD: memory banks, NCE / softmax objectives against numpy, label-aware sampling, CPU-only operation."""

import numpy as np
import pytest
import torch
import torch.nn.functional as F

from torchworks.distill.losses import ContrastMemory, CRDLoss


def build(n=12, k=4, **kw):
    loss = CRDLoss(s_dim=3, t_dim=5, n_data=n, feat_dim=4, k=k, **kw).double()
    return loss


def test_nce_value_matches_numpy_and_fixes_z_on_first_call():
    loss = build()
    f_s, f_t = torch.randn(2, 3, dtype=torch.float64), torch.randn(2, 5, dtype=torch.float64)
    idx = torch.tensor([1, 7])
    cidx = torch.tensor([[1, 0, 2, 3, 4], [7, 8, 9, 10, 11]])
    mem_s, mem_t = loss.memory.memory_s.numpy().copy(), loss.memory.memory_t.numpy().copy()
    W = {k: v.detach().numpy() for k, v in loss.state_dict().items()}
    v_s = f_s.numpy() @ W["embed_s.weight"].T + W["embed_s.bias"]
    v_t = f_t.numpy() @ W["embed_t.weight"].T + W["embed_t.bias"]
    v_s /= np.linalg.norm(v_s, axis=1, keepdims=True)
    v_t /= np.linalg.norm(v_t, axis=1, keepdims=True)
    T, n, k = 0.07, 12, 4

    def nce(v, mem):
        e = np.exp(np.stack([mem[cidx[b].numpy()] @ v[b] for b in range(2)]) / T)
        p = e / (e.mean() * n)  # Z fixed from this (first) batch
        pn = k / n
        return -(np.log(p[:, 0] / (p[:, 0] + pn + 1e-7)).sum() + np.log(pn / (p[:, 1:] + pn + 1e-7)).sum()) / 2

    expected = nce(v_s, mem_t) + nce(v_t, mem_s)  # student anchored on the teacher bank and vice versa
    assert loss(f_s, f_t, idx, cidx).item() == pytest.approx(expected, rel=1e-8)
    z = loss.z.clone()
    assert (z > 0).all()
    loss(f_s, f_t, idx, cidx)
    assert torch.equal(loss.z, z)  # not re-estimated


def test_memory_momentum_update_rule():
    loss = build()
    f_s, f_t = torch.randn(2, 3, dtype=torch.float64), torch.randn(2, 5, dtype=torch.float64)
    idx = torch.tensor([3, 9])
    before = loss.memory.memory_s.clone()
    with torch.no_grad():
        v_s = F.normalize(loss.embed_s(f_s), dim=1)
    loss(f_s, f_t, idx)
    expected = F.normalize(0.5 * before[idx] + 0.5 * v_s, dim=1)
    torch.testing.assert_close(loss.memory.memory_s[idx], expected)
    untouched = torch.ones(12, dtype=torch.bool)
    untouched[idx] = False
    assert torch.equal(loss.memory.memory_s[untouched], before[untouched])
    loss.eval()
    frozen = loss.memory.memory_s.clone()
    loss(f_s, f_t, idx)
    assert torch.equal(loss.memory.memory_s, frozen)


def test_softmax_objective_is_cross_entropy_over_k_plus_one():
    loss = build(objective="softmax")
    f_s, f_t = torch.randn(2, 3, dtype=torch.float64), torch.randn(2, 5, dtype=torch.float64)
    cidx = torch.tensor([[0, 1, 2, 3, 4], [5, 6, 7, 8, 9]])
    with torch.no_grad():
        v_s, v_t = F.normalize(loss.embed_s(f_s), dim=1), F.normalize(loss.embed_t(f_t), dim=1)
        mem_s, mem_t = loss.memory.memory_s.clone(), loss.memory.memory_t.clone()
    expected = 0.0
    for b in range(2):
        for v, mem in ((v_s[b], mem_t), (v_t[b], mem_s)):
            logits = (mem[cidx[b]] @ v / 0.07).numpy()
            expected += -(logits[0] - np.log(np.exp(logits).sum())) / 2
    assert loss(f_s, f_t, torch.tensor([0, 5]), cidx).item() == pytest.approx(expected, rel=1e-8)


def test_label_aware_negatives_come_from_other_classes_and_relax_positive_from_same():
    labels = torch.arange(40) % 4  # 10 samples per class, interleaved
    mem = ContrastMemory(dim=4, n_data=40, k=2000, labels=labels, positive="relax")
    idx = torch.tensor([0, 1, 2, 3, 17, 38])
    out = mem.sample(idx)
    assert out.shape == (6, 2001)
    y = labels[idx]
    assert (labels[out[:, 1:]] != y[:, None]).all()
    assert (labels[out[:, 0]] == y).all()
    # every other-class sample is reachable (uniform over the complement), not just a subset;
    # P(some sample never drawn in 2000 draws) ~ 30 * (29/30)^2000, negligible
    counts = torch.bincount(out[0, 1:], minlength=40)
    assert (counts[labels != 0] > 0).all() and counts.sum() == 2000


def test_exact_positive_and_uniform_negatives_without_labels():
    mem = ContrastMemory(dim=4, n_data=10, k=500)
    out = mem.sample(torch.tensor([4, 2]))
    assert out[:, 0].tolist() == [4, 2]
    assert set(out[:, 1:].flatten().tolist()) == set(range(10))


def test_missing_or_bad_indices_are_errors():
    loss = build()
    f_s, f_t = torch.randn(2, 3, dtype=torch.float64), torch.randn(2, 5, dtype=torch.float64)
    with pytest.raises(ValueError, match="crd: needs the dataset indices"):
        loss(f_s, f_t)
    with pytest.raises(ValueError, match=r"crd: idx must be 2 indices in \[0, 12\)"):
        loss(f_s, f_t, torch.tensor([0, 12]))
    with pytest.raises(ValueError, match="relax"):
        ContrastMemory(4, 10, 3, positive="relax")


def test_banks_are_buffers_and_follow_state_dict():
    loss = build(n=30)
    sd = loss.state_dict()
    assert sd["memory.memory_s"].shape == (30, 4) and sd["memory.memory_t"].shape == (30, 4)
    assert "memory.memory_s" not in dict(loss.named_parameters())
    other = build(n=30)
    other.load_state_dict(sd)
    assert torch.equal(other.memory.memory_t, loss.memory.memory_t)


def _pair(lookup_a, lookup_b, n=40, k=30):
    losses = []
    for lookup in (lookup_a, lookup_b):
        torch.manual_seed(5)  # same embeddings and banks
        losses.append(CRDLoss(s_dim=3, t_dim=5, n_data=n, feat_dim=4, k=k, lookup=lookup).double())
    return losses


def test_dense_and_gather_lookups_give_the_same_loss_gradients_and_memory():
    dense, gather = _pair("dense", "gather")
    g = torch.Generator().manual_seed(0)
    idx = torch.tensor([3, 17, 29])
    for step in range(3):  # the banks change after each step: the forms must stay in step
        f_s, f_t = torch.randn(3, 3, generator=g, dtype=torch.float64), torch.randn(3, 5, generator=g,
                                                                                      dtype=torch.float64)
        cidx = torch.cat([idx[:, None], torch.randint(0, 40, (3, 30), generator=g)], 1)
        cidx[:, 1:4] = cidx[:, 1:2]  # repeated negatives, and a negative equal to another anchor's positive
        cidx[0, 5] = idx[1]
        grads = []
        for loss in (dense, gather):
            s, t = f_s.clone().requires_grad_(), f_t.clone().requires_grad_()
            value = loss(s, t, idx, cidx)
            value.backward()
            grads.append((value.detach(), s.grad, t.grad, loss.embed_s.weight.grad.clone()))
            loss.zero_grad()
        for a, b in zip(*grads, strict=True):
            torch.testing.assert_close(a, b, rtol=1e-12, atol=1e-12, msg=f"step {step}")
        torch.testing.assert_close(dense.memory.memory_s, gather.memory.memory_s, rtol=1e-12, atol=1e-12)
        torch.testing.assert_close(dense.memory.memory_t, gather.memory.memory_t, rtol=1e-12, atol=1e-12)


def test_dense_gradient_uses_the_banks_before_their_update():
    # In eval mode nothing is updated; in train mode the banks change in place after scoring. Backward must see
    # the banks the scores were computed from, so both modes give the same gradient.
    train, frozen = _pair("dense", "dense")
    frozen.eval()
    frozen.z.copy_(torch.tensor([3.0, 4.0]))
    train.z.copy_(torch.tensor([3.0, 4.0]))
    f_s, f_t = torch.randn(2, 3, dtype=torch.float64), torch.randn(2, 5, dtype=torch.float64)
    idx, cidx = torch.tensor([1, 7]), torch.tensor([[1, 7, 2, 3], [7, 1, 9, 9]])
    grads = []
    for loss in (train, frozen):
        s = f_s.clone().requires_grad_()
        loss(s, f_t, idx, cidx).backward()
        grads.append(s.grad)
    assert not torch.equal(train.memory.memory_t, frozen.memory.memory_t)  # the update did happen
    torch.testing.assert_close(grads[0], grads[1], rtol=1e-12, atol=1e-12)


def test_auto_lookup_takes_dense_when_samples_outnumber_the_bank():
    auto = ContrastMemory(4, 50_000, 4096)
    assert auto.dense_for(64 * 4097)  # our CIFAR recipe: 262k rows scored from a 50k bank
    assert not auto.dense_for(64 * 1025) and auto.dense_for(100_000)  # the switch is at twice the bank size
    assert not ContrastMemory(4, 50_000, 4096, lookup="gather").dense_for(64 * 4097)
    assert ContrastMemory(4, 50_000, 16, lookup="dense").dense_for(64 * 17)
    with pytest.raises(ValueError, match="lookup must be"):
        ContrastMemory(4, 10, 3, lookup="fast")
