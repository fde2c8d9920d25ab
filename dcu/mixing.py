"""Noise at a chosen SNR: speech power (whole or active), SNR, and mixing.

The arithmetic every noisy pair in this project comes from: the shipped corpus was mixed with
:func:`mix_at_snr` (``dcu/scripts/build_corpus.py``) and :class:`dcu.data.TrainingSet` remixes
its training items with it on the fly. A mixture whose recipe was written down (the noise's
offset, the gain, the peak scaling; ``data/splits/p239_{valid,test}.csv``) is rebuilt sample for
sample by :func:`remix`, with no random generator. Everything works on ``(time,)`` numpy arrays
but :func:`rebuild_mixtures`, which rebuilds the files of such a split (into the cache: the
noisy side of ``p239_valid`` and ``p239_test`` is not shipped); nothing here knows the model.

Book: book/01_introduction.ipynb (active speech level), book/07_training.ipynb (mixing).
"""

from __future__ import annotations

import hashlib
from pathlib import Path

import numpy as np

from dcu.audio import AudioError, load_audio, save_audio
from dcu.stft import SAMPLE_RATE

__all__ = [
    "loop_from",
    "loop_or_crop",
    "make_recipe",
    "mix_at_snr",
    "noise_offset",
    "pcm16_sha256",
    "rebuild_mixtures",
    "remix",
    "snr_db",
    "snr_gain",
    "speech_power",
    "to_pcm16",
]


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


def noise_offset(noise_size: int, length: int, rng) -> int:
    """Where a ``length``-sample chunk of a ``noise_size``-sample noise starts, drawn from ``rng``
    as :func:`loop_or_crop` draws it (``rng=None``: 0). Two draws: the first is kept when the
    noise is shorter than ``length`` (it is looped), replaced by the second when it is longer."""
    if rng is None:
        return 0
    offset = int(rng.integers(0, noise_size))
    if noise_size >= length:
        offset = int(rng.integers(0, noise_size - length + 1))
    return offset


