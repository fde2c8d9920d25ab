"""dcu/scripts/compare_models.py: issue 16's report of old against new weights, on real files."""

import json

import numpy as np
import pytest
import torch

import dcu
from dcu.audio import load_audio
from dcu.corpus import corpus_dir, list_pairs
from dcu.metrics import compute_all, dnsmos
from dcu.scripts import compare_models


def test_demo_set_is_the_shipped_conversation():
    (name, clean, noisy), = compare_models.eval_pairs("demo")
    assert name == "conversation" and clean.exists() and noisy.exists()
    assert [n for n, _, _ in compare_models.eval_pairs("unseen")] == [c.stem for _, c in list_pairs("unseen")]


def test_per_file_values_keep_six_significant_digits():
    rows = [{"name": "a", "pesq": 1.0797989368, "si_sdr": -12.345678901, "n": 3}]
    assert compare_models.significant(rows) == [{"name": "a", "pesq": 1.0798, "si_sdr": -12.3457, "n": 3}]
    shipped = json.loads((corpus_dir() / "results" / "generalization.json").read_text())
    values = [v for s in shipped["sets"].values() for m in s["methods"].values() for r in m["files"]
              for v in r.values() if isinstance(v, float)]
    assert values and all(float(f"{v:.6g}") == v for v in values)


@pytest.mark.slow
def test_scores_pairs_and_resumes(tmp_path, capsys):
    torch.manual_seed(0)
    ckpt = dcu.save(dcu.DCUnet("tiny"), tmp_path / "tiny.pt")
    out = tmp_path / "cmp.json"
    argv = ["--out", str(out), "--model", f"a={ckpt}", "--model", f"b={ckpt}", "--against", "b=a",
            "--sets", "unseen", "--baselines", "noisy"]
    assert compare_models.main(argv) == 0
    entry = json.loads(out.read_text())["sets"]["unseen"]
    noisy, a = entry["methods"]["noisy"]["files"], entry["methods"]["a"]["files"]
    assert len(noisy) == len(entry["files"]) == 9
    # the noisy row is what dcu evaluate and dcu enhance --dnsmos compute on the input itself
    name, clean_path, noisy_path = compare_models.eval_pairs("unseen")[0]
    x = load_audio(noisy_path)
    direct = {**compute_all(load_audio(clean_path), x.astype(np.float64), 16000),
              **{f"dnsmos_{k}": v for k, v in dnsmos(x, 16000).items() if k != "p808"}}
    assert noisy[0]["name"] == name
    assert all(noisy[0][k] == pytest.approx(v, rel=1e-5, abs=1e-6) for k, v in direct.items())  # 6 digits
    # paired differences are file by file; a model against itself differs by exactly nothing
    d = entry["paired"]["a - noisy"]["pesq"]
    assert d["mean"] == pytest.approx(np.mean([r["pesq"] - q["pesq"] for r, q in zip(a, noisy)]))
    assert entry["paired"]["b - a"]["stoi"] == {"mean": 0.0, "ci95": 0.0, "n": 9}
    # a second run finds every method scored and only prints the table
    capsys.readouterr()
    before = out.read_text()
    assert compare_models.main(argv) == 0
    assert "(9 files)" not in capsys.readouterr().out and json.loads(out.read_text()) == json.loads(before)


@pytest.mark.slow
def test_a_later_run_adds_models_and_keeps_the_earlier_ones(tmp_path):
    torch.manual_seed(0)
    ckpt = dcu.save(dcu.DCUnet("tiny"), tmp_path / "tiny.pt")
    out = tmp_path / "cmp.json"
    base = ["--out", str(out), "--sets", "demo", "--baselines", "noisy"]
    assert compare_models.main(base + ["--model", f"old={ckpt}"]) == 0
    assert compare_models.main(base + ["--model", f"new={ckpt}", "--against", "new=old"]) == 0
    doc = json.loads(out.read_text())
    assert doc["meta"]["models"] == {"old": str(ckpt), "new": str(ckpt)}
    assert doc["meta"]["against"] == {"new": "old"}
    assert set(doc["sets"]["demo"]["paired"]) == {"old - noisy", "new - noisy", "new - old"}
    # rows scored at one precision are never mixed with rows scored at another
    # comparisons added later, against two models at once, without scoring anything again
    assert compare_models.main(base + ["--against", "new=old,noisy"]) == 0
    again = json.loads(out.read_text())
    assert again["meta"]["against"] == {"new": "old,noisy"}
    assert set(again["sets"]["demo"]["paired"]) == {"old - noisy", "new - noisy", "new - old"}
    assert again["sets"]["demo"]["methods"] == doc["sets"]["demo"]["methods"]
    assert compare_models.main(base + ["--model", f"mix={ckpt}", "--against", "mix=old,new"]) == 0
    assert {"mix - old", "mix - new", "mix - noisy"} <= set(json.loads(out.read_text())["sets"]["demo"]["paired"])
    with pytest.raises(SystemExit, match="fp32.*another --out"):
        compare_models.main(base + ["--model", f"bf={ckpt}", "--precision", "bf16"])
