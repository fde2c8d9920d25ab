"""Noisy speech for training and evaluation: SNR mixing, corpus splits and datasets.

Every corpus comes in through this module: the shipped mini corpus in ``data/``, the full
VoiceBank+DEMAND corpus fetched by :mod:`dcu.download`, any folder holding ``clean/`` and
``noisy/`` files of the same names, and a folder of the user's own recordings.

All waveforms are float32 at 16 kHz. This module never imports the model.

Book: book/01_introduction.ipynb (the corpus), book/07_training.ipynb (mixing and datasets),
book/09_your_recordings.ipynb (:class:`AudioFolder`).
"""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np
import torch
from torch.utils.data import Dataset
from tqdm.auto import tqdm

from dcu.audio import AUDIO_EXTENSIONS, AudioError, load_audio

__all__ = [
    "SPLITS",
    "AudioFolder",
    "EvalSet",
    "PairedFolder",
    "TrainingSet",
    "corpus_dir",
    "list_clean",
    "training_sources",
    "validation_sets",
    "list_pairs",
    "mix_at_snr",
    "snr_db",
    "speech_power",
]

#: Paired splits of the shipped corpus (``<split>/clean`` and ``<split>/noisy``); ``p239_train``
#: is clean speech only (:func:`list_clean`). See data/README.md.
SPLITS = ("train", "valid", "test", "unseen", "p239_valid", "p239_test")
SAMPLE_RATE = 16000


# --------------------------------------------------------------------------- mixing
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


def _fit_length(noise: np.ndarray, length: int, rng) -> np.ndarray:
    """Tile (from a random offset) or crop (at a random offset) ``noise`` to ``length`` samples."""
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
    other SNRs than the protocol's 0/5/10/15 dB. A test checks the achieved SNR to 0.01 dB. Book: book/07_training.ipynb.

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
    chunk = _fit_length(noise, clean.size, rng).astype(np.float64)
    p_speech = speech_power(clean, power)
    p_noise = float(np.mean(chunk**2))
    if p_speech == 0.0 or p_noise == 0.0:
        which = "speech" if p_speech == 0.0 else "noise chunk"
        raise ValueError(f"mix_at_snr: the {which} is silent, so no SNR can be set; pick another segment")
    gain = np.sqrt(p_speech / (p_noise * 10.0 ** (snr_db / 10.0)))
    scaled = (gain * chunk).astype(np.float32)
    return clean + scaled, scaled


# --------------------------------------------------------------------------- corpora
def corpus_dir() -> Path:
    """The shipped data folder: ``$DCU_DATA`` if set, else the repository's ``data/``."""
    env = os.environ.get("DCU_DATA")
    return Path(env) if env else Path(__file__).resolve().parent.parent / "data"


def _audio_files(folder: Path, recursive: bool = False) -> list[Path]:
    pattern = "**/*" if recursive else "*"
    return sorted(
        p for p in folder.glob(pattern)
        if p.is_file() and p.suffix.lower() in AUDIO_EXTENSIONS and not p.name.startswith(".")
    )


class PairedFolder:
    """Noisy/clean pairs from two folders, matched by file name without its extension.

    ``PairedFolder(clean_dir, noisy_dir).pairs`` is a sorted list of
    ``(noisy_path, clean_path)``; ``len()`` and indexing work on it.

    Raises:
        FileNotFoundError: a folder is missing.
        ValueError: a name is in one folder only (all such names are listed), or no pairs.
    """

    def __init__(self, clean_dir, noisy_dir):
        self.clean_dir, self.noisy_dir = Path(clean_dir), Path(noisy_dir)
        for d in (self.clean_dir, self.noisy_dir):
            if not d.is_dir():
                raise FileNotFoundError(f"{d}: no such folder; a paired corpus needs clean/ and noisy/ folders")
        clean = {p.stem: p for p in _audio_files(self.clean_dir)}
        noisy = {p.stem: p for p in _audio_files(self.noisy_dir)}
        only_clean, only_noisy = sorted(clean.keys() - noisy.keys()), sorted(noisy.keys() - clean.keys())
        if only_clean or only_noisy:
            raise ValueError(
                f"unmatched files between {self.clean_dir} and {self.noisy_dir}: "
                f"only in clean: {only_clean or 'none'}; only in noisy: {only_noisy or 'none'}; "
                "give each noisy file a clean file of the same name"
            )
        if not clean:
            raise ValueError(f"{self.clean_dir}: no audio files ({', '.join(AUDIO_EXTENSIONS)})")
        self.pairs = [(noisy[k], clean[k]) for k in sorted(clean)]

    def __len__(self) -> int:
        return len(self.pairs)

    def __getitem__(self, i):
        return self.pairs[i]


