"""dcu enhance / dcu demo: outputs, naming, formats, rates, channels, long files, bad input."""

import os
import re
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf
import torch

import dcu
import dcu.jobs.enhance
from dcu.jobs.enhance import enhance_file, enhance_recording, find_inputs
from synthetic import make, randomise_norms, speechlike

ROOT = Path(__file__).resolve().parent.parent
SPEECH = ROOT / "data" / "corpus" / "valid" / "noisy"


def run_dcu(*args, cwd=None):
    return subprocess.run([sys.executable, "-m", "dcu", *map(str, args)], capture_output=True,
                          text=True, cwd=cwd, timeout=600)


@pytest.fixture
def speech_file(tmp_path):
    """A real noisy utterance written as 44.1 kHz stereo WAV (both channels differ)."""
    from dcu.audio import load_audio, resample

    wav = load_audio(sorted(SPEECH.glob("*.flac"))[0])
    x = resample(wav, 16000, 44100)
    stereo = np.stack([x, 0.5 * x[::-1]], axis=1)
    path = tmp_path / "in" / "talk.wav"
    path.parent.mkdir()
    sf.write(path, stereo, 44100)
    return path


def test_out_dir_keeps_name_rate_channels_and_length(tiny_ckpt, speech_file, tmp_path):
    out = tmp_path / "out"
    r = run_dcu("enhance", speech_file, "--model", tiny_ckpt, "--out", out)
    assert r.returncode == 0, r.stdout + r.stderr
    written = out / "talk.wav"
    assert written.exists()
    info_in, info_out = sf.info(speech_file), sf.info(written)
    assert (info_out.samplerate, info_out.channels, info_out.frames) == \
        (info_in.samplerate, info_in.channels, info_in.frames)
    y, _ = sf.read(written)
    assert np.isfinite(y).all() and np.abs(y).max() > 1e-3


def test_enhanced_channels_are_processed_separately(tiny_ckpt, speech_file, tmp_path):
    model = dcu.load(tiny_ckpt)
    info = enhance_file(model, speech_file, tmp_path / "o.wav")
    y, rate = sf.read(tmp_path / "o.wav", always_2d=True)
    x, _ = sf.read(speech_file, always_2d=True)
    one = enhance_recording(model, x[:, 1].astype(np.float32), rate)
    assert info["channels"] == 2
    # channel 1 alone gives the same result as inside the stereo file (16-bit rounding aside)
    assert np.abs(one - y[:, 1]).max() < 2e-4


@pytest.mark.slow  # > ~13 s on the 2 shared cores (pytest --durations)
def test_beside_input_never_overwrites(tiny_ckpt, speech_file):
    before = speech_file.read_bytes()
    r = run_dcu("enhance", speech_file, "--model", tiny_ckpt)
    assert r.returncode == 0, r.stdout + r.stderr
    out = speech_file.with_name("talk_enhanced.wav")
    assert out.exists() and speech_file.read_bytes() == before
    stamp = out.stat().st_mtime_ns
    again = run_dcu("enhance", speech_file, "--model", tiny_ckpt)
    assert again.returncode == 1 and "already exist" in again.stderr
    assert out.stat().st_mtime_ns == stamp
    assert run_dcu("enhance", speech_file, "--model", tiny_ckpt, "--overwrite").returncode == 0
    # --out pointing at the input's own folder would overwrite the input: refused
    same = run_dcu("enhance", speech_file, "--model", tiny_ckpt, "--out", speech_file.parent, "--overwrite")
    assert same.returncode == 1 and "overwrite an input" in same.stderr
    assert speech_file.read_bytes() == before


