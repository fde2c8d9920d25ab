"""The engine's kernels: the complex layers of :mod:`dcu.complex_nn` computed with fewer passes.

Each computes exactly what the reference layer computes (up to float rounding);
``tests/test_engine.py`` checks outputs and gradients.

- :func:`stacked_weight`: a complex convolution as ONE real convolution on the stacked input
  ``[x; y]`` with the block weight ``[[A, -B], [B, A]]`` (the same arithmetic as four half-size
  convolutions, in one large kernel call).
- :func:`gauss_conv`: Gauss's trick, three real convolutions instead of four (3/4 of the
  multiply-adds), where it pays (:func:`gauss_pays`).
- :class:`ComplexBatchNormFunction`: training-mode complex batch norm as one autograd function
  with a hand-derived backward, a few passes over the data instead of ~60 small autograd ops.
- :func:`channel_mix`: per-channel 2x2 affine maps (eval-mode batch norms) as fused
  multiply-adds.
- :func:`conv_transpose2d`: PyTorch's GEMM kernel for transposed convolutions with few outputs.

"Stacked" tensors ``(batch, 2C, freq, frames)`` real hold the real parts of C complex channels,
then their imaginary parts (:func:`dcu.complex_nn.to_stacked`).

Book: book/03_complex_layers.ipynb
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F

from dcu.complex_nn import inverse_sqrt_2x2

#: complex multiply-adds per output value from which Gauss's trick is used (see gauss_pays)
GAUSS_MIN_MACS = 256


def _traced() -> bool:
    """Traced and compiled code (ONNX export, ``torch.compile``) gets the standard operators."""
    return torch.jit.is_tracing() or torch.compiler.is_compiling()


def stacked_weight(a: torch.Tensor, b: torch.Tensor, transposed: bool) -> torch.Tensor:
    """The real block weight ``[[A, -B], [B, A]]`` that maps stacked ``[x; y]`` to stacked
    ``[Ax - By; Bx + Ay]`` (laid out ``(in, out, ...)`` when ``transposed``, as torch wants)."""
    if transposed:
        return torch.cat([torch.cat([a, b], 1), torch.cat([-b, a], 1)], 0)
    return torch.cat([torch.cat([a, -b], 1), torch.cat([b, a], 1)], 0)


def stacked_bias(bias_re, bias_im):
    """``[bias_re; bias_im]``, or None for a layer without bias."""
    return None if bias_re is None else torch.cat([bias_re, bias_im])


def gauss_pays(s: torch.Tensor, in_channels: int, out_channels: int, kernel_size) -> bool:
    """Gauss's trick pays on CPUs for layers with many multiply-adds per output value
    (complex input channels x kernel taps >= :data:`GAUSS_MIN_MACS`): below that its extra
    elementwise passes cost more than the quarter of the multiply-adds it saves. GPUs run one
    large convolution best, and so do oneDNN's bfloat16 kernels (under bf16 autocast the three
    products cost more than the one stacked convolution, measured on Zen 4); traced and compiled
    code (ONNX export, ``torch.compile``) gets the plain convolution, for the compiler to
    schedule."""
    return (s.device.type == "cpu" and out_channels > 1
            and in_channels * math.prod(kernel_size) >= GAUSS_MIN_MACS and not _traced()
            and not torch.is_autocast_enabled("cpu"))


def gauss_conv(s, a, b, bias_re, bias_im, transposed, stride, padding, output_padding=(0, 0),
               mix=None) -> torch.Tensor:
    """``(A + iB) * (x + iy)`` on stacked ``s = [x; y]`` with three real convolutions.

    ``Ax - By = t1 - t2`` and ``Bx + Ay = t3 - t1 - t2`` with ``t1 = A*x``, ``t2 = B*y``,
    ``t3 = (A + B)*(x + y)``; t1 and t2 run as one grouped call. ``mix = (M (2, 2, C),
    shift (2, C))`` (no autograd) applies a following per-channel affine map while combining.
    """
    # weights are (out, in, kf, kt), or (in, out, kf, kt) when transposed
    c, co = (a.shape[0], a.shape[1]) if transposed else (a.shape[1], a.shape[0])
    if transposed:
        conv = lambda x, w, bias, groups: F.conv_transpose2d(  # noqa: E731
            x, w, bias, stride, padding, output_padding, groups)
    else:
        conv = lambda x, w, bias, groups: F.conv2d(  # noqa: E731
            x, w, bias, stride, padding, 1, groups)
    bias12 = bias3 = None
    if bias_re is not None:  # t1 carries bias_re, t3 carries bias_re + bias_im
        bias12 = torch.cat([bias_re, torch.zeros_like(bias_im)])
        bias3 = bias_re + bias_im
    if c % 16 == 0 and co % 16 == 0:
        t12 = conv(s, torch.cat([a, b]), bias12, 2)
    else:  # oneDNN's grouped kernels fall back to a slow GEMM for other group widths
        t12 = torch.cat([conv(s[:, :c], a, bias_re, 1), conv(s[:, c:], b, None, 1)], 1)
    t3 = conv(s[:, :c] + s[:, c:], a + b, bias3, 1)
    t1, t2 = t12[:, :co], t12[:, co:]
    if mix is not None:  # y_p = M_p0 (t1 - t2) + M_p1 (t3 - t1 - t2) + shift_p
        m, shift = mix
        coef12 = torch.stack([m[:, 0] - m[:, 1], -(m[:, 0] + m[:, 1])], dim=1)
        return channel_mix([(coef12, t12), (m[:, 1:], t3)], shift)
    return torch.cat([t1 - t2, t3 - (t1 + t2)], 1)


def conv_transpose2d(x, weight, bias, stride, padding, output_padding) -> torch.Tensor:
    """``F.conv_transpose2d``; on a CPU, layers with at most 4 output channels
    (DCUnet's mask layer) use PyTorch's GEMM + col2im kernel, 2-4x faster there than oneDNN's.
    The backward pass is the same either way. Traced or compiled code (ONNX export,
    ``torch.compile``) gets the standard operator."""
    if x.device.type == "cpu" and weight.shape[1] <= 4 and not _traced():
        x = x.to(weight.dtype)  # outside autocast's reach: a bfloat16 input runs in float32
        return torch.ops.aten.slow_conv_transpose2d(x, weight, list(weight.shape[2:]), bias,
                                                    list(stride), list(padding),
                                                    list(output_padding), [1, 1])
    return F.conv_transpose2d(x, weight, bias, stride, padding, output_padding)


def channel_mix(terms, shift: torch.Tensor | None = None) -> torch.Tensor:
    """``out_p = sum over (A, x) in terms of sum_q A[p, q] * x_q  (+ shift_p)``, per channel.

    Each ``A`` is ``(2, Q, C)`` and its ``x`` stacks ``Q`` parts of ``C`` channels,
    ``(batch, Q * C, freq, frames)``; ``shift`` is ``(2, C)``; the output stacks 2 parts, in the
    memory layout of the first ``x``. A few fused multiply-adds into one new tensor; not
    differentiable (used inside autograd functions and without autograd).
    """
    first = terms[0][1]
    c = terms[0][0].shape[-1]
    layout = (torch.channels_last if first.is_contiguous(memory_format=torch.channels_last)
              and not first.is_contiguous() else torch.contiguous_format)
    out = torch.empty((first.shape[0], 2 * c, *first.shape[2:]), dtype=first.dtype,
                      device=first.device, memory_format=layout)
    view = (1, c, 1, 1)
    for p in range(2):
        o = out[:, p * c:(p + 1) * c]
        started = False
        for a, x in terms:
            for q in range(a.shape[1]):
                part, coef = x[:, q * c:(q + 1) * c], a[p, q].view(view)
                if started:
                    o.addcmul_(part, coef)
                elif shift is not None:
                    torch.addcmul(shift[p].view(view), part, coef, out=o)
                else:
                    torch.mul(part, coef, out=o)
                started = True
    return out


def bn_matrix(gamma: torch.Tensor, cov: torch.Tensor) -> torch.Tensor:
    """``A = Gamma V^{-1/2}`` as ``(2, 2, C)``, from the rows (rr, ri, ii) of gamma and of V."""
    wrr, wri, wii = inverse_sqrt_2x2(*cov)
    grr, gri, gii = gamma
    return torch.stack([torch.stack([grr * wrr + gri * wri, grr * wri + gri * wii]),
                        torch.stack([gri * wrr + gii * wri, gri * wri + gii * wii])])


class ComplexBatchNormFunction(torch.autograd.Function):
    """Training-mode complex batch norm with a hand-derived backward.

    Per channel, with centred ``xc`` (2 x N), ``V = xc xc^T / N + eps I`` and
    ``A = Gamma V^{-1/2}``, the output is ``y = A xc + beta``. Given ``gy``:
    ``gbeta = sum gy``, ``gA = gy xc^T``; the 2x2
    chain rule through ``A(Gamma, V)`` runs on tiny tensors with autograd; then
    ``gx = A^T gy + S xc - A^T gbeta / N`` with ``S`` from ``dL/dV`` (the centring's gradient).
    Returns ``(out, batch mean (2, C), batch covariance with eps (3, C))``.
    """

    @staticmethod
    def forward(ctx, s, weight, bias, eps):
        c = s.shape[1] // 2
        n = s.numel() // (2 * c)
        mean = s.mean((0, 2, 3))
        xc = s - mean.view(1, 2 * c, 1, 1)
        gram = channel_gram(xc, xc) / n
        cov = torch.stack([gram[:, 0, 0] + eps, gram[:, 0, 1], gram[:, 1, 1] + eps])
        a = bn_matrix(weight, cov)
        out = channel_mix([(a, xc)], bias)
        ctx.save_for_backward(xc, weight, cov, a)
        mean = mean.view(2, c)
        ctx.mark_non_differentiable(mean, cov)
        return out, mean, cov

    @staticmethod
    def backward(ctx, gy, _gmean, _gcov):
        xc, weight, cov, a = ctx.saved_tensors
        c = xc.shape[1] // 2
        n = xc.numel() // (2 * c)
        gbias = gy.sum((0, 2, 3)).view(2, c)
        ga = channel_gram(gy, xc).permute(1, 2, 0)  # ga[p, q] = sum gy_p * xc_q
        with torch.enable_grad():
            g, v = weight.detach().requires_grad_(), cov.detach().requires_grad_()
            gweight, gcov = torch.autograd.grad(bn_matrix(g, v), (g, v), ga)
        # dV/dxc: V_rr = mean(cr^2), V_ri = mean(cr ci), V_ii = mean(ci^2)
        s_mat = torch.stack([torch.stack([2 * gcov[0], gcov[1]]),
                             torch.stack([gcov[1], 2 * gcov[2]])]) / n
        a_t = a.transpose(0, 1)
        shift = -torch.einsum("pqc,qc->pc", a_t, gbias) / n
        gx = channel_mix([(a_t, gy), (s_mat, xc)], shift)
        return gx, gweight, gbias, None


def channel_gram(u: torch.Tensor, v: torch.Tensor) -> torch.Tensor:
    """``G[c, p, q]`` = sum over batch, freq and frames of ``u_p * v_q`` -> ``(C, 2, 2)``."""
    c = u.shape[1] // 2
    parts = lambda x: (x[:, :c], x[:, c:])  # noqa: E731
    return torch.stack([torch.stack([(up * vq).sum((0, 2, 3)) for vq in parts(v)], -1)
                        for up in parts(u)], 1)
