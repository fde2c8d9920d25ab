"""dcu.scripts.measure_levels: the quiet/loud measurement behind data/results/levels.json."""

import json

import numpy as np
import pytest
import torch

import dcu
from dcu.audio import load_audio
from dcu.corpus import list_pairs
from dcu.level import level_dbfs
from dcu.scripts.measure_levels import main


def test_levels_window_is_level_invariant_below_its_edge_and_reruns_keep_other_models(tmp_path):
    torch.manual_seed(0)
    model = dcu.save(dcu.DCUnet("tiny"), tmp_path / "tiny.pt")
    out = tmp_path / "levels.json"
    argv = ["--out", str(out), "--models", str(model), "--gains=-50,-40,0", "--files", "3"]
    assert main(argv) == 0
    doc = json.loads(out.read_text())
    pairs = list_pairs("valid")[:3]
    assert doc["files"] == [p.stem for p, _ in pairs] and doc["gains_db"] == [-50, -40, 0]
    level = [level_dbfs(load_audio(n)) for n, _ in pairs]
    assert all(-35 < v < -13 for v in level)  # the shipped files sit inside the window
    np.testing.assert_allclose(doc["input_level_dbfs"]["-40"], np.array(level) - 40, atol=0.006)
    m = doc["models"]["tiny"]
    si = {(mode, g): np.array([r["si_sdr"] for r in m[mode][g]]) for mode in m for g in m[mode]}
    # inside the window the window changes nothing; below its edge every gain gives the model the
    # same input (scaled to -35 dBFS), so the scale-invariant SI-SDR is the same at -50 and -40 dB
    np.testing.assert_array_equal(si["window", "0"], si["none", "0"])
    np.testing.assert_allclose(si["window", "-50"], si["window", "-40"], atol=2e-3)
    assert not np.allclose(si["none", "-50"], si["none", "0"], atol=1e-2)
    other = json.loads(json.dumps(m))
    other["window"]["0"][0]["si_sdr"] = 99.0  # another model's figures, measured earlier
    doc["models"]["DCUnet-99"] = other
    out.write_text(json.dumps(doc))
    assert main(argv) == 0
    again = json.loads(out.read_text())
    assert again["models"]["DCUnet-99"] == other
    assert again["models"]["tiny"] == m  # deterministic: the same figures again
    with pytest.raises(SystemExit, match="measured on other files or gains"):
        main(["--out", str(out), "--models", str(model), "--gains=0", "--files", "3"])