def test_folder_with_bad_files_processes_the_good_ones(tiny_ckpt, speech_file, tmp_path):
    folder = speech_file.parent
    (folder / "corrupt.wav").write_bytes(b"RIFF\x00\x00garbage" * 10)
    sf.write(folder / "empty.flac", np.zeros((0,), dtype=np.float32), 16000)
    sub = folder / "sub"
    sub.mkdir()
    sf.write(sub / "quiet.flac", np.zeros(16000, dtype=np.float32), 16000)
    out = tmp_path / "res"
    r = run_dcu("enhance", folder, tmp_path / "missing.wav", "--model", tiny_ckpt, "--out", out)
    assert r.returncode == 1
    assert "Traceback" not in r.stdout + r.stderr
    errors = [line for line in r.stderr.splitlines() if line.startswith("dcu enhance: error:")]
    assert len(errors) == 3
    assert any("corrupt.wav" in e for e in errors) and any("empty.flac" in e for e in errors)
    assert any("missing.wav" in e and "no such file" in e for e in errors)
    assert (out / "in" / "talk.wav").exists() and (out / "in" / "sub" / "quiet.flac").exists()


def test_unknown_model_and_unwritable_out(speech_file, tmp_path):
    r = run_dcu("enhance", speech_file, "--model", "dcunet99")
    assert r.returncode == 1 and "dcunet99" in r.stderr and "Traceback" not in r.stderr
    blocker = tmp_path / "a_file"
    blocker.write_text("not a folder")
    r = run_dcu("enhance", speech_file, "--out", blocker / "sub")
    assert r.returncode == 1 and "a_file" in r.stderr and "Traceback" not in r.stderr


def test_find_inputs_pairs_folders_and_files(tmp_path):
    (tmp_path / "d" / "x").mkdir(parents=True)
    for p in ("d/a.wav", "d/x/b.flac", "d/a_enhanced.wav", "d/notes.txt"):
        (tmp_path / p).write_bytes(b"")
    jobs, errors = find_inputs([tmp_path / "d"], tmp_path / "o")
    assert [(s.name, d.relative_to(tmp_path).as_posix()) for s, d in jobs] == \
        [("a.wav", "o/d/a.wav"), ("b.flac", "o/d/x/b.flac")]
    assert errors == []


@pytest.mark.slow  # > ~13 s on the 2 shared cores (pytest --durations)
def test_ten_minute_file_stays_under_2gb(tiny_ckpt, tmp_path):
    """A 10-minute 16 kHz recording through `dcu enhance`: bounded memory (chunked)."""
    rng = np.random.default_rng(0)
    sf.write(tmp_path / "long.flac", (0.05 * rng.standard_normal(16000 * 600)).astype(np.float32), 16000)
    code = ("import resource, sys; from dcu.cli import main; rc = main(sys.argv[1:]); "
            "print('MAXRSS_KB', resource.getrusage(resource.RUSAGE_SELF).ru_maxrss); sys.exit(rc)")
    r = subprocess.run([sys.executable, "-c", code, "enhance", str(tmp_path / "long.flac"),
                        "--model", str(tiny_ckpt), "--out", str(tmp_path / "o")],
                       capture_output=True, text=True, timeout=900)
    assert r.returncode == 0, r.stdout + r.stderr
    rss_mb = int(r.stdout.split("MAXRSS_KB")[1].split()[0]) / 1024
    assert rss_mb < 2048, rss_mb
    assert sf.info(tmp_path / "o" / "long.flac").frames == 16000 * 600


@pytest.mark.slow  # > ~13 s on the 2 shared cores (pytest --durations)
def test_dnsmos_flag_prints_before_and_after(tiny_ckpt, speech_file, tmp_path):
    r = run_dcu("enhance", speech_file, "--model", tiny_ckpt, "--out", tmp_path / "o", "--dnsmos")
    assert r.returncode == 0, r.stdout + r.stderr
    assert "DNSMOS" in r.stdout and "OVRL" in r.stdout


def test_demo_runs_on_the_shipped_model():
    assert (ROOT / "data" / "checkpoints" / "dcunet20.pt").exists(), "data/checkpoints/dcunet20.pt is missing"
    r = run_dcu("demo")
    assert r.returncode == 0, r.stdout + r.stderr
    lines = {l.split()[0]: l.split()[1:] for l in r.stdout.splitlines() if l.startswith(("noisy", "enhanced"))}
    # the shipped model must improve PESQ and SI-SDR on the demo file
    assert float(lines["enhanced"][0]) > float(lines["noisy"][0])
    assert float(lines["enhanced"][2]) > float(lines["noisy"][2])


