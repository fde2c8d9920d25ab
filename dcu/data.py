"""The one door to the data: every corpus, the SNR mixing, and the datasets training reads.

Import from here whatever concerns data: the corpora and their splits
(:mod:`dcu.corpus`: :data:`SPLITS`, :func:`corpus_dir`, :func:`list_pairs`, :class:`PairedFolder`
...: the shipped mini corpus in ``data/``, the full VoiceBank+DEMAND fetched by
:mod:`dcu.download`, any folder of ``clean/`` and ``noisy/`` files of the same names), the mixing
arithmetic (:mod:`dcu.mixing`: :func:`mix_at_snr`, :func:`snr_db`, :func:`speech_power`), and
the dataset defined here: :class:`TrainingSet` (training crops, remixed and augmented on the
fly). Validation and test sets are lists of ``(noisy, clean)`` paths, read whole.

All waveforms are float32 at 16 kHz. This module never imports the model.

Book: book/01_introduction.ipynb (the corpus), book/07_training.ipynb (mixing and datasets).
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import torch
from torch.utils.data import Dataset
from tqdm.auto import tqdm

from dcu.audio import AudioError, load_audio
from dcu.augment import apply_gain, crop_with_speed, draw_speed
from dcu.corpus import (REBUILT, SPLITS, PairedFolder, corpus_dir, list_clean, list_pairs, split_table,
                        training_sources, validation_sets)
from dcu.mixing import loop_or_crop, mix_at_snr, snr_db, speech_power

__all__ = [
    "SPLITS",
    "PairedFolder",
    "REBUILT",
    "TrainingSet",
    "corpus_dir",
    "list_clean",
    "list_pairs",
    "mix_at_snr",
    "snr_db",
    "speech_power",
    "split_table",
    "training_sources",
    "validation_sets",
]


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

    Sources: by default every file is used equally often, so a source's share of the items is
    its share of the files. ``source_weights={"pairs": w, name: w, ...}`` sets the shares instead
    (relative weights; ``"pairs"`` are the noisy/clean pairs, the other names those of
    ``extra_speech`` given as a dict ``{name: [paths]}``): item ``i`` then draws its source by
    these weights and a file of it uniformly, so 251 long LibriSpeech clips can count as much as
    400 short VoiceBank pairs, or as little as wanted.

    Returns ``(noisy, clean)``, each a ``(segment,)`` float32 tensor.
    """

    def __init__(self, pairs, noise_files=(), segment: int = 32000, items_per_file: int = 4,
                 remix_prob: float = 0.5, snrs=(0.0, 5.0, 10.0, 15.0), seed: int = 0, progress: bool = True,
                 extra_speech=(), speech_free_prob: float = 0.0, gain_db=None, speed=None,
                 speed_prob: float = 1.0, source_weights=None):
        groups = dict(extra_speech) if isinstance(extra_speech, dict) else {"speech": list(extra_speech)}
        pairs, extra_speech = list(pairs), [p for paths in groups.values() for p in paths]
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
        self.weights, self.members = None, None
        if source_weights:
            self._set_weights(dict(source_weights), {"pairs": len(pairs), **{g: len(v) for g, v in groups.items()}})
        #: where training noise comes from: residuals of these pairs and these noise files
        self.noise_sources = {"residuals": self.names[: len(pairs)], "files": [Path(p).stem for p in noise_files]}

    def _set_weights(self, weights: dict, sizes: dict) -> None:
        unknown = sorted(set(weights) - set(sizes))
        if unknown:
            raise ValueError(f"source weights name {', '.join(unknown)}, not a source of this set "
                             f"({', '.join(sizes)}); give a weight to each of those")
        missing = sorted(g for g, n in sizes.items() if n and g not in weights)
        if missing:
            raise ValueError(f"source weights give no weight to {', '.join(missing)}; give every source a weight "
                             "(0 leaves it out)")
        start, self.members, shares = 0, [], []
        for group, n in sizes.items():
            w = float(weights.get(group, 0.0))
            if not (np.isfinite(w) and w >= 0):
                raise ValueError(f"source weight {group}={w}: must be a number >= 0")
            if n and w > 0:
                self.members.append(np.arange(start, start + n))
                shares.append(w)
            start += n
        if not shares:
            raise ValueError("source weights: at least one source needs a weight > 0")
        self.weights = np.asarray(shares) / np.sum(shares)

    def source_shares(self) -> dict:
        """Expected share of the items drawn from each file index range (for logs and tests)."""
        if self.weights is None:
            n = len(self.clean) + len(self.extra)
            return {"pairs": len(self.clean) / n, "speech": len(self.extra) / n}
        return {f"{int(m[0])}-{int(m[-1])}": float(w) for m, w in zip(self.members, self.weights)}

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
        if not 0 <= index < len(self):
            raise IndexError(f"index {index} out of range for {len(self)} items")
        rng = np.random.default_rng([self.seed, self.epoch, index])
        if self.weights is None:
            k = index % (len(self.clean) + len(self.extra))
        else:  # a source by its weight, then one of its files
            members = self.members[int(rng.choice(len(self.members), p=self.weights))]
            k = int(members[int(rng.integers(len(members)))])
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
                noisy = loop_or_crop(noise, self.segment, rng).astype(np.float32)
            clean = np.zeros_like(clean)
        elif (k >= len(self.clean) or rng.random() < self.remix_prob) and np.any(clean):
            noise = self._noise(rng)
            snr = float(self.snrs[int(rng.integers(len(self.snrs)))])
            if np.any(noise):
                noisy, _ = mix_at_snr(clean, noise, snr, power="active", rng=rng)
        noisy, clean = apply_gain(rng, self.gain_db, noisy, clean)
        return torch.from_numpy(noisy), torch.from_numpy(clean)
