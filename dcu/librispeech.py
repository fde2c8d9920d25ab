"""Many voices: the LibriSpeech utterances dcu trains on, and the unseen-voices splits.

LibriSpeech (Panayotov, Chen, Povey and Khudanpur, ICASSP 2015; openslr.org/12; CC BY 4.0) is
read English audiobook speech at 16 kHz. dcu uses a small, listed part of it
(``data/splits/librispeech.csv``, one row per utterance, with the hash of its 16-bit samples):

- ``train-clean-100``: 251 speakers, one utterance each (52 min): the speaker variety that the
  three VoiceBank/VCTK voices of the shipped corpus lack, mixed with training noise on the fly;
- ``test-other``: 6 speakers, 10 utterances each, none of them in any training set: the
  unseen-voices splits ``voices_valid`` (3 speakers, for choosing checkpoints) and
  ``voices_test`` (the other 3, for reporting), speaker-disjoint.

The audio is not shipped in ``data/``. ``dcu data download librispeech`` fetches the two official
archives (6.7 GB in all), checks their MD5, and keeps only the listed utterances, checked by
hash, in ``cache_dir()/librispeech/<subset>/``; ``--source FOLDER`` copies them from a local
folder of the same layout instead (no network). The unseen-voices splits are then mixed into
``cache_dir()/corpus/voices_{valid,test}/{clean,noisy}`` from a recipe
(``data/splits/voices_*.csv``: noise, offset, gain, scale; checked by hash), with noise that no
training run reads: the held-out noise files and the DEMAND residuals ``noisy - clean`` of the
shipped ``valid`` (for ``voices_valid``) and ``test`` (for ``voices_test``) pairs.

Book: book/07_training.ipynb (training on many voices), book/08_evaluation.ipynb (unseen voices).
"""

from __future__ import annotations

import csv
import os
import shutil
import tarfile
from pathlib import Path

import numpy as np
from tqdm.auto import tqdm

from dcu.audio import AudioError, load_audio, save_audio
from dcu.base.paths import data_root
from dcu.download import Archive, DownloadError, cache_dir, download_file
from dcu.mixing import loop_from, pcm16_sha256, snr_gain, to_pcm16
from dcu.stft import SAMPLE_RATE

__all__ = ["LIBRISPEECH_ARCHIVES", "LIBRISPEECH_URL", "VOICES_SPLITS", "librispeech_dir", "librispeech_files",
           "load_noise", "mix_recipe", "prepare_librispeech", "voices_dir"]

LIBRISPEECH_URL = "https://www.openslr.org/resources/12"

#: The two official archives the listed utterances come from (MD5 and size as openslr.org lists them).
LIBRISPEECH_ARCHIVES = (
    Archive("test-other.tar.gz", "test-other", "clean", "fb5a50374b501bb3bac4815ee91d3135", 328_757_843),
    Archive("train-clean-100.tar.gz", "train-clean-100", "clean", "2a93770f6d5c6c964bc36631d331a522",
            6_387_309_499),
)

#: The unseen-voices splits (test-other speakers mixed with held-out noise), built in the cache.
VOICES_SPLITS = ("voices_valid", "voices_test")


def _splits_dir() -> Path:
    return data_root() / "splits"


def _table(name: str) -> list[dict]:
    with open(_splits_dir() / f"{name}.csv", newline="") as f:
        return list(csv.DictReader(f))


def librispeech_dir(cache=None) -> Path:
    """Where the listed utterances live: ``cache_dir(cache)/librispeech/<subset>/<name>.flac``."""
    return cache_dir(cache) / "librispeech"


def librispeech_files(subset: str = "train-clean-100", cache=None, check: bool = False) -> list[Path]:
    """The listed utterances of ``subset`` (sorted by name), as paths in :func:`librispeech_dir`.

    Raises FileNotFoundError, naming the command that fetches them, when any is missing;
    ``check=True`` also verifies each file's samples against its hash (AudioError if altered).
    """
    rows = [r for r in _table("librispeech") if r["subset"] == subset]
    if not rows:
        raise ValueError(f"{subset!r}: not a LibriSpeech subset dcu lists; choose train-clean-100 or test-other")
    root = librispeech_dir(cache) / subset
    paths = [root / f"{r['name']}.flac" for r in rows]
    missing = [p for p in paths if not p.is_file()]
    if missing:
        raise FileNotFoundError(f"{missing[0]}: {len(missing)} of the {len(paths)} listed LibriSpeech {subset} "
                                "utterances are missing; run `dcu data download librispeech` (or add "
                                "`--source FOLDER` to copy them from a local LibriSpeech folder)")
    if check:
        for path, row in zip(paths, rows):
            if pcm16_sha256(load_audio(path)) != row["pcm_sha256"]:
                raise AudioError(f"{path}: its samples differ from the listed utterance; delete it and run "
                                 "`dcu data download librispeech` again")
    return sorted(paths)