# --------------------------------------------------------------------------- reliability (issue 15)
def enhance_here(capsys, *args):
    """`dcu enhance` in this process: (exit status, stdout lines, stderr lines)."""
    from dcu.cli import main

    code = main(["enhance", *map(str, args)])
    out, err = capsys.readouterr()
    return code, out.splitlines(), [l for l in err.splitlines() if l.startswith("dcu enhance:")]


def short_wav(path, rate=16000, seconds=0.5, channels=1):
    path.parent.mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(len(str(path)))
    sf.write(path, 0.1 * rng.standard_normal((int(rate * seconds), channels)), rate)
    return path


def snapshot(folder):
    return {p: p.read_bytes() for p in Path(folder).rglob("*") if p.is_file()}


@pytest.mark.parametrize("overwrite", [False, True])
def test_two_inputs_with_one_output_are_refused_before_any_work(tiny_ckpt, tmp_path, capsys, overwrite):
    a, b = short_wav(tmp_path / "a" / "x.wav"), short_wav(tmp_path / "b" / "x.wav")
    flag = ["--overwrite"] if overwrite else []
    code, out, err = enhance_here(capsys, a, b, "--model", tiny_ckpt, "--out", tmp_path / "o", *flag)
    assert code == 1 and len(err) == 1 and "two inputs" in err[0] and str(a) in err[0]
    assert not (tmp_path / "o").exists() and out == []
    # x.mp3 beside x.wav: both would become x_enhanced.wav
    sf.write(tmp_path / "a" / "x.mp3", 0.1 * np.ones(8000), 16000, format="MP3")
    before = snapshot(tmp_path / "a")
    code, _, err = enhance_here(capsys, tmp_path / "a", "--model", tiny_ckpt, *flag)
    assert code == 1 and len(err) == 1 and "x_enhanced.wav" in err[0]
    assert snapshot(tmp_path / "a") == before


def test_out_inside_an_input_folder_is_refused(tiny_ckpt, tmp_path, capsys):
    d = tmp_path / "d"
    short_wav(d / "x.wav")
    before = snapshot(d)
    code, _, err = enhance_here(capsys, d, "--model", tiny_ckpt, "--out", d / "sub")
    assert code == 1 and len(err) == 1 and "inside the input folder" in err[0]
    assert snapshot(d) == before and not (d / "sub").exists()


def test_existing_outputs_are_all_refused_up_front(tiny_ckpt, tmp_path, capsys):
    a, b = short_wav(tmp_path / "in" / "a.wav"), short_wav(tmp_path / "in" / "b.wav")
    out = tmp_path / "o"
    out.mkdir()
    (out / "b.wav").write_bytes(b"mine")
    code, stdout, err = enhance_here(capsys, a, b, "--model", tiny_ckpt, "--out", out)
    assert code == 1 and len(err) == 1 and "already exist" in err[0]
    assert not (out / "a.wav").exists() and (out / "b.wav").read_bytes() == b"mine"
    assert enhance_here(capsys, a, b, "--model", tiny_ckpt, "--out", out, "--overwrite")[0] == 0
    assert sf.info(out / "b.wav").frames == 8000


