"""dcu enhance / dcu demo: outputs, naming, formats, rates, channels, long files, bad input."""

import os
import resource
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf
import torch

import dcu
from dcu.enhance import enhance_file, find_inputs

ROOT = Path(__file__).resolve().parent.parent
SPEECH = ROOT / "data" / "corpus" / "valid" / "noisy"


def run_dcu(*args, cwd=None):
    return subprocess.run([sys.executable, "-m", "dcu", *map(str, args)], capture_output=True,
                          text=True, cwd=cwd, timeout=600)


@pytest.fixture(scope="module")
def tiny_ckpt(tmp_path_factory):
    torch.manual_seed(0)
    path = tmp_path_factory.mktemp("ckpt") / "tiny.pt"
    dcu.save(dcu.DCUnet("tiny"), path)
    return path


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
    one = model.enhance(x[:, 1].astype(np.float32), rate)
    assert info["channels"] == 2
    # channel 1 alone gives the same result as inside the stereo file (16-bit rounding aside)
    assert np.abs(one - y[:, 1]).max() < 2e-4


def test_beside_input_never_overwrites(tiny_ckpt, speech_file):
    before = speech_file.read_bytes()
    r = run_dcu("enhance", speech_file, "--model", tiny_ckpt)
    assert r.returncode == 0, r.stdout + r.stderr
    out = speech_file.with_name("talk_enhanced.wav")
    assert out.exists() and speech_file.read_bytes() == before
    stamp = out.stat().st_mtime_ns
    again = run_dcu("enhance", speech_file, "--model", tiny_ckpt)
    assert again.returncode == 1 and "already exists" in again.stdout
    assert out.stat().st_mtime_ns == stamp
    assert run_dcu("enhance", speech_file, "--model", tiny_ckpt, "--overwrite").returncode == 0
    # --out pointing at the input's own folder would overwrite the input: refused
    same = run_dcu("enhance", speech_file, "--model", tiny_ckpt, "--out", speech_file.parent, "--overwrite")
    assert same.returncode == 1 and "overwrite the input" in same.stdout
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
    errors = [line for line in r.stdout.splitlines() if line.startswith("dcu enhance: error:")]
    assert len(errors) == 3
    assert any("corrupt.wav" in e for e in errors) and any("empty.flac" in e for e in errors)
    assert any("missing.wav" in e and "no such file" in e for e in errors)
    assert (out / "in" / "talk.wav").exists() and (out / "in" / "sub" / "quiet.flac").exists()


def test_unknown_model_and_unwritable_out(speech_file, tmp_path):
    r = run_dcu("enhance", speech_file, "--model", "dcunet99")
    assert r.returncode == 1 and "dcunet99" in r.stdout and "Traceback" not in r.stderr
    blocker = tmp_path / "a_file"
    blocker.write_text("not a folder")
    r = run_dcu("enhance", speech_file, "--out", blocker / "sub")
    assert r.returncode == 1 and "a_file" in r.stdout and "Traceback" not in r.stderr


def test_find_inputs_pairs_folders_and_files(tmp_path):
    (tmp_path / "d" / "x").mkdir(parents=True)
    for p in ("d/a.wav", "d/x/b.flac", "d/a_enhanced.wav", "d/notes.txt"):
        (tmp_path / p).write_bytes(b"")
    jobs, errors = find_inputs([tmp_path / "d"], tmp_path / "o")
    assert [(s.name, d.relative_to(tmp_path).as_posix()) for s, d in jobs] == \
        [("a.wav", "o/d/a.wav"), ("b.flac", "o/d/x/b.flac")]
    assert errors == []


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


def test_dnsmos_flag_prints_before_and_after(tiny_ckpt, speech_file, tmp_path):
    r = run_dcu("enhance", speech_file, "--model", tiny_ckpt, "--out", tmp_path / "o", "--dnsmos")
    assert r.returncode == 0, r.stdout + r.stderr
    assert "DNSMOS" in r.stdout and "OVRL" in r.stdout


def test_demo_runs_on_the_shipped_model():
    if not (ROOT / "data" / "checkpoints" / "dcunet20.pt").exists():
        pytest.skip("no shipped dcunet20 checkpoint")
    r = run_dcu("demo")
    assert r.returncode == 0, r.stdout + r.stderr
    lines = {l.split()[0]: l.split()[1:] for l in r.stdout.splitlines() if l.startswith(("noisy", "enhanced"))}
    # the shipped model must improve PESQ and SI-SDR on the demo file
    assert float(lines["enhanced"][0]) > float(lines["noisy"][0])
    assert float(lines["enhanced"][2]) > float(lines["noisy"][2])
