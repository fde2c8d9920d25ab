"""dcu.ablation: a quick run of two configurations is well formed, resumable and safe."""

import json
import math
from pathlib import Path

import numpy as np
import pytest
import torch

from dcu import ablation
from dcu.audio import load_audio
from dcu.data import list_pairs
from dcu.metrics import pesq
from dcu.unet import DCUnet


@pytest.fixture(scope="module")
def small_corpus(tmp_path_factory):
    """A corpus folder with 4 training and 2 validation pairs (links to shipped files)."""
    root = tmp_path_factory.mktemp("corpus")
    for split, n in (("train", 4), ("valid", 2)):
        for side in ("clean", "noisy"):
            (root / split / side).mkdir(parents=True)
        for noisy, clean in list_pairs(split)[:n]:
            (root / split / "noisy" / noisy.name).symlink_to(noisy)
            (root / split / "clean" / clean.name).symlink_to(clean)
    return root


@pytest.fixture(scope="module")
def quick(small_corpus, tmp_path_factory):
    out = tmp_path_factory.mktemp("abl") / "ablation.json"
    runs = [r for r in ablation.ablation_runs() if r.name in ("UBD/SDR", "BDT/wSDR real")]
    settings = {**ablation.QUICK, "data": str(small_corpus), "test_files": 2}
    result = ablation.run_ablation(out, settings, runs, jobs=1, progress=False)
    return out, settings, runs, result


def test_grid_covers_the_papers_ablations():
    runs = ablation.ablation_runs()
    grid = {(r.mask, r.loss) for r in runs if r.network == "complex" and r.seed == 0}
    assert grid == {(m, l) for m in ("UBD", "BDSS", "BDT") for l in ("MSE", "SDR", "wSDR")}
    assert any(r.network == "real" for r in runs)
    assert len({r.name for r in runs}) == len(runs)


def test_small_architecture_builds_both_networks_with_matched_size():
    complex_net = DCUnet(ablation.SMALL)
    real_net = DCUnet(ablation.SMALL, network="real")
    x = torch.randn(2, 8000) * 0.1
    assert complex_net(x).shape == x.shape and real_net(x).shape == x.shape
    n_c, n_r = complex_net.num_parameters(), real_net.num_parameters()
    assert 0.2e6 < n_c < 0.35e6
    assert abs(n_r - n_c) / n_c < 0.05


def test_quick_run_is_well_formed(quick):
    out, settings, runs, result = quick
    on_disk = json.loads(Path(out).read_text())
    assert on_disk == json.loads(json.dumps(result))
    names = on_disk["meta"]["test_files"]
    assert len(names) == 2 and on_disk["meta"]["settings"] == settings
    assert [r["name"] for r in on_disk["runs"]] == [r.name for r in runs]
    for entry in [on_disk["input"], *on_disk["runs"]]:
        for metric in ("pesq", "stoi", "si_sdr", "csig", "cbak", "covl"):
            values = entry["files"][metric]
            assert len(values) == len(names)
            assert entry["summary"][metric]["n"] == len(values)
            # the summary is the mean of the per-file values (to their rounding)
            assert math.isclose(entry["summary"][metric]["mean"], np.mean(values), abs_tol=1e-3)
    for run in on_disk["runs"]:
        assert run["train_seconds"] > 0 and math.isfinite(run["train_loss_mean"])
        assert 1.0 <= run["summary"]["pesq"]["mean"] <= 4.7
    real = next(r for r in on_disk["runs"] if r["name"] == "BDT/wSDR real")
    assert real["network"] == "real" and real["mask"] == "BDT" and real["loss"] == "wSDR"


def test_input_row_is_the_noisy_files_own_score(quick):
    out, *_ = quick
    result = json.loads(Path(out).read_text())
    name = result["meta"]["test_files"][0]
    noisy, clean = next(p for p in list_pairs("test") if p[1].stem == name)
    expected = pesq(load_audio(clean), load_audio(noisy))
    assert math.isclose(result["input"]["files"]["pesq"][0], expected, abs_tol=1e-3)


def test_second_call_resumes_without_training(quick, monkeypatch):
    out, settings, runs, result = quick
    before = Path(out).read_text()

    def no_training(*args, **kwargs):
        raise AssertionError("a finished configuration was trained again")

    monkeypatch.setattr(ablation, "train_one", no_training)
    again = ablation.run_ablation(out, settings, runs, jobs=1, progress=False)
    assert json.loads(json.dumps(again)) == json.loads(before)
    assert Path(out).read_text() == before


def test_other_settings_never_overwrite_the_file(quick):
    out, settings, runs, _ = quick
    before = Path(out).read_text()
    with pytest.raises(ValueError, match="never overwritten"):
        ablation.run_ablation(out, {**settings, "steps": 4}, runs, jobs=1, progress=False)
    assert Path(out).read_text() == before


def test_cli_rejects_bad_arguments_and_foreign_files(tmp_path, capsys):
    assert ablation.ablation_cli(["--out", str(tmp_path / "a.json"), "--steps", "0"]) == 2
    assert "at least 1" in capsys.readouterr().err
    foreign = tmp_path / "mine.json"
    foreign.write_text('{"my": "notes"}')
    assert ablation.ablation_cli(["--out", str(foreign), "--quick"]) == 1
    assert "never overwritten" in capsys.readouterr().err
    assert foreign.read_text() == '{"my": "notes"}'
