"""dcu.ablation: the grids cover the paper's ablations; a quick grid is well formed, resumes an
interrupted run from its checkpoint, never redoes a finished run, and never overwrites."""

import dataclasses
import json
import math
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from dcu import ablation
from dcu.base.atomic import claim, release
from dcu.audio import load_audio
from dcu.data import list_pairs
from dcu.metrics import pesq
from dcu.training import Trainer
from dcu.unet import DCUnet


def quick_settings(corpus, **changes):
    return dataclasses.replace(ablation.GRIDS["quick"], data=str(corpus), **changes)


@pytest.fixture(scope="module")
def quick(small_corpus, tmp_path_factory):
    tmp = tmp_path_factory.mktemp("abl")
    out, runs_dir = tmp / "ablation.json", tmp / "runs"
    settings = quick_settings(small_corpus)
    result = ablation.run_grid(out, runs_dir, settings, jobs=1, progress=False)
    return out, runs_dir, settings, result


def test_paper_grid_is_the_issues_grid():
    grid = ablation.GRIDS["paper"]
    assert grid.arch == "DCUnet-10" and grid.steps >= 1500 and grid.batch_size == 8
    assert grid.segment_seconds == 2.0 and grid.test_files == 0 and grid.unseen
    runs = grid.runs
    assert len({r.name for r in runs}) == len(runs) == len({r.folder for r in runs})
    for network in ("complex", "real"):  # complex vs real: BDT, wSDR, three seeds each
        seeds = {r.seed for r in runs if r.network == network and (r.mask, r.loss) == ("BDT", "wSDR")}
        assert seeds == {0, 1, 2}
    complex0 = [r for r in runs if r.network == "complex" and r.seed == 0]
    assert {r.mask for r in complex0 if r.loss == "wSDR"} == {"UBD", "BDSS", "BDT"}
    assert {r.loss for r in complex0 if r.mask == "BDT"} == {"MSE", "SDR", "wSDR"}
    assert {runs[0].network, runs[1].network} == {"complex", "real"}  # a comparison first


def test_small_grid_covers_mask_by_loss_and_its_network_is_a_fifth_of_dcunet10():
    runs = ablation.GRIDS["small"].runs
    grid = {(r.mask, r.loss) for r in runs if r.network == "complex" and r.seed == 0}
    assert grid == {(m, l) for m in ("UBD", "BDSS", "BDT") for l in ("MSE", "SDR", "wSDR")}
    n_c, n_r = DCUnet("small").num_parameters(), DCUnet("small", network="real").num_parameters()
    assert 0.2e6 < n_c < 0.35e6 and abs(n_r - n_c) / n_c < 0.05


def test_quick_grid_is_well_formed(quick):
    out, runs_dir, settings, result = quick
    on_disk = json.loads(Path(out).read_text())
    assert on_disk == json.loads(json.dumps(result))
    names = on_disk["meta"]["eval_files"]["test"]
    assert len(names) == 2 and on_disk["meta"]["settings"]["steps"] == settings.steps
    assert [r["name"] for r in on_disk["runs"]] == [r.name for r in settings.runs]
    for entry in [on_disk["input"]["test"], *(r["test"] for r in on_disk["runs"])]:
        for metric in ("pesq", "stoi", "si_sdr", "csig", "cbak", "covl", "ssnr"):
            values = entry["files"][metric]
            assert len(values) == len(names)
            assert entry["summary"][metric]["n"] == len(values)
            assert math.isclose(entry["summary"][metric]["mean"], np.mean(values), abs_tol=1e-3)
    for run in on_disk["runs"]:
        assert run["steps"] == settings.steps and run["batch_size"] == settings.batch_size
        assert run["precision"] == "fp32" and run["arch"] == "tiny"
        assert run["wall_seconds"] > 0 and run["cpu_seconds"] > 0
        assert run["log"] and run["log"][-1]["step"] == settings.steps
        assert 1.0 <= run["test"]["summary"]["pesq"]["mean"] <= 4.7
        assert (runs_dir / Path(run["folder"]).name / "last.pt").exists()
    real = next(r for r in on_disk["runs"] if r["network"] == "real")
    assert real["mask"] == "BDT" and real["loss"] == "wSDR"


