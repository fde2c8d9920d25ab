"""dcu.training: the loss goes down, resume equals an uninterrupted run, NaN stops cleanly, DDP."""

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
import torch

from dcu.data import validation_sets
from dcu.losses import wsdr_loss
import dcu.training.trainer as trainer_mod
from dcu.training import TrainConfig, TrainingError, make_datasets, train, validate
from dcu.training.trainer import lr_at
from dcu.training.validation import validation_score
from dcu.unet import DCUnet

ROOT = Path(__file__).resolve().parent.parent
HOOKED = Path(__file__).resolve().parent / "train_with_hook.py"  # dcu train with a test hook


def cfg(tmp_path, data, **kw):
    base = dict(arch="tiny", data=str(data), batch_size=4, steps=6, segment_seconds=1.0,
                items_per_file=2, valid_every=1000, valid_files=1, warmup_steps=1,
                checkpoint_minutes=60, out=str(tmp_path / "run"), device="cpu")
    base.update(kw)
    return TrainConfig(**base)


def test_lr_schedule_warms_up_and_decays():
    c = TrainConfig(lr=1e-3, min_lr=1e-5, warmup_steps=10, steps=110)
    assert lr_at(0, c) == pytest.approx(1e-4)
    assert lr_at(9, c) == pytest.approx(1e-3)
    assert lr_at(60, c) == pytest.approx((1e-3 + 1e-5) / 2)
    assert lr_at(110, c) == pytest.approx(1e-5)


def test_loss_goes_down_on_real_speech(tmp_path, small_corpus):
    c = cfg(tmp_path, small_corpus, steps=40, remix_prob=0.0, lr=3e-3, warmup_steps=2,
            items_per_file=4)
    train(c, progress=False)
    log = json.loads((tmp_path / "run" / "log.json").read_text())
    trainer_losses = log[-1]["train_loss"]
    # the mean loss over the whole run is far below the untrained model's loss
    model = DCUnet("tiny")
    ds, _ = make_datasets(c)
    noisy, clean = zip(*[ds[i] for i in range(8)])
    noisy, clean = torch.stack(noisy), torch.stack(clean)
    with torch.no_grad():
        untrained = wsdr_loss(noisy, clean, model(noisy)).item()
        best = wsdr_loss(noisy, clean, _load(tmp_path)(noisy)).item()
    assert best < untrained - 0.1, (untrained, best, trainer_losses)


def _load(tmp_path):
    import dcu

    return dcu.load(tmp_path / "run" / "last.pt")


def as_format_1(ck):
    """``ck`` as a dcu of that time wrote it: format 1, whose checksum covers the tensors only."""
    ck["metadata"].pop("checkpoint_sha256")
    return {**ck, "format_version": 1}


def _weights(path):
    return torch.load(path, map_location="cpu", weights_only=True)["state_dict"]


@pytest.mark.slow  # > ~13 s on the 2 shared cores (pytest --durations)
def _cli_args(corpus, *save_every):
    """A 7-step ``dcu train`` of the tiny model on ``corpus`` (no validation before the end)."""
    return ["--arch", "tiny", "--data", str(corpus), "--batch-size", "4", "--steps", "7",
            "--segment-seconds", "1", "--items-per-file", "2", "--valid-every", "1000",
            "--valid-files", "1", "--warmup-steps", "2", *save_every, "--device", "cpu"]


def _train_process(args, out, *hook):
    """``dcu train ARGS --out OUT`` in its own process; with ``hook`` (an action of
    tests/train_with_hook.py and its step), the same command behind that hook."""
    runner = [str(HOOKED), *hook] if hook else ["-m", "dcu", "train"]
    return subprocess.run([sys.executable, *runner, *args, "--out", str(out)],
                          capture_output=True, text=True, timeout=600)


def _assert_resumed_run_equals_uninterrupted(args, straight_out, stopped_out):
    straight = _train_process(args, straight_out)
    assert straight.returncode == 0, straight.stderr[-2000:]
    resumed = _train_process([*args, "--resume"], stopped_out)
    assert resumed.returncode == 0, resumed.stderr[-2000:]
    a, b = _weights(straight_out / "last.pt"), _weights(stopped_out / "last.pt")
    assert a.keys() == b.keys()
    for k in a:
        assert torch.equal(a[k], b[k]), k
    # the log row after the resume averages the whole interval, as the uninterrupted run's does
    log_a, log_b = (json.loads((out / "log.json").read_text()) for out in (straight_out, stopped_out))
    assert [r["step"] for r in log_a] == [r["step"] for r in log_b] == [7]
    assert log_b[0]["train_loss"] == log_a[0]["train_loss"]
    # no temporary files left behind by the atomic saves
    assert not [p for p in stopped_out.iterdir() if p.name.endswith(".tmp")]


