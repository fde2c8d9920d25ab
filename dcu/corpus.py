"""The corpora dcu knows: the shipped mini corpus, the full VoiceBank+DEMAND, any paired folder.

A corpus is a folder of splits, each ``<split>/clean`` and ``<split>/noisy`` holding files of the
same names. This module finds them and lists their files: the shipped splits (:data:`SPLITS`,
described in data/README.md), the full corpus that :mod:`dcu.download` fetched into the cache
(``root="voicebank"``), or a folder of the user's. It reads no audio itself; the noisy side of
the :data:`REBUILT` splits, which is not shipped, is rebuilt into the cache on first use
(:func:`mixtures_dir`, by :func:`dcu.mixing.rebuild_mixtures`). It also says which files a training
run reads (:func:`training_sources`, :func:`validation_sets`). The data folder itself
(:func:`corpus_dir`) is :func:`dcu.base.paths.data_root`; ``dcu data`` is :mod:`dcu.jobs.corpora`.

Import these names from :mod:`dcu.data`, the one door to the data.

Book: book/01_introduction.ipynb (the corpus), book/07_training.ipynb (what training reads).
"""

from __future__ import annotations

import csv
import json
import warnings
from pathlib import Path

from dcu.audio import AUDIO_EXTENSIONS, list_audio_files
from dcu.base.paths import data_root as corpus_dir
from dcu.download import cache_dir, voicebank_dir
from dcu.librispeech import VOICES_SPLITS, librispeech_files, voices_dir
from dcu.mixing import rebuild_mixtures

__all__ = ["REBUILT", "SPLITS", "PairedFolder", "corpus_dir", "list_clean",
           "list_pairs", "mixtures_dir", "split_table", "training_sources", "validation_sets"]

#: Paired splits of the shipped corpus (``<split>/clean`` and ``<split>/noisy``); ``p239_train``
#: is clean speech only (:func:`list_clean`). See data/README.md.
SPLITS = ("train", "valid", "test", "unseen", "p239_valid", "p239_test")
#: + the unseen-voices splits ``voices_valid`` and ``voices_test`` (:data:`VOICES_SPLITS`), which
#: are mixed into the cache from LibriSpeech after ``dcu data download librispeech``.

#: Shipped splits whose noisy side is rebuilt into the cache on first use (:func:`mixtures_dir`).
REBUILT = ("p239_valid", "p239_test")


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
        shipped = (corpus_dir() / "corpus").resolve()
        for d in (self.clean_dir, self.noisy_dir):
            if not d.is_dir() and d.parent.name in REBUILT and d.parent.parent.resolve() == shipped:
                raise FileNotFoundError(f"{d}: not shipped; the noisy side of {d.parent.name} is rebuilt into the "
                                        f"cache on first use: use dcu.data.list_pairs('{d.parent.name}') or "
                                        f"`dcu evaluate --split {d.parent.name}`")
            if not d.is_dir():
                raise FileNotFoundError(f"{d}: no such folder; a paired corpus needs clean/ and noisy/ folders")
        clean = {p.stem: p for p in list_audio_files(self.clean_dir)}
        noisy = {p.stem: p for p in list_audio_files(self.noisy_dir)}
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


def split_table(split: str) -> list[dict]:
    """The rows of the shipped split's table ``data/splits/<split>.csv`` (one per file: name,
    speaker, SNR, duration...; see data/README.md), as dicts of strings."""
    with open(corpus_dir() / "splits" / f"{split}.csv", newline="") as f:
        return list(csv.DictReader(f))


def mixtures_dir(split: str, cache=None) -> Path:
    """The noisy side of a :data:`REBUILT` split, ``cache_dir(cache)/corpus/<split>/noisy``, made
    or checked there by :func:`dcu.mixing.rebuild_mixtures` from the shipped clean side, noise
    and recipe (``data/splits/<split>.csv``, ``splits/p239_restore.npz``). Nothing goes into data/."""
    root = corpus_dir()
    return rebuild_mixtures(split_table(split), root / "corpus" / split / "clean", root / "noise",
                            root / "splits" / "p239_restore.npz", cache_dir(cache) / "corpus" / split / "noisy")