def _keep(wav_path: Path, row: dict, dest: Path) -> bool:
    """Copy ``wav_path`` to ``dest`` (atomically, as 16-bit FLAC) if its samples hash to ``row``'s."""
    wav = load_audio(wav_path)
    if pcm16_sha256(wav) != row["pcm_sha256"]:
        return False
    save_audio(dest, wav, SAMPLE_RATE, overwrite=True)
    return True


def prepare_librispeech(cache=None, base_url: str = LIBRISPEECH_URL, source=None, progress: bool = True,
                        archives=LIBRISPEECH_ARCHIVES) -> Path:
    """Put every listed utterance into :func:`librispeech_dir`; return that folder.

    ``source``: a local folder holding ``<subset>/`` trees of LibriSpeech FLAC files (any depth,
    e.g. the official ``LibriSpeech/`` folder or a copy of the listed files): copied, no network.
    Otherwise each official archive is downloaded (resumable, MD5-checked) into
    ``librispeech/archives`` and only the listed members are read out of it, by name, never by
    the path the archive gives. Every kept file is checked against its hash. Rerunning is cheap:
    files already in place are kept.

    Raises:
        DownloadError: a download or archive problem, or a listed utterance the source lacks.
    """
    out = librispeech_dir(cache)
    rows = _table("librispeech")
    for archive in archives:
        want = {r["name"]: r for r in rows if r["subset"] == archive.split}
        todo = {n: r for n, r in want.items() if not (out / archive.split / f"{n}.flac").is_file()}
        if not todo:
            continue
        if source is not None:
            found = {p.stem: p for p in Path(source).rglob("*.flac") if p.stem in todo}
            for name, row in tqdm(sorted(todo.items()), desc=f"copying {archive.split}", disable=not progress):
                if name not in found or not _keep(found[name], row, out / archive.split / f"{name}.flac"):
                    raise DownloadError(f"{Path(source) / archive.split}: {name}.flac is missing there or differs "
                                        "from the listed utterance; point --source at a LibriSpeech folder")
            continue
        path = download_file(f"{base_url}/{archive.name}", out / "archives" / archive.name, archive.md5,
                             archive.size, progress=progress)
        _extract_listed(path, todo, out / archive.split, progress)
    return out


def _extract_listed(path: Path, todo: dict, dest: Path, progress: bool) -> None:
    """Read ``todo``'s utterances out of the tar.gz at ``path`` (streamed, members by file name)."""
    tmp = dest.parent / f".{dest.name}.extract"
    shutil.rmtree(tmp, ignore_errors=True)
    tmp.mkdir(parents=True)
    try:
        with tarfile.open(path, "r|gz") as tar, tqdm(total=len(todo), desc=f"reading {path.name}",
                                                     disable=not progress) as bar:
            for member in tar:
                name = os.path.basename(member.name)
                stem = name[:-5] if name.endswith(".flac") else None
                if not member.isfile() or stem not in todo:
                    continue
                raw = tmp / name
                with tar.extractfile(member) as src, open(raw, "wb") as f:
                    shutil.copyfileobj(src, f)
                if not _keep(raw, todo[stem], dest / name):
                    raise DownloadError(f"{path}: {member.name} differs from the listed utterance; delete "
                                        "the archive and download again")
                raw.unlink()
                bar.update()
    except (tarfile.TarError, EOFError, OSError) as err:
        if isinstance(err, DownloadError):
            raise
        raise DownloadError(f"{path}: not a readable tar.gz archive ({err}); delete it and download again") from err
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    lacking = sorted(n for n in todo if not (dest / f"{n}.flac").is_file())
    if lacking:
        raise DownloadError(f"{path}: {len(lacking)} listed utterances are not in this archive (e.g. {lacking[0]}); "
                            "delete it and download again")