def test_resume_after_a_kill_equals_an_uninterrupted_run(tmp_path, small_corpus):
    args = _cli_args(small_corpus, "--checkpoint-every", "1")
    killed = _train_process(args, tmp_path / "b", "kill-at", "3")
    assert killed.returncode != 0  # SIGKILLed mid-run
    assert torch.load(tmp_path / "b" / "last.pt", weights_only=True)["train_state"]["step"] == 3
    # starting again without --resume must not clobber the run
    again = _train_process(args, tmp_path / "b")
    assert again.returncode == 1 and "--resume" in again.stderr
    _assert_resumed_run_equals_uninterrupted(args, tmp_path / "a", tmp_path / "b")


@pytest.mark.parametrize("where, saved_step", [("term-in-loss", 3), ("term-in-update", 4)])
def test_sigterm_saves_the_last_whole_step_and_the_resume_equals_an_uninterrupted_run(
        tmp_path, small_corpus, where, saved_step):
    """No periodic checkpoint is due (every 60 min), so only the save on the way out keeps the
    steps: a signal in step 4's loss (its batch already drawn) keeps step 3, one in its update
    lets the update finish and keeps step 4; either way the resume goes on as if never stopped."""
    args = _cli_args(small_corpus, "--checkpoint-minutes", "60")
    stopped = _train_process(args, tmp_path / "b", where, "4")
    assert stopped.returncode == 143, stopped.stderr[-2000:]  # 128 + SIGTERM
    assert f"interrupted: step {saved_step} saved to" in stopped.stderr
    assert "dcu: interrupted (SIGTERM)" in stopped.stderr
    assert torch.load(tmp_path / "b" / "last.pt", weights_only=True)["train_state"]["step"] == saved_step
    _assert_resumed_run_equals_uninterrupted(args, tmp_path / "a", tmp_path / "b")


def test_an_interruption_before_the_first_step_writes_no_checkpoint(tmp_path, small_corpus,
                                                                       monkeypatch):
    def stop(*a, **k):
        raise KeyboardInterrupt
    monkeypatch.setattr(trainer_mod, "compute_loss", stop)
    with pytest.raises(KeyboardInterrupt):
        train(cfg(tmp_path, small_corpus), progress=False)
    assert not (tmp_path / "run" / "last.pt").exists()  # a new run can start in the folder
    monkeypatch.undo()
    train(cfg(tmp_path, small_corpus, steps=2), progress=False)


def test_resume_refuses_other_settings(tmp_path, small_corpus):
    train(cfg(tmp_path, small_corpus, steps=2), progress=False)
    with pytest.raises(TrainingError, match="arch='tiny', not 'DCUnet-10'"):
        train(cfg(tmp_path, small_corpus, steps=4, arch="DCUnet-10"), resume=True, progress=False)
    with pytest.raises(TrainingError, match="mask='BDT', not 'UBD'"):
        train(cfg(tmp_path, small_corpus, steps=4, mask="UBD"), resume=True, progress=False)
    with pytest.raises(TrainingError, match="seed=0, not 1"):
        train(cfg(tmp_path, small_corpus, steps=4, seed=1), resume=True, progress=False)
    with pytest.raises(TrainingError, match="nothing to resume"):
        train(cfg(tmp_path, small_corpus, out=str(tmp_path / "none")), resume=True, progress=False)
    # the training data and its augmentations are part of a run too
    with pytest.raises(TrainingError, match="speed"):
        train(cfg(tmp_path, small_corpus, steps=4, speed="0.9,1.1"), resume=True, progress=False)


