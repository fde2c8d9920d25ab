"""Audio files in and out: reading, writing and resampling with clear errors.

Everything in dcu works on 16 kHz float32 waveforms. This module is the one door through which
audio files come in (any rate, any channel count, any format ``soundfile`` reads) and go out
(written atomically, never over a file the user made unless asked).

Limits (checked from the file's header, before any memory is allocated for its samples, so a
small file whose header claims an absurd property fails at once with a one-line error):

- sample rate from :data:`MIN_SAMPLE_RATE` (1 kHz) to :data:`MAX_SAMPLE_RATE` (384 kHz);
- at most :data:`MAX_CHANNELS` (32) channels;
- at most :data:`MAX_SECONDS` (3 hours) and :data:`MAX_SAMPLES` (2**28 samples over all
  channels, 1 GiB as float32) per file. Samples are read in blocks, so a header that claims more
  frames than the file holds costs only what the file really holds.

Names: a file name the OS holds as bytes that are not UTF-8 is passed to libsndfile as those
bytes, and shown escaped in messages (:func:`dcu.base.guard.shown`). A named pipe, device or
socket is refused from ``stat`` before anything opens it (opening a pipe would wait for a writer).

It imports nothing from dcu but :mod:`dcu.base`, so it can be read and tested alone.

Book: book/01_introduction.ipynb
"""

from __future__ import annotations

import os
from fractions import Fraction
from pathlib import Path

import numpy as np
import soundfile as sf
from scipy.signal import resample_poly

from dcu.base.atomic import atomic_write
from dcu.base.guard import first_line, shown, special_file
from dcu.stft import SAMPLE_RATE

__all__ = [
    "AUDIO_EXTENSIONS",
    "WRITABLE",
    "AudioError",
    "MAX_CHANNELS",
    "MAX_SAMPLES",
    "MAX_SAMPLE_RATE",
    "MAX_SECONDS",
    "MIN_SAMPLE_RATE",
    "check_audio",
    "read_audio",
    "is_silent",
    "list_audio_files",
    "load_audio",
    "resample",
    "save_audio",
]

#: File name endings dcu reads as audio (:func:`load_audio`, :func:`list_audio_files`, so ``dcu
#: enhance``, ``dcu evaluate`` and the corpora alike): every format libsndfile reads.
AUDIO_EXTENSIONS = (".wav", ".flac", ".ogg", ".oga", ".opus", ".mp3", ".aif", ".aiff", ".aifc", ".au",
                    ".snd", ".caf", ".w64", ".rf64")

#: Endings :func:`save_audio` writes, with their format (an output of another ending becomes .wav).
WRITABLE = {".wav": ("WAV", "PCM_16"), ".flac": ("FLAC", "PCM_16"), ".ogg": ("OGG", "VORBIS")}


def list_audio_files(folder, recursive: bool = False) -> list[Path]:
    """The audio files (:data:`AUDIO_EXTENSIONS`, any case) in ``folder``, or below it when
    ``recursive``, sorted; hidden files (``.name``) are left out."""
    pattern = "**/*" if recursive else "*"
    return sorted(p for p in Path(folder).glob(pattern)
                  if p.is_file() and p.suffix.lower() in AUDIO_EXTENSIONS and not p.name.startswith("."))

#: Bounds on what :func:`load_audio` accepts (see the module docstring).
MIN_SAMPLE_RATE, MAX_SAMPLE_RATE = 1_000, 384_000
MAX_CHANNELS = 32
MAX_SECONDS = 3 * 3600
MAX_SAMPLES = 2**28


class AudioError(ValueError):
    """A file that cannot be used as audio; the message names the file and the fix."""


