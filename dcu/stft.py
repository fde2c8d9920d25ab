"""The STFT front end with the paper's settings.

DCUnet works on the complex short-time Fourier transform of 16 kHz speech with a 64 ms window
(1024 samples) and a 16 ms hop (256 samples), which gives 513 frequency bins. The paper does not
name the window; we use a periodic Hann window, the common choice, for which ``torch.istft``
inverts ``torch.stft`` exactly (overlap-add of the squared window is constant at hop = n_fft / 4).

Book: book/02_phase.ipynb
"""

from __future__ import annotations

import torch

SAMPLE_RATE = 16000
N_FFT = 1024
HOP_LENGTH = 256


def _window(n_fft: int, like: torch.Tensor) -> torch.Tensor:
    dtype = like.real.dtype if like.is_complex() else like.dtype
    if not dtype.is_floating_point:
        dtype = torch.float32
    return torch.hann_window(n_fft, periodic=True, dtype=dtype, device=like.device)


def compute_stft(waveform: torch.Tensor, n_fft: int = N_FFT, hop_length: int = HOP_LENGTH) -> torch.Tensor:
    """Complex spectrogram of a waveform.

    Args:
        waveform: ``(..., time)`` float tensor.
    Returns:
        ``(..., n_fft // 2 + 1, frames)`` complex tensor, ``frames = 1 + time // hop_length``
        (frames are centred, the signal is reflect-padded by ``n_fft // 2`` on both sides).
    """
    if waveform.dim() == 0:
        raise ValueError("compute_stft expects a waveform of shape (..., time), got a scalar")
    if waveform.shape[-1] <= n_fft // 2:
        raise ValueError(f"compute_stft needs at least {n_fft // 2 + 1} samples (the signal is "
                         f"reflect-padded by n_fft // 2), got {waveform.shape[-1]}; pad it first")
    shape = waveform.shape
    flat = waveform.reshape(-1, shape[-1])
    spec = torch.stft(flat, n_fft, hop_length, window=_window(n_fft, flat), center=True,
                      pad_mode="reflect", return_complex=True)
    return spec.reshape(*shape[:-1], *spec.shape[-2:])


def compute_istft(spec: torch.Tensor, length: int, n_fft: int = N_FFT,
                  hop_length: int = HOP_LENGTH) -> torch.Tensor:
    """Inverse of :func:`compute_stft`.

    Args:
        spec: ``(..., n_fft // 2 + 1, frames)`` complex tensor.
        length: number of samples to return (the original waveform's length).
    Returns:
        ``(..., length)`` real tensor.
    """
    shape = spec.shape
    flat = spec.reshape(-1, *shape[-2:])
    wav = torch.istft(flat, n_fft, hop_length, window=_window(n_fft, flat), center=True,
                      length=length)
    return wav.reshape(*shape[:-2], length)


def padded_length(num_samples: int, frame_multiple: int, hop_length: int = HOP_LENGTH) -> int:
    """Smallest length >= ``num_samples`` whose frame count is ``1 + k * frame_multiple``.

    A U-Net whose time strides multiply to ``frame_multiple`` maps ``1 + k * frame_multiple``
    frames back to exactly as many frames, so the model pads its input to this length and trims
    its output. Book: book/06_architectures.ipynb
    """
    block = frame_multiple * hop_length
    blocks = max(1, -(-num_samples // block))
    return blocks * block


def filter_in_stft_domain(waveform: torch.Tensor, transform, frame_multiple: int = 1,
                          n_fft: int = N_FFT, hop_length: int = HOP_LENGTH) -> torch.Tensor:
    """``iSTFT(transform(STFT(x)))`` with ``x`` padded to :func:`padded_length` and the result
    cropped back: ``(batch, time)`` in, ``(batch, time)`` out.

    ``transform`` maps the noisy spectrogram ``X (batch, freq, frames) complex`` to the estimate's
    spectrogram of the same shape (for DCUnet, ``M * X``). Book: book/06_architectures.ipynb
    """
    n = waveform.shape[-1]
    length = padded_length(n, frame_multiple, hop_length)
    spec = compute_stft(torch.nn.functional.pad(waveform, (0, length - n)), n_fft, hop_length)
    return compute_istft(transform(spec), length, n_fft, hop_length)[..., :n]