def load_noise(name: str, root: Path) -> np.ndarray:
    """A noise a recipe names: ``<file>`` (``root/noise/<file>.flac``) or ``residual:<split>/<name>``,
    the noise of a shipped pair, ``noisy - clean`` (``root/corpus/<split>/{noisy,clean}/<name>.flac``)."""
    if name.startswith("residual:"):
        split, pair = name[len("residual:"):].split("/")
        folder = root / "corpus" / split
        return load_audio(folder / "noisy" / f"{pair}.flac") - load_audio(folder / "clean" / f"{pair}.flac")
    return load_audio(root / "noise" / f"{name}.flac")


def mix_recipe(clean: np.ndarray, noise: np.ndarray, offset: int, gain: float, peak_scale: float):
    """``(clean side, mixture)`` of a recipe, each as a 16-bit file holds it: the speech and
    ``gain`` times the noise looped from ``offset``, both scaled by ``peak_scale``. No RNG."""
    clean = np.asarray(clean, dtype=np.float32)
    chunk = loop_from(np.asarray(noise, dtype=np.float32), int(offset), clean.size).astype(np.float64)
    mixture = (clean + (float(gain) * chunk).astype(np.float32)) * np.float32(peak_scale)
    side = clean * np.float32(peak_scale)
    return (to_pcm16(side).astype(np.float32) / np.float32(32768),
            to_pcm16(mixture).astype(np.float32) / np.float32(32768))


def make_voices_recipe(clean: np.ndarray, noise: np.ndarray, snr: float, rng, peak: float = 0.99) -> dict:
    """Draw a recipe mixing ``clean`` with ``noise`` at ``snr`` dB (active speech power)."""
    offset = int(rng.integers(0, max(1, noise.size)))
    chunk = loop_from(noise, offset, clean.size).astype(np.float64)
    gain = snr_gain(clean, chunk, snr, "active")
    loud = float(np.max(np.abs(clean + gain * chunk)))
    return {"offset": offset, "noise_gain": gain, "peak_scale": min(1.0, peak / loud)}


def voices_dir(split: str, cache=None) -> Path:
    """The folder of an unseen-voices split, ``cache_dir()/corpus/<split>`` with ``clean/`` and
    ``noisy/``, made (or checked, by hash) from the listed test-other utterances and the recipe
    ``data/splits/<split>.csv``. Needs :func:`prepare_librispeech` first (FileNotFoundError says so)."""
    if split not in VOICES_SPLITS:
        raise ValueError(f"{split!r}: not an unseen-voices split; choose {' or '.join(VOICES_SPLITS)}")
    root, out = data_root(), cache_dir(cache) / "corpus" / split
    source = librispeech_dir(cache) / "test-other"
    noises = {}
    for row in _table(split):
        clean_out, noisy_out = out / "clean" / f"{row['name']}.flac", out / "noisy" / f"{row['name']}.flac"
        try:
            if (pcm16_sha256(load_audio(noisy_out)) == row["noisy_sha256"]
                    and pcm16_sha256(load_audio(clean_out)) == row["clean_sha256"]):
                continue
        except AudioError:
            pass
        speech = source / f"{row['name']}.flac"
        if not speech.is_file():
            raise FileNotFoundError(f"{speech}: missing, and the {split} split is mixed from it; run "
                                    "`dcu data download librispeech` (or add `--source FOLDER`)")
        if row["noise"] not in noises:
            noises[row["noise"]] = load_noise(row["noise"], root)
        noise = noises[row["noise"]][int(row["noise_start"]): int(row["noise_stop"])]
        side, mixture = mix_recipe(load_audio(speech), noise, int(row["offset"]), float(row["noise_gain"]),
                                   float(row["peak_scale"]))
        if pcm16_sha256(mixture) != row["noisy_sha256"] or pcm16_sha256(side) != row["clean_sha256"]:
            raise RuntimeError(f"{speech}: the {split} pair mixed from it is not the one its recipe records; "
                               "delete it and run `dcu data download librispeech` again")
        save_audio(clean_out, side, SAMPLE_RATE, overwrite=True)
        save_audio(noisy_out, mixture, SAMPLE_RATE, overwrite=True)
    return out
