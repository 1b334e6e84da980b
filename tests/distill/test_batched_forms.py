"""NST and FSP use batched matrix products; they must equal the naive per-sample, per-channel loop forms."""

import torch

from torchworks.distill.losses.fsp import fsp_matrix
from torchworks.distill.losses.nst import poly_kernel_mean


def naive_fsp(bottom, top):
    b, c1, h, w = bottom.shape
    c2 = top.shape[1]
    out = torch.zeros(b, c2, c1, dtype=bottom.dtype)
    for n in range(b):
        for j in range(c2):
            for i in range(c1):
                out[n, j, i] = (top[n, j] * bottom[n, i]).sum() / (h * w)
    return out


def naive_poly_mean(a, b, degree, c):
    total, count = 0.0, 0
    for n in range(a.shape[0]):
        for i in range(a.shape[1]):
            for j in range(b.shape[1]):
                total += (torch.dot(a[n, i], b[n, j]) + c) ** degree
                count += 1
    return total / count


def test_fsp_bmm_equals_loop():
    bottom, top = torch.randn(3, 4, 5, 5, dtype=torch.float64), torch.randn(3, 6, 5, 5, dtype=torch.float64)
    torch.testing.assert_close(fsp_matrix(bottom, top), naive_fsp(bottom, top), rtol=1e-12, atol=1e-12)


def test_fsp_bmm_pools_larger_map_first():
    bottom, top = torch.randn(2, 3, 4, 4, dtype=torch.float64), torch.randn(2, 2, 2, 2, dtype=torch.float64)
    pooled = bottom.reshape(2, 3, 2, 2, 2, 2).mean((3, 5))
    torch.testing.assert_close(fsp_matrix(bottom, top), naive_fsp(pooled, top), rtol=1e-12, atol=1e-12)


def test_nst_kernel_bmm_equals_loop():
    a, b = torch.randn(2, 3, 7, dtype=torch.float64), torch.randn(2, 5, 7, dtype=torch.float64)
    for degree, c in ((2, 0.0), (3, 1.0)):
        got = poly_kernel_mean(a, b, degree, c)
        assert torch.allclose(got, torch.as_tensor(naive_poly_mean(a, b, degree, c)), rtol=1e-12)
