"""dcu.jobs.live: ``dcu stream -`` through a pipe, ``dcu enhance --stream`` on files, in one line
when the model cannot stream."""

import os
import subprocess
import sys

import numpy as np
import pytest
import soundfile as sf
import torch

import dcu
from dcu.jobs.enhance import enhance_recording
from dcu.jobs.live import stream_recording
from dcu.stream import StreamingEnhancer
from synthetic import make, randomise_norms, speechlike

ENV = {**os.environ, "PYTHONPATH": os.pathsep.join(
    [os.path.dirname(os.path.dirname(os.path.abspath(dcu.__file__)))]
    + os.environ.get("PYTHONPATH", "").split(os.pathsep))}


def dcu_command(*args, stdin=None):
    return subprocess.run([sys.executable, "-m", "dcu", *map(str, args)], input=stdin,
                          capture_output=True, env=ENV, timeout=300)


@pytest.fixture(scope="module")
def causal_ckpt(tmp_path_factory):
    path = tmp_path_factory.mktemp("causal") / "causal.pt"
    dcu.save(randomise_norms(make("tiny", causal=True)).eval(), path)
    return path


def test_stream_pipes_pcm_from_stdin_to_stdout(causal_ckpt):
    x = speechlike(8000 + 33, seed=7).numpy()
    pcm = np.round(x * 32768).astype("<i2")
    done = dcu_command("stream", "-", "--model", causal_ckpt, "--precision", "fp32",
                       stdin=pcm.tobytes() + b"\x01")  # a stray odd byte at the end is dropped
    assert done.returncode == 0, done.stderr.decode()
    out = np.frombuffer(done.stdout, dtype="<i2")
    assert len(out) == len(pcm) + 1024 and not out[:1024].any()  # 64 ms of silence first
    enhancer = StreamingEnhancer(dcu.load(causal_ckpt))
    want = np.concatenate([enhancer.process(pcm / np.float32(32768)), enhancer.flush()])
    assert np.abs(out - np.round(want * 32768)).max() <= 1  # the same stream, to one LSB
    assert np.abs(out).max() > 100
    err = done.stderr.decode().splitlines()
    assert "latency 64 ms" in err[0] and "real-time factor" in err[-1] and len(err) == 2


def test_stream_refuses_a_model_that_is_not_causal_and_a_file_argument(tiny_ckpt, causal_ckpt):
    done = dcu_command("stream", "-", "--model", tiny_ckpt, stdin=b"\x00" * 1000)
    assert done.returncode == 1 and done.stdout == b""
    assert done.stderr.decode() == (f"dcu stream: error: {tiny_ckpt}: a tiny that looks ahead "
                                    "(not causal) cannot stream; give a causal checkpoint (dcu "
                                    "train --causal)\n")
    done = dcu_command("stream", "in.pcm", "--model", causal_ckpt)
    assert done.returncode == 2 and done.stderr.decode().splitlines()[-1].endswith(
        "in.pcm: dcu stream reads standard input, give '-' (for audio files: dcu enhance --stream)")


def test_enhance_stream_writes_the_causal_models_output(tmp_path, causal_ckpt, tiny_ckpt):
    x = speechlike(12000, seed=8).numpy()
    sf.write(tmp_path / "noisy.wav", x, 16000, subtype="PCM_16")
    done = dcu_command("enhance", tmp_path / "noisy.wav", "--model", causal_ckpt, "--stream",
                       "--out", tmp_path / "out", "--precision", "fp32", "--keep-level")
    assert done.returncode == 0, done.stderr.decode()
    assert "streamed hop by hop: latency 64 ms, real-time factor" in done.stdout.decode()
    y, rate = sf.read(tmp_path / "out" / "noisy.wav", dtype="float32")
    assert rate == 16000 and y.shape == x.shape  # aligned with the input: the delay cut off
    with torch.no_grad():
        want = dcu.load(causal_ckpt)(torch.from_numpy(sf.read(tmp_path / "noisy.wav",
                                                               dtype="float32")[0])).numpy()
    assert np.abs(y - want).max() < 2 / 32768
    done = dcu_command("enhance", tmp_path / "noisy.wav", "--model", tiny_ckpt, "--stream",
                       "--out", tmp_path / "out2")
    assert done.returncode == 1 and not (tmp_path / "out2" / "noisy.wav").exists()
    assert done.stderr.decode().strip().endswith("not causal) cannot stream; give a causal "
                                                 "checkpoint (dcu train --causal)")


def test_stream_recording_equals_the_whole_file_at_any_rate_and_channel_count():
    model = randomise_norms(make("tiny", causal=True)).eval()
    stereo = np.stack([speechlike(22050, seed=9).numpy(), 0.02 * speechlike(22050, seed=10).numpy()])
    got, timing = stream_recording(StreamingEnhancer(model), stereo, 22050)
    want = enhance_recording(model, stereo, 22050)  # one chunk: the model on the whole file
    assert got.shape == stereo.shape and got.dtype == np.float32
    assert np.abs(got - want).max() < 1e-4
    assert timing["latency_ms"] == 64 and timing["rtf"] > 0 and timing["hop_ms_p99"] > 0


def test_bench_stream_prints_a_row_per_setting_and_writes_json(tmp_path, capsys):
    from dcu.jobs import speed as bench

    out = tmp_path / "stream.json"
    assert bench.bench_cli(["--stream", "--quick", "--arch", "tiny", "--stft", "1024/256",
                            "512/128", "--json", str(out)]) == 0
    table = capsys.readouterr().out.splitlines()
    assert [line.split()[:3] for line in table[3:7]] == [
        ["tiny", "fp32", "64ms"], ["tiny", "bf16", "64ms"], ["tiny", "fp32", "32ms"],
        ["tiny", "bf16", "32ms"]]
    rows = __import__("json").loads(out.read_text())["results"]
    assert [(r["n_fft"], r["hop_length"], r["hop_ms"]) for r in rows[::2]] == [(1024, 256, 16),
                                                                               (512, 128, 8)]
    assert all(0 < r["hop_ms_median"] <= r["hop_ms_p99"] and r["stream_rtf"] > 0
               and r["offline_rtf"] > 0 for r in rows)
    with pytest.raises(SystemExit):
        bench.bench_cli(["--stream", "--stft", "1024"])
    assert "give N_FFT/HOP, such as 1024/256" in capsys.readouterr().err
