"""dcu.scripts.listening: outputs of unshipped checkpoints on shipped excerpts, for the book."""

import json

import numpy as np
import pytest
import soundfile as sf

import dcu
from dcu.audio import load_audio
from dcu.corpus import corpus_dir, list_pairs
from dcu.jobs.enhance import enhance_recording
from dcu.scripts import listening


@pytest.fixture
def checkpoints(tmp_path):
    torch = pytest.importorskip("torch")
    torch.manual_seed(0)
    paths = {}
    for label, causal in (("offline", False), ("causal", True)):
        paths[label] = tmp_path / label / "best.pt"
        paths[label].parent.mkdir()
        dcu.save(dcu.DCUnet("tiny", causal=causal), paths[label])
    return paths


def test_writes_each_models_output_on_each_excerpt_with_a_manifest(tmp_path, checkpoints):
    out = tmp_path / "heard"
    assert listening.main(["--out", str(out), "--model", f"off={checkpoints['offline']}",
                           "--model", f"cau={checkpoints['causal']}",
                           "--clip", "test:1", "--clip", "demo:0:1-1.5"]) == 0
    doc = json.loads((out / "listening.json").read_text())
    assert doc["models"]["cau"]["causal"] and not doc["models"]["off"]["causal"]
    assert doc["models"]["off"]["checkpoint"] == "offline/best.pt"
    assert doc["models"]["off"]["tensor_sha256"] == dcu.load(checkpoints["offline"]).metadata["tensor_sha256"]
    test_clip, demo_clip = doc["clips"]
    noisy = list_pairs("test")[1][0]
    assert test_clip["noisy"] == f"corpus/test/noisy/{noisy.name}"
    assert (test_clip["first_sample"], test_clip["last_sample"]) == (0, sf.info(noisy).frames)
    assert (demo_clip["first_sample"], demo_clip["last_sample"]) == (16000, 24000)
    for clip in doc["clips"]:
        excerpt = load_audio(corpus_dir() / clip["noisy"])[clip["first_sample"]:clip["last_sample"]]
        for label, path in (("off", checkpoints["offline"]), ("cau", checkpoints["causal"])):
            written, sr = sf.read(out / clip["outputs"][label], dtype="float32")
            expected = np.clip(enhance_recording(dcu.load(path), excerpt, 16000), -1, 1)
            assert sr == 16000 and written.shape == excerpt.shape
            assert np.abs(written - expected).max() <= 1 / 32768 + 1e-6  # 16-bit rounding only
    assert (out / "demo_conversation_cau.flac").exists()


def test_refuses_to_replace_anything_and_bad_specs(tmp_path, checkpoints):
    out = tmp_path / "heard"
    model = ["--model", f"off={checkpoints['offline']}"]
    listening.main(["--out", str(out), *model, "--clip", "test:0:0-0.5"])
    before = {p.name: p.read_bytes() for p in out.iterdir()}
    with pytest.raises(SystemExit, match="already exists; nothing was written"):
        listening.main(["--out", str(out), *model, "--clip", "test:0:0-0.5", "--clip", "test:1"])
    assert {p.name: p.read_bytes() for p in out.iterdir()} == before
    other = str(tmp_path / "other")
    with pytest.raises(SystemExit, match="test has 180 pairs"):
        listening.main(["--out", other, *model, "--clip", "test:180"])
    with pytest.raises(SystemExit, match="expected SET:INDEX or SET:INDEX:START-END"):
        listening.main(["--out", other, *model, "--clip", "test:0:2-1"])
    with pytest.raises(SystemExit, match="is only 30.0 s long"):
        listening.main(["--out", other, *model, "--clip", "demo:0:40-50"])
    with pytest.raises(SystemExit, match="expected LABEL=CHECKPOINT"):
        listening.main(["--out", other, "--model", str(checkpoints["offline"]), "--clip", "test:0"])
    assert not (tmp_path / "other").exists()