def test_folder_scan_names_what_it_skips(tiny_ckpt, tmp_path, capsys):
    d = tmp_path / "d"
    short_wav(d / "my_enhanced_take.wav")  # contains the marker, is not an earlier output
    short_wav(d / "take_enhanced.wav")  # an earlier output: skipped, with a note
    sf.write(d / "song.aiff", 0.1 * np.ones(8000), 16000)  # a format libsndfile reads
    (d / "notes.txt").write_text("hi")
    os.symlink(d / "gone.wav", d / "link.wav")  # a broken link
    code, out, err = enhance_here(capsys, d, "--model", tiny_ckpt, "--out", tmp_path / "o")
    assert code == 1  # the broken link is an error
    assert any("link.wav" in e and "broken link" in e for e in err)
    notes = " ".join(e for e in err if "note:" in e)
    assert "take_enhanced.wav" in notes and "notes.txt" in notes
    assert (tmp_path / "o" / "d" / "my_enhanced_take.wav").exists()
    assert sf.info(tmp_path / "o" / "d" / "song.wav").samplerate == 16000


def test_any_error_in_one_file_stays_with_that_file(tiny_ckpt, tmp_path, capsys, monkeypatch):
    files = [short_wav(tmp_path / "in" / f"{n}.wav") for n in ("a", "b", "c", "d")]
    real = dcu.jobs.enhance.enhance_recording
    failures = {0: MemoryError(), 1: RuntimeError("CUDA error: device-side assert"),
                2: OSError(28, "No space left on device")}
    calls = iter(range(10))

    def flaky(model, *a, **k):
        i = next(calls)
        if i in failures:
            raise failures[i]
        return real(model, *a, **k)

    monkeypatch.setattr(dcu.jobs.enhance, "enhance_recording", flaky)
    code, out, err = enhance_here(capsys, *files, "--model", tiny_ckpt, "--out", tmp_path / "o")
    assert code == 1 and len(err) == 3
    for f, e, why in zip(files, err, ("out of memory", "RuntimeError: CUDA", "No space left")):
        assert e.startswith(f"dcu enhance: error: {f}: ") and why in e
    assert [p.name for p in (tmp_path / "o").iterdir()] == ["d.wav"]
    assert len(out) == 1 and "d.wav" in out[0]


def test_ctrl_c_still_stops_the_batch(tiny_ckpt, tmp_path, capsys, monkeypatch):
    files = [short_wav(tmp_path / "in" / f"{n}.wav") for n in ("a", "b")]

    def interrupted(model, *a, **k):
        raise KeyboardInterrupt

    monkeypatch.setattr(dcu.jobs.enhance, "enhance_recording", interrupted)
    code, _, _ = enhance_here(capsys, *files, "--model", tiny_ckpt, "--out", tmp_path / "o")
    assert code == 130 and not list((tmp_path / "o").iterdir())


@pytest.mark.parametrize("value", ["nan", "-1", "0", "inf", "0.5", "1e9", "ten"])
def test_chunk_seconds_must_be_sane(tiny_ckpt, speech_file, capsys, value):
    with pytest.raises(SystemExit) as exit_:
        enhance_here(capsys, speech_file, "--model", tiny_ckpt, f"--chunk-seconds={value}")
    err = capsys.readouterr().err
    assert exit_.value.code == 2 and "--chunk-seconds" in err and "1 to 600" in err
    assert "Traceback" not in err
    with pytest.raises(ValueError, match="chunk-seconds"):
        enhance_file(dcu.load(tiny_ckpt), speech_file, speech_file.parent / "o.wav",
                     chunk_seconds=float(value) if value != "ten" else value)


def test_absurd_headers_fail_fast_and_the_batch_goes_on(tiny_ckpt, tmp_path, capsys):
    import struct
    import tracemalloc

    d = tmp_path / "d"
    good = short_wav(d / "good.wav")
    raw = bytearray(good.read_bytes())
    for name, offset, fmt, value in (("rate.wav", 24, "<I", 2_000_000_001),
                                     ("channels.wav", 22, "<H", 1000)):
        bad = bytearray(raw)
        struct.pack_into(fmt, bad, offset, value)
        (d / name).write_bytes(bytes(bad))
    sf.write(d / "long.flac", np.zeros(1000), 16000, subtype="PCM_16")
    flac = bytearray((d / "long.flac").read_bytes())  # STREAMINFO: claim 2**34 samples
    field = int.from_bytes(flac[18:26], "big")
    flac[18:26] = ((field >> 36 << 36) | 2**34).to_bytes(8, "big")
    (d / "long.flac").write_bytes(bytes(flac))
    tracemalloc.start()
    try:
        code, _, err = enhance_here(capsys, d, "--model", tiny_ckpt, "--out", tmp_path / "o")
        peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
    assert peak < 200 * 2**20, peak  # no allocation sized by a header's claims
    assert code == 1 and len(err) == 3
    assert any("rate.wav" in e and "sample rate" in e for e in err)
    assert any("channels.wav" in e and "1000 channels" in e for e in err)
    assert any("long.flac" in e and "limit" in e for e in err)
    assert (tmp_path / "o" / "d" / "good.wav").exists()