def loop_from(noise: np.ndarray, offset: int, length: int) -> np.ndarray:
    """``length`` samples of ``noise`` from ``offset`` on, looping back to its start as often as
    needed (a plain slice when the noise is long enough)."""
    if offset + length <= noise.size:
        return noise[offset : offset + length]
    reps = -(-(offset + length) // noise.size)
    return np.tile(noise, reps)[offset : offset + length]


def loop_or_crop(noise: np.ndarray, length: int, rng) -> np.ndarray:
    """``noise`` made exactly ``length`` samples long: a longer noise is cropped at a random
    offset, a shorter one looped (tiled) from a random offset. ``rng=None`` uses offset 0.

    Unlike :func:`dcu.audio.fit_length`, which cuts or zero-pads a signal at its end, this keeps
    the noise continuous and never inserts silence, so a short noise still covers long speech.
    """
    return loop_from(noise, noise_offset(noise.size, length, rng), length)


def snr_gain(clean, chunk, snr_db: float, power: str = "whole") -> float:
    """The amplitude gain that puts ``chunk`` (as long as ``clean``) at ``snr_db`` dB below the
    speech (see :func:`mix_at_snr`). Raises ValueError when the speech or the chunk is silent."""
    p_speech = speech_power(clean, power)
    p_noise = float(np.mean(np.asarray(chunk, dtype=np.float64) ** 2))
    if p_speech == 0.0 or p_noise == 0.0:
        which = "speech" if p_speech == 0.0 else "noise chunk"
        raise ValueError(f"mix_at_snr: the {which} is silent, so no SNR can be set; pick another segment")
    return float(np.sqrt(p_speech / (p_noise * 10.0 ** (snr_db / 10.0))))


def to_pcm16(wav) -> np.ndarray:
    """The ``int16`` samples a 16-bit file of ``wav`` holds (what :func:`dcu.audio.save_audio`
    writes): clipped to [-1, 1], times 32768, rounded half to even, kept within int16."""
    x = np.clip(np.asarray(wav, dtype=np.float32), -1.0, 1.0) * np.float32(32768)
    return np.clip(np.rint(x), -32768, 32767).astype(np.int16)


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
    scaled = (snr_gain(clean, chunk, snr_db, power) * chunk).astype(np.float32)
    return clean + scaled, scaled


def pcm16_sha256(wav) -> str:
    """SHA-256 of the 16-bit samples a file of ``wav`` holds (:func:`to_pcm16`, little-endian):
    what the corpus's csv files record for each rebuilt mixture."""
    return hashlib.sha256(to_pcm16(wav).astype("<i2").tobytes()).hexdigest()


def remix(clean, noise, offset: int, gain: float, peak_scale: float = 1.0, restore=None) -> np.ndarray:
    """Rebuild a mixture of the shipped corpus from its recipe, sample for sample, no RNG.

    The mixture was made as ``peak_scale * (speech + gain * loop_from(noise, offset, n))`` in
    float32 and saved as 16 bits, with its clean side ``peak_scale * speech`` (``peak_scale < 1``
    when the sum would have clipped). Given that clean side, the noise, and the recipe, this
    returns the same mixture. Scaling by ``peak_scale < 1`` and rounding to 16 bits merges some
    neighbouring speech samples, so the speech is then recovered as
    ``round(pcm16(clean) / peak_scale) + restore`` (in 16-bit steps): ``restore`` is the small
    ``int8`` correction that the corpus build wrote down (at most ``0.5 / peak_scale + 0.5`` steps;
    -1, 0 or 1 for the shipped mixtures, scaled by 0.57 or more).

    Args:
        clean: ``(n,)`` float32, the shipped clean file as :func:`dcu.audio.load_audio` reads it.
        noise: ``(noise_time,)`` float32, the part of the noise file the recipe names.
        offset, gain, peak_scale: the recipe (start sample in ``noise``, amplitude gain, scaling).
        restore: ``(n,)`` int8, needed when ``peak_scale < 1``.

    Returns:
        ``(n,)`` float32 mixture, exactly representable in 16 bits (``to_pcm16`` round-trips it).
    """
    clean = np.asarray(clean, dtype=np.float32)
    if peak_scale < 1.0:
        if restore is None or np.shape(restore) != clean.shape:
            raise ValueError(f"remix: peak_scale {peak_scale} < 1 needs a restore array of {clean.size} samples")
        steps = np.rint(to_pcm16(clean).astype(np.float64) / peak_scale) + np.asarray(restore, dtype=np.float64)
        clean = (steps / 32768.0).astype(np.float32)
    chunk = loop_from(np.asarray(noise, dtype=np.float32), int(offset), clean.size).astype(np.float64)
    mixture = (clean + (float(gain) * chunk).astype(np.float32)) * float(peak_scale)
    return to_pcm16(mixture).astype(np.float32) / np.float32(32768)


def make_recipe(clean, noise, snr_db: float, rng, peak: float = 0.99) -> dict:
    """Mix 16-bit ``clean`` with ``noise`` at ``snr_db`` as ``mix_at_snr(power="active")`` does
    (the same draws from ``rng``), scaled down with its clean side when louder than ``peak``, and
    return what :func:`remix` rebuilds it from, having checked that it does, sample for sample.

    Returns:
        ``offset``, ``gain``, ``peak_scale`` (the recipe), ``restore`` (``int8``, or ``None``
        when not scaled), and the float32 ``clean`` side and ``mixture`` as 16-bit files hold them.
    """
    clean = np.asarray(clean, dtype=np.float32)
    offset = noise_offset(noise.size, clean.size, rng)
    chunk = loop_from(noise, offset, clean.size).astype(np.float64)
    gain = snr_gain(clean, chunk, snr_db, "active")
    mixture = clean + (gain * chunk).astype(np.float32)
    scale = min(1.0, peak / float(np.max(np.abs(mixture))))
    shipped, restore = to_pcm16(clean * scale) / np.float32(32768), None
    if scale < 1.0:  # the 16-bit speech samples that scaling and rounding merged
        speech = np.rint(clean.astype(np.float64) * 32768)
        restore = speech - np.rint(to_pcm16(shipped) / scale)
        if not np.array_equal(speech / 32768, clean) or np.abs(restore).max() > 127:
            raise ValueError(f"make_recipe: the speech must be 16-bit samples, scaled by no less than 0.005 ({scale})")
        restore = restore.astype(np.int8)
    want = to_pcm16(mixture * scale)
    if not np.array_equal(to_pcm16(remix(shipped, noise, offset, gain, scale, restore)), want):
        raise AssertionError("make_recipe: the recipe does not rebuild the mixture")
    return {"offset": offset, "gain": gain, "peak_scale": scale, "restore": restore, "clean": shipped,
            "mixture": want.astype(np.float32) / np.float32(32768)}


def rebuild_mixtures(rows, clean_dir, noise_dir, restore_file, out) -> Path:
    """Make sure ``out`` holds the mixture of every recipe in ``rows``; returns ``out``.

    ``rows`` are a split's csv rows (``name``, ``noise``, ``noise_start``, ``noise_stop``,
    ``offset``, ``noise_gain``, ``peak_scale``, ``noisy_sha256``). A file of ``out`` is kept while
    its 16-bit samples hash to ``noisy_sha256``; a missing, unreadable or altered one is rebuilt
    by :func:`remix` from ``clean_dir/<name>.flac``, ``noise_dir/<noise>.flac`` and, when scaled
    down, ``restore_file`` (an ``.npz`` of ``restore`` arrays by name), and written atomically.

    Raises:
        FileNotFoundError: an input is missing (one line naming it and the fix).
        RuntimeError: a rebuilt mixture does not hash to its recipe's ``noisy_sha256``.
        OSError: ``out`` cannot be written.
    """
    out, noises, restore = Path(out), {}, None
    for row in rows:
        path, clean = out / f"{row['name']}.flac", Path(clean_dir) / f"{row['name']}.flac"
        noise, scale = Path(noise_dir) / f"{row['noise']}.flac", float(row["peak_scale"])
        for need in [clean, noise] + ([Path(restore_file)] if scale < 1 else []):
            if not need.is_file():
                raise FileNotFoundError(f"{need}: missing, and the noisy mixtures in {out} are rebuilt from it; "
                                        "restore data/ (`git checkout data`) or rebuild it (dcu.scripts.build_corpus)")
        try:
            if pcm16_sha256(load_audio(path)) == row["noisy_sha256"]:
                continue
        except AudioError:
            pass
        if noise not in noises:
            noises[noise] = load_audio(noise)
        if scale < 1 and restore is None:
            with np.load(restore_file) as npz:
                restore = {k: npz[k] for k in npz.files}
        wav = remix(load_audio(clean), noises[noise][int(row["noise_start"]): int(row["noise_stop"])],
                    int(row["offset"]), float(row["noise_gain"]), scale, restore[row["name"]] if scale < 1 else None)
        if pcm16_sha256(wav) != row["noisy_sha256"]:
            raise RuntimeError(f"{clean}: the mixture rebuilt from it is not the one its recipe records; "
                               "restore data/ (`git checkout data`)")
        try:
            save_audio(path, wav, SAMPLE_RATE, overwrite=True)
        except OSError as err:
            raise OSError(f"{out}: cannot write the rebuilt mixtures there ({err.strerror or err}); "
                          "set DCU_CACHE to a writable folder") from None
    return out
