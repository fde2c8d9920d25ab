"""Many voices (dcu.librispeech): the listed LibriSpeech utterances, their download (from a local
HTTP server on 127.0.0.1 or a local folder, never the network), the unseen-voices splits, and
the source weights of the training set."""

import csv
import hashlib
import io
import json
import tarfile
from collections import Counter
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf

from dcu.corpus import corpus_dir, split_table, training_sources
from dcu.data import TrainingSet, list_pairs
from dcu.download import Archive, DownloadError
from dcu.jobs.corpora import data_cli
from dcu.librispeech import (VOICES_SPLITS, librispeech_dir, librispeech_files, mix_recipe, prepare_librispeech,
                             voices_dir)
from dcu.mixing import pcm16_sha256, snr_db
from dcu.training.config import TrainConfig, config_from_args, parse_weights

from test_download import server  # noqa: F401 (the local HTTP server fixture)

SHARED = Path(__file__).resolve().parents[2] / "shared" / "data" / "librispeech"


def test_listed_utterances_and_splits_are_speaker_disjoint():
    rows = split_table("librispeech")
    train = {r["speaker"] for r in rows if r["subset"] == "train-clean-100"}
    other = {r["speaker"] for r in rows if r["subset"] == "test-other"}
    assert len(train) == 251 and len(other) == 6 and not train & other
    assert sum(r["subset"] == "train-clean-100" for r in rows) == 251  # one utterance per speaker
    valid, test = ({r["speaker"] for r in split_table(s)} for s in VOICES_SPLITS)
    assert len(valid) == len(test) == 3 and not valid & test and valid | test == other
    for split in VOICES_SPLITS:
        table = split_table(split)
        assert len(table) == 30
        assert Counter(r["snr_db"] for r in table) == {"2.5": 8, "7.5": 8, "12.5": 7, "17.5": 7}


def test_unseen_voices_noise_is_never_training_noise():
    train_noise = set(json.loads((corpus_dir() / "splits" / "noise.json").read_text())["train"])
    train_pairs = {r["name"] for r in split_table("train")} | {r["name"] for r in split_table("train_extra")}
    for split, residual_split in zip(VOICES_SPLITS, ("valid", "test")):
        for row in split_table(split):
            if row["noise"].startswith("residual:"):
                where, pair = row["noise"][len("residual:"):].split("/")
                assert where == residual_split and pair not in train_pairs
            else:
                assert row["noise"] not in train_noise


def test_mix_recipe_reaches_its_snr_and_scales_both_sides():
    rng = np.random.default_rng(0)
    speech = (rng.standard_normal(16000) * 0.1).astype(np.float32)
    noise = rng.standard_normal(8000).astype(np.float32)
    side, mixture = mix_recipe(speech, noise, 100, 0.05, 0.5)
    assert np.allclose(side, speech * 0.5, atol=1 / 32768)
    assert snr_db(side, mixture - side) == pytest.approx(snr_db(speech, 0.05 * np.tile(noise, 3)[100:16100]),
                                                          abs=0.01)


def _flac(samples: np.ndarray) -> bytes:
    buf = io.BytesIO()
    sf.write(buf, samples, 16000, format="FLAC", subtype="PCM_16")
    return buf.getvalue()


@pytest.fixture
def fake_data(tmp_path, monkeypatch):
    """A data folder listing two synthetic test-other utterances (and the shipped rest)."""
    data = tmp_path / "data"
    (data / "splits").mkdir(parents=True)
    rng = np.random.default_rng(1)
    wavs = {f"9-9-000{i}": np.round(rng.standard_normal(4000) * 2000) / 32768 for i in range(2)}
    with open(data / "splits" / "librispeech.csv", "w", newline="") as f:
        w = csv.DictWriter(f, fieldnames=["subset", "name", "speaker", "duration_s", "pcm_sha256"])
        w.writeheader()
        for name, wav in wavs.items():
            w.writerow({"subset": "test-other", "name": name, "speaker": "9", "duration_s": "0.25",
                        "pcm_sha256": pcm16_sha256(wav)})
    monkeypatch.setenv("DCU_DATA", str(data))
    return wavs