def test_outputs_get_the_umask_permissions(tiny_ckpt, speech_file, tmp_path, capsys):
    old = os.umask(0o027)
    try:
        code, _, _ = enhance_here(capsys, speech_file, "--model", tiny_ckpt, "--out", tmp_path / "o")
    finally:
        os.umask(old)
    assert code == 0
    assert (tmp_path / "o" / "talk.wav").stat().st_mode & 0o777 == 0o640


def test_demo_says_plainly_what_its_numbers_show():
    from dcu.jobs.demo import describe_change

    line = describe_change({"PESQ": 1.80, "STOI": 0.912, "SI-SDR": 5.0},
                           {"PESQ": 2.41, "STOI": 0.909, "SI-SDR": 11.3})
    assert "raised PESQ (+0.61) and SI-SDR (+6.30 dB)" in line
    assert "lowered STOI (-0.003)" in line and "worse than the noisy input" in line
    same = describe_change({"PESQ": 2.0, "STOI": 0.9001, "SI-SDR": 5.0},
                           {"PESQ": 2.0, "STOI": 0.9004, "SI-SDR": 4.0})
    assert "left unchanged PESQ and STOI" in same and "lowered SI-SDR (-1.00 dB)" in same


# -- enhance_recording: numpy or tensor, any rate, channels, chunks ---------------------------------------------------------------------------------

def test_enhance_numpy_and_tensor_in_kind_out():
    model = make().eval()
    x = speechlike(7000)
    with torch.no_grad():
        direct = model(x)
    out = enhance_recording(model, x.numpy(), level_window=None)  # the input's level as it is
    assert isinstance(out, np.ndarray) and out.dtype == np.float32 and out.shape == (7000,)
    np.testing.assert_allclose(out, direct.numpy(), atol=1e-6)  # 16 kHz and short: no chunking
    t = enhance_recording(model, x.double())
    assert isinstance(t, torch.Tensor) and t.shape == (7000,) and not t.requires_grad
    model.train()
    enhance_recording(model, x)
    assert model.training  # the caller's mode is restored


@pytest.mark.parametrize("rate,n", [(8000, 4001), (44100, 22051)])
def test_enhance_other_rates(rate, n):
    model = make().eval()
    t = np.arange(n) / rate
    x = (0.3 * np.sin(2 * np.pi * 300 * t)).astype(np.float32)
    out = enhance_recording(model, x, sample_rate=rate)
    assert out.shape == (n,) and out.dtype == np.float32 and np.isfinite(out).all()
    assert np.abs(out).max() > 0
    stereo = enhance_recording(model, torch.from_numpy(np.stack([x, 0.5 * x])), rate)
    assert stereo.shape == (2, n)


def test_enhance_stereo_is_per_channel():
    model = randomise_norms(make()).eval()
    x = speechlike(9000, batch=2, seed=8).numpy()
    both = enhance_recording(model, x)
    assert both.shape == (2, 9000)
    for c in range(2):
        np.testing.assert_allclose(both[c], enhance_recording(model, x[c]), atol=1e-5)