def resample(wav: np.ndarray, orig_sr: int, target_sr: int) -> np.ndarray:
    """Resample ``wav`` along its last axis from ``orig_sr`` to ``target_sr`` Hz.

    Uses a polyphase filter (``scipy.signal.resample_poly``) with the exact rational ratio
    ``target_sr / orig_sr`` reduced to lowest terms, so 44.1 kHz -> 16 kHz is up 160, down 441.

    Args:
        wav: ``(..., time)`` float array.
        orig_sr, target_sr: integer rates in Hz, 1 to :data:`MAX_SAMPLE_RATE`.

    Returns:
        ``(..., ceil(time * target_sr / orig_sr))`` float32 array (a copy even when the rates
        are equal).
    """
    if not (0 < int(orig_sr) <= MAX_SAMPLE_RATE and 0 < int(target_sr) <= MAX_SAMPLE_RATE):
        # the polyphase filter grows with the rates: an absurd rate would allocate gigabytes
        raise ValueError(f"sample rates must be positive and at most {MAX_SAMPLE_RATE} Hz, got "
                         f"{orig_sr} -> {target_sr}")
    wav = np.asarray(wav, dtype=np.float32)
    if int(orig_sr) == int(target_sr):
        return wav.copy()
    ratio = Fraction(int(target_sr), int(orig_sr))
    out = resample_poly(wav, ratio.numerator, ratio.denominator, axis=-1)
    return np.ascontiguousarray(out, dtype=np.float32)


def as_numpy(x) -> np.ndarray:
    """``x`` (a numpy array, a list, or a torch tensor on any device) as a numpy array."""
    if hasattr(x, "detach"):  # a torch tensor, recognised without importing torch
        x = x.detach().cpu().numpy()
    return np.asarray(x)


def fit_length(wav: np.ndarray, n: int) -> np.ndarray:
    """``wav`` cut or zero-padded at the end to ``n`` samples along its last (time) axis."""
    if wav.shape[-1] >= n:
        return wav[..., :n]
    return np.pad(wav, [(0, 0)] * (wav.ndim - 1) + [(0, n - wav.shape[-1])])


def check_audio(path) -> sf._SoundFileInfo:
    """The header of an audio file (``soundfile.info``), checked against the module's limits.

    Nothing but the header is read, so this is cheap and allocates nothing that depends on what
    the header claims.

    Returns:
        The ``soundfile`` info object (``samplerate``, ``channels``, ``frames``, ``format``...).

    Raises:
        AudioError: the file is missing, not audio, or its rate, channel count or length is
        outside the limits; the message names the file and the limit.
    """
    path, name = Path(path), shown(path)
    if not path.exists():
        raise AudioError(f"{name}: no such file; check the path (relative paths start at {shown(os.getcwd())})")
    if path.is_dir():
        raise AudioError(f"{name}: is a folder, not an audio file; pass one file, or the folder to `dcu enhance`")
    if special_file(path):
        raise AudioError(f"{name}: is {special_file(path)}, not an audio file; pass a regular file")
    try:
        info = sf.info(os.fsencode(path))  # the name's own bytes, whatever their encoding
    except Exception as err:  # libsndfile reports corrupt and non-audio files alike
        raise _unreadable(path, err) from None
    rate, channels, frames = int(info.samplerate), int(info.channels), int(info.frames)
    if not MIN_SAMPLE_RATE <= rate <= MAX_SAMPLE_RATE:
        raise AudioError(f"{name}: sample rate {rate} Hz is outside {MIN_SAMPLE_RATE}..{MAX_SAMPLE_RATE} Hz "
                         f"(a damaged header?); convert it, e.g. `ffmpeg -i in -ar {SAMPLE_RATE} out.wav`")
    if not 1 <= channels <= MAX_CHANNELS:
        raise AudioError(f"{name}: {channels} channels; dcu reads 1 to {MAX_CHANNELS} "
                         "(a damaged header?); extract the channels you need with ffmpeg or sox")
    if frames > MAX_SECONDS * rate or frames * channels > MAX_SAMPLES:
        raise AudioError(f"{name}: {frames} frames x {channels} channels ({frames / rate / 3600:.1f} h) "
                         f"is over dcu's limit ({MAX_SECONDS // 3600} h, {MAX_SAMPLES} samples per file); "
                         "split it into shorter files")
    return info


def _unreadable(path, err) -> AudioError:
    reason = shown(first_line(err)).replace(repr(os.fsencode(path)), "the file")
    return AudioError(f"{shown(path)}: cannot be read as audio ({reason}); convert it to WAV or FLAC "
                      f"(e.g. `ffmpeg -i in.xxx -ar {SAMPLE_RATE} out.wav`)")


