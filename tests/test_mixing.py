"""dcu.mixing's recipes: the noisy side of p239_valid and p239_test, rebuilt into the cache.

The SNR arithmetic itself (mix_at_snr, speech_power, loop_or_crop) is tested in test_data.py.
"""

import hashlib

import numpy as np
import pytest
import soundfile as sf

from dcu.corpus import mixtures_dir
from dcu.data import (
    PairedFolder,
    corpus_dir,
    list_pairs,
    mix_at_snr,
    snr_db,
    split_table,
)
from dcu.mixing import loop_from, make_recipe, noise_offset, remix, snr_gain, to_pcm16

#: SHA-256 of the lines "NAME SHA256" (name sorted; the SHA-256 of the file's int16 samples,
#: little-endian) of the noisy files data/corpus/p239_{valid,test}/noisy shipped until they were
#: replaced by their recipes: computed from those files with soundfile and hashlib alone.
SHIPPED = {"p239_valid": "89490b12aa54e8eaddbd7257866c3685d772b1d94f2ab19edf079660ab409963",
           "p239_test": "61bd679ba857f2f0e08929c3da3045e8fcd5c79864ea9fb842166e393161ffc6"}


def file_sha256(path) -> str:
    return hashlib.sha256(sf.read(path, dtype="int16")[0].astype("<i2").tobytes()).hexdigest()


def test_rebuilt_mixtures_equal_the_files_shipped_before(tmp_path, monkeypatch):
    monkeypatch.setenv("DCU_CACHE", str(tmp_path))
    for split, want in SHIPPED.items():
        pairs = list_pairs(split)
        assert not (corpus_dir() / "corpus" / split / "noisy").exists()  # nothing is written into data/
        assert all(n.parent == tmp_path / "corpus" / split / "noisy" for n, _ in pairs)  # $DCU_CACHE
        lines = "\n".join(f"{n.stem} {file_sha256(n)}" for n, _ in pairs)
        assert hashlib.sha256(lines.encode()).hexdigest() == want
        rows = {r["name"]: r for r in split_table(split)}
        assert sorted(rows) == [c.stem for _, c in pairs]
        for noisy_path, clean_path in pairs:  # what the csv says of each mixture, measured again
            noisy, clean, r = sf.read(noisy_path)[0], sf.read(clean_path)[0], rows[clean_path.stem]
            assert noisy.size == clean.size and clean.size / 16000 == pytest.approx(float(r["duration_s"]), abs=1e-3)
            assert snr_db(clean, noisy - clean, power="active") == pytest.approx(float(r["snr_db"]), abs=0.005)
            assert abs(float(r["snr_db"]) - float(r["snr_bin"])) < 0.1  # the target SNR, reached
            assert file_sha256(noisy_path) == r["noisy_sha256"]


