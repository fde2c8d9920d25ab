"""Complex-valued layers: convolution, transposed convolution, batch norm, leaky ReLU.

Representation: every layer here takes and returns native complex tensors
``(batch, channels, freq, frames) complex64`` (or complex128), and computes what the paper writes,
with real arithmetic on the real and imaginary parts. The parameters are real tensors: a complex
weight ``W = A + iB`` is stored as ``weight_re = A`` and ``weight_im = B``.

These are the reference layers the book derives. :mod:`dcu.engine` computes the same layers
faster (one stacked real convolution or Gauss's trick, a fused batch norm, bfloat16) without
changing them; ``tests/test_engine.py`` checks both agree.

Book: book/03_complex_layers.ipynb
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import nn

__all__ = ["to_stacked", "from_stacked", "ComplexConv2d", "ComplexConvTranspose2d",
           "ComplexLeakyReLU", "ComplexBatchNorm2d", "NaiveComplexBatchNorm2d", "BATCH_NORMS",
           "inverse_sqrt_2x2"]


def to_stacked(z: torch.Tensor) -> torch.Tensor:
    """``(B, C, ...) complex`` -> ``(B, 2C, ...) real``: all real parts, then all imaginary parts."""
    return torch.cat([z.real, z.imag], dim=1)


def from_stacked(s: torch.Tensor) -> torch.Tensor:
    """``(B, 2C, ...) real`` -> ``(B, C, ...) complex`` (inverse of :func:`to_stacked`)."""
    re, im = s.chunk(2, dim=1)
    return torch.complex(re.contiguous(), im.contiguous())


def check_complex_input(x: torch.Tensor, channels: int, layer: nn.Module) -> None:
    """One-line error unless ``x`` is ``(batch, channels, freq, frames)`` complex."""
    if not x.is_complex() or x.dim() != 4 or x.shape[1] != channels:
        raise ValueError(f"{type(layer).__name__} expects (batch, {channels}, freq, frames) "
                         f"complex input, got shape {tuple(x.shape)} {x.dtype}")


class _ComplexConvBase(nn.Module):
    """Parameters shared by the complex convolution and transposed convolution."""

    transposed = False

    def __init__(self, in_channels, out_channels, kernel_size, stride=1, padding=0,
                 output_padding=0, bias=True):
        super().__init__()
        pair = nn.modules.utils._pair
        self.in_channels, self.out_channels = in_channels, out_channels
        self.kernel_size, self.stride = pair(kernel_size), pair(stride)
        self.padding, self.output_padding = pair(padding), pair(output_padding)
        shape = ((in_channels, out_channels) if self.transposed else (out_channels, in_channels))
        self.weight_re = nn.Parameter(torch.empty(*shape, *self.kernel_size))  # A
        self.weight_im = nn.Parameter(torch.empty(*shape, *self.kernel_size))  # B
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

    def forward(self, h: torch.Tensor, output_size=None) -> torch.Tensor:
        """``W * h = (A*x - B*y) + i(B*x + A*y)`` for ``h = x + iy`` (Choi et al. 2019, eq. 1).

        ``output_size`` (transposed only) picks the output's (freq, frames) among the sizes the
        stride allows, as ``nn.ConvTranspose2d`` does.
        """
        check_complex_input(h, self.in_channels, self)
        x, y = h.real, h.imag
        a, b = self.weight_re, self.weight_im
        pad = self.output_padding_for(x, output_size)
        real = self.conv(x, a, pad) - self.conv(y, b, pad)
        imag = self.conv(x, b, pad) + self.conv(y, a, pad)
        if self.bias_re is not None:
            real = real + self.bias_re.view(1, -1, 1, 1)
            imag = imag + self.bias_im.view(1, -1, 1, 1)
        return torch.complex(real, imag)

    def conv(self, x: torch.Tensor, weight: torch.Tensor, output_padding=(0, 0)) -> torch.Tensor:
        """One real (transposed) convolution with this layer's stride and padding, no bias."""
        if self.transposed:
            return F.conv_transpose2d(x, weight, None, self.stride, self.padding, output_padding)
        return F.conv2d(x, weight, None, self.stride, self.padding)

    def output_padding_for(self, x: torch.Tensor, output_size=None) -> tuple[int, int]:
        """The transposed convolution's output padding that gives ``output_size`` (freq, frames)."""
        if not self.transposed:
            return (0, 0)
        if output_size is None:
            return self.output_padding
        natural = [(n - 1) * s - 2 * p + k for n, s, p, k in
                   zip(x.shape[-2:], self.stride, self.padding, self.kernel_size)]
        pad = tuple(int(t) - n for t, n in zip(output_size[-2:], natural))
        if any(not 0 <= p < max(s, 1) for p, s in zip(pad, self.stride)):
            raise ValueError(f"{type(self).__name__}: output size {tuple(output_size[-2:])} "
                             f"cannot be reached from input {tuple(x.shape[-2:])} with stride "
                             f"{self.stride}")
        return pad

    def extra_repr(self) -> str:
        return (f"{self.in_channels}, {self.out_channels}, kernel_size={self.kernel_size}, "
                f"stride={self.stride}, padding={self.padding}")


