"""dcu.training.log: the training log is written and read by one module, as JSON and CSV alike."""

import math

from dcu.training.log import read_log, write_log


def test_log_round_trip_json_and_csv(tmp_path):
    history = [{"step": 5, "epoch": 0, "lr": 1e-3, "train_loss": -0.5, "minutes": 0.1,
                "valid": {"wsdr": -0.6, "si_sdr": 9.5, "stoi": 0.9, "pesq": float("nan")}},
               {"step": 10, "epoch": 1, "lr": 5e-4, "train_loss": -0.7, "minutes": 0.2,
                "valid": {"wsdr": -0.7, "si_sdr": 11.0, "stoi": 0.92, "pesq": 2.0}}]
    write_log(history, tmp_path)
    rows = read_log(tmp_path)  # the run folder: its log.json
    assert [r["step"] for r in rows] == [5, 10] and rows[1]["valid_si_sdr"] == 11.0
    assert "valid" not in rows[0] and math.isnan(rows[0]["valid_pesq"])
    table = read_log(tmp_path / "log.csv")
    assert [r["valid_stoi"] for r in table] == [0.9, 0.92] and table[1]["step"] == 10.0
    assert not [p for p in tmp_path.iterdir() if p.name.endswith(".tmp")]


def test_a_folder_without_a_log_is_one_line(tmp_path):
    import pytest

    with pytest.raises(FileNotFoundError, match="no training log here"):
        read_log(tmp_path)