def read_audio(path) -> tuple[np.ndarray, int]:
    """Read an audio file at its own rate: ``((channels, time) float32, rate)``.

    The header is checked first (:func:`check_audio`), and samples are read in blocks of one
    second, so memory follows what the file really holds. Raises :class:`AudioError` as
    :func:`load_audio` does.
    """
    path, name = Path(path), shown(path)
    info = check_audio(path)
    rate, limit = int(info.samplerate), min(MAX_SAMPLES // info.channels, MAX_SECONDS * info.samplerate)
    blocks, frames = [], 0
    try:
        with sf.SoundFile(os.fsencode(path)) as f:
            while True:
                block = f.read(rate, dtype="float32", always_2d=True)
                if not len(block):
                    break
                frames += len(block)
                if frames > limit:
                    raise AudioError(f"{name}: holds more than {limit} frames, dcu's limit "
                                     f"({MAX_SECONDS // 3600} h, {MAX_SAMPLES} samples); split it")
                blocks.append(block)
    except AudioError:
        raise
    except Exception as err:
        if frames:  # libsndfile fails when it seeks past the end of what the file holds
            raise AudioError(f"{name}: cannot be read after {frames} of the {info.frames} frames its "
                             "header claims (truncated or damaged); re-export it") from None
        raise _unreadable(path, err) from None
    if frames == 0:
        raise AudioError(f"{name}: contains no samples (empty audio); record or export it again")
    data = blocks[0] if len(blocks) == 1 else np.concatenate(blocks)
    del blocks
    if not np.all(np.isfinite(data)):
        raise AudioError(f"{name}: contains NaN or infinite samples; re-export it as 16-bit PCM")
    return np.ascontiguousarray(data.T), rate


def load_audio(path, sample_rate: int | None = SAMPLE_RATE, mono: bool = True) -> np.ndarray:
    """Read an audio file as float32 in [-1, 1], resampled to ``sample_rate``.

    Args:
        path: a WAV, FLAC or OGG file (anything libsndfile reads), within the module's limits
            (rate 1-384 kHz, at most 32 channels, 3 hours and 2**28 samples).
        sample_rate: the rate to return, in Hz; ``None`` keeps the file's own rate.
        mono: ``True`` averages the channels into one; ``False`` keeps them apart.

    Returns:
        ``(time,)`` float32 when ``mono``; ``(channels, time)`` float32 otherwise (a mono
        file gives ``(1, time)``).

    Raises:
        AudioError: the file is missing, unreadable or not audio, outside the limits, holds no
        samples, or holds NaN/inf samples. Silence is legal here; callers that must refuse it
        use :func:`is_silent`.
    """
    wav, file_sr = read_audio(path)
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
    """Write ``wav`` to ``path`` atomically (:func:`dcu.base.atomic.atomic_write`: temporary file,
    then ``os.replace``; the file gets the umask's permissions, like any program's output).

    The format follows the file ending (.wav and .flac as 16-bit PCM, .ogg as Vorbis).
    Samples outside [-1, 1] are clipped, as 16-bit PCM would do anyway.

    Args:
        path: destination file; its folder is created if missing.
        wav: ``(time,)`` or ``(channels, time)`` float array.
        sample_rate: rate in Hz.
        overwrite: replace an existing file; by default an existing file is never touched,
            even one that another process writes while this one does (the name is claimed
            atomically: :func:`dcu.base.atomic.atomic_write`).

    Returns:
        The path written.
    """
    path, name = Path(path), shown(path)
    ext = path.suffix.lower()
    if ext not in WRITABLE:
        raise AudioError(f"{name}: unknown audio format {ext!r}; use one of {', '.join(WRITABLE)}")
    if path.exists() and not overwrite:
        raise AudioError(f"{name}: already exists; choose another name or pass overwrite=True")
    wav = np.asarray(wav, dtype=np.float32)
    if wav.ndim not in (1, 2) or wav.shape[-1] == 0:
        raise AudioError(f"{name}: expected a (time,) or (channels, time) array with samples, got shape {wav.shape}")
    if not np.all(np.isfinite(wav)):
        raise AudioError(f"{name}: refusing to write NaN or infinite samples; check the model output")
    data = np.clip(wav if wav.ndim == 1 else wav.T, -1.0, 1.0)
    fmt, subtype = WRITABLE[ext]
    try:  # claimed atomically: a file given this name meanwhile (another process) is never replaced
        return atomic_write(path, lambda tmp: sf.write(os.fsencode(tmp), data, int(sample_rate),
                                                       format=fmt, subtype=subtype), overwrite)
    except FileExistsError:  # given this name while this one was written
        raise AudioError(f"{name}: already exists (another process wrote it meanwhile); nothing "
                         "was replaced; choose another name or folder") from None