def list_pairs(split: str, root=None) -> list[tuple[Path, Path]]:
    """``(noisy_path, clean_path)`` pairs of one split, sorted by name.

    Args:
        split: ``"train"``, ``"valid"``, ``"test"`` or ``"unseen"``.
        root: ``None`` or ``"shipped"`` for the shipped corpus (``corpus_dir()/corpus``);
            ``"voicebank"`` for the full corpus fetched by ``dcu data download voicebank``;
            or any folder holding ``<split>/clean`` and ``<split>/noisy``.
    """
    if root is None or str(root) == "shipped":
        base = corpus_dir() / "corpus"
    elif str(root) == "voicebank":
        from dcu.download import voicebank_dir  # late import: download is optional machinery

        base = voicebank_dir()
        if not base.is_dir():
            raise FileNotFoundError(f"{base}: full corpus not found; run `dcu data download voicebank` first")
    else:
        base = Path(root)
    folder = base / split
    if not folder.is_dir():
        raise FileNotFoundError(f"{folder}: no '{split}' split here; expected {folder}/clean and {folder}/noisy")
    return list(PairedFolder(folder / "clean", folder / "noisy").pairs)


def list_clean(split: str, root=None) -> list[Path]:
    """The clean files of a split, sorted: ``list_clean("p239_train")`` is VCTK p239's training
    speech, which has no noisy side (it is mixed on the fly). ``root`` as in :func:`list_pairs`.
    """
    base = corpus_dir() / "corpus" if root is None or str(root) == "shipped" else Path(root)
    folder = base / split / "clean"
    files = _audio_files(folder) if folder.is_dir() else []
    if not files:
        raise FileNotFoundError(f"{folder}: no clean audio files here; rebuild the corpus with "
                                "data/build_corpus.py or pass a folder holding clean/")
    return files


def training_sources(data: str = "shipped", train_pairs: str = "first_400", extra_speech: str = "") -> dict:
    """The files a training run reads, without reading them: ``{"pairs", "speech", "noises"}``.

    Args:
        data: ``"shipped"``, ``"voicebank"`` or a folder holding ``train/{clean,noisy}``.
        train_pairs: ``"first_400"`` (shipped corpus: the 400 pairs the first shipped models
            trained on, column ``first_400`` of ``splits/train.csv``; other corpora: all) or
            ``"all"``.
        extra_speech: clean-only speech mixed on the fly: ``""`` (none), ``"p239"`` (the shipped
            ``p239_train``) or a folder of clean recordings.

    Returns:
        ``pairs``: ``(noisy, clean)`` paths of ``train``; ``speech``: extra clean paths;
        ``noises``: noise files, the shipped corpus's *training* noises (``splits/noise.json``;
        held-out noises are never listed) or none for other corpora.
    """
    if train_pairs not in ("first_400", "all"):
        raise ValueError(f"--train-pairs {train_pairs!r}: must be 'first_400' or 'all'")
    shipped = data == "shipped"
    pairs = list_pairs("train", None if shipped else data)
    splits = corpus_dir() / "splits"
    if shipped and train_pairs == "first_400" and (splits / "train.csv").exists():
        import csv

        with open(splits / "train.csv") as f:
            rows = list(csv.DictReader(f))
        first = {r["name"] for r in rows if r.get("first_400", "1") == "1"}
        pairs = [p for p in pairs if Path(p[1]).stem in first]
    noises = []
    if shipped:
        import json

        names = json.loads((splits / "noise.json").read_text())["train"]
        noises = [corpus_dir() / "noise" / f"{n}.flac" for n in names]
    if not extra_speech:
        speech = []
    elif extra_speech == "p239":
        speech = list_clean("p239_train")
    else:
        folder = Path(extra_speech)
        speech = _audio_files(folder, recursive=True) if folder.is_dir() else []
        if not speech:
            raise FileNotFoundError(f"--extra-speech {extra_speech}: no audio files there; give 'p239' "
                                    "or a folder of clean recordings")
    return {"pairs": pairs, "speech": speech, "noises": noises}


