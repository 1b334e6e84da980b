"""The LSTM fast path: one autograd node for a whole layer, with a hand-written backward (BPTT).

Why it is fast enough in plain Python (measured on the project's 2-core CPU, 1 thread, B=64, T=50, U=64):

* Autograd over a Python step loop records ~10 nodes per step and pays dispatch twice for each. Here the
  input projection of all steps is one matmul, the forward loop writes into preallocated buffers, the backward
  loop does 6 small ops and one matmul per step, and the weight gradients are single matmuls over all steps.
* Fresh multi-megabyte buffers cost page faults on every call (glibc returns freed large blocks to the OS):
  allocating the forward buffers anew made the forward ~60 % slower than reusing them. Internal buffers
  therefore come from a small pool and go back to it once no backward can read them any more (the
  backward's scratch at its end, the forward's when its autograd node is freed).
* ``torch.tanh`` costs ~2.7 ns per float32 element, ``torch.sigmoid`` ~0.5 ns (vectorised), so the candidate
  gate uses tanh(z) = 2 sigmoid(2z) - 1 and one sigmoid covers all 4U columns; doubling is exact, the identity
  costs at most ~2e-7 absolute per evaluation (1e6 draws), inside the 1e-6 parity budget.

References:
    Hochreiter & Schmidhuber, "Long Short-Term Memory", 1997; Gers et al., "Learning to Forget", 2000;
    Werbos, "Backpropagation Through Time: What It Does and How to Do It", Proc. IEEE 1990.
"""

from __future__ import annotations

import threading
import weakref

import torch
from torch import Tensor
from torch.autograd.function import once_differentiable


class _Workspace:
    """A few reusable buffers per (shape, dtype, device); a buffer is in the pool only while nobody uses it."""

    def __init__(self, per_key: int = 4) -> None:
        self._free: dict[tuple, list[Tensor]] = {}
        self._lock = threading.Lock()
        self._per_key = per_key

    def take(self, shape: tuple[int, ...], like: Tensor) -> Tensor:
        key = (tuple(shape), like.dtype, like.device)
        with self._lock:
            free = self._free.get(key)
            if free:
                return free.pop()
        return like.new_empty(shape)

    def give(self, *buffers: Tensor) -> None:
        with self._lock:
            for b in buffers:
                free = self._free.setdefault((tuple(b.shape), b.dtype, b.device), [])
                if len(free) < self._per_key:
                    free.append(b)


_POOL = _Workspace()


