"""Training-time augmentation: speed perturbation, random gain and speech-free items.

These make more of the few voices the shipped corpus has (three speakers): speed perturbation
turns each voice into many (a factor ``f`` shortens speech by ``f`` and raises every frequency,
the pitch and the formants, by ``f``, as Kaldi's speed perturbation does with ``sox speed``),
a random gain makes the model indifferent to the recording level, and speech-free items (noise
in, silence as the target) show it inputs that hold no speech at all.
:class:`dcu.data.TrainingSet` draws them per item from the item's own generator, so an item
stays a pure function of ``(seed, epoch, index)``. Everything here works on float32 numpy arrays
at 16 kHz and costs a few milliseconds per 2 s item.

What a speech-free item teaches depends on the loss. Under the paper's wSDR loss a silent target
makes ``alpha = 0``, leaving only the noise term ``-cos(noise, noisy - estimate)``, which every
estimate proportional to the input meets: such items teach the model not to put speech-like
structure into noise, not to turn it down. With ``--loss MSE`` they also teach attenuation.

Book: book/07_training.ipynb
"""

from __future__ import annotations

import math

import numpy as np

from dcu.audio import resample
from dcu.stft import SAMPLE_RATE

__all__ = ["apply_gain", "crop_with_speed", "draw_speed", "parse_range", "speed_perturb"]

SPEED_LIMITS = (0.8, 1.25)  # beyond this the voices stop sounding like people
GAIN_LIMITS = (-40.0, 20.0)  # dB


def parse_range(text: str, option: str, limits: tuple[float, float]) -> tuple[float, float] | None:
    """``"lo,hi"`` -> ``(lo, hi)`` within ``limits``; ``""`` -> ``None`` (off).

    Raises:
        ValueError: one line naming ``option`` and the form it takes.
    """
    if not str(text).strip():
        return None
    try:
        lo, hi = (float(t) for t in str(text).split(","))
    except ValueError:
        lo = hi = float("nan")
    if not (math.isfinite(lo) and math.isfinite(hi) and limits[0] <= lo <= hi <= limits[1]):
        raise ValueError(f"--{option} {text!r}: give 'low,high' with {limits[0]} <= low <= high <= "
                         f"{limits[1]}, or '' for none")
    return lo, hi


def speed_perturb(wav: np.ndarray, factor: float, sample_rate: int = SAMPLE_RATE) -> np.ndarray:
    """Play ``wav`` ``factor`` times faster: ``ceil(len / factor)`` samples, frequencies x ``factor``.

    The waveform is read as if it had been sampled at ``factor * sample_rate`` and resampled to
    ``sample_rate`` (polyphase, :func:`dcu.audio.resample`). ``factor`` is rounded to 0.01 so
    the resampling ratio stays small (1.1 -> 10/11, 0.93 -> 100/93).

    Args:
        wav: ``(time,)`` float array.
        factor: speed factor, e.g. 0.9 (slower, lower) to 1.1 (faster, higher).
    """
    factor = round(float(factor), 2)
    if factor == 1.0:
        return np.array(wav, dtype=np.float32)
    return resample(wav, int(round(sample_rate * factor)), sample_rate)


def draw_speed(rng, speed: tuple[float, float] | None, prob: float) -> float:
    """A speed factor for one item: 1.0 (drawing nothing when ``speed`` is None), else with
    probability ``prob`` a factor uniform in ``speed``, rounded to 0.01."""
    if speed is None or prob <= 0:
        return 1.0
    if rng.random() >= prob:
        return 1.0
    return round(float(rng.uniform(*speed)), 2)


def crop_with_speed(wavs, start: int, segment: int, factor: float) -> list[np.ndarray]:
    """The ``segment``-sample crops that start at ``start`` in each of ``wavs``, sped up by ``factor``.

    ``ceil(segment * factor)`` input samples are taken (zero-padded past the end of a file) and
    :func:`speed_perturb` ed, so the output covers the same speech at the new speed. With
    ``factor == 1`` this is a plain crop.
    """
    need = int(math.ceil(segment * round(factor, 2)))
    out = []
    for wav in wavs:
        piece = np.zeros(need, dtype=np.float32)
        chunk = wav[start: start + need]
        piece[: chunk.size] = chunk
        if factor != 1.0:
            piece = speed_perturb(piece, factor)[:segment]
            if piece.size < segment:
                piece = np.pad(piece, (0, segment - piece.size))
        out.append(np.ascontiguousarray(piece, dtype=np.float32))
    return out


def apply_gain(rng, gain_db: tuple[float, float] | None, *wavs, peak: float = 0.99):
    """Scale all ``wavs`` by one gain drawn uniformly in ``gain_db`` (dB), lowered where needed so
    no sample exceeds ``peak`` (a louder draw would clip, which real recordings rarely do). With
    ``gain_db`` None nothing is drawn and ``wavs`` come back unchanged."""
    if gain_db is None:
        return wavs
    gain = 10.0 ** (float(rng.uniform(*gain_db)) / 20.0)
    loudest = max(float(np.max(np.abs(w))) if w.size else 0.0 for w in wavs)
    if loudest * gain > peak:
        gain = peak / loudest
    return tuple((w * gain).astype(np.float32) for w in wavs)