def test_mixtures_are_reused_and_a_damaged_one_is_rebuilt(mini_p239):
    pairs = list_pairs("p239_test")
    files = [n for n, _ in pairs]
    good = {f: sf.read(f, dtype="int16")[0] for f in files}
    stamps = {f: (f.stat().st_ino, f.stat().st_mtime_ns) for f in files}
    assert list_pairs("p239_test") == pairs
    assert {f: (f.stat().st_ino, f.stat().st_mtime_ns) for f in files} == stamps  # reused, not rewritten
    for damage in ("garbage", "truncated", "altered", "missing"):
        for f in files:  # both: the unscaled mixture and the scaled one (rebuilt with its restore array)
            if damage == "garbage":
                f.write_bytes(b"fLaC but not really")
            elif damage == "truncated":
                f.write_bytes(f.read_bytes()[: f.stat().st_size // 2])
            elif damage == "altered":  # a valid file, one sample off
                wrong = good[f].copy()
                wrong[len(wrong) // 2] += 1
                sf.write(f, wrong, 16000, format="FLAC", subtype="PCM_16")
            else:
                f.unlink()
        assert list_pairs("p239_test") == pairs
        for f in files:
            assert np.array_equal(sf.read(f, dtype="int16")[0], good[f]), damage
    assert sorted(p.name for p in files[0].parent.iterdir()) == sorted(f.name for f in files)  # no temporaries left


def test_the_cache_folder_is_honoured(mini_p239, tmp_path, monkeypatch):
    monkeypatch.setenv("DCU_CACHE", str(tmp_path / "elsewhere"))
    folder = tmp_path / "elsewhere" / "corpus" / "p239_test" / "noisy"
    assert [n.parent for n, _ in list_pairs("p239_test")] == [folder] * 2
    out = mixtures_dir("p239_test", cache=tmp_path / "given")
    assert out == tmp_path / "given" / "corpus" / "p239_test" / "noisy" and len(list(out.glob("*.flac"))) == 2


@pytest.mark.parametrize("lose", ["clean", "noise", "restore"])
def test_a_missing_input_is_one_clear_line(mini_p239, lose):
    data, rows = mini_p239
    list_pairs("p239_test")  # built once: a missing input is reported even where the cache has the mixture
    gone = {"clean": data / "corpus" / "p239_test" / "clean" / f"{rows[0]['name']}.flac",
            "noise": data / "noise" / f"{rows[1]['noise']}.flac",
            "restore": data / "splits" / "p239_restore.npz"}[lose]  # rows[1] is the scaled one
    gone.unlink()
    with pytest.raises(FileNotFoundError) as err:
        list_pairs("p239_test")
    assert str(err.value).startswith(f"{gone}: missing") and "\n" not in str(err.value)


def test_the_old_noisy_folder_points_to_the_rebuilt_one():
    split = corpus_dir() / "corpus" / "p239_test"
    with pytest.raises(FileNotFoundError, match="rebuilt into the cache.*--split p239_test"):
        PairedFolder(split / "clean", split / "noisy")


def test_remix_reproduces_mix_at_snr_from_its_draws():
    rng = np.random.default_rng(0)
    clean = to_pcm16(0.3 * np.sin(np.arange(20000) / 7.0) * (np.arange(20000) % 4000 < 2500)) / np.float32(32768)
    for size in (50000, 7000):  # a noise cropped, a noise looped
        noise = to_pcm16(0.2 * rng.standard_normal(size)) / np.float32(32768)
        mixture, _ = mix_at_snr(clean, noise, 5.0, power="active", rng=np.random.default_rng(size))
        offset = noise_offset(noise.size, clean.size, np.random.default_rng(size))
        gain = snr_gain(clean, loop_from(noise, offset, clean.size).astype(np.float64), 5.0, "active")
        assert np.array_equal(to_pcm16(remix(clean, noise, offset, gain)), to_pcm16(mixture))


def test_a_scaled_down_mixture_is_rebuilt_from_its_scaled_clean_side():
    rng = np.random.default_rng(1)
    speech = to_pcm16(0.9 * np.sin(np.arange(16000) / 5.0)) / np.float32(32768)  # loud: the mixture would clip
    noise = to_pcm16(0.3 * rng.standard_normal(40000)) / np.float32(32768)
    recipe = make_recipe(speech, noise, 0.0, rng, peak=0.99)
    offset, gain, scale, restore = recipe["offset"], recipe["gain"], recipe["peak_scale"], recipe["restore"]
    assert scale < 1 and restore.dtype == np.int8 and restore.any()
    assert np.abs(restore).max() <= 0.5 / scale + 0.5  # within the rounding of q / scale
    want = (speech + (gain * loop_from(noise, offset, speech.size).astype(np.float64)).astype(np.float32)) * scale
    assert np.array_equal(to_pcm16(recipe["mixture"]), to_pcm16(want))
    assert np.array_equal(to_pcm16(recipe["clean"]), to_pcm16(speech * scale))  # the clean side is scaled too
    assert np.max(np.abs(recipe["mixture"])) <= 0.99 + 1 / 32768  # below clipping
    rebuilt = remix(recipe["clean"], noise, offset, gain, scale, restore)  # from the scaled clean side alone
    assert np.array_equal(to_pcm16(rebuilt), to_pcm16(want))
    with pytest.raises(ValueError, match="restore"):
        remix(recipe["clean"], noise, offset, gain, scale)
    without = remix(recipe["clean"], noise, offset, gain, scale, np.zeros_like(restore))
    assert not np.array_equal(to_pcm16(without), to_pcm16(want))  # the restore array is what makes it exact
    with pytest.raises(ValueError, match="16-bit"):
        make_recipe(speech + np.float32(1e-6), noise, 0.0, np.random.default_rng(1))
