"""DCUnet: a complex U-Net that estimates a complex ratio mask on the STFT (Choi et al. 2019).

    waveform --STFT--> X --encoders/decoders--> O --mask--> M --> M * X --iSTFT--> estimate

``DCUnet(arch="DCUnet-20", mask="BDT")`` builds any row of :mod:`dcu.architectures`.
``network="real"`` builds the paper's real-valued twin: the same layout with real convolutions on
the (real, imaginary) parts as two input channels, channels widened by sqrt(2) so the parameter
count matches, and the same mask on its two output channels.

``causal=True`` builds the same network without look-ahead along time: output frame ``t`` depends
on input frames ``<= t`` only (in eval mode; a training-mode batch norm takes its statistics over
the whole batch). Each convolution is padded with ``kernel - 1`` zero frames in the past and none
in the future, and each transposed convolution keeps the first frames of its output (the ones
built from frames at or before them), so every level stays on the offline model's frame grid and
the skip connections line up. Frequency is handled as offline. With the centred STFT of
:mod:`dcu.stft`, frame ``t`` holds samples up to ``t * hop + n_fft / 2``, so a sample comes out
at most one window (``n_fft`` samples: 64 ms at 1024/256) after it went in.

Book: book/06_architectures.ipynb, book/10_real_time.ipynb
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass

import torch
import torch.nn.functional as F
from torch import nn

from dcu.architectures import Architecture, get_architecture
from dcu.complex_nn import (BATCH_NORMS, ComplexConv2d, ComplexConvTranspose2d,
                            ComplexLeakyReLU)
from dcu.masks import MASKS, compute_mask
from dcu.stft import HOP_LENGTH, N_FFT, filter_in_stft_domain


@dataclass
class ModelConfig:
    """Everything needed to rebuild a model; stored in every checkpoint."""

    arch: str = "DCUnet-20"
    mask: str = "BDT"
    network: str = "complex"  # "complex" or "real" (the matched real-valued twin)
    batch_norm: str = "complex"  # "complex" (Trabelsi whitening) or "naive" (per part)
    leaky_slope: float = 0.01
    n_fft: int = N_FFT
    hop_length: int = HOP_LENGTH
    causal: bool = False  # no look-ahead along time (frame t sees frames <= t)


class Block(nn.Module):
    """One encoder or decoder stage: convolution -> batch norm -> leaky ReLU.

    The decoder's last stage is the convolution alone: its output ``O`` goes to the mask.
    Complex network: :mod:`dcu.complex_nn` layers on complex tensors; real twin: ``nn`` layers on
    real tensors. The kernel is centred (padding ``kernel // 2``), so a stride-1 axis keeps its size;
    a causal block pads time on the past side only (:meth:`pad_past`, :meth:`crop_future`).
    """

    def __init__(self, cin, cout, kernel, stride, *, transposed, last, cfg: ModelConfig):
        super().__init__()
        self.transposed, self.last = transposed, last
        # causal: no padding along time inside the convolution; pad_past/crop_future do it
        self.past = kernel[1] - 1 if cfg.causal else 0
        padding = (kernel[0] // 2, 0 if cfg.causal else kernel[1] // 2)
        if cfg.network == "complex":
            conv = ComplexConvTranspose2d if transposed else ComplexConv2d
            self.conv = conv(cin, cout, kernel, stride, padding)
            self.norm = None if last else BATCH_NORMS[cfg.batch_norm](cout)
            self.act = None if last else ComplexLeakyReLU(cfg.leaky_slope)
        else:
            conv = nn.ConvTranspose2d if transposed else nn.Conv2d
            self.conv = conv(cin, cout, kernel, stride, padding)
            self.norm = None if last else nn.BatchNorm2d(cout)
            self.act = None if last else nn.LeakyReLU(cfg.leaky_slope)

    def forward(self, x: torch.Tensor, output_size=None) -> torch.Tensor:
        """``output_size``: the (freq, frames) a decoder stage restores (its encoder's input)."""
        if self.transposed:
            x = self.conv(x, output_size=self.full_size(x, output_size))
            x = self.crop_future(x, output_size)
        else:
            x = self.conv(self.pad_past(x))
        return x if self.last else self.act(self.norm(x))

    def pad_past(self, x: torch.Tensor) -> torch.Tensor:
        """Causal encoder: ``kernel - 1`` zero frames before the first, none after, so output
        frame ``j`` sees input frames ``j * stride - kernel + 1 ... j * stride``."""
        return F.pad(x, (self.past, 0)) if self.past else x

    def full_size(self, x: torch.Tensor, output_size):
        """Causal decoder: the transposed convolution's whole output, ``(frames - 1) * stride +
        kernel`` frames (unpadded), of which :meth:`crop_future` keeps the first ones."""
        if not self.past or output_size is None:
            return output_size
        return (output_size[-2], (x.shape[-1] - 1) * self.conv.stride[1] + self.past + 1)

    def crop_future(self, x: torch.Tensor, output_size) -> torch.Tensor:
        """Causal decoder: keep the first ``output_size`` frames. Input frame ``j`` reaches
        output frames ``j * stride ... j * stride + kernel - 1``, so output frame ``t`` is built
        from input frames ``<= t / stride`` only."""
        if not self.past or output_size is None:
            return x
        return x[..., :output_size[-1]]


def _widen(c: int, network: str, first_or_last: bool) -> int:
    """Real twin: a real layer has 1/2 the weights of a complex one of the same width."""
    if network == "complex":
        return c
    return 2 * c if first_or_last else int(round(c * math.sqrt(2)))


class DCUnet(nn.Module):
    """Deep complex U-Net for speech enhancement.

    Args:
        arch: architecture name (``"tiny"``, ``"DCUnet-10"``, ``"DCUnet-16"``, ``"DCUnet-20"``,
            ``"Large-DCUnet-20"``) or an :class:`~dcu.architectures.Architecture`.
        mask: ``"UBD"``, ``"BDSS"`` or ``"BDT"`` (see :mod:`dcu.masks`).
        network: ``"complex"`` (the paper's DCUnet) or ``"real"`` (matched real-valued twin).
        batch_norm: ``"complex"`` (Trabelsi whitening, as in the paper) or ``"naive"``.
        n_fft, hop_length: the STFT's window and hop in samples (the paper's 1024 and 256).
        causal: no look-ahead along time (see the module docstring); the default is the paper's
            offline network.

    ``model(waveform)`` maps ``(batch, time)`` or ``(time,)`` float 16 kHz audio to the
    enhanced waveform of exactly the same shape; :func:`dcu.jobs.enhance.enhance_recording` handles
    other rates, numpy input, channels and long recordings.
    """

    def __init__(self, arch: str | Architecture = ModelConfig.arch, mask: str = ModelConfig.mask,
                 network: str = ModelConfig.network, batch_norm: str = ModelConfig.batch_norm,
                 leaky_slope: float = ModelConfig.leaky_slope, n_fft: int = ModelConfig.n_fft,
                 hop_length: int = ModelConfig.hop_length,
                 causal: bool = ModelConfig.causal):  # the defaults: ModelConfig's
        super().__init__()
        spec = get_architecture(arch)
        if mask not in MASKS:
            raise ValueError(f"unknown mask {mask!r}; choose one of {', '.join(MASKS)}")
        if network not in ("complex", "real"):
            raise ValueError(f"unknown network {network!r}; choose 'complex' or 'real'")
        if batch_norm not in BATCH_NORMS:
            raise ValueError(f"unknown batch_norm {batch_norm!r}; choose one of "
                             f"{', '.join(BATCH_NORMS)}")
        if (n_fft // 2) % spec.freq_multiple:
            raise ValueError(f"{spec.name} needs (n_fft // 2) divisible by {spec.freq_multiple}, "
                             f"got n_fft={n_fft}")
        if not isinstance(causal, bool):
            raise ValueError(f"causal must be True or False, got {causal!r}")
        self.config = ModelConfig(spec.name, mask, network, batch_norm, leaky_slope, n_fft,
                                  hop_length, causal)
        self.architecture = spec
        w = lambda c, edge=False: _widen(c, network, edge)  # noqa: E731
        n_enc, n_dec = len(spec.encoders), len(spec.decoders)
        self.encoders = nn.ModuleList(
            Block(w(cin, i == 0), w(cout), k, s, transposed=False, last=False, cfg=self.config)
            for i, (cin, cout, k, s) in enumerate(spec.encoders))
        decoders = []
        for i, (cin, cout, k, s) in enumerate(spec.decoders):
            skip = spec.encoders[n_enc - 1 - i][1]  # output channels of the matching encoder
            # widen the parts separately so the real twin's concatenations line up
            d_in = w(skip) if i == 0 else w(spec.decoders[i - 1][1]) + w(skip)
            assert network == "real" or d_in == cin, (spec.name, i, d_in, cin)
            decoders.append(Block(d_in, w(cout, i == n_dec - 1), k, s, transposed=True,
                                   last=i == n_dec - 1, cfg=self.config))
        self.decoders = nn.ModuleList(decoders)

    # -- the network on spectrograms -------------------------------------------------------
    def estimate_mask(self, spec: torch.Tensor) -> torch.Tensor:
        """Complex mask ``M = mask(O)`` for a noisy spectrogram ``X`` ``(batch, freq, frames) complex``."""
        output = self.from_network(self.unet(self.to_network(spec)))
        return compute_mask(output, self.config.mask)

    def unet(self, x: torch.Tensor) -> torch.Tensor:
        """The U-Net: encoders down, decoders up, each decoder also fed its mirror encoder's output.

        ``x`` is the network's input (:meth:`to_network`); returns its output ``O`` in the same form.
        """
        skips, sizes = [], []
        for encoder in self.encoders:
            sizes.append(x.shape[-2:])
            x = encoder(x)
            skips.append(x)
        skips.pop()  # the deepest encoder's output feeds the first decoder directly
        for i, decoder in enumerate(self.decoders):
            if i > 0:
                x = self.join(x, skips.pop())
            x = decoder(x, output_size=sizes.pop())
        return x

    def join(self, x: torch.Tensor, skip: torch.Tensor) -> torch.Tensor:
        """Skip connection: concatenate the decoder's input and the encoder's output by channel."""
        return torch.cat([x, skip], dim=1)

    def to_network(self, spec: torch.Tensor) -> torch.Tensor:
        """``X (batch, freq, frames) complex`` -> the first layer's input: one complex channel
        ``(batch, 1, freq, frames)``, or for the real twin two real channels (real, imaginary)."""
        if self.config.network == "real":
            return torch.stack([spec.real, spec.imag], dim=1)
        return spec.unsqueeze(1)

    def from_network(self, output: torch.Tensor) -> torch.Tensor:
        """The last layer's output -> ``O (batch, freq, frames) complex`` (inverse of :meth:`to_network`)."""
        if self.config.network == "real":
            return torch.complex(output[:, 0], output[:, 1])
        return output[:, 0]

    # -- waveform in, waveform out ---------------------------------------------------------
    def forward(self, waveform: torch.Tensor) -> torch.Tensor:
        """Enhance ``(batch, time)`` or ``(time,)`` float 16 kHz audio; same shape out:
        ``X = STFT(x)``, ``Y = M * X`` with ``M`` from :meth:`estimate_mask`, ``y = iSTFT(Y)``."""
        x = _check_waveform(waveform)
        squeeze = x.dim() == 1
        x = x.unsqueeze(0) if squeeze else x
        out = filter_in_stft_domain(x, lambda spec: self.estimate_mask(spec) * spec,
                                    self.architecture.frame_multiple, self.config.n_fft,
                                    self.config.hop_length)
        return out.squeeze(0) if squeeze else out

    def num_parameters(self) -> int:
        """Number of real trainable parameters."""
        return sum(p.numel() for p in self.parameters() if p.requires_grad)

    def extra_repr(self) -> str:
        c = self.config
        return (f"arch={c.arch!r}, mask={c.mask!r}, network={c.network!r}, "
                f"batch_norm={c.batch_norm!r}" + (", causal=True" if c.causal else ""))

    def config_dict(self) -> dict:
        return asdict(self.config)


def _check_waveform(x) -> torch.Tensor:
    if not isinstance(x, torch.Tensor):
        raise TypeError(f"DCUnet expects a torch.Tensor waveform, got {type(x).__name__}; "
                        "use dcu.jobs.enhance.enhance_recording() for numpy arrays")
    if x.dim() not in (1, 2):
        raise ValueError(f"DCUnet expects a waveform of shape (batch, time) or (time,), got "
                         f"shape {tuple(x.shape)}")
    if x.is_complex() or not x.is_floating_point():
        raise TypeError(f"DCUnet expects a real floating-point waveform, got {x.dtype}")
    if x.shape[-1] == 0 or x.numel() == 0:
        raise ValueError("DCUnet got an empty waveform (0 samples)")
    if not torch.isfinite(x).all():
        raise ValueError("DCUnet got NaN or infinite samples in its input waveform")
    return x
