"""dcu.scripts.sweep_mix: validation scores of weight mixes, as dcu train would score them."""

import json

import pytest
import torch

import dcu
import dcu.engine
from dcu.corpus import validation_sets
from dcu.scripts.sweep_mix import main
from dcu.training.validation import validate


@pytest.mark.slow
def test_mix_end_points_score_as_the_models_themselves_and_rows_are_not_redone(tmp_path, capsys):
    torch.manual_seed(0)
    start = dcu.save(dcu.DCUnet("tiny"), tmp_path / "start.pt")
    end = dcu.save(dcu.DCUnet("tiny"), tmp_path / "end.pt")
    out = tmp_path / "mix.json"
    argv = ["--label", "tiny", "--start", str(start), "--end", str(end), "--alphas", "0,0.5,1",
            "--out", str(out), "--valid-files", "2", "--save-dir", str(tmp_path / "mixes")]
    assert main(argv) == 0
    rows = {r["alpha"]: r for r in json.loads(out.read_text())["rows"]}
    assert sorted(rows) == [0.0, 0.5, 1.0] and (tmp_path / "mixes" / "tiny_0.5.pt").exists()
    sets = validation_sets("shipped", "valid,p239_valid", 2)
    for alpha, path in ((0.0, start), (1.0, end)):
        direct = validate(dcu.engine.optimize(dcu.load(path), "bf16"), sets, "cpu", select_by="pesq_stoi")
        assert rows[alpha]["score"] == pytest.approx(direct["score"], abs=1e-6)
        assert rows[alpha]["p239_valid_pesq"] == pytest.approx(direct["p239_valid_pesq"], abs=1e-6)
    assert rows[0.0]["score"] != rows[1.0]["score"]
    capsys.readouterr()
    before = out.read_text()
    assert main(argv) == 0  # every row there already: nothing is scored again
    assert out.read_text() == before
    assert "alpha 0.50: score" in capsys.readouterr().out