def test_a_run_saved_before_the_data_options_resumes_with_their_defaults(tmp_path, small_corpus):
    train(cfg(tmp_path, small_corpus, steps=2), progress=False)
    last = tmp_path / "run" / "last.pt"
    ck = torch.load(last, weights_only=True)
    for key in trainer_mod.DATA_FIELDS:  # what a checkpoint written before issue 16 holds
        if key not in ("remix_prob", "remix_snrs", "segment_seconds", "items_per_file"):
            del ck["metadata"]["train_config"][key]
    torch.save(as_format_1(ck), last)
    train(cfg(tmp_path, small_corpus, steps=3), resume=True, progress=False)
    assert torch.load(last, weights_only=True)["train_state"]["step"] == 3
    with pytest.raises(TrainingError, match="extra_speech"):
        train(cfg(tmp_path, small_corpus, steps=4, extra_speech="p239"), resume=True, progress=False)


def test_a_run_saved_before_a_model_field_existed_resumes_with_its_default(tmp_path, small_corpus):
    train(cfg(tmp_path, small_corpus, steps=2), progress=False)
    last = tmp_path / "run" / "last.pt"
    ck = torch.load(last, weights_only=True)
    for key in ("causal", "n_fft", "hop_length"):  # fields a run of an earlier version lacks
        del ck["config"][key]
        ck["metadata"]["train_config"]["model"].pop(key)
    torch.save(as_format_1(ck), last)
    train(cfg(tmp_path, small_corpus, steps=3), resume=True, progress=False)
    assert torch.load(last, weights_only=True)["train_state"]["step"] == 3
    with pytest.raises(TrainingError, match="causal"):  # a real difference is still refused
        train(cfg(tmp_path, small_corpus, steps=4, causal=True), resume=True, progress=False)


def test_validation_score_counts_pesq_and_stoi():
    assert validation_score(4.5, 1.0) == 1.0 and validation_score(1.0, 0.0) == 0.0
    assert validation_score(2.75, 0.9) == pytest.approx(0.5 * (0.5 + 0.9))
    assert validation_score(float("nan"), 0.8) == 0.8  # no PESQ package: STOI alone
    assert trainer_mod.selection_score({"pesq": 2.0, "si_sdr": 5.0}) == 2.0  # the shipped runs' rule
    assert trainer_mod.selection_score({"pesq": 2.0, "score": 0.6}) == 0.6


def test_validation_sets_are_scored_set_by_set(small_corpus):
    sets = {"valid": validation_sets(str(small_corpus), "valid", 1)["valid"],
            "p239_valid": validation_sets("shipped", "p239_valid", 1)["p239_valid"]}
    out = validate(DCUnet("tiny"), sets, torch.device("cpu"), "pesq_stoi")
    per = [validation_score(out[f"{n}_pesq"], out[f"{n}_stoi"]) for n in sets]
    assert out["score"] == pytest.approx(sum(per) / 2)  # each set counts equally
    assert out["pesq"] == pytest.approx((out["valid_pesq"] + out["p239_valid_pesq"]) / 2)  # one file each
    c = TrainConfig(data=str(small_corpus), valid_sets="valid,p239_valid", valid_files=1)
    assert list(make_datasets(c)[1]) == ["valid", "p239_valid"]  # p239_valid from the shipped corpus


def test_nan_loss_stops_and_keeps_the_last_good_checkpoint(tmp_path, small_corpus, monkeypatch):
    real = trainer_mod.compute_loss
    calls = {"n": 0}

    def flaky(*a, **k):
        calls["n"] += 1
        loss = real(*a, **k)
        return loss * float("nan") if calls["n"] == 4 else loss

    monkeypatch.setattr(trainer_mod, "compute_loss", flaky)  # the loop's loss
    with pytest.raises(TrainingError, match="step 3.*last.pt"):
        train(cfg(tmp_path, small_corpus, checkpoint_every=1), progress=False)
    ck = torch.load(tmp_path / "run" / "last.pt", weights_only=True)
    assert ck["train_state"]["step"] == 3
    assert all(torch.isfinite(v).all() for v in ck["state_dict"].values() if v.is_floating_point())


class NanGradient(torch.autograd.Function):
    """Identity forward (a finite loss), NaN gradient backward."""

    @staticmethod
    def forward(ctx, x):
        return x.clone()

    @staticmethod
    def backward(ctx, grad):
        return grad * float("nan")


