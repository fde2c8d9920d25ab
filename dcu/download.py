"""The full VoiceBank+DEMAND corpus: download, verify, unpack safely, convert to 16 kHz FLAC.

Valentini-Botinhao et al. (2016, 2017), Edinburgh DataShare handle 10283/2791, CC BY 4.0:
the 28-speaker training set (11 572 pairs) and the test set (824 pairs), 48 kHz WAV in zips.
``dcu data download voicebank`` fetches about 5.6 GB into the cache (``$DCU_CACHE``, default
``~/.cache/dcu``) and leaves ``voicebank/{train,valid,test}/{clean,noisy}/*.flac`` at 16 kHz,
which :func:`dcu.data.list_pairs` reads with ``root="voicebank"``. The validation split is the
training set's speakers p226 and p287 (a common choice), so ``train`` keeps 26 speakers.

The ``dcu data`` command and its ``info`` live with the corpora (:func:`dcu.jobs.corpora.data_cli`),
which call this module; it imports nothing from :mod:`dcu.data` or :mod:`dcu.corpus`.

Nothing in the tests or the book's default path calls this module over the network.

Book: book/01_introduction.ipynb (where the full corpus comes from).
"""

from __future__ import annotations

import hashlib
import http.client
import json
import os
import shutil
import urllib.error
import urllib.request
import zipfile
from dataclasses import dataclass
from pathlib import Path, PurePosixPath

from tqdm.auto import tqdm

from dcu.audio import load_audio, save_audio
from dcu.stft import SAMPLE_RATE

__all__ = ["ARCHIVES", "Archive", "DownloadError", "cache_dir", "download_file", "extract_zip",
           "prepare_voicebank", "voicebank_dir"]

BASE_URL = "https://datashare.ed.ac.uk/bitstream/handle/10283/2791"
VALID_SPEAKERS = ("p226", "p287")


@dataclass(frozen=True)
class Archive:
    """One zip of the corpus: where its files go, and what it must hash to (when known)."""

    name: str
    split: str  # "train" or "test"
    side: str  # "clean" or "noisy"
    md5: str | None = None
    size: int | None = None


# MD5s and sizes agree across several independent public download scripts; DataShare's own
# page was not reachable from where this was written. Unknown values are None: the file is then
# checked only for what is known, and a mismatch on a known value is always an error.
ARCHIVES = (
    Archive("clean_trainset_28spk_wav.zip", "train", "clean", "d2d5a45ec32f8fcbf201bde0447e20ba", 2_486_057_279),
    Archive("noisy_trainset_28spk_wav.zip", "train", "noisy", "1fca9e8bafb8cd069f6653c6d92f9e9c", 2_830_205_201),
    Archive("clean_testset_wav.zip", "test", "clean", "34eb1c0ba7ef667e9b966866c542fc16"),
    Archive("noisy_testset_wav.zip", "test", "noisy", "fb1b86caa31e8ba5b506c0c64da9aab5"),
)


class DownloadError(RuntimeError):
    """A download, checksum or archive problem; the message says what to do next."""


def cache_dir(cache=None) -> Path:
    """``cache`` if given, else ``$DCU_CACHE``, else ``~/.cache/dcu``."""
    return Path(cache or os.environ.get("DCU_CACHE") or Path.home() / ".cache" / "dcu").expanduser()


def voicebank_dir(cache=None) -> Path:
    """Where the converted full corpus lives: ``cache_dir()/voicebank``."""
    return cache_dir(cache) / "voicebank"


def _md5(path: Path) -> str:
    digest = hashlib.md5()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def _verify(path: Path, md5: str | None, size: int | None, label: str) -> None:
    """Raise DownloadError (and delete ``path``) if its size or MD5 differs from a known value."""
    actual = path.stat().st_size
    problem = None
    if size is not None and actual != size:
        problem = f"size {actual} bytes, expected {size}"
    elif md5 is not None and (digest := _md5(path)) != md5:
        problem = f"MD5 {digest}, expected {md5}"
    if problem:
        path.unlink()
        raise DownloadError(f"{label}: {problem}; the corrupt file was removed, run the command again")


