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

Fast paths (:mod:`dcu.fastpaths`): Gauss's three-convolution trick, complex batch norm as one
autograd function, the eval-mode batch norm as a per-channel affine map
(:meth:`ComplexBatchNorm2d.affine`) that :mod:`dcu.unet` folds into the convolution.
``with fast_paths(False):`` runs the plain reference code written here instead; tests check that
both give the same outputs and gradients.

Book: book/03_complex_layers.ipynb
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import nn

from dcu.fastpaths import (ComplexBatchNormFunction, bn_matrix, channel_mix,
                           conv_transpose2d, fast_paths, fast_paths_enabled, gauss_conv,
                           gauss_pays, inverse_sqrt_2x2)

__all__ = ["to_stacked", "from_stacked", "ComplexConv2d", "ComplexConvTranspose2d",
           "ComplexLeakyReLU", "ComplexBatchNorm2d", "NaiveComplexBatchNorm2d", "BATCH_NORMS",
           "batch_norm_affine", "channel_mix", "conv_transpose2d", "fast_paths",
           "fast_paths_enabled"]

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
        return gauss_pays(s, self.in_channels, self.out_channels, self.kernel_size)

    def _forward_gauss(self, s, output_padding, mix=None):
        return gauss_conv(s, self.weight_re, self.weight_im, self.bias_re, self.bias_im,
                          self.transposed, self.stride, self.padding, output_padding, mix)

    def extra_repr(self) -> str:
        return (f"{self.in_channels}, {self.out_channels}, kernel_size={self.kernel_size}, "
                f"stride={self.stride}, padding={self.padding}")


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
        return inverse_sqrt_2x2(*(self.running_covar + self._eps_vec()))

    def _eps_vec(self) -> torch.Tensor:
        return torch.tensor([self.eps, 0.0, self.eps], device=self.running_covar.device,
                            dtype=self.running_covar.dtype).unsqueeze(1)

    def affine(self) -> tuple[torch.Tensor, torch.Tensor]:
        """The eval-mode layer as ``y = A x + b`` per channel: ``A (2, 2, C)``, ``b (2, C)``.

        ``A[p, q]`` maps part ``q`` (0 real, 1 imaginary) of the input to part ``p`` of the output.
        """
        a = bn_matrix(self.weight, self.running_covar + self._eps_vec())
        return a, self.bias - torch.einsum("pqc,qc->pc", a, self.running_mean)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        s, was_complex = _as_stacked(x, self.num_features, type(self).__name__)
        if not fast_paths_enabled():
            out = self._forward_reference(s)
        elif self.training:
            out, mean, cov = ComplexBatchNormFunction.apply(s, self.weight, self.bias, self.eps)
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
        wrr, wri, wii = (w.view(view) for w in inverse_sqrt_2x2(vrr, vri, vii))
        xr = wrr * cr + wri * ci
        xi = wri * cr + wii * ci
        grr, gri, gii = (g.view(view) for g in self.weight)
        br, bi = (b.view(view) for b in self.bias)
        return torch.cat([grr * xr + gri * xi + br, gri * xr + gii * xi + bi], dim=1)


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
