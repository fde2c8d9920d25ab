"""Fast versions of the reference modules, computing on stacked real tensors.

Each class subclasses the reference class it speeds up and overrides only ``forward`` (and the
model's representation hooks), so parameters, buffers and state-dict keys are the reference's:
:func:`dcu.engine.optimize` switches a model's modules to these classes in place, and
:func:`dcu.engine.reference` switches them back.

Inside an optimised network every activation is a stacked tensor ``(batch, 2C, freq, frames)``
(real parts, then imaginary parts; for the real twin, its plain channels). Convolutions may run
in bfloat16 (autocast); batch norms compute in float32 and return float32.

Book: book/03_complex_layers.ipynb
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from dcu.complex_nn import (ComplexBatchNorm2d, ComplexConv2d, ComplexConvTranspose2d,
                            NaiveComplexBatchNorm2d)
from dcu.engine.kernels import (ComplexBatchNormFunction, bn_matrix, channel_mix,
                                conv_transpose2d, gauss_conv, gauss_pays, stacked_bias,
                                stacked_weight)
from dcu.engine.precision import autocast
from dcu.masks import compute_mask_parts
from dcu.unet import Block, DCUnet


class _FastComplexConv:
    """Complex (transposed) convolution on stacked input: Gauss's trick where it pays, else one
    stacked real convolution. ``mix = (A (2, 2, C), shift (2, C))`` (no autograd) applies a
    following eval-mode batch norm while combining Gauss's three products."""

    def forward(self, s: torch.Tensor, output_size=None, mix=None) -> torch.Tensor:
        pad = self.output_padding_for(s, output_size)
        if gauss_pays(s, self.in_channels, self.out_channels, self.kernel_size):
            return gauss_conv(s, self.weight_re, self.weight_im, self.bias_re, self.bias_im,
                              self.transposed, self.stride, self.padding, pad, mix)
        w = stacked_weight(self.weight_re, self.weight_im, self.transposed)
        b = stacked_bias(self.bias_re, self.bias_im)
        if self.transposed:
            out = conv_transpose2d(s, w, b, self.stride, self.padding, pad)
        else:
            out = F.conv2d(s, w, b, self.stride, self.padding)
        return out if mix is None else channel_mix([(mix[0], out)], mix[1])


class FastComplexConv2d(_FastComplexConv, ComplexConv2d):
    """:class:`~dcu.complex_nn.ComplexConv2d` on stacked tensors."""


class FastComplexConvTranspose2d(_FastComplexConv, ComplexConvTranspose2d):
    """:class:`~dcu.complex_nn.ComplexConvTranspose2d` on stacked tensors."""


def _eps_vec(bn: ComplexBatchNorm2d) -> torch.Tensor:
    return torch.tensor([bn.eps, 0.0, bn.eps], device=bn.running_covar.device,
                        dtype=bn.running_covar.dtype).unsqueeze(1)


def complex_bn_affine(bn: ComplexBatchNorm2d) -> tuple[torch.Tensor, torch.Tensor]:
    """An eval-mode complex batch norm as ``y = A x + b`` per channel: ``A (2, 2, C)``, ``b (2, C)``.

    ``A = Gamma V^{-1/2}`` maps part ``q`` (0 real, 1 imaginary) of the input to part ``p`` of the
    output; ``b = beta - A mean``. Differentiable in the parameters.
    """
    a = bn_matrix(bn.weight, bn.running_covar + _eps_vec(bn))
    return a, bn.bias - torch.einsum("pqc,qc->pc", a, bn.running_mean)


def batch_norm_affine(bn: nn.BatchNorm2d) -> tuple[torch.Tensor, torch.Tensor]:
    """An eval-mode ``nn.BatchNorm2d`` as per-channel ``(scale, shift)``."""
    scale = torch.rsqrt(bn.running_var + bn.eps)
    if bn.weight is not None:
        scale = scale * bn.weight
    shift = -bn.running_mean * scale
    return scale, shift if bn.bias is None else shift + bn.bias