class ComplexConv2d(_ComplexConvBase):
    """Complex 2-D convolution ``(A + iB) * (x + iy)``.

    Input ``(batch, in_channels, freq, frames)`` complex, output
    ``(batch, out_channels, freq', frames')`` complex. The bias is complex (``bias_re + i bias_im``).
    """


class ComplexConvTranspose2d(_ComplexConvBase):
    """Complex 2-D transposed convolution, the decoder's up-sampling layer (same conventions;
    weights ``(in_channels, out_channels, kf, kt)`` as in ``nn.ConvTranspose2d``)."""

    transposed = True


class ComplexLeakyReLU(nn.Module):
    """Leaky ReLU applied to the real and imaginary parts separately ("CReLU" style)."""

    def __init__(self, negative_slope: float = 0.01):
        super().__init__()
        self.negative_slope = negative_slope

    def forward(self, z: torch.Tensor) -> torch.Tensor:
        return torch.complex(F.leaky_relu(z.real, self.negative_slope),
                             F.leaky_relu(z.imag, self.negative_slope))


def inverse_sqrt_2x2(vrr, vri, vii):
    """Closed-form inverse square root of the SPD matrix ``V = [[vrr, vri], [vri, vii]]``.

    With ``s = sqrt(det V)`` and ``t = sqrt(tr V + 2 s)``, ``sqrt(V) = (V + s I) / t``, so
    ``V^{-1/2} = [[vii + s, -vri], [-vri, vrr + s]] / (s t)``. Returns its entries (rr, ri, ii).
    """
    s = torch.sqrt(vrr * vii - vri * vri)
    t = torch.sqrt(vrr + vii + 2 * s)
    inv = 1.0 / (s * t)
    return (vii + s) * inv, -vri * inv, (vrr + s) * inv


class ComplexBatchNorm2d(nn.Module):
    """Complex batch normalisation of Trabelsi et al. (2018), "Deep Complex Networks", sec. 3.5.

    For each channel the (real, imag) pairs are centred and whitened with the inverse square root
    of their 2x2 covariance ``V = [[Vrr, Vri], [Vri, Vii]]``, so the output has identity
    covariance; then a learned symmetric 2x2 scaling ``[[g_rr, g_ri], [g_ri, g_ii]]`` and a complex
    shift ``beta`` are applied. Running mean and covariance are tracked for eval mode.
    ``gamma`` is initialised to ``I / sqrt(2)`` as in the paper (unit-variance magnitude).

    Input and output ``(batch, channels, freq, frames)`` complex.
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

    def forward(self, z: torch.Tensor) -> torch.Tensor:
        check_complex_input(z, self.num_features, self)
        view = (1, self.num_features, 1, 1)
        re, im = z.real, z.imag
        if self.training:  # statistics of this batch, per channel
            dims = (0, 2, 3)
            mr, mi = re.mean(dims), im.mean(dims)
            cr, ci = re - mr.view(view), im - mi.view(view)
            vrr = (cr * cr).mean(dims) + self.eps
            vii = (ci * ci).mean(dims) + self.eps
            vri = (cr * ci).mean(dims)
            self.track(torch.stack([mr, mi]), torch.stack([vrr - self.eps, vri, vii - self.eps]),
                       n=re.numel() // self.num_features)
        else:  # the running statistics
            mr, mi = self.running_mean
            cr, ci = re - mr.view(view), im - mi.view(view)
            vrr, vri, vii = self.running_covar
            vrr, vii = vrr + self.eps, vii + self.eps
        # whiten: x~ = V^{-1/2} (x - mean)
        wrr, wri, wii = (w.view(view) for w in inverse_sqrt_2x2(vrr, vri, vii))
        xr = wrr * cr + wri * ci
        xi = wri * cr + wii * ci
        # scale and shift: y = Gamma x~ + beta
        grr, gri, gii = (g.view(view) for g in self.weight)
        br, bi = (b.view(view) for b in self.bias)
        return torch.complex(grr * xr + gri * xi + br, gri * xr + gii * xi + bi)

    @torch.no_grad()
    def track(self, mean: torch.Tensor, cov: torch.Tensor, n: int) -> None:
        """Update the running mean ``(2, C)`` and covariance ``(3, C)`` (rr, ri, ii) with a batch's
        statistics over ``n`` values per channel (covariance made unbiased, as BatchNorm does)."""
        self.running_mean.lerp_(mean, self.momentum)
        self.running_covar.lerp_(cov * (n / max(n - 1, 1)), self.momentum)
        self.num_batches_tracked += 1


class NaiveComplexBatchNorm2d(nn.Module):
    """Per-part batch norm: the real and imaginary parts normalised as independent channels.

    The simpler variant most public DCUnet implementations use (asteroid, among others).
    Input and output ``(batch, channels, freq, frames)`` complex; ``bn`` is an
    ``nn.BatchNorm2d`` over the ``2 * channels`` parts (real parts first).
    """

    def __init__(self, num_features: int, eps: float = 1e-5, momentum: float = 0.1):
        super().__init__()
        self.num_features = num_features
        self.bn = nn.BatchNorm2d(2 * num_features, eps=eps, momentum=momentum)

    def forward(self, z: torch.Tensor) -> torch.Tensor:
        check_complex_input(z, self.num_features, self)
        return from_stacked(self.bn(to_stacked(z)))


BATCH_NORMS = {"complex": ComplexBatchNorm2d, "naive": NaiveComplexBatchNorm2d}
