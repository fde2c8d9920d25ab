"""The training driver scripts call ``dcu train`` with options it accepts, and their documented
environment overrides reach it. Each script runs for real under bash with a stand-in ``python3``
first on PATH that only records its arguments; every recorded ``dcu train`` call is then parsed
by the real ``dcu train`` parser (:func:`dcu.training.config.config_from_args`)."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from dcu.training.config import config_from_args

ROOT = Path(__file__).resolve().parents[1]
GENERAL = ROOT / "dcu" / "scripts" / "train_general.sh"
VOICES = ROOT / "dcu" / "scripts" / "train_voices.sh"


def run_driver(tmp_path: Path, args: list[str], script: Path = GENERAL, **env) -> tuple[subprocess.CompletedProcess, list]:
    """Run ``bash SCRIPT ARGS`` (default train_general.sh) from the repository root; returns the
    finished process and the argument lists the stand-in ``python3`` was called with."""
    bin_dir, record = tmp_path / "bin", tmp_path / "calls.jsonl"
    bin_dir.mkdir(exist_ok=True)
    stub = bin_dir / "python3"
    stub.write_text(f"#!/bin/sh\nexec {sys.executable} -c 'import json, sys; "
                    f"open(sys.argv[1], \"a\").write(json.dumps(sys.argv[2:]) + \"\\n\")' "
                    f"{record} \"$@\"\n")
    stub.chmod(0o755)
    full_env = {**os.environ, "PATH": f"{bin_dir}{os.pathsep}{os.environ['PATH']}", **env}
    done = subprocess.run(["bash", str(script), *args], cwd=ROOT, env=full_env,
                          capture_output=True, text=True, timeout=60)
    calls = [json.loads(line) for line in record.read_text().splitlines()] if record.exists() else []
    return done, calls


def train_calls(calls: list) -> list:
    """(TrainConfig, resume) of every ``python3 -m dcu train ...`` call, in order."""
    found = []
    for argv in calls:
        if argv[:3] == ["-m", "dcu", "train"]:
            found.append(config_from_args(argv[3:]))
    return found


def test_general_cpu_runs_the_documented_recipe_for_each_model(tmp_path):
    runs = tmp_path / "runs"
    done, calls = run_driver(tmp_path, ["cpu", str(runs)])
    assert done.returncode == 0, done.stderr
    configs = train_calls(calls)
    assert [c.model.arch for c, _ in configs] == ["DCUnet-10", "DCUnet-16", "DCUnet-20"]
    assert [c.steps for c, _ in configs] == [8000, 6000, 5000]
    for (c, resume), n in zip(configs, (10, 16, 20)):
        assert not resume and c.init == f"dcunet{n}" and c.out == str(runs / f"general{n}")
        assert (c.device, c.workers, c.batch_size, c.lr, c.warmup_steps, c.seed) == \
               ("cpu", 0, 8, 1e-4, 100, 0)
        assert (c.train_pairs, c.extra_speech, c.speed, c.gain_db, c.speech_free_prob) == \
               ("all", "p239", "0.9,1.1", "-10,6", 0.0)
        assert (c.valid_sets, c.select_by, c.remix_prob) == ("valid,p239_valid", "pesq_stoi", 0.5)
    assert (runs / "general10.log").exists()  # each run's output goes to its log


def test_general_overrides_reach_dcu_train_and_a_started_run_resumes(tmp_path):
    runs = tmp_path / "abl"
    (runs / "general10").mkdir(parents=True)
    (runs / "general10" / "last.pt").write_bytes(b"")
    done, calls = run_driver(tmp_path, ["cpu", str(runs)], MODELS="10", SEED="1", SPEED="",
                             GAIN="", SPEECH_FREE="0.05", EXTRA="", INIT10="old10.pt",
                             STEPS10="500", LR="3e-5", WARMUP="20", VALID_EVERY="80")
    assert done.returncode == 0, done.stderr
    [(c, resume)] = train_calls(calls)
    assert resume and c.init == "old10.pt" and c.seed == 1
    assert (c.speed, c.gain_db, c.speech_free_prob, c.extra_speech) == ("", "", 0.05, "")
    assert (c.steps, c.lr, c.warmup_steps, c.valid_every) == (500, 3e-5, 20, 80)


def test_general_gpu_runs_the_three_models_with_large_batches(tmp_path):
    done, calls = run_driver(tmp_path, ["gpu", str(tmp_path / "g")])
    assert done.returncode == 0, done.stderr
    configs = train_calls(calls)
    assert sorted(c.model.arch for c, _ in configs) == ["DCUnet-10", "DCUnet-16", "DCUnet-20"]
    assert {(c.batch_size, c.lr, c.workers) for c, _ in configs} == {(32, 3e-4, 4)}


@pytest.mark.parametrize("mode", ["tpu", "CPU"])
def test_general_refuses_an_unknown_mode_before_training(tmp_path, mode):
    done, calls = run_driver(tmp_path, [mode, str(tmp_path / "r")])
    assert done.returncode == 2 and "usage:" in done.stderr
    assert train_calls(calls) == []


def test_voices_cpu_trains_on_many_voices_and_selects_by_unseen_voices(tmp_path):
    runs = tmp_path / "runs"
    done, calls = run_driver(tmp_path, ["cpu", str(runs)], script=VOICES)
    assert done.returncode == 0, done.stderr
    assert any(argv[:5] == ["-m", "dcu", "data", "download", "librispeech"] for argv in calls)
    configs = train_calls(calls)
    assert [(c.model.arch, c.steps, c.init, c.lr) for c, _ in configs] == \
           [("DCUnet-10", 3000, "dcunet10", 1e-4), ("DCUnet-16", 3000, "dcunet16", 1e-4),
            ("DCUnet-20", 2000, "dcunet20", 1e-4)]
    for (c, resume), n in zip(configs, (10, 16, 20)):
        assert not resume and not c.model.causal and c.out == str(runs / f"voices{n}")
        assert (c.model.n_fft, c.model.hop_length) == (1024, 256)  # the paper's STFT
        assert (c.extra_speech, c.source_weights) == ("p239,librispeech", "pairs=1,p239=1,librispeech=1")
        assert (c.valid_sets, c.select_by) == ("valid,p239_valid,voices_valid", "pesq_stoi")
        assert (c.speed, c.gain_db, c.speech_free_prob, c.remix_prob) == ("0.9,1.1", "-10,6", 0.0, 0.5)
        assert c.remix_snrs == "0,5,10,15"  # the paper's SNRs


def test_voices_scratch_causal_twin_and_resume(tmp_path):
    runs = tmp_path / "runs"
    (runs / "voices10_causal").mkdir(parents=True)
    (runs / "voices10_causal" / "last.pt").write_bytes(b"")
    done, calls = run_driver(tmp_path, ["cpu", str(runs)], script=VOICES, MODELS="10", INIT="scratch",
                             CAUSAL="1", TAG="_causal", WEIGHTS="", STEPS10="40", SNRS="0,5,10,15,20,25",
                             NFFT="512")
    assert done.returncode == 0, done.stderr
    [(c, resume)] = train_calls(calls)
    assert resume and c.model.causal and c.init == "" and c.lr == 1e-3 and c.steps == 40
    assert c.source_weights == "" and c.out == str(runs / "voices10_causal")
    assert c.remix_snrs == "0,5,10,15,20,25"
    assert (c.model.n_fft, c.model.hop_length) == (512, 128)  # the 32 ms model