@pytest.mark.parametrize("grad_clip", [5.0, 0.0])
def test_finite_loss_with_nan_gradients_never_reaches_the_weights(tmp_path, small_corpus,
                                                                  monkeypatch, grad_clip):
    real = trainer_mod.compute_loss
    calls = {"n": 0}

    def flaky(*a, **k):
        calls["n"] += 1
        loss = real(*a, **k)
        return NanGradient.apply(loss) if calls["n"] == 4 else loss

    monkeypatch.setattr(trainer_mod, "compute_loss", flaky)  # the loop's loss
    with pytest.raises(TrainingError, match="gradients became nan at step 3 .*last.pt"):
        train(cfg(tmp_path, small_corpus, checkpoint_every=1, grad_clip=grad_clip), progress=False)
    ck = torch.load(tmp_path / "run" / "last.pt", weights_only=True)
    assert ck["train_state"]["step"] == 3
    assert all(torch.isfinite(v).all() for v in ck["state_dict"].values() if v.is_floating_point())


def test_resume_of_a_file_that_is_not_a_training_checkpoint_is_one_line(tmp_path, small_corpus):
    import dcu

    run = tmp_path / "run"
    dcu.save(DCUnet("tiny"), run / "last.pt")  # e.g. a shipped model copied in
    with pytest.raises(TrainingError, match="no training state.*--init"):
        train(cfg(tmp_path, small_corpus), resume=True, progress=False)
    torch.save({"format": "dcu-checkpoint", "format_version": 1}, run / "last.pt")
    r = subprocess.run([sys.executable, "-m", "dcu", "train", "--arch", "tiny", "--data",
                        str(small_corpus), "--out", str(run), "--resume"],
                       capture_output=True, text=True, timeout=300)
    assert r.returncode == 1 and "Traceback" not in r.stderr
    assert r.stderr.strip().splitlines() == [
        f"dcu train: error: {run / 'last.pt'}: dcu checkpoint without its 'config' field "
        "(damaged, or not written by dcu); re-save or re-train it"]


def test_train_help_describes_every_option(capsys):
    # `dcu train --help` says what each of its options means, with its unit or format: an option
    # added to TrainConfig without a description fails here.
    from dataclasses import fields

    from dcu.training.config import FLAT_MODEL_OPTIONS, OPTION_HELP, config_from_args

    options = set(FLAT_MODEL_OPTIONS) | {f.name for f in fields(TrainConfig)} - {"model"}
    assert set(OPTION_HELP) == options, set(OPTION_HELP) ^ options
    assert all(len(text.split()) >= 3 for text in OPTION_HELP.values())
    with pytest.raises(SystemExit) as exit_:
        config_from_args(["--help"])
    out = " ".join(capsys.readouterr().out.split())  # argparse wraps lines
    assert exit_.value.code == 0
    for name in options:
        assert f"--{name.replace('_', '-')}" in out
        assert " ".join(OPTION_HELP[name].split()[:3]) in out, name


@pytest.mark.parametrize("option,value", [("--steps", "0"), ("--steps", "-5"),
                                          ("--batch-size", "0"), ("--valid-every", "0"),
                                          ("--lr", "nan"), ("--items-per-file", "0"),
                                          ("--remix-prob", "1.5"), ("--segment-seconds", "inf")])
def test_nonsense_numbers_are_refused_in_one_line(option, value, capsys):
    from dcu.training.config import config_from_args

    with pytest.raises(SystemExit) as exit_:
        config_from_args([option, value])
    err = capsys.readouterr().err.strip().splitlines()
    assert exit_.value.code == 2 and err[-1].startswith(f"dcu train: error: argument {option}: "
                                                        f"'{value}': must be")
    with pytest.raises(ValueError, match=option):  # the API refuses them too
        TrainConfig(**{option[2:].replace("-", "_"): float(value)})


def test_train_cli_reports_errors_in_one_line(tmp_path):
    r = subprocess.run([sys.executable, "-m", "dcu", "train", "--arch", "tiny", "--data",
                        str(tmp_path / "nowhere"), "--out", str(tmp_path / "r")],
                       capture_output=True, text=True, timeout=300)
    assert r.returncode == 1 and "nowhere" in r.stderr and "Traceback" not in r.stderr


