"""dcu.baselines: the Wiener filter and spectral gating on real shipped audio and edge cases."""

from pathlib import Path

import numpy as np
import pytest
import torch

from dcu import baselines, metrics
from dcu.audio import load_audio

CORPUS = Path(__file__).resolve().parent.parent / "data" / "corpus" / "valid"
ENHANCERS = [baselines.wiener, baselines.spectral_gating]


@pytest.fixture(scope="module")
def low_snr_pair():
    """A real VoiceBank+DEMAND pair from the 2.5 dB SNR bin (data/splits/valid.csv)."""
    name = "p257_323.flac"
    return (load_audio(CORPUS / "clean" / name).astype(np.float64),
            load_audio(CORPUS / "noisy" / name).astype(np.float64))


@pytest.mark.parametrize("enhance", ENHANCERS)
@pytest.mark.parametrize("n", [100, 12345, 16000])
def test_output_is_float32_of_the_input_length(enhance, n, low_snr_pair):
    noisy = low_snr_pair[1][:n]
    out = enhance(noisy, 16000)
    assert out.dtype == np.float32 and out.shape == (n,) and np.all(np.isfinite(out))
    from_torch = enhance(torch.from_numpy(noisy), 16000)
    assert np.allclose(from_torch, out, atol=1e-6)


@pytest.mark.parametrize("enhance", ENHANCERS)
def test_improves_ssnr_and_si_sdr_on_a_real_noisy_pair(enhance, low_snr_pair):
    clean, noisy = low_snr_pair
    out = enhance(noisy, 16000).astype(np.float64)
    assert metrics.ssnr(clean, out) > metrics.ssnr(clean, noisy) + 1.0
    assert metrics.si_sdr(clean, out) > metrics.si_sdr(clean, noisy) + 2.0


@pytest.mark.parametrize("enhance", ENHANCERS)
def test_silence_in_silence_out(enhance):
    out = enhance(np.zeros(8000), 16000)
    assert out.shape == (8000,) and np.all(np.isfinite(out)) and not np.any(out)


def test_wiener_suppresses_stationary_noise_and_keeps_clean_speech(low_snr_pair):
    noise = 0.05 * np.random.default_rng(0).standard_normal(32000)
    out = baselines.wiener(noise)
    assert np.sum(out.astype(np.float64) ** 2) < 0.2 * np.sum(noise**2)  # > 7 dB less noise
    clean = low_snr_pair[0]  # starts with a quiet lead-in: little to remove
    assert metrics.si_sdr(clean, baselines.wiener(clean)) > 15.0


def test_identity_is_the_noisy_row(low_snr_pair):
    noisy = low_snr_pair[1]
    assert np.array_equal(baselines.BASELINES["noisy"](noisy), noisy.astype(np.float32))
    assert set(baselines.BASELINES) == {"noisy", "wiener", "noisereduce"}


@pytest.mark.parametrize("enhance", ENHANCERS)
def test_bad_input_is_refused(enhance):
    with pytest.raises(ValueError, match="1-D"):
        enhance(np.zeros((2, 100)), 16000)
    with pytest.raises(ValueError, match="NaN"):
        enhance(np.full(100, np.nan), 16000)