def _tar(members: dict) -> bytes:
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w:gz") as tar:
        for name, data in members.items():
            info = tarfile.TarInfo(name)
            info.size = len(data)
            tar.addfile(info, io.BytesIO(data))
    return buf.getvalue()


def test_download_keeps_only_the_listed_utterances(server, tmp_path, fake_data):  # noqa: F811
    members = {f"LibriSpeech/test-other/9/9/{n}.flac": _flac(w) for n, w in fake_data.items()}
    members["LibriSpeech/test-other/9/9/9-9-0099.flac"] = _flac(np.zeros(100))  # not listed
    members["../../evil/9-9-0000.txt"] = b"never written"
    data = _tar(members)
    server.files["test-other.tar.gz"] = data
    archive = Archive("test-other.tar.gz", "test-other", "clean", hashlib.md5(data).hexdigest(), len(data))
    out = prepare_librispeech(tmp_path / "cache", server.url, progress=False, archives=(archive,))
    kept = sorted(p.name for p in (out / "test-other").iterdir())
    assert kept == ["9-9-0000.flac", "9-9-0001.flac"]
    assert librispeech_files("test-other", tmp_path / "cache", check=True)[0].name == "9-9-0000.flac"
    assert not (tmp_path / "evil").exists()
    server.requests.clear()
    prepare_librispeech(tmp_path / "cache", server.url, progress=False, archives=(archive,))
    assert server.requests == []  # everything in place: nothing fetched again


def test_download_refuses_an_archive_with_other_samples(server, tmp_path, fake_data):  # noqa: F811
    members = {f"LibriSpeech/test-other/9/9/{n}.flac": _flac(w * 0.5) for n, w in fake_data.items()}
    server.files["test-other.tar.gz"] = data = _tar(members)
    archive = Archive("test-other.tar.gz", "test-other", "clean", hashlib.md5(data).hexdigest(), len(data))
    with pytest.raises(DownloadError, match="differs from the listed utterance"):
        prepare_librispeech(tmp_path / "cache", server.url, progress=False, archives=(archive,))
    assert not list((librispeech_dir(tmp_path / "cache") / "test-other").glob("*.flac"))


def test_copy_from_a_local_folder_and_what_is_missing(tmp_path, fake_data):
    source = tmp_path / "src" / "test-other" / "9"
    source.mkdir(parents=True)
    name, wav = next(iter(fake_data.items()))
    sf.write(source / f"{name}.flac", wav, 16000, subtype="PCM_16")
    archive = Archive("test-other.tar.gz", "test-other", "clean")
    with pytest.raises(DownloadError, match="9-9-0001.flac is missing there"):
        prepare_librispeech(tmp_path / "cache", source=tmp_path / "src", progress=False, archives=(archive,))
    with pytest.raises(FileNotFoundError, match="dcu data download librispeech"):
        librispeech_files("test-other", tmp_path / "cache")


def test_cli_says_what_to_do_without_a_traceback(tmp_path, capsys, fake_data):
    assert data_cli(["download", "librispeech", "--cache", str(tmp_path / "c"), "--source", str(tmp_path)]) == 1
    err = capsys.readouterr().err
    errors = [line for line in err.splitlines() if line.startswith("dcu data: error: ")]  # not the bar
    assert len(errors) == 1 and "--source" in errors[0] and "Traceback" not in err