@pytest.mark.slow  # > ~13 s on the 2 shared cores (pytest --durations)
def test_ddp_two_cpu_processes_keep_replicas_identical(tmp_path, small_corpus):
    env = dict(os.environ, OMP_NUM_THREADS="1")
    r = subprocess.run([sys.executable, "-m", "torch.distributed.run", "--nproc_per_node", "2",
                        "--master_port", "29517", str(HOOKED), "dump-state", "--arch", "tiny", "--data",
                        str(small_corpus), "--batch-size", "4", "--steps", "3", "--segment-seconds", "1",
                        "--items-per-file", "2", "--valid-files", "1", "--device", "cpu",
                        "--out", str(tmp_path / "ddp")],
                       capture_output=True, text=True, timeout=600, env=env)
    assert r.returncode == 0, r.stdout[-2000:] + r.stderr[-3000:]
    r0 = torch.load(tmp_path / "ddp" / "rank0.pt", weights_only=True)
    r1 = torch.load(tmp_path / "ddp" / "rank1.pt", weights_only=True)
    init = DCUnet("tiny").state_dict()
    changed = False
    for k in r0:
        if r0[k].is_floating_point() and "running" not in k:
            assert torch.equal(r0[k], r1[k]), k
            changed |= not torch.equal(r0[k], init[k]) if k in init else False
    assert changed  # the replicas trained, and stayed identical


def test_fine_tuning_scores_the_starting_weights_first(tmp_path, small_corpus, monkeypatch):
    """With --init, step 0 is validated, so best.pt is never worse than the starting model."""
    import dcu

    start = DCUnet("tiny")
    dcu.save(start, tmp_path / "start.pt", step=123, valid={"pesq": 2.5})
    scores = iter([3.0, 1.0, 1.0, 1.0])  # training "makes it worse" on validation

    def fake_validate(model, pairs, device):
        return {"wsdr": -0.5, "si_sdr": 10.0, "stoi": 0.9, "pesq": next(scores)}

    monkeypatch.setattr(trainer_mod, "validate", fake_validate)
    train(cfg(tmp_path, small_corpus, steps=4, valid_every=2, lr=1e-2,
              init=str(tmp_path / "start.pt")), progress=False)
    log = json.loads((tmp_path / "run" / "log.json").read_text())
    assert [row["step"] for row in log] == [0, 2, 4]
    best = _weights(tmp_path / "run" / "best.pt")
    last = _weights(tmp_path / "run" / "last.pt")
    ref = start.state_dict()
    assert all(torch.equal(best[k], ref[k]) for k in ref)
    assert any(not torch.equal(last[k], ref[k]) for k in ref if ref[k].is_floating_point())
    # the fine-tuned checkpoint records the stage it started from
    assert dcu.load(tmp_path / "run" / "best.pt").metadata["previous_stage"] == \
        {"step": 123, "valid": {"pesq": 2.5}}


def test_a_causal_run_starts_from_offline_weights_but_no_other_model_change(tmp_path, small_corpus):
    """--causal --init OFFLINE copies every weight (same parameters, other padding), as does a
    start made for other STFT settings; a start whose model differs in anything else is refused,
    naming both configs."""
    import dcu

    start = DCUnet("tiny")
    dcu.save(start, tmp_path / "offline.pt")
    c = cfg(tmp_path, small_corpus, steps=1, lr=1e-12, causal=True, init=str(tmp_path / "offline.pt"))
    trainer = trainer_mod.Trainer(c, progress=False)
    assert trainer.model.config.causal and not start.config.causal
    ref = start.state_dict()
    assert all(torch.equal(trainer.model.state_dict()[k], ref[k]) for k in ref)
    # the 32 ms model (512/128) from weights trained at the paper's 1024/256
    c = cfg(tmp_path, small_corpus, steps=1, causal=True, n_fft=512, hop_length=128,
            init=str(tmp_path / "offline.pt"), out=str(tmp_path / "run32"))
    trainer = trainer_mod.Trainer(c, progress=False)
    assert (trainer.model.config.n_fft, trainer.model.config.hop_length) == (512, 128)
    assert all(torch.equal(trainer.model.state_dict()[k], ref[k]) for k in ref)
    dcu.save(DCUnet("tiny", mask="UBD"), tmp_path / "other.pt")
    with pytest.raises(TrainingError, match="other.pt: its model config .* differs"):
        trainer_mod.Trainer(cfg(tmp_path, small_corpus, causal=True, out=str(tmp_path / "run2"),
                                init=str(tmp_path / "other.pt")), progress=False)


