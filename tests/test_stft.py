"""dcu.stft: the paper's STFT (1024-sample Hann window, 256 hop), its exact inverse, padding."""

from pathlib import Path

import numpy as np
import pytest
import torch

from dcu.audio import load_audio
from dcu.stft import HOP_LENGTH, N_FFT, SAMPLE_RATE, compute_istft, compute_stft, padded_length

CLEAN = Path(__file__).resolve().parent.parent / "data" / "corpus" / "test" / "clean"


def test_the_settings_are_the_papers():
    assert (N_FFT, HOP_LENGTH, SAMPLE_RATE) == (1024, 256, 16000)
    assert N_FFT / SAMPLE_RATE == 0.064 and HOP_LENGTH / SAMPLE_RATE == 0.016
    assert compute_stft(torch.zeros(16000)).shape[0] == 513


@pytest.mark.parametrize("n", [600, 1000, 16000, 16001, 12345])
def test_round_trip_random_is_exact(n):
    gen = torch.Generator().manual_seed(n)
    x = torch.randn(3, n, generator=gen)
    y = compute_istft(compute_stft(x), n)
    assert y.shape == x.shape and y.dtype == torch.float32
    assert (y - x).abs().max() < 2e-6
    xd = x.double()  # in double precision the inverse is exact to rounding
    assert (compute_istft(compute_stft(xd), n) - xd).abs().max() < 1e-12


def test_round_trip_real_speech_is_exact():
    files = sorted(CLEAN.glob("*.flac"))[:3]
    assert len(files) == 3, f"shipped corpus missing in {CLEAN}"
    for path in files:
        wav = torch.from_numpy(load_audio(path))
        assert wav.abs().max() > 0.05  # real speech, not silence
        back = compute_istft(compute_stft(wav), wav.shape[-1])
        assert (back - wav).abs().max() < 1e-6, path.name


@pytest.mark.parametrize("n", [513, 1024, 8000, 16000, 16255, 16256, 48017])
def test_shapes_bins_and_frames(n):
    spec = compute_stft(torch.zeros(n))
    assert spec.shape == (513, 1 + n // 256) and spec.dtype == torch.complex64
    batched = compute_stft(torch.zeros(2, 3, n))
    assert batched.shape == (2, 3, 513, 1 + n // 256)
    assert compute_istft(batched, n).shape == (2, 3, n)


def test_frames_match_a_numpy_reference():
    """Frame t = rfft(periodic Hann * reflect-padded signal[t*hop : t*hop + n_fft])."""
    rng = np.random.default_rng(0)
    x = rng.standard_normal(5000)
    spec = compute_stft(torch.from_numpy(x)).numpy()
    window = 0.5 - 0.5 * np.cos(2 * np.pi * np.arange(N_FFT) / N_FFT)  # periodic Hann
    padded = np.pad(x, N_FFT // 2, mode="reflect")
    for t in [0, 1, 7, spec.shape[-1] - 1]:
        frame = padded[t * HOP_LENGTH: t * HOP_LENGTH + N_FFT]
        np.testing.assert_allclose(spec[:, t], np.fft.rfft(window * frame), rtol=1e-9, atol=1e-9)


def test_a_sine_on_a_bin_peaks_in_that_bin():
    k = 40  # 40 * 16000 / 1024 = 625 Hz
    t = torch.arange(16000, dtype=torch.float64)
    spec = compute_stft(torch.sin(2 * torch.pi * k * t / N_FFT))
    assert (spec.abs()[:, 10:-10].argmax(dim=0) == k).all()


def test_short_or_scalar_input_errors_clearly():
    with pytest.raises(ValueError, match="scalar"):
        compute_stft(torch.tensor(1.0))
    with pytest.raises(ValueError, match="513 samples"):
        compute_stft(torch.zeros(100))


@pytest.mark.parametrize("multiple", [1, 2, 4, 16, 32])
def test_padded_length_is_the_smallest_valid_length(multiple):
    block = multiple * HOP_LENGTH
    for n in [1, 2, 255, 256, 257, block - 1, block, block + 1, 8000, 16000, 160001]:
        m = padded_length(n, multiple)
        assert m >= n and m % block == 0
        frames = 1 + m // HOP_LENGTH
        assert (frames - 1) % multiple == 0  # frame count is 1 + k * multiple
        assert m - block < max(n, 1)  # one block shorter would not hold the signal
        assert m >= block  # never zero frames of content
    assert padded_length(1000, 4, hop_length=100) == 1200