def validation_sets(data: str = "shipped", names: str = "valid", files: int = 0) -> dict:
    """``{split: [(noisy, clean), ...]}`` for the comma-separated split ``names``.

    Each split is looked up in ``data`` (as in :func:`list_pairs`) and, when that corpus lacks it,
    in the shipped one, so ``p239_valid`` also scores a run on the full VoiceBank corpus (where
    p239 is a *training* speaker: there it measures nothing held out). ``files`` > 0 keeps the
    first ``files`` pairs of each split.
    """
    split_names = [n.strip() for n in str(names).split(",") if n.strip()]
    if not split_names:
        raise ValueError(f"--valid-sets {names!r}: give split names separated by commas, e.g. valid,p239_valid")
    sets = {}
    for name in split_names:
        try:
            pairs = list_pairs(name, None if data == "shipped" else data)
        except FileNotFoundError:
            if data == "shipped":
                raise
            pairs = list_pairs(name)
        sets[name] = pairs[:files] if files else pairs
    return sets


# --------------------------------------------------------------------------- datasets
class TrainingSet(Dataset):
    """Fixed-length random crops of training speech, mixed with noise on the fly, augmented.

    All audio is loaded once into memory (float32, 16 kHz). Item ``i`` of epoch ``e`` draws
    everything from ``np.random.default_rng([seed, e, i])``, so it is the same in every run and
    every DataLoader worker; call :meth:`set_epoch` before each epoch (with
    ``persistent_workers=False``, the default, so that workers see the new epoch).

    The speech is the ``pairs`` (noisy/clean) and then the clean-only ``extra_speech`` files;
    item ``i`` uses speech ``i % (len(pairs) + len(extra_speech))``: a random ``segment``-sample
    crop (files shorter than ``segment`` are zero-padded at the end). A pair keeps its real noisy
    side with probability ``1 - remix_prob``; otherwise, and always for extra speech, the clean
    crop is mixed (:func:`mix_at_snr`, active speech power) with a noise chunk at an SNR drawn
    from ``snrs``; the noise comes, with equal chance, from a training pair's residual
    ``noisy - clean`` or from one of ``noise_files`` (:attr:`noise_sources` names them all).

    Augmentations (:mod:`dcu.augment`), all off by default, which gives exactly the items of the
    set the shipped models were trained with:

    - ``speed=(lo, hi)``: with probability ``speed_prob`` the item (both sides) is sped up by a
      factor uniform in ``[lo, hi]`` (Kaldi-style: shorter and higher by the factor);
    - ``speech_free_prob``: that share of items is noise only, at the level it would have had in
      the mixture, with an all-zero clean target;
    - ``gain_db=(lo, hi)``: noisy and clean scaled together by a gain uniform in dB (peak <= 0.99).

    Returns ``(noisy, clean)``, each a ``(segment,)`` float32 tensor.
    """

    def __init__(self, pairs, noise_files=(), segment: int = 32000, items_per_file: int = 4,
                 remix_prob: float = 0.5, snrs=(0.0, 5.0, 10.0, 15.0), seed: int = 0, progress: bool = True,
                 extra_speech=(), speech_free_prob: float = 0.0, gain_db=None, speed=None,
                 speed_prob: float = 1.0):
        pairs, extra_speech = list(pairs), list(extra_speech)
        if not pairs:
            raise ValueError("TrainingSet needs at least one (noisy, clean) pair")
        self.segment, self.items_per_file = int(segment), int(items_per_file)
        self.remix_prob, self.snrs, self.seed, self.epoch = float(remix_prob), tuple(snrs), int(seed), 0
        self.speech_free_prob, self.speed_prob = float(speech_free_prob), float(speed_prob)
        self.gain_db, self.speed = gain_db, speed
        self.names = [Path(c).stem for _, c in pairs] + [Path(p).stem for p in extra_speech]
        self.noisy, self.clean = [], []
        for noisy_path, clean_path in tqdm(pairs, desc="loading pairs", disable=not progress):
            noisy, clean = load_audio(noisy_path), load_audio(clean_path)
            if noisy.shape != clean.shape:
                raise AudioError(f"{noisy_path}: {noisy.size} samples but its clean file has {clean.size}; "
                                 "pairs must have equal lengths")
            self.noisy.append(noisy)
            self.clean.append(clean)
        self.extra = [load_audio(p) for p in tqdm(extra_speech, desc="loading speech", disable=not progress)]
        self.noises = [load_audio(p) for p in noise_files]
        #: where training noise comes from: residuals of these pairs and these noise files
        self.noise_sources = {"residuals": self.names[: len(pairs)], "files": [Path(p).stem for p in noise_files]}

    def set_epoch(self, epoch: int) -> None:
        """Select the epoch whose crops and remixes ``__getitem__`` returns."""
        self.epoch = int(epoch)

    def __len__(self) -> int:
        return (len(self.clean) + len(self.extra)) * self.items_per_file

    def _noise(self, rng) -> np.ndarray:
        """A training noise: a noise file or a pair's residual, with equal chance."""
        if self.noises and rng.random() < 0.5:
            return self.noises[int(rng.integers(len(self.noises)))]
        j = int(rng.integers(len(self.clean)))
        return self.noisy[j] - self.clean[j]

    def __getitem__(self, index: int):
        from dcu.augment import apply_gain, crop_with_speed, draw_speed

        if not 0 <= index < len(self):
            raise IndexError(f"index {index} out of range for {len(self)} items")
        rng = np.random.default_rng([self.seed, self.epoch, index])
        k = index % (len(self.clean) + len(self.extra))
        factor = draw_speed(rng, self.speed, self.speed_prob)  # 1.0, drawing nothing, when off
        wavs = [self.clean[k], self.noisy[k]] if k < len(self.clean) else [self.extra[k - len(self.clean)]]
        need = int(np.ceil(self.segment * factor))
        start = int(rng.integers(0, max(1, wavs[0].size - need + 1)))
        crops = crop_with_speed(wavs, start, self.segment, factor)
        clean, noisy = crops[0], (crops[1] if len(crops) > 1 else crops[0].copy())
        if self.speech_free_prob > 0 and rng.random() < self.speech_free_prob:
            noise = self._noise(rng)
            snr = float(self.snrs[int(rng.integers(len(self.snrs)))])
            if np.any(clean) and np.any(noise):
                noisy = mix_at_snr(clean, noise, snr, power="active", rng=rng)[1]  # the level it would have
            else:
                noisy = _fit_length(noise, self.segment, rng).astype(np.float32)
            clean = np.zeros_like(clean)
        elif (k >= len(self.clean) or rng.random() < self.remix_prob) and np.any(clean):
            noise = self._noise(rng)
            snr = float(self.snrs[int(rng.integers(len(self.snrs)))])
            if np.any(noise):
                noisy, _ = mix_at_snr(clean, noise, snr, power="active", rng=rng)
        noisy, clean = apply_gain(rng, self.gain_db, noisy, clean)
        return torch.from_numpy(noisy), torch.from_numpy(clean)