def test_input_row_is_the_noisy_files_own_score(quick):
    out, *_ = quick
    result = json.loads(Path(out).read_text())
    name = result["meta"]["eval_files"]["test"][0]
    noisy, clean = next(p for p in list_pairs("test") if p[1].stem == name)
    expected = pesq(load_audio(clean), load_audio(noisy))
    assert math.isclose(result["input"]["test"]["files"]["pesq"][0], expected, abs_tol=1e-3)


def test_second_call_redoes_nothing(quick, monkeypatch):
    out, runs_dir, settings, _ = quick
    before = Path(out).read_text()

    def no_training(*args, **kwargs):
        raise AssertionError("a finished run was trained again")

    monkeypatch.setattr(ablation, "train_run", no_training)
    again = ablation.run_grid(out, runs_dir, settings, jobs=1, progress=False)
    assert json.loads(json.dumps(again)) == json.loads(before)
    assert Path(out).read_text() == before


def test_processes_sharing_a_grid_skip_claimed_runs_and_keep_each_others_results(
        small_corpus, tmp_path, monkeypatch):
    settings = quick_settings(small_corpus)
    out, runs_dir = tmp_path / "shared.json", tmp_path / "runs"
    first, second = settings.runs[:2]
    hold = ("import sys; from dcu.base.atomic import claim; assert claim(sys.argv[1]); "
            "print('held', flush=True); sys.stdin.read()")
    other = subprocess.Popen([sys.executable, "-c", hold, str(runs_dir / second.folder / "running.lock")],
                             stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True)
    try:  # another live process is training the second run
        assert other.stdout.readline().strip() == "held"
        trained = []
        real_train_run = ablation.train_run

        def spy(run, *args, **kwargs):
            trained.append(run.name)
            return real_train_run(run, *args, **kwargs)

        monkeypatch.setattr(ablation, "train_run", spy)
        result = ablation.run_grid(out, runs_dir, settings, runs=[first, second], jobs=1, progress=False)
        assert trained == [first.name] and [r["name"] for r in result["runs"]] == [first.name]
        assert claim(runs_dir / first.folder / "running.lock")  # released when done
        release(runs_dir / first.folder / "running.lock")
        # the other process finishes and records its run; ours must not have dropped it, nor it ours
        doc = json.loads(out.read_text())
        doc["runs"].append({**doc["runs"][0], "name": second.name})
        out.write_text(json.dumps(doc))
    finally:
        other.communicate("")  # the other process ends, and its lock with it
    again = ablation.run_grid(out, runs_dir, settings, runs=[first, second], jobs=1, progress=False)
    assert trained == [first.name] and [r["name"] for r in again["runs"]] == [first.name, second.name]


def test_an_interrupted_run_resumes_from_its_checkpoint(small_corpus, tmp_path, monkeypatch):
    settings = quick_settings(small_corpus, steps=6, valid_every=3)
    out, runs_dir = tmp_path / "a.json", tmp_path / "runs"
    real_step = Trainer._validate_and_log

    def killed_after_first_validation(self, *args, **kwargs):
        real_step(self, *args, **kwargs)  # validates and checkpoints at step 3
        if self.step == 3:
            raise KeyboardInterrupt  # the grid stops here, as a Ctrl-C or a kill would

    monkeypatch.setattr(Trainer, "_validate_and_log", killed_after_first_validation)
    with pytest.raises(KeyboardInterrupt):
        ablation.run_grid(out, runs_dir, settings, jobs=1, progress=False)
    first = runs_dir / settings.runs[0].folder
    assert (first / "last.pt").exists()
    assert not json.loads(out.read_text())["runs"]  # nothing recorded for an unfinished run
    monkeypatch.setattr(Trainer, "_validate_and_log", real_step)
    starts = []
    real_init = Trainer.__init__

    def spy(self, cfg, resume=False, progress=True):
        real_init(self, cfg, resume=resume, progress=progress)
        starts.append((cfg.out, resume, self.step))

    monkeypatch.setattr(Trainer, "__init__", spy)
    result = ablation.run_grid(out, runs_dir, settings, jobs=1, progress=False)
    assert starts[0] == (str(first), True, 3)  # resumed at its checkpoint, not from scratch
    assert [r["steps"] for r in result["runs"]] == [6, 6]
    assert [row["step"] for row in result["runs"][0]["log"]] == [3, 6]


