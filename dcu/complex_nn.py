"""Complex-valued layers: convolution, transposed convolution, batch norm, leaky ReLU.

Representation. At the public API every layer takes and returns native complex tensors
``(batch, channels, freq, frames) complex64``. Inside the network the same data travel as a real
"stacked" tensor ``(batch, 2 * channels, freq, frames)``: the real parts of all channels first,
then the imaginary parts (:func:`to_stacked`, :func:`from_stacked`). Each layer accepts either
form and returns the form it was given, so a network converts once at its input and once at its
output.

Why stacked: a complex convolution W = A + iB applied to h = x + iy is
``W * h = (A*x - B*y) + i(B*x + A*y)`` (Trabelsi et al. 2018; Choi et al. 2019, eq. 1).
On the stacked input ``[x; y]`` that is ONE real convolution with the block weight
``[[A, -B], [B, A]]``: the same arithmetic as four half-size convolutions, in a single large
kernel call, which is much faster on CPUs and GPUs. The parameters are still the complex weight's
real and imaginary parts ``A`` and ``B``.

Fast paths. Complex batch norm in training runs as one autograd function with a hand-derived
backward (a few passes over the data instead of ~60 small autograd ops); in eval mode without
gradients it is a per-channel 2x2 affine map (:meth:`ComplexBatchNorm2d.affine`), which
:mod:`dcu.unet` folds into the preceding convolution. ``with fast_paths(False):`` runs the plain
reference code instead; tests check that both give the same outputs and gradients.

Book: book/03_complex_layers.ipynb
"""

from __future__ import annotations

import contextlib
import math

import torch
import torch.nn.functional as F
from torch import nn


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


def to_stacked(z: torch.Tensor) -> torch.Tensor:
    """``(B, C, ...) complex`` -> ``(B, 2C, ...) real`` with real parts first."""
    return torch.cat([z.real, z.imag], dim=1)


def from_stacked(s: torch.Tensor) -> torch.Tensor:
    """``(B, 2C, ...) real`` -> ``(B, C, ...) complex`` (inverse of :func:`to_stacked`)."""
    re, im = s.chunk(2, dim=1)
    return torch.complex(re.contiguous(), im.contiguous())


def _as_stacked(x: torch.Tensor, channels: int, name: str) -> tuple[torch.Tensor, bool]:
    if x.is_complex():
        if x.dim() != 4 or x.shape[1] != channels:
            raise ValueError(f"{name} expects (batch, {channels}, freq, frames) complex input, "
                             f"got shape {tuple(x.shape)}")
        return to_stacked(x), True
    if x.dim() != 4 or x.shape[1] != 2 * channels:
        raise ValueError(f"{name} expects (batch, {channels}, freq, frames) complex input or its "
                         f"stacked real form (batch, {2 * channels}, freq, frames), got "
                         f"{tuple(x.shape)} {x.dtype}")
    return x, False