class EvalSet(Dataset):
    """Full-length pairs for validation and testing, read from disk one at a time.

    ``EvalSet(pairs)[i]`` is ``(noisy, clean, name)``: two ``(time,)`` float32 numpy arrays at
    16 kHz and the file name without extension. ``EvalSet.from_split("test")`` reads a split.
    """

    def __init__(self, pairs):
        self.pairs = list(pairs)

    @classmethod
    def from_split(cls, split: str, root=None) -> "EvalSet":
        return cls(list_pairs(split, root))

    def __len__(self) -> int:
        return len(self.pairs)

    def __getitem__(self, i):
        noisy_path, clean_path = self.pairs[i]
        noisy, clean = load_audio(noisy_path), load_audio(clean_path)
        n = min(noisy.size, clean.size)
        return noisy[:n], clean[:n], Path(clean_path).stem


class AudioFolder(Dataset):
    """The user's own recordings: every WAV/FLAC/OGG file under ``path`` (recursive, sorted).

    ``AudioFolder(path)[i]`` is ``(wav, name)``: a ``(time,)`` float32 array at
    ``sample_rate`` (channels averaged) and the file's path relative to ``path``. A single
    file may be given instead of a folder. Book: book/09_your_recordings.ipynb.
    """

    def __init__(self, path, sample_rate: int = SAMPLE_RATE):
        self.root, self.sample_rate = Path(path), int(sample_rate)
        if self.root.is_file():
            self.files, self.root = [self.root], self.root.parent
        elif self.root.is_dir():
            self.files = _audio_files(self.root, recursive=True)
        else:
            raise FileNotFoundError(f"{self.root}: no such file or folder; check the path")
        if not self.files:
            raise ValueError(f"{self.root}: no audio files ({', '.join(AUDIO_EXTENSIONS)}) in this folder or below")

    def __len__(self) -> int:
        return len(self.files)

    def __getitem__(self, i):
        path = self.files[i]
        return load_audio(path, self.sample_rate), str(path.relative_to(self.root))