def download_file(url: str, dest, md5: str | None = None, size: int | None = None,
                  progress: bool = True, timeout: float = 60.0) -> Path:
    """Download ``url`` to ``dest``, resuming a previous partial download, and verify it.

    Bytes arrive in ``dest + ".part"``; an interrupted transfer leaves that file for the next
    call to resume (HTTP Range). Only a complete, verified file is renamed to ``dest``.

    Raises:
        DownloadError: the connection failed or dropped (rerun to resume), or the finished file
        has the wrong size or MD5 (it is deleted).
    """
    dest = Path(dest)
    if dest.exists():
        return dest
    dest.parent.mkdir(parents=True, exist_ok=True)
    part = dest.with_name(dest.name + ".part")
    start = part.stat().st_size if part.exists() else 0
    if size is not None and start > size:
        part.unlink()
        start = 0
    request = urllib.request.Request(url, headers={"User-Agent": "dcu-downloader"})
    if start:
        request.add_header("Range", f"bytes={start}-")
    try:
        response = urllib.request.urlopen(request, timeout=timeout)
    except urllib.error.HTTPError as err:
        if err.code != 416 or not start:  # 416: nothing left to send, the part file is complete
            raise DownloadError(f"{url}: HTTP {err.code} {err.reason}; check the address or try later") from err
        response = None
    except (urllib.error.URLError, OSError) as err:
        raise DownloadError(f"{url}: cannot connect ({err}); check the network and run again") from err
    if response is not None:
        with response:
            if start and response.status != 206:  # server ignored the Range header: start over
                start = 0
            length = response.headers.get("Content-Length")
            expected = start + int(length) if length is not None else size
            received = start
            with open(part, "ab" if start else "wb") as f, tqdm(
                total=expected, initial=start, unit="B", unit_scale=True, desc=dest.name, disable=not progress
            ) as bar:
                try:
                    while block := response.read(1 << 16):
                        f.write(block)
                        received += len(block)
                        bar.update(len(block))
                except (OSError, http.client.HTTPException) as err:
                    raise DownloadError(f"{dest.name}: connection dropped after {received} bytes ({err}); "
                                        "run the command again to resume") from err
            if expected is not None and received < expected:
                raise DownloadError(f"{dest.name}: connection dropped after {received} of {expected} bytes; "
                                    "run the command again to resume")
    _verify(part, md5, size, dest.name)
    os.replace(part, dest)
    return dest


def extract_zip(archive, target) -> Path:
    """Unpack ``archive`` into the folder ``target``, refusing members that would escape it.

    Absolute paths, ``..`` components and symbolic links are refused before anything is
    written. Files are unpacked into a temporary sibling folder that is renamed to ``target``
    only when complete.
    """
    archive, target = Path(archive), Path(target)
    try:
        zf = zipfile.ZipFile(archive)
    except zipfile.BadZipFile as err:
        raise DownloadError(f"{archive}: not a valid zip archive ({err}); delete it and download again") from err
    with zf:
        for info in zf.infolist():
            name = PurePosixPath(info.filename.replace("\\", "/"))
            is_link = (info.external_attr >> 16) & 0o170000 == 0o120000
            if name.is_absolute() or ".." in name.parts or ":" in info.filename or is_link:
                raise DownloadError(f"{archive}: member {info.filename!r} would be written outside "
                                    f"{target}; refusing to unpack this archive")
        tmp = target.with_name(f".{target.name}.partial")
        shutil.rmtree(tmp, ignore_errors=True)
        zf.extractall(tmp)
    shutil.rmtree(target, ignore_errors=True)
    os.replace(tmp, target)
    return target


def _convert(raw: Path, archive: Archive, out: Path, progress: bool) -> int:
    """48 kHz WAVs under ``raw`` -> 16 kHz FLACs in out/<split>/<side>/ (valid speakers apart)."""
    wavs = sorted(raw.rglob("*.wav"))
    for wav in tqdm(wavs, desc=f"converting {archive.name}", unit="file", disable=not progress):
        split = "valid" if archive.split == "train" and wav.stem.split("_")[0] in VALID_SPEAKERS else archive.split
        dst = out / split / archive.side / f"{wav.stem}.flac"
        if not dst.exists():  # files are written atomically, so an existing one is complete
            save_audio(dst, load_audio(wav, SAMPLE_RATE), SAMPLE_RATE)
    return len(wavs)


def prepare_voicebank(cache=None, base_url: str = BASE_URL, archives=ARCHIVES, progress: bool = True) -> Path:
    """Download, verify, unpack and convert the corpus; return ``voicebank_dir(cache)``.

    Every step can be interrupted and rerun: finished archives and converted files are kept.
    The 48 kHz WAVs are deleted after conversion; the zips stay in ``voicebank/archives``.
    """
    out = voicebank_dir(cache)
    counts = {}
    for archive in archives:
        zip_path = download_file(f"{base_url.rstrip('/')}/{archive.name}", out / "archives" / archive.name,
                                 archive.md5, archive.size, progress)
        raw = extract_zip(zip_path, out / "raw" / zip_path.stem)
        counts[archive.name] = _convert(raw, archive, out, progress)
        shutil.rmtree(raw)
    shutil.rmtree(out / "raw", ignore_errors=True)
    (out / "complete.json").write_text(json.dumps(counts, indent=2) + "\n")
    return out