class _ComplexConvBase(nn.Module):
    transposed = False

    def __init__(self, in_channels, out_channels, kernel_size, stride=1, padding=0,
                 output_padding=0, bias=True):
        super().__init__()
        pair = nn.modules.utils._pair
        self.in_channels, self.out_channels = in_channels, out_channels
        self.kernel_size, self.stride = pair(kernel_size), pair(stride)
        self.padding, self.output_padding = pair(padding), pair(output_padding)
        shape = ((in_channels, out_channels) if self.transposed else (out_channels, in_channels))
        self.weight_re = nn.Parameter(torch.empty(*shape, *self.kernel_size))
        self.weight_im = nn.Parameter(torch.empty(*shape, *self.kernel_size))
        if bias:
            self.bias_re = nn.Parameter(torch.zeros(out_channels))
            self.bias_im = nn.Parameter(torch.zeros(out_channels))
        else:
            self.register_parameter("bias_re", None)
            self.register_parameter("bias_im", None)
        self.reset_parameters()

    def reset_parameters(self) -> None:
        # Complex Glorot-style init (Trabelsi et al. 2018): each part gets half the variance a real
        # layer of the same fan would get, so |W| has the real layer's scale.
        fan_in = (self.out_channels if self.transposed else self.in_channels)
        fan_in *= math.prod(self.kernel_size)
        bound = math.sqrt(3.0 / (2.0 * fan_in))
        nn.init.uniform_(self.weight_re, -bound, bound)
        nn.init.uniform_(self.weight_im, -bound, bound)

    def stacked_weight(self) -> torch.Tensor:
        """The real block weight that acts on stacked input (see the module docstring)."""
        a, b = self.weight_re, self.weight_im
        if self.transposed:  # weight layout (in, out, kf, kt)
            return torch.cat([torch.cat([a, b], 1), torch.cat([-b, a], 1)], 0)
        return torch.cat([torch.cat([a, -b], 1), torch.cat([b, a], 1)], 0)

    def stacked_bias(self):
        if self.bias_re is None:
            return None
        return torch.cat([self.bias_re, self.bias_im])

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        s, was_complex = _as_stacked(x, self.in_channels, type(self).__name__)
        out = self.forward_stacked(s, self.output_padding)
        return from_stacked(out) if was_complex else out

    def forward_stacked(self, s: torch.Tensor, output_padding=(0, 0), mix=None) -> torch.Tensor:
        """The layer on stacked input; ``output_padding`` only matters when transposed.

        Fast path: Gauss's trick, three real convolutions instead of four,
        ``Ax - By = t1 - t2`` and ``Bx + Ay = t3 - t1 - t2`` with ``t1 = A*x``, ``t2 = B*y``,
        ``t3 = (A + B)*(x + y)``: 3/4 of the multiply-adds (t1 and t2 run as one grouped call),
        when :meth:`uses_gauss`; otherwise (and as the reference) one stacked convolution.
        ``mix = (A (2, 2, C), shift (2, C))`` (no autograd) applies a following per-channel
        affine map, an eval-mode batch norm, while combining t1, t2 and t3.
        """
        if self.uses_gauss(s):
            return self._forward_gauss(s, output_padding, mix)
        w, b = self.stacked_weight(), self.stacked_bias()
        if self.transposed:
            out = conv_transpose2d(s, w, b, self.stride, self.padding, output_padding)
        else:
            out = F.conv2d(s, w, b, self.stride, self.padding)
        return out if mix is None else channel_mix([(mix[0], out)], mix[1])

    def uses_gauss(self, s: torch.Tensor) -> bool:
        """Gauss's trick pays on CPUs for layers with many multiply-adds per output value
        (complex input channels x kernel taps >= 256): below that its extra elementwise passes
        cost more than the quarter of the multiply-adds it saves. GPUs run one large
        convolution best."""
        return (_FAST_PATHS and s.device.type == "cpu" and self.out_channels > 1
                and self.in_channels * math.prod(self.kernel_size) >= GAUSS_MIN_MACS)

    def _forward_gauss(self, s, output_padding, mix=None):
        a, b = self.weight_re, self.weight_im
        c, co = self.in_channels, self.out_channels
        if self.transposed:
            conv = lambda x, w, bias, groups: F.conv_transpose2d(  # noqa: E731
                x, w, bias, self.stride, self.padding, output_padding, groups)
        else:
            conv = lambda x, w, bias, groups: F.conv2d(  # noqa: E731
                x, w, bias, self.stride, self.padding, 1, groups)
        bias12 = bias3 = None
        if self.bias_re is not None:  # t1 carries bias_re, t3 carries bias_re + bias_im
            bias12 = torch.cat([self.bias_re, torch.zeros_like(self.bias_im)])
            bias3 = self.bias_re + self.bias_im
        t12 = conv(s, torch.cat([a, b]), bias12, 2)
        t3 = conv(s[:, :c] + s[:, c:], a + b, bias3, 1)
        t1, t2 = t12[:, :co], t12[:, co:]
        if mix is not None:  # y_p = A_p0 (t1 - t2) + A_p1 (t3 - t1 - t2) + shift_p
            m, shift = mix
            coef12 = torch.stack([m[:, 0] - m[:, 1], -(m[:, 0] + m[:, 1])], dim=1)
            return channel_mix([(coef12, t12), (m[:, 1:], t3)], shift)
        return torch.cat([t1 - t2, t3 - (t1 + t2)], 1)

    def extra_repr(self) -> str:
        return (f"{self.in_channels}, {self.out_channels}, kernel_size={self.kernel_size}, "
                f"stride={self.stride}, padding={self.padding}")


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


class ComplexConv2d(_ComplexConvBase):
    """Complex 2-D convolution ``(A + iB) * (x + iy)``.

    Input ``(batch, in_channels, freq, frames)`` complex (or its stacked real form), output
    ``(batch, out_channels, freq', frames')`` in the same form. The bias is complex
    (``bias_re + i bias_im``).
    """


class ComplexConvTranspose2d(_ComplexConvBase):
    """Complex 2-D transposed convolution, the decoder's up-sampling layer (same conventions)."""

    transposed = True


class ComplexLeakyReLU(nn.Module):
    """Leaky ReLU applied to the real and imaginary parts separately ("CReLU" style)."""

    def __init__(self, negative_slope: float = 0.01):
        super().__init__()
        self.negative_slope = negative_slope

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if x.is_complex():
            return torch.complex(F.leaky_relu(x.real, self.negative_slope),
                                 F.leaky_relu(x.imag, self.negative_slope))
        return F.leaky_relu(x, self.negative_slope)