class FusedLSTMLayer(torch.autograd.Function):
    """One LSTM layer over a whole sequence (gate order i, f, g, o), time-major.

    Inputs: ``seq`` (T, B, F), ``weight_ih`` (4U, F), ``bias`` (4U,), ``weight_hh`` (4U, U), ``h0``, ``c0`` (B, U).
    Outputs: every hidden state (T, B, U), and the final h_T and c_T (B, U).
    """

    @staticmethod
    def forward(ctx, seq: Tensor, weight_ih: Tensor, bias: Tensor, weight_hh: Tensor, h0: Tensor, c0: Tensor):
        steps, batch, feats = seq.shape
        g4 = weight_hh.shape[0]
        u = g4 // 4
        seq2d = seq.reshape(steps * batch, feats)
        gates = _POOL.take((steps, batch, g4), seq)  # pre-activations first, then activations in place
        torch.addmm(bias, seq2d, weight_ih.t(), out=gates.view(steps * batch, g4))
        gates[..., 2 * u:3 * u].mul_(2.0)  # doubled candidate pre-activation: sigmoid(2z) gives tanh(z)
        w2_t = weight_hh.t().clone()  # (U, 4U)
        w2_t[:, 2 * u:3 * u].mul_(2.0)
        cells = _POOL.take((steps + 1, batch, u), seq)
        tanh_c = _POOL.take((steps, batch, u), seq)
        out = seq.new_empty(steps, batch, u)
        cells[0] = c0
        h = h0
        # Per-step views made once in C++ (unbind) rather than by Python slicing inside the loop.
        per_step = [t.unbind(0) for t in (gates, gates[..., :u], gates[..., u:2 * u], gates[..., 2 * u:3 * u],
                                          gates[..., 3 * u:], cells[:-1], cells[1:], tanh_c, out)]
        for g_t, i_t, f_t, s_t, o_t, c_prev, c, tc, h_t in zip(*per_step, strict=True):
            g_t.addmm_(h, w2_t).sigmoid_()  # s_t = sigmoid(2 z_g): the candidate is g = 2 s - 1
            # c = f c_prev + i g = f c_prev + 2 i s - i: one op fewer per step than forming g first
            torch.mul(f_t, c_prev, out=c).addcmul_(i_t, s_t, value=2.0).sub_(i_t)
            h = torch.mul(o_t, torch.tanh(c, out=tc), out=h_t)
        ctx.set_materialize_grads(False)  # unused outputs (e.g. the sequence of a many-to-one model) cost nothing
        ctx.save_for_backward(seq2d, weight_ih, weight_hh, h0, out)
        ctx.internal = (gates, cells, tanh_c)
        # The pool gets these back only when the autograd node dies, so retain_graph=True stays correct.
        weakref.finalize(ctx, _POOL.give, gates, cells, tanh_c)
        return out, out[-1].clone(), cells[-1].clone()

    @staticmethod
    @once_differentiable
    def backward(ctx, grad_out: Tensor, grad_h: Tensor, grad_c: Tensor):
        seq2d, weight_ih, weight_hh, h0, out = ctx.saved_tensors
        gates, cells, tanh_c = ctx.internal
        steps, batch, g4 = gates.shape
        u = g4 // 4
        i, f, o = gates[..., :u], gates[..., u:2 * u], gates[..., 3 * u:]
        g = _POOL.take((steps, batch, u), gates)
        torch.mul(gates[..., 2 * u:3 * u], 2.0, out=g).sub_(1.0)  # the forward stored sigmoid(2 z_g)
        # Factors that do not depend on the incoming gradient, for all steps at once:
        #   dz_i = dc g i(1-i), dz_f = dc c_{t-1} f(1-f), dz_g = dc i (1-g^2), dz_o = dh tanh(c_t) o(1-o)
        factors = _POOL.take((steps, batch, g4), gates)
        tmp = _POOL.take((steps, batch, u), gates)
        from_dh = _POOL.take((steps, batch, u), gates)  # d c_t / d h_t = o (1 - tanh(c)^2)
        f_steps = _POOL.take((steps, batch, u), gates)
        f_steps.copy_(f)  # contiguous per step
        for act, other, dst in ((i, g, factors[..., :u]), (f, cells[:-1], factors[..., u:2 * u]),
                                (o, tanh_c, factors[..., 3 * u:])):
            torch.mul(act, act, out=tmp)
            torch.sub(act, tmp, out=tmp)  # sigmoid' = s (1 - s)
            torch.mul(other, tmp, out=dst)
        torch.mul(g, g, out=tmp)
        torch.mul(i, tmp.neg_().add_(1.0), out=factors[..., 2 * u:3 * u])
        torch.mul(tanh_c, tanh_c, out=tmp)
        torch.mul(o, tmp.neg_().add_(1.0), out=from_dh)
        dz = _POOL.take((steps, batch, g4), gates)
        dh = grad_h if grad_h is not None else h0.new_zeros(batch, u)
        dc = grad_c if grad_c is not None else h0.new_zeros(batch, u)
        grad_steps = grad_out.unbind(0)[::-1] if grad_out is not None else [None] * steps
        for go_t, a_t, f_t, q_t, dz_t in zip(grad_steps, from_dh.unbind(0)[::-1],
                                             f_steps.unbind(0)[::-1], factors.unbind(0)[::-1], dz.unbind(0)[::-1],
                                             strict=True):
            if go_t is not None:
                dh = dh + go_t
            dc = torch.addcmul(dc, dh, a_t)
            torch.mul(q_t, torch.cat((dc, dc, dc, dh), dim=1), out=dz_t)  # (B, 4U): i, f, g use dc, o uses dh
            dc = dc * f_t
            dh = torch.mm(dz_t, weight_hh)
        dz2d = dz.view(steps * batch, g4)
        grad_seq = grad_w_ih = grad_b = grad_w_hh = None
        # MKL is slow on products with a narrow (F-wide) output, e.g. (T*B, 4U) x (4U, F) took 1.2 ms against
        # 0.3 ms for the transposed product (F, 4U) x (4U, T*B), hence the transposed forms (measured, 1 thread).
        if ctx.needs_input_grad[0]:
            grad_seq = torch.mm(weight_ih.t(), dz2d.t()).t().view(steps, batch, -1)
        if ctx.needs_input_grad[1]:
            grad_w_ih = torch.mm(seq2d.t(), dz2d).t()
        if ctx.needs_input_grad[2]:
            grad_b = dz2d.sum(0)
        if ctx.needs_input_grad[3]:
            # sum_t dz_t^T h_{t-1} with h_{-1} = h0: one (4U, T*B) x (T*B, U) product for steps 1..T-1
            grad_w_hh = torch.mm(dz[0].t(), h0)
            if steps > 1:
                grad_w_hh.addmm_(dz[1:].reshape(-1, g4).t(), out[:-1].reshape(-1, u))
        _POOL.give(factors, tmp, from_dh, f_steps, dz, g)  # nothing returned above aliases these
        return grad_seq, grad_w_ih, grad_b, grad_w_hh, dh, dc
