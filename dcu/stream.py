"""Enhancing a live stream: a causal DCUnet fed one STFT hop at a time.

``StreamingEnhancer(model)`` takes audio in pieces of any size and gives back as many enhanced
samples as it was given, delayed by ``latency_samples``::

    enhancer = StreamingEnhancer(dcu.DCUnet("DCUnet-10", causal=True).eval())
    for block in microphone:                # 1-D float arrays, 16 kHz, any length
        speaker.write(enhancer.process(block))
    speaker.write(enhancer.flush())         # the last latency_samples samples

What it keeps between calls is its state: the input samples the next STFT frame still needs,
each layer's cache of past frames (:mod:`dcu.engine.streaming`), and the overlap-add sums of the
inverse STFT for the samples later frames will still add to. Its output, concatenated, is the
causal model's output on the whole recording, ``model(x)``, preceded by ``latency_samples``
zeros (``tests/test_stream.py``); :meth:`StreamingEnhancer.flush` pads the end as the model does.

On the command line (:mod:`dcu.jobs.live`): ``dcu stream - --model CAUSAL.pt`` cleans raw PCM from
standard input to standard output as it comes, ``dcu enhance --stream`` files hop by hop.

Latency: the centred STFT's frame ``t`` holds samples up to ``t * hop + n_fft / 2``, and the
overlap-add finishes a sample once the last frame covering it is in, so a sample leaves at most
``n_fft`` samples after it arrived: ``latency_samples = n_fft``, 64 ms with the paper's 1024/256,
32 ms with 512/128 (``DCUnet(..., n_fft=512, hop_length=128, causal=True)``). Compute time
comes on top; each hop of input has a hop's time for it.

Book: book/10_real_time.ipynb
"""

from __future__ import annotations

import numpy as np
import torch

from dcu.engine.streaming import StreamingNetwork
from dcu.masks import compute_mask_parts
from dcu.stft import SAMPLE_RATE, padded_length

__all__ = ["StreamingEnhancer"]