class ComplexBatchNorm2d(nn.Module):
    """Complex batch normalisation of Trabelsi et al. (2018), "Deep Complex Networks", sec. 3.5.

    For each channel the (real, imag) pairs are centred and whitened with the inverse square root
    of their 2x2 covariance ``V = [[Vrr, Vri], [Vri, Vii]]``, so the output has identity
    covariance; then a learned symmetric 2x2 scaling ``[[g_rr, g_ri], [g_ri, g_ii]]`` and a complex
    shift ``beta`` are applied. Running mean and covariance are tracked for eval mode.
    ``gamma`` is initialised to ``I / sqrt(2)`` as in the paper (unit-variance magnitude).

    Input ``(batch, channels, freq, frames)`` complex or its stacked real form.
    """

    def __init__(self, num_features: int, eps: float = 1e-5, momentum: float = 0.1):
        super().__init__()
        self.num_features, self.eps, self.momentum = num_features, eps, momentum
        g = torch.zeros(3, num_features)
        g[0] = g[2] = 1 / math.sqrt(2)
        self.weight = nn.Parameter(g)  # rows: gamma_rr, gamma_ri, gamma_ii
        self.bias = nn.Parameter(torch.zeros(2, num_features))  # rows: beta_r, beta_i
        self.register_buffer("running_mean", torch.zeros(2, num_features))
        cov = torch.zeros(3, num_features)
        cov[0] = cov[2] = 1.0
        self.register_buffer("running_covar", cov)  # rows: Vrr, Vri, Vii
        self.register_buffer("num_batches_tracked", torch.tensor(0, dtype=torch.long))

    def whitening(self) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """Entries ``(W_rr, W_ri, W_ii)`` of ``V^{-1/2}`` from the running covariance."""
        return _inverse_sqrt_2x2(*(self.running_covar + self._eps_vec()))

    def _eps_vec(self) -> torch.Tensor:
        return torch.tensor([self.eps, 0.0, self.eps], device=self.running_covar.device,
                            dtype=self.running_covar.dtype).unsqueeze(1)

    def affine(self) -> tuple[torch.Tensor, torch.Tensor]:
        """The eval-mode layer as ``y = A x + b`` per channel: ``A (2, 2, C)``, ``b (2, C)``.

        ``A[p, q]`` maps part ``q`` (0 real, 1 imaginary) of the input to part ``p`` of the output.
        """
        a = _bn_matrix(self.weight, self.running_covar + self._eps_vec())
        return a, self.bias - torch.einsum("pqc,qc->pc", a, self.running_mean)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        s, was_complex = _as_stacked(x, self.num_features, type(self).__name__)
        if not _FAST_PATHS:
            out = self._forward_reference(s)
        elif self.training:
            out, mean, cov = _ComplexBatchNormFunction.apply(s, self.weight, self.bias, self.eps)
            with torch.no_grad():
                n = s.numel() / self.num_features / 2
                self.running_mean.lerp_(mean, self.momentum)
                self.running_covar.lerp_((cov - self._eps_vec()) * (n / max(n - 1, 1)),
                                         self.momentum)
                self.num_batches_tracked += 1
        elif torch.is_grad_enabled():
            out = self._forward_reference(s)
        else:
            a, b = self.affine()
            out = channel_mix([(a, s)], b)
        return from_stacked(out) if was_complex else out

    def _forward_reference(self, s: torch.Tensor) -> torch.Tensor:
        """The plain implementation, op by op as in the paper (the fast paths are checked on it)."""
        c = self.num_features
        re, im = s[:, :c], s[:, c:]
        view = (1, c, 1, 1)
        if self.training:
            dims = (0, 2, 3)
            mr, mi = re.mean(dims), im.mean(dims)
            cr, ci = re - mr.view(view), im - mi.view(view)
            vrr = (cr * cr).mean(dims) + self.eps
            vii = (ci * ci).mean(dims) + self.eps
            vri = (cr * ci).mean(dims)
            with torch.no_grad():
                n = re.numel() / c
                unbias = n / max(n - 1, 1)
                m = self.momentum
                self.running_mean.lerp_(torch.stack([mr, mi]), m)
                cov = torch.stack([vrr - self.eps, vri, vii - self.eps]) * unbias
                self.running_covar.lerp_(cov, m)
                self.num_batches_tracked += 1
        else:
            mr, mi = self.running_mean
            cr, ci = re - mr.view(view), im - mi.view(view)
            vrr, vri, vii = self.running_covar + self._eps_vec()
        wrr, wri, wii = (w.view(view) for w in _inverse_sqrt_2x2(vrr, vri, vii))
        xr = wrr * cr + wri * ci
        xi = wri * cr + wii * ci
        grr, gri, gii = (g.view(view) for g in self.weight)
        br, bi = (b.view(view) for b in self.bias)
        return torch.cat([grr * xr + gri * xi + br, gri * xr + gii * xi + bi], dim=1)