class FastComplexBatchNorm2d(ComplexBatchNorm2d):
    """:class:`~dcu.complex_nn.ComplexBatchNorm2d` on stacked tensors, in float32: training as one
    autograd function (:class:`~dcu.engine.kernels.ComplexBatchNormFunction`), eval as the
    per-channel affine map :func:`complex_bn_affine`."""

    def forward(self, s: torch.Tensor) -> torch.Tensor:
        s = s.to(self.running_mean.dtype)  # a bfloat16 convolution output: statistics in float32
        if self.training:
            out, mean, cov = ComplexBatchNormFunction.apply(s, self.weight, self.bias, self.eps)
            self.track(mean, cov - _eps_vec(self), n=s.numel() // s.shape[1])
            return out
        a, b = complex_bn_affine(self)
        if torch.is_grad_enabled():  # differentiable in the input and the parameters
            c = self.num_features
            re, im = s[:, :c], s[:, c:]
            view = (1, c, 1, 1)
            return torch.cat([a[p, 0].view(view) * re + a[p, 1].view(view) * im
                              + b[p].view(view) for p in range(2)], dim=1)
        return channel_mix([(a, s)], b)


class FastNaiveComplexBatchNorm2d(NaiveComplexBatchNorm2d):
    """:class:`~dcu.complex_nn.NaiveComplexBatchNorm2d` on stacked tensors, in float32."""

    def forward(self, s: torch.Tensor) -> torch.Tensor:
        return self.bn(s.to(self.bn.running_mean.dtype))


_COMPLEX_CONVS = (ComplexConv2d, ComplexConvTranspose2d)


class FastBlock(Block):
    """:class:`~dcu.unet.Block` on stacked tensors; at inference (eval mode, no autograd) the
    batch norm is folded into the convolution and the activation runs in place."""

    def forward(self, x: torch.Tensor, output_size=None) -> torch.Tensor:
        slope = None if self.last else self.act.negative_slope
        # causal blocks (dcu.unet.Block): pad the past, ask for the whole output, crop the future
        size = self.full_size(x, output_size) if self.transposed else None
        x = x if self.transposed else self.pad_past(x)
        if not self.training and not torch.is_grad_enabled():
            if self.norm is not None and isinstance(self.conv, _COMPLEX_CONVS) and gauss_pays(
                    x, self.conv.in_channels, self.conv.out_channels, self.conv.kernel_size):
                x = self.conv(x, size, mix=self.norm_mix())
            else:
                w, b = self.folded_weight_bias()
                x = self._conv(x, w, b, size)
            x = self.crop_future(x, output_size)
            return x if self.last else F.leaky_relu_(x, slope)
        if isinstance(self.conv, _COMPLEX_CONVS):
            x = self.conv(x, size)
        else:
            x = self._conv(x, self.conv.weight, self.conv.bias, size)
        x = self.crop_future(x, output_size)
        if self.last:
            return x
        # the norm's backward never needs its output, so the activation may overwrite it
        return F.leaky_relu(self.norm(x), slope, inplace=True)

    def _conv(self, x, w, b, output_size):
        conv = self.conv
        if not self.transposed:
            return F.conv2d(x, w, b, conv.stride, conv.padding)
        if isinstance(conv, _COMPLEX_CONVS):
            pad = conv.output_padding_for(x, output_size)
        else:
            pad = conv._output_padding(x, output_size, conv.stride, conv.padding,
                                       conv.kernel_size, 2, conv.dilation)
        return conv_transpose2d(x, w, b, conv.stride, conv.padding, pad)

    def norm_mix(self) -> tuple[torch.Tensor, torch.Tensor]:
        """The eval-mode norm as ``(A (2, 2, C), shift (2, C))``, per complex channel."""
        if isinstance(self.norm, ComplexBatchNorm2d):
            return complex_bn_affine(self.norm)
        scale, shift = batch_norm_affine(self.norm.bn)
        c = scale.shape[0] // 2
        zero = scale.new_zeros(c)
        a = torch.stack([torch.stack([scale[:c], zero]), torch.stack([zero, scale[c:]])])
        return a, shift.view(2, c)

    def folded_weight_bias(self):
        """Eval-mode weight and bias with the batch norm folded in, cached until a tensor changes.

        The cache key is every parameter's and buffer's storage address and version counter, so
        an optimiser step, ``load_state_dict`` or ``.to()`` recomputes it. Not in the state dict.
        """
        key = tuple((t.data_ptr(), -1 if t.is_inference() else t._version)  # no counter there
                    for t in (*self.parameters(), *self.buffers()))
        cache = self.__dict__.get("_fold_cache")
        if cache is None or cache[0] != key:
            cache = self.__dict__["_fold_cache"] = (key, *self._fold())
        return cache[1], cache[2]

    def _fold(self):
        """``norm(conv(x, w, b)) == conv(x, w', b')`` for the eval-mode norm (an affine map)."""
        conv = self.conv
        if isinstance(conv, _COMPLEX_CONVS):
            w = stacked_weight(conv.weight_re, conv.weight_im, self.transposed)
            b = stacked_bias(conv.bias_re, conv.bias_im)
        else:
            w, b = conv.weight, conv.bias
        out_dim = 1 if self.transposed else 0
        if b is None:
            b = w.new_zeros(w.shape[out_dim])
        if self.norm is None:
            return w, b
        if isinstance(self.norm, (ComplexBatchNorm2d, NaiveComplexBatchNorm2d)):
            a, shift = self.norm_mix()  # 2x2 map per complex channel
            c = a.shape[-1]
            wo = w.movedim(out_dim, 0)
            view = (c,) + (1,) * (w.dim() - 1)
            w = torch.cat([a[p, 0].view(view) * wo[:c] + a[p, 1].view(view) * wo[c:]
                           for p in range(2)]).movedim(0, out_dim)
            b = torch.cat([a[p, 0] * b[:c] + a[p, 1] * b[c:] + shift[p] for p in range(2)])
            return w.contiguous(), b
        scale, shift = batch_norm_affine(self.norm)
        shape = [1] * w.dim()
        shape[out_dim] = -1
        return (w * scale.view(shape)).contiguous(), b * scale + shift


class FastDCUnet(DCUnet):
    """:class:`~dcu.unet.DCUnet` computing on stacked tensors, its U-Net in ``precision``
    (``"auto"``, ``"fp32"`` or ``"bf16"``, see :mod:`dcu.engine.precision`); the mask, the STFT
    and everything after the network stay float32."""

    precision = "fp32"

    def unet(self, x: torch.Tensor) -> torch.Tensor:
        with autocast(self.precision, x.device):
            return super().unet(x)

    def to_network(self, spec: torch.Tensor) -> torch.Tensor:
        x = torch.stack([spec.real, spec.imag], dim=1)  # stacked form of one complex channel
        if x.device.type == "cpu" and not torch.is_grad_enabled() and not torch.jit.is_tracing():
            # channels-last speeds up oneDNN's inference convolutions; training prefers NCHW
            x = x.contiguous(memory_format=torch.channels_last)
        return x

    def from_network(self, output: torch.Tensor) -> torch.Tensor:
        output = _full_precision(output)
        return torch.complex(output[:, 0], output[:, 1])

    def join(self, x: torch.Tensor, skip: torch.Tensor) -> torch.Tensor:
        if self.config.network == "real":
            return torch.cat([x, skip], dim=1)
        x_re, x_im = x.chunk(2, dim=1)  # keep the layout [real parts; imaginary parts]
        s_re, s_im = skip.chunk(2, dim=1)
        return torch.cat([x_re, s_re, x_im, s_im], dim=1)

    def mask_parts(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """Stacked noisy spectrogram ``(batch, 2, freq, frames)`` -> the mask's real and imaginary
        parts, real tensors only (for ONNX export, which has no complex tensors)."""
        output = _full_precision(self.unet(x))
        return compute_mask_parts(output[:, 0], output[:, 1], self.config.mask)


def _full_precision(x: torch.Tensor) -> torch.Tensor:
    """A bfloat16 (autocast) output as float32; float32 and float64 as they are."""
    return x.float() if x.dtype in (torch.bfloat16, torch.float16) else x


FAST_CLASSES = {ComplexConv2d: FastComplexConv2d,
                ComplexConvTranspose2d: FastComplexConvTranspose2d,
                ComplexBatchNorm2d: FastComplexBatchNorm2d,
                NaiveComplexBatchNorm2d: FastNaiveComplexBatchNorm2d,
                Block: FastBlock, DCUnet: FastDCUnet}