def test_enhance_long_input_in_chunks():
    """25 s through the tiny model in 4 s chunks: the length is kept and, because chunk starts
    lie on the model's frame grid, the output equals the unchunked one except within the tiny
    model's receptive field of a chunk edge."""
    model = randomise_norms(make()).eval()
    x = speechlike(25 * 16000, seed=9).numpy()
    chunked = enhance_recording(model, x, chunk_seconds=4.0, overlap_seconds=1.0)
    assert chunked.shape == x.shape and np.isfinite(chunked).all()
    whole = enhance_recording(model, x, chunk_seconds=30.0)
    diff = np.abs(chunked - whole)
    # chunk geometry (see dcu.jobs.enhance.chunked): 4 s and 1 s rounded to multiples of 4 * 256 samples
    block = model.architecture.frame_multiple * 256
    chunk = 64000 // block * block
    step = (chunk - 16000) // block * block
    starts = np.arange(step, x.size, step)
    edges = np.concatenate([starts, starts - step + chunk])
    near = np.abs(np.arange(x.size)[:, None] - edges[None, :]).min(axis=1) <= 4096
    assert diff[~near].max() < 1e-5  # identical away from the seams
    rms = np.sqrt(np.mean(whole ** 2))
    assert diff[near].max() < 0.2 * rms  # measured ~0.05 * rms: the cross-fade hides the seams
    assert np.sqrt(np.mean(diff[near] ** 2)) < 0.02 * rms  # measured ~0.003 * rms


@pytest.mark.parametrize("bad,rate,error,message", [
    (np.zeros((1, 2, 100), dtype=np.float32), 16000, ValueError, r"got shape \(1, 2, 100\)"),
    (np.zeros(0, dtype=np.float32), 16000, ValueError, "empty audio"),
    (np.array([0.0, np.inf] * 500), 16000, ValueError, "NaN or infinite"),
    (np.zeros(1000, dtype=np.int16), 16000, TypeError,
     r"floating-point audio .* got int16.* / 32768"),
    (torch.zeros(1000, dtype=torch.int32), 16000, TypeError, "got torch.int32"),
    (np.ones(1000, dtype=np.complex64), 16000, TypeError, "got complex64"),
    (torch.ones(1000, dtype=torch.complex64), 16000, TypeError, "got torch.complex64"),
    (np.zeros(1000, dtype=np.float32), 0, ValueError, "sample rates must be positive"),
])
def test_enhance_recording_rejects_bad_input(bad, rate, error, message):
    with pytest.raises(error, match=message):
        enhance_recording(make(), bad, rate)




@pytest.mark.parametrize("chunk,overlap,message", [
    (float("nan"), 1.0, "--chunk-seconds nan: give seconds from 1 to 600"),
    (0.5, 1.0, "--chunk-seconds 0.5: give seconds from 1 to 600"),
    (601, 1.0, "--chunk-seconds 601"),
    (10.0, -1.0, "overlap_seconds -1.0: give seconds >= 0"),
    (10.0, float("inf"), "overlap_seconds inf: give seconds >= 0"),
])
def test_enhance_recording_checks_chunk_and_overlap(chunk, overlap, message):
    with pytest.raises(ValueError, match=re.escape(message)):
        enhance_recording(make(), np.zeros(1000, dtype=np.float32), 16000, chunk, overlap)


# -- input level: dcu.level and enhance_recording's level window ---------------------------------------------------------------------------------

def _at_dbfs(x: np.ndarray, dbfs: float) -> np.ndarray:
    return (x * 10 ** (dbfs / 20) / np.sqrt(np.mean(x.astype(np.float64) ** 2))).astype(np.float32)