def _bn_matrix(gamma: torch.Tensor, cov: torch.Tensor) -> torch.Tensor:
    """``A = Gamma V^{-1/2}`` as ``(2, 2, C)`` from gamma rows (rr, ri, ii) and V rows (rr, ri, ii)."""
    wrr, wri, wii = _inverse_sqrt_2x2(*cov)
    grr, gri, gii = gamma
    return torch.stack([torch.stack([grr * wrr + gri * wri, grr * wri + gri * wii]),
                        torch.stack([gri * wrr + gii * wri, gri * wri + gii * wii])])


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


class _ComplexBatchNormFunction(torch.autograd.Function):
    """Training-mode complex batch norm with a hand-derived backward.

    Per channel, with centred ``xc`` (2 x N), ``V = xc xc^T / N + eps I`` and ``A = Gamma V^{-1/2}``,
    the output is ``y = A xc + beta``. Given ``gy``: ``gbeta = sum gy``, ``gA = gy xc^T``; the 2x2
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
        gram = _channel_gram(xc, xc) / n
        cov = torch.stack([gram[:, 0, 0] + eps, gram[:, 0, 1], gram[:, 1, 1] + eps])
        a = _bn_matrix(weight, cov)
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
        ga = _channel_gram(gy, xc).permute(1, 2, 0)  # ga[p, q] = sum gy_p * xc_q
        with torch.enable_grad():
            g, v = weight.detach().requires_grad_(), cov.detach().requires_grad_()
            gweight, gcov = torch.autograd.grad(_bn_matrix(g, v), (g, v), ga)
        # dV/dxc: V_rr = mean(cr^2), V_ri = mean(cr ci), V_ii = mean(ci^2)
        s_mat = torch.stack([torch.stack([2 * gcov[0], gcov[1]]),
                             torch.stack([gcov[1], 2 * gcov[2]])]) / n
        a_t = a.transpose(0, 1)
        shift = -torch.einsum("pqc,qc->pc", a_t, gbias) / n
        gx = channel_mix([(a_t, gy), (s_mat, xc)], shift)
        return gx, gweight, gbias, None


def _channel_gram(u: torch.Tensor, v: torch.Tensor) -> torch.Tensor:
    """``G[c, p, q] = sum over (batch, freq, frames) of u_p * v_q`` for stacked ``u, v`` -> (C, 2, 2)."""
    c = u.shape[1] // 2
    parts = lambda x: (x[:, :c], x[:, c:])  # noqa: E731
    return torch.stack([torch.stack([(up * vq).sum((0, 2, 3)) for vq in parts(v)], -1)
                        for up in parts(u)], 1)


def _inverse_sqrt_2x2(vrr, vri, vii):
    """Closed-form inverse square root of the SPD matrix [[vrr, vri], [vri, vii]]."""
    s = torch.sqrt(vrr * vii - vri * vri)
    t = torch.sqrt(vrr + vii + 2 * s)
    inv = 1.0 / (s * t)
    return (vii + s) * inv, -vri * inv, (vrr + s) * inv


class NaiveComplexBatchNorm2d(nn.Module):
    """Per-part batch norm: the real and imaginary parts normalised as independent channels.

    The simpler variant most public DCUnet implementations use (asteroid, among others).
    Input ``(batch, channels, freq, frames)`` complex or its stacked real form.
    """

    def __init__(self, num_features: int, eps: float = 1e-5, momentum: float = 0.1):
        super().__init__()
        self.num_features = num_features
        self.bn = nn.BatchNorm2d(2 * num_features, eps=eps, momentum=momentum)

    def affine(self) -> tuple[torch.Tensor, torch.Tensor]:
        """The eval-mode layer as ``y = scale * x + shift``, each ``(2C,)`` in stacked order."""
        return batch_norm_affine(self.bn)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        s, was_complex = _as_stacked(x, self.num_features, type(self).__name__)
        out = self.bn(s)
        return from_stacked(out) if was_complex else out


def batch_norm_affine(bn: nn.BatchNorm2d) -> tuple[torch.Tensor, torch.Tensor]:
    """Eval-mode ``nn.BatchNorm2d`` as per-channel ``(scale, shift)``."""
    scale = torch.rsqrt(bn.running_var + bn.eps)
    if bn.weight is not None:
        scale = scale * bn.weight
    shift = -bn.running_mean * scale
    return scale, shift if bn.bias is None else shift + bn.bias


BATCH_NORMS = {"complex": ComplexBatchNorm2d, "naive": NaiveComplexBatchNorm2d}