class StreamingEnhancer:
    """Enhance audio hop by hop with a causal :class:`dcu.DCUnet` (its weights as they are now,
    eval-mode batch norm); ``precision``: ``"fp32"``, ``"bf16"`` or ``"auto"``.

    :meth:`process` takes 1-D float audio at 16 kHz (numpy or torch, any length, even 0) and
    returns as many samples, of the same type (float32); :meth:`flush` ends the stream, returns
    the last ``latency_samples`` samples and makes the enhancer ready for a new one.
    """

    def __init__(self, model, precision: str = "fp32"):
        self.network = StreamingNetwork(model, precision)  # refuses a model that is not causal
        cfg = model.config
        self.n_fft, self.hop, self.mask = cfg.n_fft, cfg.hop_length, cfg.mask
        self.frame_multiple = model.architecture.frame_multiple
        self.window = torch.hann_window(self.n_fft, periodic=True)
        self.latency_samples = self.n_fft
        self.reset()

    @property
    def latency_ms(self) -> float:
        """``latency_samples`` in milliseconds at 16 kHz."""
        return 1000 * self.latency_samples / SAMPLE_RATE

    def reset(self) -> None:
        """Forget the stream: empty caches and sums, as before the first sample."""
        self.network.reset()
        self.received = self.given = 0  # samples taken in and handed out so far
        self._x, self._x0 = torch.zeros(0), 0  # the input from sample _x0 on (what frames need)
        self._t = 0  # the next STFT frame; it covers samples [_t*hop - n_fft/2, _t*hop + n_fft/2)
        self._acc = torch.zeros(self.n_fft)  # overlap-add sums over those samples ...
        self._env = torch.zeros(self.n_fft)  # ... and of the squared window (iSTFT's divisor)
        self._ready = [torch.zeros(self.latency_samples)]  # finished, not handed out yet
        self._numpy = True  # what process() was last given: flush() answers in kind

    def process(self, samples):
        """Feed ``samples``; returns ``len(samples)`` enhanced samples (the stream, delayed)."""
        x, as_numpy = _as_samples(samples)
        self._numpy = as_numpy
        self._x = torch.cat([self._x, x])
        self.received += len(x)
        half = self.n_fft // 2
        # frame t is complete once sample t*hop + half - 1 is in (frame 0 reflects sample half)
        while self.received >= self._t * self.hop + half + (self._t == 0):
            self._add_frame()
        return self._give(len(x), as_numpy)

    def flush(self):
        """End the stream and return its last ``latency_samples`` samples (of the type
        :meth:`process` was last given): the frames past the end are zero- and reflect-padded as
        the whole-file model pads them. Then the enhancer is ready for a new stream."""
        n, half, as_numpy = self.received, self.n_fft // 2, self._numpy
        if n:
            length = padded_length(n, self.frame_multiple, self.hop)  # the model's padding
            xz = torch.cat([self._x, torch.zeros(length - n)])
            end = length - self._x0  # torch.stft(center=True) reflects the padded end
            self._x = torch.cat([xz, xz[end - half - 1:end - 1].flip(0)])
            last = min(length // self.hop, -(-(n + half) // self.hop) - 1)
            while self._t <= last:  # the frames that still reach samples before n
                self._add_frame()
            self._finish(self.n_fft)  # no frame is left: every sum is final
        out = self._give(n + self.latency_samples - self.given, as_numpy)
        self.reset()
        return out

    def _add_frame(self) -> None:
        """STFT frame ``_t`` -> network -> mask -> inverse FFT -> overlap-add; one hop is final."""
        start = self._t * self.hop - self.n_fft // 2
        if start >= 0:
            seg = self._x[start - self._x0:start - self._x0 + self.n_fft]
        else:  # the centred STFT reflects the signal at its start (here _x0 == 0)
            seg = torch.cat([self._x[1:1 - start].flip(0), self._x[:start + self.n_fft]])
        spec = torch.fft.rfft(seg * self.window)
        o = self.network.step(torch.stack([spec.real, spec.imag]))
        m_re, m_im = compute_mask_parts(o[0], o[1], self.mask)
        self._acc += torch.fft.irfft(torch.complex(m_re, m_im) * spec, self.n_fft) * self.window
        self._env += self.window * self.window
        self._finish(self.hop)  # no later frame reaches the first hop of the sums
        self._t += 1
        keep = max(0, self._t * self.hop - self.n_fft)  # the oldest sample still needed
        if keep > self._x0:
            self._x, self._x0 = self._x[keep - self._x0:], keep

    def _finish(self, count: int) -> None:
        """The first ``count`` samples of the sums are final: divide them by the window envelope,
        keep those at or after sample 0, shift the sums by ``count``."""
        first = self._t * self.hop - self.n_fft // 2  # the sample the sums start at
        done = self._acc[:count] / self._env[:count].clamp_min(1e-11)
        self._ready.append(done[min(count, max(0, -first)):])
        self._acc = torch.cat([self._acc[count:], torch.zeros(count)])
        self._env = torch.cat([self._env[count:], torch.zeros(count)])

    def _give(self, count: int, as_numpy: bool):
        ready = torch.cat(self._ready)
        out, self._ready = ready[:count], [ready[count:]]
        self.given += count
        return out.numpy() if as_numpy else out


def _as_samples(samples) -> tuple[torch.Tensor, bool]:
    """1-D float audio as a float32 tensor, and whether it came as numpy; one-line errors."""
    as_numpy = not isinstance(samples, torch.Tensor)
    arr = np.asarray(samples) if as_numpy else samples
    if (as_numpy and not np.issubdtype(arr.dtype, np.floating)) or \
            (not as_numpy and (arr.is_complex() or not arr.is_floating_point())):
        raise TypeError(f"StreamingEnhancer expects float audio in [-1, 1], got {arr.dtype}; "
                        "convert 16-bit PCM with x / 32768")
    if arr.ndim != 1:
        raise ValueError(f"StreamingEnhancer expects 1-D audio (one channel), got shape "
                         f"{tuple(arr.shape)}")
    x = torch.from_numpy(np.ascontiguousarray(arr, dtype=np.float32)) if as_numpy else \
        arr.detach().float().cpu()
    if not torch.isfinite(x).all():
        raise ValueError("StreamingEnhancer got NaN or infinite samples; clean the input first")
    return x, as_numpy