def test_another_grid_never_overwrites_the_file(quick, small_corpus):
    out, runs_dir, settings, _ = quick
    before = Path(out).read_text()
    with pytest.raises(ValueError, match="never overwritten"):
        ablation.run_grid(out, runs_dir, quick_settings(small_corpus, steps=4), jobs=1,
                          progress=False)
    assert Path(out).read_text() == before


def test_cli_rejects_bad_arguments_and_foreign_files(tmp_path, capsys):
    with pytest.raises(SystemExit):
        ablation.ablation_cli(["--grid", "quick", "--out", str(tmp_path / "a.json"), "--steps", "0"])
    assert "at least 1" in capsys.readouterr().err
    with pytest.raises(SystemExit):
        ablation.ablation_cli(["--grid", "quick", "--out", str(tmp_path / "a.json"),
                               "--only", "nonsense"])
    assert "no run named nonsense" in capsys.readouterr().err
    foreign = tmp_path / "mine.json"
    foreign.write_text('{"my": "notes"}')
    assert ablation.ablation_cli(["--grid", "quick", "--out", str(foreign),
                                  "--runs", str(tmp_path / "runs")]) == 1
    assert "never overwritten" in capsys.readouterr().err
    assert foreign.read_text() == '{"my": "notes"}'


def test_difference_is_the_file_by_file_paired_mean_of_the_committed_grid():
    result = json.loads((Path(ablation.__file__).parent.parent / "data" / "results"
                         / "ablation.json").read_text())
    runs = {r["name"]: r for r in result["runs"]}
    assert {"complex seed 0", "real seed 0"} <= set(runs)
    d = ablation.difference(result, "complex seed 0", "real seed 0")
    for m in ("pesq", "stoi", "si_sdr"):
        a = np.array(runs["complex seed 0"]["test"]["files"][m], dtype=float)
        b = np.array(runs["real seed 0"]["test"]["files"][m], dtype=float)
        diff = (a - b)[np.isfinite(a - b)]
        assert d[m]["n"] == diff.size == len(result["meta"]["eval_files"]["test"]) == 180
        assert d[m]["mean"] == pytest.approx(diff.mean())
        assert d[m]["ci95"] == pytest.approx(1.9732 * diff.std(ddof=1) / math.sqrt(diff.size), rel=1e-3)
    back = ablation.difference(result, "real seed 0", "complex seed 0", split="unseen")
    assert back["pesq"]["n"] == 9
    assert back["pesq"]["mean"] == pytest.approx(
        -ablation.difference(result, "complex seed 0", "real seed 0", split="unseen")["pesq"]["mean"])


def test_committed_grid_is_the_whole_paper_grid_at_full_budget():
    """What issue 17 asks of data/results/ablation.json: every run of the paper grid, DCUnet-10,
    >= 1500 steps of 8 crops, every test file scored (and the unseen set), what a reader needs to
    recompute a comparison recorded per run."""
    result = json.loads((Path(ablation.__file__).parent.parent / "data" / "results"
                         / "ablation.json").read_text())
    grid = ablation.GRIDS["paper"]
    runs = {r["name"]: r for r in result["runs"]}
    assert set(runs) == {r.name for r in grid.runs}
    n_test, n_unseen = (len(result["meta"]["eval_files"][s]) for s in ("test", "unseen"))
    assert n_test == len(list_pairs("test")) == 180 and n_unseen == 9
    for spec in grid.runs:
        run = runs[spec.name]
        assert (run["arch"], run["network"], run["mask"], run["loss"], run["seed"]) == \
            ("DCUnet-10", spec.network, spec.mask, spec.loss, spec.seed)
        assert run["steps"] >= 1500 and run["batch_size"] == 8 and run["precision"] in ("bf16", "fp32")
        assert run["wall_seconds"] > 0 and run["cpu_seconds"] > 0
        for split, n in (("test", n_test), ("unseen", n_unseen)):
            files = run[split]["files"]
            for m in ("pesq", "stoi", "si_sdr"):
                values = np.array(files[m], dtype=float)
                assert values.size == n and np.isfinite(values).all(), (spec.name, split, m)
                assert run[split]["summary"][m]["mean"] == pytest.approx(values.mean(), abs=1e-4)  # rounded
