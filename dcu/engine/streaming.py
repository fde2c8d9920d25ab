"""A causal DCUnet run one STFT frame at a time: the network half of :mod:`dcu.stream`.

A causal network (``DCUnet(..., causal=True)``) computes output frame ``t`` from input frames
``<= t``, so it can run as frames arrive if every layer keeps what it still needs of the past:

- an encoder (convolution, time kernel ``kt``, time stride ``s``) keeps its last ``kt`` input
  frames and, on every ``s``-th one, computes one output frame from them;
- a decoder (transposed convolution) keeps its last ``ceil(kt / s)`` input frames; its output
  frame ``o`` is the sum over the taps ``r, r + s, r + 2s, ...`` (``r = o mod s``) applied to
  the newest of them, back to front ("polyphase"), so each output frame is computed once, at
  its own time, with no pending sums to carry.

A level ``l`` of the U-Net (after ``l`` encoders) ticks once every ``s_1 * ... * s_l`` input
frames; a step runs the encoders down as far as a new frame exists at that depth, then the
decoders that owe an output frame now. These caches are the whole state of the network.

Speed: the batch norms are folded into the convolutions (:meth:`dcu.engine.layers.FastBlock.
folded_weight_bias`) and every layer runs on stacked real tensors as ONE 1-D convolution along
frequency, with the cached frames folded into its input channels (one small GEMM-like kernel
call per layer and frame). A transposed convolution with frequency stride 2 runs as one 1-D
convolution too: its even and odd output bins use disjoint taps, so both phases are stacked as
output channels and interleaved after. ``precision="bf16"`` keeps weights and activations in
bfloat16 (oneDNN accumulates in float32); the output frame is float32.
``tests/test_stream.py`` checks every step against the whole-file causal model.

Book: book/10_real_time.ipynb
"""

from __future__ import annotations

import copy
import math

import torch
import torch.nn.functional as F

from dcu.engine.layers import FAST_CLASSES
from dcu.engine.precision import resolve_precision

__all__ = ["StreamingNetwork", "FrameConv", "FrameConvTranspose"]


class FrameConv:
    """A causal convolution on one frame at a time: ``weight (Cout, Cin, kf, kt)`` (stacked real,
    batch norm folded in), frequency stride and padding as the model's. ``push`` an input frame
    ``(Cin, bins)``; ``step`` gives the output frame ``(Cout, bins')`` of the newest ``kt``."""

    def __init__(self, weight, bias, f_stride: int, f_pad: int, in_bins: int, slope, dtype):
        cout, cin, kf, kt = weight.shape
        # cached frame i (oldest first) meets time tap i: channels (frame, channel) in that order
        self.weight = weight.permute(0, 3, 1, 2).reshape(cout, kt * cin, kf).to(dtype).contiguous()
        self.bias = bias.to(dtype)
        self.stride, self.pad, self.slope = f_stride, f_pad, slope
        self.cache = torch.zeros(kt * cin, in_bins, dtype=dtype)  # zeros: the causal padding
        self.channels = cin

    def push(self, frame: torch.Tensor) -> None:
        self.cache = torch.cat([self.cache[self.channels:], frame])

    def reset(self) -> None:
        self.cache = torch.zeros_like(self.cache)

    def step(self) -> torch.Tensor:
        out = F.conv1d(self.cache, self.weight, self.bias, self.stride, self.pad)
        return out if self.slope is None else F.leaky_relu_(out, self.slope)


