"""dcu.jobs.speed (`dcu bench` and its measurements): FLOP counts against torch's counter, the measurement helpers,
convolution peaks, the CLI and its JSON."""

import json

import pytest
import torch

import dcu
from dcu import engine
from dcu.jobs import speed
from dcu.losses import wsdr_loss


@pytest.mark.parametrize("arch", ["tiny", "DCUnet-10", "DCUnet-16"])
@pytest.mark.parametrize("num_samples", [4096, 7777])
def test_analytic_forward_flops_equal_torch_flop_counter(arch, num_samples):
    model = dcu.DCUnet(arch)
    assert speed.analytic_forward_flops(arch, num_samples) == \
        speed.count_forward_flops(model, num_samples)


@pytest.mark.parametrize("arch", ["tiny", "DCUnet-10"])
def test_analytic_training_flops_equal_counted_forward_and_backward(arch):
    from torch.utils.flop_counter import FlopCounterMode

    model = dcu.DCUnet(arch)
    noisy = torch.randn(2, 5000)
    with FlopCounterMode(display=False) as counter:  # the reference model's convolutions
        wsdr_loss(noisy, noisy * 0.5, model(noisy)).backward()
    assert speed.analytic_training_flops(arch, 5000, batch=2) == counter.get_total_flops()


def test_flops_grow_with_frames_and_batch():
    one = speed.analytic_forward_flops("DCUnet-20", 16000)
    assert speed.analytic_forward_flops("DCUnet-20", 16000, batch=3) == 3 * one
    assert speed.analytic_forward_flops("DCUnet-20", 64000) > 3.5 * one


def test_tune_cpu_flushes_denormals():
    settings = engine.tune_cpu()
    assert settings["flush_denormal"]
    tiny = torch.tensor([1e-39], dtype=torch.float32)  # a denormal float32
    assert (tiny * 1.0).item() == 0.0


def test_alternate_runs_every_callable_round_robin():
    order = []
    times = speed.alternate({"a": lambda: order.append("a"), "b": lambda: order.append("b")},
                            reps=3, warmup=1)
    assert order == ["a", "b"] + ["a", "b"] * 3
    assert [len(v) for v in times.values()] == [3, 3]
    assert all(t >= 0 for v in times.values() for t in v)


def test_training_step_trains_and_inference_call_is_pure():
    torch.manual_seed(0)
    model = dcu.DCUnet("tiny")
    before = [p.detach().clone() for p in model.parameters()]
    speed.training_step(model, batch=2, seconds=0.3)()
    assert any(not torch.equal(a, p) for a, p in zip(before, model.parameters()))
    after = {k: v.clone() for k, v in model.state_dict().items()}
    speed.inference_call(model, seconds=0.5)()
    assert not model.training
    assert all(torch.equal(after[k], v) for k, v in model.state_dict().items())


@pytest.mark.slow  # > ~13 s on the 2 shared cores (pytest --durations)
def test_peak_training_memory_in_a_child_process():
    mib = speed.peak_training_memory("dcu.jobs.speed:build_dcunet", {"arch": "tiny"}, batch=2,
                                     seconds=0.5, steps=1)
    assert 0 < mib < 300
    # a large parent must not leak into the child's figure (getrusage's maxrss would)
    ballast = torch.ones(400 * 2 ** 20 // 4)
    again = speed.peak_training_memory("dcu.jobs.speed:build_dcunet", {"arch": "tiny"}, batch=2,
                                       seconds=0.5, steps=1)
    del ballast
    assert again < 300 and abs(again - mib) < 0.5 * mib + 20
    more = speed.peak_training_memory("dcu.jobs.speed:build_dcunet", {"arch": "tiny"}, batch=8,
                                      seconds=0.5, steps=1)
    assert more > mib  # four times the batch needs more memory
    with pytest.raises(RuntimeError, match="failed"):
        speed.peak_training_memory("dcu.jobs.speed:no_such_builder", {}, batch=1, seconds=0.1)


def test_bench_cli_writes_table_and_json(tmp_path, capsys):
    out = tmp_path / "speed.json"
    assert speed.bench_cli(["--quick", "--arch", "tiny", "--reps", "1", "--json", str(out)]) == 0
    text = capsys.readouterr().out
    assert "tiny" in text and "RTF" in text
    report = json.loads(out.read_text())
    (row,) = report["results"]
    assert row["arch"] == "tiny"
    assert row["parameters"] == dcu.DCUnet("tiny").num_parameters()
    assert row["gflop_per_audio_second"] == pytest.approx(
        speed.analytic_forward_flops("tiny", 160000) / 1e10)
    assert len(row["train_step_seconds"]) == 1 and row["rtf"] > 0 and row["peak_train_mib"] > 0
    peaks = report["machine"]["conv_peak_gflops"]
    assert peaks["fp32"] > 0 and peaks["bf16"] > 0
    assert row["precision"] == engine.resolve_precision("auto")
    peak = peaks[row["precision"]]
    assert row["train_peak_fraction"] == pytest.approx(row["train_gflops"] / peak)
    assert report["settings"]["flush_denormal"] is True


def test_bench_cli_never_overwrites(tmp_path, capsys):
    out = tmp_path / "speed.json"
    out.write_text("mine")  # refused before any timing, in one line, status 1 (an output, not an option)
    assert speed.bench_cli(["--arch", "tiny", "--json", str(out)]) == 1
    assert capsys.readouterr().err.count("already exists") == 1 and out.read_text() == "mine"


def test_count_forward_flops_is_the_same_for_the_engine_and_leaves_it_alone():
    model = engine.optimize(dcu.DCUnet("tiny"))
    assert speed.count_forward_flops(model, 4096) == speed.analytic_forward_flops("tiny", 4096)
    assert engine.is_optimized(model)


def test_bench_cli_reference_and_precision_rows(tmp_path):
    out = tmp_path / "ref.json"
    assert speed.bench_cli(["--quick", "--arch", "tiny", "--reps", "1", "--no-memory",
                            "--reference", "--json", str(out)]) == 0
    assert json.loads(out.read_text())["results"][0]["precision"] == "reference"
    out = tmp_path / "bf16.json"
    assert speed.bench_cli(["--quick", "--arch", "tiny", "--reps", "1", "--no-memory",
                            "--precision", "bf16", "--json", str(out)]) == 0
    assert json.loads(out.read_text())["results"][0]["precision"] == "bf16"
    with pytest.raises(SystemExit):
        speed.bench_cli(["--precision", "fp16"])