def test_remix_snrs_option_sets_the_snrs_of_remixed_items(tmp_path, small_corpus):
    from dcu.data import snr_db
    from dcu.training.config import config_from_args, make_datasets

    c, _ = config_from_args(["--data", str(small_corpus), "--remix-prob", "1", "--remix-snrs", "2.5, 20",
                             "--segment-seconds", "1"])
    assert c.remix_snrs == "2.5, 20" and TrainConfig().remix_snrs == "0,5,10,15"  # the paper's
    ds, _ = make_datasets(c)
    achieved = []
    for i in range(len(ds)):
        noisy, clean = (t.numpy() for t in ds[i])
        achieved.append(snr_db(clean, noisy - clean, power="active"))
    assert all(min(abs(a - 2.5), abs(a - 20.0)) < 0.01 for a in achieved), achieved
    for bad in ("", "5,loud", "nan"):
        with pytest.raises(ValueError, match="--remix-snrs"):
            make_datasets(TrainConfig(data=str(small_corpus), remix_snrs=bad))


def test_the_model_options_stay_flat_and_fill_the_nested_model_config():
    from dcu.training.config import config_from_args
    from dcu.unet import ModelConfig

    c, resume = config_from_args(["--arch", "tiny", "--mask", "UBD", "--network", "real",
                                  "--batch-norm", "naive", "--resume"])
    assert resume and c.model == ModelConfig("tiny", "UBD", "real", "naive")
    c, _ = config_from_args(["--causal", "--n-fft", "512", "--hop-length", "128"])
    assert c.model == ModelConfig(causal=True, n_fft=512, hop_length=128)  # a 32 ms causal model
    assert TrainConfig(arch="tiny", mask="BDSS") == TrainConfig(model=ModelConfig("tiny", "BDSS"))
    assert TrainConfig().model == ModelConfig()  # the defaults are the model's
    with pytest.raises(SystemExit):
        config_from_args(["--model", "tiny"])  # the nested field is not an option itself


def test_a_run_saved_with_the_old_flat_config_still_resumes(tmp_path, small_corpus):
    train(cfg(tmp_path, small_corpus, steps=2), progress=False)
    last = tmp_path / "run" / "last.pt"
    ck = torch.load(last, weights_only=True)
    nested = ck["metadata"]["train_config"]
    assert nested["model"]["arch"] == "tiny" and "arch" not in nested
    flat = {**{k: v for k, v in nested.items() if k != "model"}, **nested["model"], "extra": {}}
    ck["metadata"]["train_config"] = flat  # as runs before the nesting stored it
    torch.save(as_format_1(ck), last)
    assert TrainConfig.from_dict(flat) == TrainConfig.from_dict(nested)
    train(cfg(tmp_path, small_corpus, steps=4), resume=True, progress=False)
    assert torch.load(last, weights_only=True)["train_state"]["step"] == 4


def test_on_step_sees_every_step_after_its_checkpoint(tmp_path, small_corpus):
    seen = []

    def on_step(trainer):
        saved = torch.load(trainer.last_path, weights_only=True)["train_state"]["step"]
        seen.append((trainer.step, saved))

    train(cfg(tmp_path, small_corpus, steps=3, checkpoint_every=1), progress=False, on_step=on_step)
    assert seen == [(1, 1), (2, 2), (3, 3)]


def test_validation_fails_loudly_on_a_bug_in_a_metric(tmp_path, small_corpus, monkeypatch):
    """Only a metric's missing package gives NaN; any other failure is not hidden."""
    from dcu import metrics

    pairs = make_datasets(cfg(tmp_path, small_corpus))[1]["valid"]
    model = DCUnet("tiny")

    def missing(*args):
        raise ModuleNotFoundError("No module named 'pesq'")

    monkeypatch.setattr(metrics, "pesq", missing)
    row = validate(model, pairs, "cpu")
    assert row["pesq"] != row["pesq"] and row["si_sdr"] == row["si_sdr"]  # NaN, SI-SDR kept

    def broken(*args):
        raise ValueError("reference and estimate differ in length")

    monkeypatch.setattr(metrics, "pesq", broken)
    with pytest.raises(ValueError, match="differ in length"):
        validate(model, pairs, "cpu")
