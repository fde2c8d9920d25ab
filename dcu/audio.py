"""Audio files in and out: reading, writing and resampling with clear errors.

Everything in dcu works on 16 kHz float32 waveforms. This module is the one door through which
audio files come in (any rate, any channel count, WAV/FLAC/OGG via ``soundfile``) and go out
(written atomically, never over a file the user made unless asked).

It imports nothing from dcu, so it can be read and tested alone.

Book: book/01_introduction.ipynb
"""

from __future__ import annotations

import os
import tempfile
from fractions import Fraction
from pathlib import Path

import numpy as np
import soundfile as sf
from scipy.signal import resample_poly

__all__ = [
    "AUDIO_EXTENSIONS",
    "AudioError",
    "is_silent",
    "load_audio",
    "resample",
    "save_audio",
]

#: File name endings that :func:`load_audio` and :class:`dcu.data.AudioFolder` accept.
AUDIO_EXTENSIONS = (".wav", ".flac", ".ogg")

_FORMATS = {".wav": ("WAV", "PCM_16"), ".flac": ("FLAC", "PCM_16"), ".ogg": ("OGG", "VORBIS")}


class AudioError(ValueError):
    """A file that cannot be used as audio; the message names the file and the fix."""


def resample(wav: np.ndarray, orig_sr: int, target_sr: int) -> np.ndarray:
    """Resample ``wav`` along its last axis from ``orig_sr`` to ``target_sr`` Hz.

    Uses a polyphase filter (``scipy.signal.resample_poly``) with the exact rational ratio
    ``target_sr / orig_sr`` reduced to lowest terms, so 44.1 kHz -> 16 kHz is up 160, down 441.

    Args:
        wav: ``(..., time)`` float array.
        orig_sr, target_sr: positive integer rates in Hz.

    Returns:
        ``(..., ceil(time * target_sr / orig_sr))`` float32 array (a copy even when the rates
        are equal).
    """
    if int(orig_sr) <= 0 or int(target_sr) <= 0:
        raise ValueError(f"sample rates must be positive, got {orig_sr} -> {target_sr}")
    wav = np.asarray(wav, dtype=np.float32)
    if int(orig_sr) == int(target_sr):
        return wav.copy()
    ratio = Fraction(int(target_sr), int(orig_sr))
    out = resample_poly(wav, ratio.numerator, ratio.denominator, axis=-1)
    return np.ascontiguousarray(out, dtype=np.float32)


def load_audio(path, sample_rate: int | None = 16000, mono: bool = True) -> np.ndarray:
    """Read an audio file as float32 in [-1, 1], resampled to ``sample_rate``.

    Args:
        path: a WAV, FLAC or OGG file (anything libsndfile reads).
        sample_rate: the rate to return, in Hz; ``None`` keeps the file's own rate.
        mono: ``True`` averages the channels into one; ``False`` keeps them apart.

    Returns:
        ``(time,)`` float32 when ``mono``; ``(channels, time)`` float32 otherwise (a mono
        file gives ``(1, time)``).

    Raises:
        AudioError: the file is missing, unreadable or not audio, holds no samples, or holds
        NaN/inf samples. Silence is legal here; callers that must refuse it use
        :func:`is_silent`.
    """
    path = Path(path)
    if not path.exists():
        raise AudioError(f"{path}: no such file; check the path (relative paths start at {os.getcwd()})")
    if path.is_dir():
        raise AudioError(f"{path}: is a folder, not an audio file; pass one file, or use dcu.data.AudioFolder")
    try:
        data, file_sr = sf.read(str(path), dtype="float32", always_2d=True)
    except Exception as err:  # libsndfile reports corrupt and non-audio files alike
        reason = str(err).splitlines()[0] if str(err) else type(err).__name__
        raise AudioError(
            f"{path}: cannot be read as audio ({reason}); convert it to WAV or FLAC "
            "(e.g. `ffmpeg -i in.xxx -ar 16000 out.wav`)"
        ) from err
    if data.shape[0] == 0:
        raise AudioError(f"{path}: contains no samples (empty audio); record or export it again")
    if not np.all(np.isfinite(data)):
        raise AudioError(f"{path}: contains NaN or infinite samples; re-export it as 16-bit PCM")
    wav = np.ascontiguousarray(data.T)  # (channels, time)
    if mono:
        wav = wav.mean(axis=0)
    if sample_rate is not None and int(file_sr) != int(sample_rate):
        wav = resample(wav, int(file_sr), int(sample_rate))
    return wav.astype(np.float32, copy=False)


def is_silent(wav, threshold_db: float = -80.0) -> bool:
    """True when the waveform's peak is below ``threshold_db`` dB full scale (or it is all zeros).

    Args:
        wav: any-shaped float array with full scale 1.0.
    """
    wav = np.asarray(wav)
    if wav.size == 0:
        return True
    peak = float(np.max(np.abs(wav)))
    return peak <= 10.0 ** (threshold_db / 20.0)


def save_audio(path, wav, sample_rate: int, overwrite: bool = False) -> Path:
    """Write ``wav`` to ``path`` atomically (temporary file, then ``os.replace``).

    The format follows the file ending (.wav and .flac as 16-bit PCM, .ogg as Vorbis).
    Samples outside [-1, 1] are clipped, as 16-bit PCM would do anyway.

    Args:
        path: destination file; its folder is created if missing.
        wav: ``(time,)`` or ``(channels, time)`` float array.
        sample_rate: rate in Hz.
        overwrite: replace an existing file; by default an existing file is never touched.

    Returns:
        The path written.
    """
    path = Path(path)
    ext = path.suffix.lower()
    if ext not in _FORMATS:
        raise AudioError(f"{path}: unknown audio format {ext!r}; use one of {', '.join(AUDIO_EXTENSIONS)}")
    if path.exists() and not overwrite:
        raise AudioError(f"{path}: already exists; choose another name or pass overwrite=True")
    wav = np.asarray(wav, dtype=np.float32)
    if wav.ndim not in (1, 2) or wav.shape[-1] == 0:
        raise AudioError(f"{path}: expected a (time,) or (channels, time) array with samples, got shape {wav.shape}")
    if not np.all(np.isfinite(wav)):
        raise AudioError(f"{path}: refusing to write NaN or infinite samples; check the model output")
    data = np.clip(wav if wav.ndim == 1 else wav.T, -1.0, 1.0)
    fmt, subtype = _FORMATS[ext]
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    os.close(fd)
    try:
        sf.write(tmp, data, int(sample_rate), format=fmt, subtype=subtype)
        os.replace(tmp, path)
    finally:
        if os.path.exists(tmp):
            os.remove(tmp)
    return path