def list_pairs(split: str, root=None) -> list[tuple[Path, Path]]:
    """``(noisy_path, clean_path)`` pairs of one split, sorted by name.

    Args:
        split: a split's folder name, e.g. ``"train"``, ``"valid"``, ``"test"``, ``"unseen"``
            (the shipped corpus has the :data:`SPLITS`; the noisy side of the :data:`REBUILT`
            ones is in the cache, built on first use by :func:`mixtures_dir`).
        root: ``None`` or ``"shipped"`` for the shipped corpus (``corpus_dir()/corpus``);
            ``"voicebank"`` for the full corpus fetched by ``dcu data download voicebank``;
            or any folder holding ``<split>/clean`` and ``<split>/noisy``.
    """
    if root is None or str(root) == "shipped":
        base = corpus_dir() / "corpus"
        if split in VOICES_SPLITS:  # mixed into the cache from LibriSpeech (dcu.librispeech)
            return list(PairedFolder(voices_dir(split) / "clean", voices_dir(split) / "noisy").pairs)
        if split in REBUILT:  # the csv's names: a stale file in the cache is no pair
            noisy, names = mixtures_dir(split), sorted(r["name"] for r in split_table(split))
            return [(noisy / f"{n}.flac", base / split / "clean" / f"{n}.flac") for n in names]
    elif str(root) == "voicebank":
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
    files = list_audio_files(folder) if folder.is_dir() else []
    if not files:
        raise FileNotFoundError(f"{folder}: no clean audio files here; rebuild the corpus with "
                                "`python -m dcu.scripts.build_corpus` or pass a folder holding clean/")
    return files


def training_sources(data: str = "shipped", train_pairs: str = "first_400", extra_speech: str = "") -> dict:
    """The files a training run reads, without reading them: ``{"pairs", "speech", "noises"}``.

    Args:
        data: ``"shipped"``, ``"voicebank"`` or a folder holding ``train/{clean,noisy}``.
        train_pairs: ``"first_400"`` (shipped corpus: the 400 pairs shipped, which the first
            shipped models trained on, column ``first_400`` of ``splits/train.csv``; other
            corpora: all) or ``"all"``: every pair in ``train``, which for the shipped corpus is
            the same 400 unless ``python -m dcu.scripts.build_corpus --extra-train-pairs`` added
            the 104 of ``splits/train_extra.csv`` (issue 16's 504-pair set; a warning says so).
        extra_speech: clean-only speech mixed on the fly, comma-separated sources: ``""`` (none),
            ``"p239"`` (the shipped ``p239_train``), ``"librispeech"`` (the 251 listed
            train-clean-100 utterances, :func:`dcu.librispeech.librispeech_files`) or a folder of
            clean recordings; e.g. ``"p239,librispeech"``.

    Returns:
        ``pairs``: ``(noisy, clean)`` paths of ``train``; ``speech``: extra clean paths, all
        sources together; ``speech_sources``: ``{source: [paths]}``, the same paths by source;
        ``noises``: noise files, the shipped corpus's *training* noises (``splits/noise.json``;
        held-out noises are never listed) or none for other corpora.
    """
    if train_pairs not in ("first_400", "all"):
        raise ValueError(f"--train-pairs {train_pairs!r}: must be 'first_400' or 'all'")
    shipped = data == "shipped"
    pairs = list_pairs("train", None if shipped else data)
    splits = corpus_dir() / "splits"
    if shipped and train_pairs == "first_400" and (splits / "train.csv").exists():
        first = {r["name"] for r in split_table("train") if r.get("first_400", "1") == "1"}
        pairs = [p for p in pairs if Path(p[1]).stem in first]
    if shipped and train_pairs == "all" and (splits / "train_extra.csv").exists():
        listed = {r["name"] for r in split_table("train_extra")}
        missing = len(listed - {Path(c).stem for _, c in pairs})
        if missing:
            warnings.warn(f"--train-pairs all: {missing} of the {len(listed)} extra pairs listed in "
                          f"{splits / 'train_extra.csv'} are not in {corpus_dir() / 'corpus' / 'train'} (not "
                          f"shipped), so this trains on its {len(pairs)} pairs, not {len(pairs) + missing}; "
                          "`python -m dcu.scripts.build_corpus --extra-train-pairs` adds them", stacklevel=2)
    noises = []
    if shipped:
        names = json.loads((splits / "noise.json").read_text())["train"]
        noises = [corpus_dir() / "noise" / f"{n}.flac" for n in names]
    sources = {}
    for source in [t.strip() for t in str(extra_speech).split(",") if t.strip()]:
        if source == "p239":
            sources[source] = list_clean("p239_train")
        elif source == "librispeech":
            sources[source] = librispeech_files("train-clean-100")
        else:
            folder = Path(source)
            sources[source] = list_audio_files(folder, recursive=True) if folder.is_dir() else []
            if not sources[source]:
                raise FileNotFoundError(f"--extra-speech {source}: no audio files there; give 'p239', "
                                        "'librispeech' or a folder of clean recordings")
    speech = [p for paths in sources.values() for p in paths]
    return {"pairs": pairs, "speech": speech, "speech_sources": sources, "noises": noises}


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
