"""Noise at a chosen SNR: speech power (whole or active), SNR, and mixing.

The arithmetic every noisy pair in this project comes from: the shipped corpus was mixed with
:func:`mix_at_snr` (``dcu/scripts/build_corpus.py``) and :class:`dcu.data.TrainingSet` remixes
its training items with it on the fly. Everything works on ``(time,)`` numpy arrays; nothing here
reads files or knows the model.

Book: book/01_introduction.ipynb (active speech level), book/07_training.ipynb (mixing).
"""

from __future__ import annotations

import numpy as np

__all__ = ["loop_or_crop", "mix_at_snr", "snr_db", "speech_power"]


def speech_power(wav, power: str = "whole", frame_length: int = 320, threshold_db: float = -30.0) -> float:
    """Mean power of a ``(time,)`` waveform, over the whole signal or over active frames only.

    ``power="whole"``: ``mean(wav**2)`` over every sample.
    ``power="active"``: cut ``wav`` into non-overlapping frames of ``frame_length`` samples
    (20 ms at 16 kHz; a tail shorter than a frame is dropped, unless the signal is shorter
    than one frame), keep the frames whose mean power is within ``threshold_db`` of the
    loudest frame, and average the power over those. This approximates the active speech
    level that VoiceBank+DEMAND used to set its SNRs: pauses do not lower the speech level.
    """
    wav = np.asarray(wav, dtype=np.float64)
    if power == "whole":
        return float(np.mean(wav**2)) if wav.size else 0.0
    if power != "active":
        raise ValueError(f"power must be 'whole' or 'active', got {power!r}")
    n = max(1, wav.size // frame_length)
    frames = wav[: n * frame_length].reshape(n, -1) if wav.size >= frame_length else wav[None, :]
    energy = np.mean(frames**2, axis=1)
    active = energy >= energy.max() * 10.0 ** (threshold_db / 10.0)
    return float(np.mean(energy[active]))


def snr_db(clean, noise, power: str = "whole") -> float:
    """Signal-to-noise ratio ``10 log10(P_speech / P_noise)`` in dB of two ``(time,)`` arrays.

    The speech power follows ``power`` (see :func:`speech_power`); the noise power is always
    measured over the whole noise signal.
    """
    p_noise = speech_power(noise, "whole")
    p_speech = speech_power(clean, power)
    if p_noise == 0.0:
        return float("inf")
    if p_speech == 0.0:
        return float("-inf")
    return 10.0 * np.log10(p_speech / p_noise)


def loop_or_crop(noise: np.ndarray, length: int, rng) -> np.ndarray:
    """``noise`` made exactly ``length`` samples long: a longer noise is cropped at a random
    offset, a shorter one looped (tiled) from a random offset. ``rng=None`` uses offset 0.

    Unlike :func:`dcu.audio.fit_length`, which cuts or zero-pads a signal at its end, this keeps
    the noise continuous and never inserts silence, so a short noise still covers long speech.
    """
    offset = int(rng.integers(0, noise.size)) if rng is not None else 0
    if noise.size >= length:
        offset = int(rng.integers(0, noise.size - length + 1)) if rng is not None else 0
        return noise[offset : offset + length]
    reps = -(-(offset + length) // noise.size)
    return np.tile(noise, reps)[offset : offset + length]


def mix_at_snr(clean, noise, snr_db: float, power: str = "whole", rng=None):
    """Add ``noise`` to ``clean`` so that the mixture has exactly ``snr_db`` dB SNR.

    The noise is scaled by the *amplitude* gain ``g = sqrt(P_speech / (P_noise * 10**(snr/10)))``
    so that ``10 log10(P_speech / P(g * noise)) == snr_db``. Mixing up power and amplitude
    ratios is an easy slip in mixing code (reported for a public implementation of this paper;
    we could not confirm which one, so none is named here): dividing the noise amplitude by
    ``10**(snr/10)`` (a power ratio) instead of ``10**(snr/20)`` makes the achieved SNR twice
    the requested one in dB, and the opposite slip halves it; either way the model trains on
    other SNRs than the protocol's 0/5/10/15 dB. A test checks the achieved SNR to 0.01 dB.

    Args:
        clean: ``(time,)`` float speech.
        noise: ``(noise_time,)`` float noise of any length: a longer noise is cropped at a
            random offset, a shorter one is tiled starting from a random offset.
        snr_db: the SNR to reach, in dB.
        power: ``"whole"`` or ``"active"`` speech power, see :func:`speech_power`.
        rng: ``numpy.random.Generator`` for the offsets; ``None`` uses offset 0.

    Returns:
        ``(mixture, scaled_noise)``, both ``(time,)`` float32, ``mixture = clean + scaled_noise``.

    Raises:
        ValueError: when the speech or the noise chunk is silent (the SNR is undefined).
    """
    clean = np.asarray(clean, dtype=np.float32)
    noise = np.asarray(noise, dtype=np.float32)
    if clean.ndim != 1 or noise.ndim != 1 or clean.size == 0 or noise.size == 0:
        raise ValueError(f"mix_at_snr needs non-empty 1-D arrays, got {clean.shape} and {noise.shape}")
    chunk = loop_or_crop(noise, clean.size, rng).astype(np.float64)
    p_speech = speech_power(clean, power)
    p_noise = float(np.mean(chunk**2))
    if p_speech == 0.0 or p_noise == 0.0:
        which = "speech" if p_speech == 0.0 else "noise chunk"
        raise ValueError(f"mix_at_snr: the {which} is silent, so no SNR can be set; pick another segment")
    gain = np.sqrt(p_speech / (p_noise * 10.0 ** (snr_db / 10.0)))
    scaled = (gain * chunk).astype(np.float32)
    return clean + scaled, scaled
