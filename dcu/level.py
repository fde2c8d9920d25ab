"""Input level: keeping a recording within the levels the shipped models were trained on.

A DCUnet is not scale-equivariant: its convolutions have biases and its batch normalisation
subtracts fixed running means, so the mask it estimates for ``k * x`` is not the mask for ``x``.
The shipped models saw training mixtures at -29 to -17 dBFS (RMS over the file), DCUnet-10 and
-16 moved by a random gain of -10 to +6 dB in their last stage, and a recording far outside that
range is enhanced worse: on the 40 validation pairs turned down by 30 dB the shipped DCUnet-20
falls from 18.0 to 3.2 dB SI-SDR, DCUnet-10 to 5.5 (``data/results/levels.json``, chapter 9).
:func:`level_gain` gives the factor that moves a recording's level into
:data:`LEVEL_WINDOW_DBFS`; :func:`dcu.jobs.enhance.enhance_recording` applies it before the model
and undoes it after (15.5 and 17.9 dB there), so a recording inside the window is processed
exactly as before and one outside it as its copy at the window's nearest edge, scaled back.

Book: book/09_your_recordings.ipynb
"""

from __future__ import annotations

import numpy as np

__all__ = ["LEVEL_WINDOW_DBFS", "SILENCE_DBFS", "level_dbfs", "level_gain", "level_gain_db"]

#: RMS levels (dBFS) the shipped models handle as trained: the training mixtures' 5th to 95th
#: percentile (-25 to -19 dBFS) widened by the random gain of -10 to +6 dB. Every file of the
#: test, validation, unseen-speaker, p239 and demo sets lies inside it (-31.6 to -17.1 dBFS).
LEVEL_WINDOW_DBFS = (-35.0, -13.0)

#: Below this a recording is treated as digital silence and left alone (no gain of 100 dB).
SILENCE_DBFS = -90.0


def level_dbfs(audio: np.ndarray) -> float:
    """RMS level of ``audio`` (any shape, full scale 1.0) in dBFS; ``-inf`` for all zeros."""
    power = float(np.mean(np.square(audio, dtype=np.float64))) if np.size(audio) else 0.0
    return 10.0 * np.log10(power) if power > 0 else -np.inf


def level_gain_db(level: float, window: tuple[float, float] = LEVEL_WINDOW_DBFS) -> float:
    """The gain (dB) that moves a recording at ``level`` dBFS to the nearest edge of ``window``:
    0 inside it and for silence (below :data:`SILENCE_DBFS`)."""
    low, high = window
    if not low <= high:
        raise ValueError(f"level window {window}: give (low, high) dBFS with low <= high")
    if level < SILENCE_DBFS or low <= level <= high:
        return 0.0
    return (low if level < low else high) - level


def level_gain(audio: np.ndarray, window: tuple[float, float] = LEVEL_WINDOW_DBFS) -> float:
    """The factor that moves ``audio``'s level (:func:`level_dbfs`) to the nearest edge of
    ``window``: exactly 1.0 inside it and for silence."""
    gain_db = level_gain_db(level_dbfs(audio), window)
    return 1.0 if gain_db == 0 else float(10.0 ** (gain_db / 20.0))
