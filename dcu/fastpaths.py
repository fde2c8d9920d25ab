"""The optimised kernels behind :mod:`dcu.complex_nn` and :mod:`dcu.unet`.

Each computes exactly what the plain code in those modules computes (up to float rounding), and
``tests/test_fastpaths.py`` checks outputs and gradients against it; ``with fast_paths(False):``
switches every one of them off.

- :func:`gauss_conv`: a complex convolution with Gauss's trick, three real convolutions instead
  of four (3/4 of the multiply-adds), where it pays (:func:`gauss_pays`).
- :class:`ComplexBatchNormFunction`: training-mode complex batch norm as one autograd function
  with a hand-derived backward, a few passes over the data instead of ~60 small autograd ops.
- :func:`channel_mix`: per-channel 2x2 affine maps (eval-mode batch norms) as fused
  multiply-adds.
- :func:`conv_transpose2d`: PyTorch's GEMM kernel for transposed convolutions with few outputs.

Book: book/03_complex_layers.ipynb
"""

from __future__ import annotations

import contextlib
import math

import torch
import torch.nn.functional as F

_FAST_PATHS = True
#: complex multiply-adds per output value from which Gauss's trick is used (see uses_gauss)
GAUSS_MIN_MACS = 256


@contextlib.contextmanager
def fast_paths(enabled: bool = True):
    """Context manager: use the optimised implementations (default) or the reference code."""
    global _FAST_PATHS
    previous, _FAST_PATHS = _FAST_PATHS, bool(enabled)
    try:
        yield
    finally:
        _FAST_PATHS = previous


def fast_paths_enabled() -> bool:
    """Whether the optimised implementations are on (see :func:`fast_paths`)."""
    return _FAST_PATHS


def gauss_pays(s: torch.Tensor, in_channels: int, out_channels: int, kernel_size) -> bool:
    """Gauss's trick pays on CPUs for layers with many multiply-adds per output value
    (complex input channels x kernel taps >= :data:`GAUSS_MIN_MACS`): below that its extra
    elementwise passes cost more than the quarter of the multiply-adds it saves. GPUs run one
    large convolution best; traced and compiled code (ONNX export, ``torch.compile``) gets the
    plain convolution, for the compiler to schedule."""
    return (_FAST_PATHS and s.device.type == "cpu" and out_channels > 1
            and in_channels * math.prod(kernel_size) >= GAUSS_MIN_MACS
            and not torch.jit.is_tracing() and not torch.compiler.is_compiling())


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
    """``F.conv_transpose2d``; with the fast paths on a CPU, layers with at most 4 output channels
    (DCUnet's mask layer) use PyTorch's GEMM + col2im kernel, 2-4x faster there than oneDNN's.
    The backward pass is the same either way. Traced or compiled code (ONNX export,
    ``torch.compile``) gets the standard operator."""
    if (_FAST_PATHS and x.device.type == "cpu" and weight.shape[1] <= 4
            and not torch.jit.is_tracing() and not torch.compiler.is_compiling()):
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


def inverse_sqrt_2x2(vrr, vri, vii):
    """Closed-form inverse square root of the SPD matrix [[vrr, vri], [vri, vii]]."""
    s = torch.sqrt(vrr * vii - vri * vri)
    t = torch.sqrt(vrr + vii + 2 * s)
    inv = 1.0 / (s * t)
    return (vii + s) * inv, -vri * inv, (vrr + s) * inv


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