def test_level_gain_moves_a_recording_to_the_nearest_window_edge():
    from dcu.level import LEVEL_WINDOW_DBFS, level_dbfs, level_gain

    x = speechlike(16000, seed=3).numpy()
    low, high = LEVEL_WINDOW_DBFS
    assert level_dbfs(_at_dbfs(x, -20.0)) == pytest.approx(-20.0, abs=1e-4)
    for dbfs, target in ((-60.0, low), (-35.5, low), (-24.0, None), (-3.0, high)):
        y = _at_dbfs(x, dbfs)
        gain = level_gain(y)
        if target is None:
            assert gain == 1.0
        else:
            assert level_dbfs(y * gain) == pytest.approx(target, abs=1e-3)
    assert level_gain(np.zeros(800, np.float32)) == 1.0  # digital silence is left alone
    assert level_gain(np.full(800, 1e-6, np.float32)) == 1.0  # -120 dBFS: silence too
    assert level_dbfs(np.zeros(8, np.float32)) == -np.inf
    with pytest.raises(ValueError, match="low <= high"):
        level_gain(x, (-10.0, -30.0))


def test_enhance_recording_is_scale_equivariant_outside_the_window_and_unchanged_inside():
    """The tiny model with random norms is far from scale-equivariant itself; with the level
    window, quiet copies of one recording come out as scaled copies of one output, and a
    recording inside the window is enhanced bit for bit as without the window."""
    model = randomise_norms(make()).eval()
    x = speechlike(12000, seed=5).numpy()
    quiet = [enhance_recording(model, _at_dbfs(x, dbfs)) / 10 ** (dbfs / 20) for dbfs in (-70, -50)]
    np.testing.assert_allclose(quiet[0], quiet[1], rtol=1e-4, atol=1e-6 * np.abs(quiet[1]).max())
    raw = [enhance_recording(model, _at_dbfs(x, dbfs), level_window=None) / 10 ** (dbfs / 20)
           for dbfs in (-70, -50)]
    assert np.abs(raw[0] - raw[1]).max() > 0.05 * np.abs(raw[1]).max()  # what the window fixes
    inside = _at_dbfs(x, -24.0)
    assert np.array_equal(enhance_recording(model, inside),
                          enhance_recording(model, inside, level_window=None))
    loud = _at_dbfs(x, -6.0)  # above the window: enhanced as its copy at the upper edge
    edge = 10 ** ((-13.0 + 6.0) / 20)
    np.testing.assert_allclose(enhance_recording(model, loud),
                               enhance_recording(model, loud * edge, level_window=None) / edge,
                               rtol=1e-4, atol=1e-6)


def test_level_window_is_per_channel():
    model = randomise_norms(make()).eval()
    x = speechlike(9000, batch=2, seed=8).numpy()
    both = np.stack([_at_dbfs(x[0], -60.0), _at_dbfs(x[1], -24.0)])
    out = enhance_recording(model, both)
    for c in range(2):
        np.testing.assert_allclose(out[c], enhance_recording(model, both[c]), atol=1e-7)


def test_cli_names_a_recording_outside_the_level_window(tiny_ckpt, speech_file, tmp_path):
    x, rate = sf.read(speech_file, always_2d=True)
    quiet = tmp_path / "quiet" / "far_mic.wav"
    quiet.parent.mkdir()
    sf.write(quiet, x * 10 ** (-30 / 20), rate, subtype="FLOAT")
    r = run_dcu("enhance", quiet, "--model", tiny_ckpt, "--out", tmp_path / "a")
    assert r.returncode == 0, r.stderr
    assert re.search(r"level -5\d\.\d, -5\d\.\d dBFS, outside -35 to -13: enhanced at the nearest edge",
                     r.stdout), r.stdout
    kept = run_dcu("enhance", quiet, "--model", tiny_ckpt, "--out", tmp_path / "b", "--keep-level")
    assert kept.returncode == 0 and "level" not in kept.stdout, kept.stdout
    a, _ = sf.read(tmp_path / "a" / "far_mic.wav")
    b, _ = sf.read(tmp_path / "b" / "far_mic.wav")
    assert a.shape == b.shape and np.abs(a - b).max() > 1e-5  # --keep-level feeds it as recorded
    plain = run_dcu("enhance", speech_file, "--model", tiny_ckpt, "--out", tmp_path / "c")
    assert plain.returncode == 0 and "level" not in plain.stdout  # inside the window: no note