@pytest.mark.skipif(not SHARED.is_dir(), reason="needs ../shared/data/librispeech, the source the tables list")
def test_unseen_voices_splits_are_rebuilt_from_their_recipes(tmp_path, monkeypatch):
    monkeypatch.setenv("DCU_CACHE", str(tmp_path))
    prepare_librispeech(source=SHARED, progress=False)
    pairs = list_pairs("voices_test")
    assert len(pairs) == 30 and {c.stem.split("-")[0] for _, c in pairs} == {"1688", "2609", "3331"}
    rows = {r["name"]: r for r in split_table("voices_test")}
    noisy, clean = pairs[0]
    measured = snr_db(sf.read(clean)[0], sf.read(noisy)[0] - sf.read(clean)[0], power="active")
    assert measured == pytest.approx(float(rows[clean.stem]["snr_db"]), abs=0.2)
    sf.write(noisy, np.zeros(10), 16000)  # a damaged file in the cache is made again
    voices_dir("voices_test")
    assert pcm16_sha256(sf.read(noisy, dtype="float32")[0]) == rows[clean.stem]["noisy_sha256"]
    src = training_sources("shipped", "first_400", "p239,librispeech")
    assert len(src["speech_sources"]["librispeech"]) == 251 and len(src["speech_sources"]["p239"]) == 403


# --- source weights ---------------------------------------------------------------------------

def _group_of_items(ds, n=3000):
    """Which file each of the first ``n`` items used (read from the draws, not the audio)."""
    counts = Counter()
    for i in range(n):
        rng = np.random.default_rng([ds.seed, ds.epoch, i])
        members = ds.members[int(rng.choice(len(ds.members), p=ds.weights))]
        counts[int(members[0])] += 1
    return counts


@pytest.fixture
def three_sources(tmp_path):
    rng = np.random.default_rng(0)
    paths = {}
    for group, n in (("pairs", 4), ("a", 2), ("b", 8)):
        paths[group] = []
        for i in range(n):
            p = tmp_path / f"{group}{i}.flac"
            sf.write(p, rng.standard_normal(8000) * 0.1, 16000, subtype="PCM_16")
            paths[group].append(p)
    return [(p, p) for p in paths["pairs"]], {"a": paths["a"], "b": paths["b"]}


def test_source_weights_set_each_sources_share(three_sources):
    pairs, extra = three_sources
    ds = TrainingSet(pairs, segment=4000, extra_speech=extra, source_weights={"pairs": 1, "a": 1, "b": 2},
                     progress=False)
    counts = _group_of_items(ds)
    assert counts[0] / 3000 == pytest.approx(0.25, abs=0.03)  # pairs start at file 0
    assert counts[4] / 3000 == pytest.approx(0.25, abs=0.03)  # a: files 4-5, though 2 of 14 files
    assert counts[6] / 3000 == pytest.approx(0.50, abs=0.03)  # b: files 6-13
    off = TrainingSet(pairs, segment=4000, extra_speech=extra, source_weights={"pairs": 1, "a": 0, "b": 1},
                      progress=False)
    assert 4 not in _group_of_items(off, 500)


def test_without_weights_every_file_counts_once_per_round(three_sources):
    pairs, extra = three_sources
    ds = TrainingSet(pairs, segment=4000, extra_speech=extra, progress=False, remix_prob=0.0)
    assert ds.weights is None and len(ds) == 14 * 4
    first = ds[0][1].numpy()  # item 0 is a crop of pair 0's clean side
    whole = sf.read(pairs[0][1], dtype="float32")[0]
    assert any(np.array_equal(first, whole[s:s + 4000]) for s in range(0, 4001))


@pytest.mark.parametrize("weights, match", [({"pairs": 1, "c": 1, "a": 1, "b": 1}, "not a source"),
                                            ({"pairs": 1, "a": 1}, "no weight to b"),
                                            ({"pairs": 0, "a": 0, "b": 0}, "at least one")])
def test_bad_source_weights_are_named(three_sources, weights, match):
    pairs, extra = three_sources
    with pytest.raises(ValueError, match=match):
        TrainingSet(pairs, segment=4000, extra_speech=extra, source_weights=weights, progress=False)


def test_source_weights_option():
    assert parse_weights("pairs=1, p239=0.5,librispeech=2") == {"pairs": 1.0, "p239": 0.5, "librispeech": 2.0}
    cfg, _ = config_from_args(["--source-weights", "pairs=1,librispeech=1"])
    assert cfg.source_weights == "pairs=1,librispeech=1"
    for bad in ("pairs", "pairs=-1", "pairs=x", "=2"):
        with pytest.raises(ValueError, match="--source-weights"):
            TrainConfig(source_weights=bad)