class FrameConvTranspose:
    """A causal transposed convolution giving one output frame at a time: ``weight (Cin, Cout, kf,
    kt)`` (stacked real, batch norm folded in), strides ``(fs, ts)``, frequency padding ``f_pad``,
    ``out_bins`` output bins. ``push`` an input frame; ``step(r)`` gives output frame
    ``j * ts + r`` where ``j`` is the newest input frame (``0 <= r < ts``)."""

    def __init__(self, weight, bias, stride, f_pad: int, in_bins: int, out_bins: int, slope,
                 dtype):
        cin, cout, kf, kt = weight.shape
        fs, ts = stride
        self.frames = -(-kt // ts)  # input frames an output frame can reach back to
        self.channels, self.cout, self.fs, self.out_bins, self.slope = cin, cout, fs, out_bins, slope
        self.cache = torch.zeros(self.frames * cin, in_bins, dtype=dtype)
        self.bias = bias.repeat(fs).to(dtype)
        # output bin m * fs + e takes input bins m + a_e - j through tap b_e + j * fs, where
        # e + f_pad = a_e * fs + b_e: one window [m + lo, m + hi] of input bins serves all e
        phases = [divmod(e + f_pad, fs) for e in range(fs)]
        taps = [range(b, kf, fs) for _, b in phases]
        lo = min(a - len(t) + 1 for (a, _), t in zip(phases, taps))
        width = max(a for a, _ in phases) - lo + 1
        self.per_phase = -(-out_bins // fs)  # output bins per frequency phase (the longest)
        self.pad = (-lo, self.per_phase + width - 1 - in_bins + lo)
        self.weights, self.first = [], []
        for r in range(ts):  # one weight per time phase: cached frame i meets time tap k
            used = -(-(kt - r) // ts)  # the newest frames, those with a tap for phase r
            w = weight.new_zeros(fs, cout, used, cin, width)
            for i in range(used):
                k = r + (used - 1 - i) * ts
                for e, ((a, b), t) in enumerate(zip(phases, taps)):
                    for j, tap in enumerate(t):
                        w[e, :, i, :, a - j - lo] = weight[:, :, tap, k].T
            self.weights.append(w.reshape(fs * cout, used * cin, width).to(dtype))
            self.first.append((self.frames - used) * cin)  # the cache rows phase r skips

    push, reset = FrameConv.push, FrameConv.reset

    def step(self, r: int) -> torch.Tensor:
        out = F.conv1d(F.pad(self.cache[self.first[r]:], self.pad), self.weights[r], self.bias)
        if self.fs > 1:  # (phase, channel, m) -> (channel, m * fs + phase)
            out = out.view(self.fs, self.cout, self.per_phase).permute(1, 2, 0)
            out = out.reshape(self.cout, self.per_phase * self.fs)
        out = out[:, :self.out_bins]
        return out if self.slope is None else F.leaky_relu(out, self.slope)


def _fast_blocks(model):
    """``model``'s blocks on the engine, in eval mode, without touching ``model``."""
    fast = copy.deepcopy(model).eval()
    for module in fast.modules():
        module.__class__ = FAST_CLASSES.get(type(module), type(module))
    return fast.encoders, fast.decoders


def _on_cpu(tensors):
    """Folded weights as float32 on the CPU, wherever the model lives: a stream runs there."""
    return [t.detach().float().cpu() for t in tensors]


class StreamingNetwork:
    """``model``'s U-Net (a causal :class:`dcu.DCUnet`, its eval-mode weights as they are now),
    one frame at a time: :meth:`step` maps the network's input frame (stacked real ``(2, bins)``:
    real part, imaginary part) to its output frame ``O`` in the same form, float32."""

    def __init__(self, model, precision: str = "fp32"):
        if not model.config.causal:
            raise ValueError(f"{model.config.arch} is not causal: streaming needs a model built "
                             "with DCUnet(..., causal=True)")
        self.dtype = torch.bfloat16 if resolve_precision(precision) == "bf16" else torch.float32
        self.real = model.config.network == "real"
        arch = model.architecture
        bins = arch.feature_sizes(model.config.n_fft // 2 + 1, 1)
        encoders, decoders = _fast_blocks(model)
        self.encoders, self.decoders = [], []
        with torch.no_grad():
            for level, block in enumerate(encoders):
                w, b = _on_cpu(block.folded_weight_bias())
                self.encoders.append(FrameConv(w, b, block.conv.stride[0],
                                               block.conv.padding[0], bins[level][0],
                                               block.act.negative_slope, self.dtype))
            n = len(encoders)
            for i, block in enumerate(decoders):
                w, b = _on_cpu(block.folded_weight_bias())
                slope = None if block.last else block.act.negative_slope
                self.decoders.append(FrameConvTranspose(
                    w, b, block.conv.stride, block.conv.padding[0],
                    bins[n - i][0], bins[n - i - 1][0], slope, self.dtype))
        strides = [s[1] for *_, s in arch.encoders]
        self.time_strides = strides
        # ticks[l]: input frames per frame at level l (level 0 = the input)
        self.ticks = [math.prod(strides[:level]) for level in range(n + 1)]
        self.frame = 0

    def reset(self) -> None:
        """Back to the start of a stream: every cache zero (the causal padding), frame 0."""
        for layer in self.encoders + self.decoders:
            layer.reset()
        self.frame = 0

    def step(self, x: torch.Tensor) -> torch.Tensor:
        t, self.frame = self.frame, self.frame + 1
        x = x.to(self.dtype)
        skips = []  # the encoders' new output frames, level 1 downwards
        for enc, stride in zip(self.encoders, self.time_strides):
            enc.push(x)
            if (t // self.ticks[len(skips)]) % stride:  # no new frame one level down
                break
            x = enc.step()
            skips.append(x)
        depth, n = len(skips), len(self.encoders)  # levels 0..depth have a new frame at t
        y = None
        for i, dec in enumerate(self.decoders):
            level = n - i  # dec reads this level and writes level - 1
            if level - 1 > depth:
                continue  # no frame due there yet
            r = (t // self.ticks[level - 1]) % self.time_strides[level - 1]
            if r == 0:  # a new input frame: the deeper decoder's output joined with the skip
                dec.push(skips[level - 1] if i == 0 else self.join(y, skips[level - 1]))
            y = dec.step(r)
        return y.float()

    def join(self, x: torch.Tensor, skip: torch.Tensor) -> torch.Tensor:
        """The skip connection on stacked frames (as :meth:`dcu.engine.layers.FastDCUnet.join`)."""
        if self.real:
            return torch.cat([x, skip])
        (xr, xi), (sr, si) = x.chunk(2), skip.chunk(2)
        return torch.cat([xr, sr, xi, si])

    def state_sizes(self) -> list[tuple[str, tuple[int, ...]]]:
        """Each layer's cache, ``(name, (frames, channels, bins))``: the network's whole state."""
        layers = [(f"encoder {i + 1}", e) for i, e in enumerate(self.encoders)]
        layers += [(f"decoder {i + 1}", d) for i, d in enumerate(self.decoders)]
        return [(name, (layer.cache.shape[0] // layer.channels, layer.channels,
                        layer.cache.shape[1])) for name, layer in layers]
