"""dcu.jobs.evaluate: batch scoring, confidence intervals, and the `dcu evaluate` command line."""

import csv
import json
import math
import shutil
from pathlib import Path

import numpy as np
import pytest
from scipy import stats

from dcu import baselines, results
from dcu.jobs import evaluate
from dcu.audio import load_audio
from dcu.data import list_pairs
from dcu.metrics import METRICS, compute_all

CORPUS = Path(__file__).resolve().parent.parent / "data" / "corpus" / "valid"
NAMES = ["p232_112", "p232_203", "p257_006"]


@pytest.fixture(scope="module")
def folders(tmp_path_factory):
    """clean/, noisy/ and enhanced/ (= clean copies) with three real shipped pairs."""
    root = tmp_path_factory.mktemp("pairs")
    for kind in ("clean", "noisy"):
        (root / kind).mkdir()
        for name in NAMES:
            shutil.copy(CORPUS / kind / f"{name}.flac", root / kind)
    shutil.copytree(root / "clean", root / "enhanced")
    return root


def _pairs(root, kind="noisy"):
    return [(n, root / "clean" / f"{n}.flac", root / kind / f"{n}.flac") for n in NAMES]


def _direct(root, enhance=None):
    rows = []
    for n in NAMES:
        clean = load_audio(root / "clean" / f"{n}.flac")
        noisy = load_audio(root / "noisy" / f"{n}.flac")
        est = noisy if enhance is None else enhance(noisy, 16000)
        rows.append({"name": n, **compute_all(clean, est)})
    return rows


def _scaled_wiener(noisy, sample_rate):
    return 0.5 * baselines.wiener(noisy, sample_rate)


def test_summary_is_mean_and_t_interval():
    rows = [{"name": str(i), **{m: float(v) for m in METRICS}}
            for i, v in enumerate([1.0, 2.0, 4.0, np.nan])]
    s = results.summarize(rows)["pesq"]
    lo, hi = stats.t.interval(0.95, 2, loc=7 / 3, scale=stats.sem([1.0, 2.0, 4.0]))
    assert s["n"] == 3 and s["mean"] == pytest.approx(7 / 3)
    assert s["ci95"] == pytest.approx((hi - lo) / 2)


def test_paired_differences_match_files_by_name_and_skip_undefined_values():
    from dcu.results import paired

    before = [{"name": n, "pesq": v, "stoi": 0.5} for n, v in (("a", 1.0), ("b", 2.0), ("c", 3.0),
                                                               ("d", None), ("only_before", 9.0))]
    after = [{"name": n, "pesq": v, "stoi": 0.75} for n, v in (("c", 3.5), ("a", 2.0), ("b", 2.5),
                                                              ("d", 4.0), ("only_after", 0.0))]
    d = paired(before, after, metrics=("pesq", "stoi"))
    lo, hi = stats.t.interval(0.95, 2, loc=2 / 3, scale=stats.sem([1.0, 0.5, 0.5]))
    assert d["pesq"]["n"] == 3 and d["pesq"]["mean"] == pytest.approx(2 / 3)  # a, b, c; not d
    assert d["pesq"]["ci95"] == pytest.approx((hi - lo) / 2)
    assert d["stoi"] == {"mean": 0.25, "ci95": 0.0, "n": 4}  # d counts where both are defined
    assert paired(after, before, metrics=("pesq",))["pesq"]["mean"] == pytest.approx(-2 / 3)


def test_finite_turns_every_nan_and_inf_into_null_at_any_depth():
    from dcu.results import finite

    doc = {"pesq": {"mean": float("nan"), "ci95": 0.1, "n": 0},
           "files": [{"name": "a", "si_sdr": -math.inf}, {"name": "b", "si_sdr": 3.0}], "rows": (1, math.inf)}
    out = finite(doc)
    assert json.loads(json.dumps(out, allow_nan=False)) == {
        "pesq": {"mean": None, "ci95": 0.1, "n": 0},
        "files": [{"name": "a", "si_sdr": None}, {"name": "b", "si_sdr": 3.0}], "rows": [1, None]}
    assert math.isnan(doc["pesq"]["mean"])  # the input is left as it was


def test_resolved_sign_reads_the_interval_not_the_mean():
    from dcu.results import resolved_sign

    assert resolved_sign({"mean": 0.1, "ci95": 0.05}) == 1
    assert resolved_sign({"mean": -0.1, "ci95": 0.05}) == -1
    assert resolved_sign({"mean": 0.1, "ci95": 0.2}) == 0  # the interval includes 0
    assert resolved_sign({"mean": -0.05, "ci95": 0.05}) == 0  # touches 0: not resolved
    assert resolved_sign({"mean": 0.3, "ci95": float("nan")}) == 0  # one value: no interval
    assert resolved_sign({"mean": None, "ci95": None, "n": 0}) == 0  # undefined, as JSON holds it


def test_columns_to_rows_pairs_two_runs_file_by_file_like_their_columns():
    from dcu.results import columns_to_rows, paired

    names = ["a", "b", "c", "d"]
    run_a = {"pesq": [2.0, 3.0, None, 1.5], "stoi": [0.9, 0.8, 0.7, 0.6]}
    run_b = {"pesq": [1.0, 2.5, 2.0, 1.0], "stoi": [0.8, 0.8, 0.8, 0.5]}
    rows = columns_to_rows(run_a, names)
    assert rows[2] == {"name": "c", "pesq": None, "stoi": 0.7}
    d = paired(columns_to_rows(run_b, names), rows, metrics=("pesq", "stoi"))
    diff = np.array([1.0, 0.5, 0.5])  # c is undefined in run a, so left out of PESQ
    assert d["pesq"]["n"] == 3 and d["pesq"]["mean"] == pytest.approx(diff.mean())
    assert d["pesq"]["ci95"] == pytest.approx(stats.t.ppf(0.975, 2) * stats.sem(diff))
    assert d["stoi"]["n"] == 4 and d["stoi"]["mean"] == pytest.approx(np.mean([0.1, 0.0, -0.1, 0.1]))
    with pytest.raises(ValueError, match="'stoi' holds 3 values for 4 files"):
        columns_to_rows({"stoi": [0.1, 0.2, 0.3]}, names)


@pytest.mark.parametrize("jobs", [1, 2])
def test_rows_equal_direct_computation(folders, jobs):
    summary, rows = evaluate.evaluate_pairs(_pairs(folders), jobs=jobs, progress=False)
    expected = _direct(folders)
    assert [r["name"] for r in rows] == NAMES
    for got, want in zip(rows, expected):
        # Compare field by field: pytest.approx over a dict that holds a string (the name) is
        # a TypeError from pytest 9 on, so the name is compared exactly and the metrics as numbers.
        assert set(got) == set(want) and got["name"] == want["name"]
        for m in METRICS:
            assert got[m] == pytest.approx(want[m], rel=1e-9, nan_ok=True), m
    assert summary["pesq"]["mean"] == pytest.approx(np.mean([r["pesq"] for r in expected]))


@pytest.mark.parametrize("enhance", [baselines.wiener, _scaled_wiener,
                                     lambda x, sr: baselines.wiener(x, sr)])
def test_enhancers_in_workers_or_in_this_process_agree(folders, enhance):
    # module-level functions run in the workers, a lambda runs here: same numbers either way
    _, rows = evaluate.evaluate_pairs(_pairs(folders), enhance=enhance, jobs=2, progress=False)
    for got, want in zip(rows, _direct(folders, baselines.wiener)):
        for m in METRICS:
            if m != "si_sdr" and enhance is _scaled_wiener:
                continue  # only SI-SDR is scale-invariant
            assert got[m] == pytest.approx(want[m], rel=1e-6), m


def test_group_by_splits_rows_by_a_column(folders, tmp_path):
    table = tmp_path / "t.csv"
    table.write_text("name,snr_bin\np232_112,12.5\np232_203,2.5\np257_006,12.5\n")
    _, rows = evaluate.evaluate_pairs(_pairs(folders), jobs=1, progress=False)
    groups = results.group_by(rows, table, "snr_bin")
    assert list(groups) == ["2.5", "12.5"]  # numeric, not string, order
    assert groups["12.5"]["pesq"]["n"] == 2
    assert groups["2.5"]["si_sdr"]["mean"] == pytest.approx(rows[1]["si_sdr"])


def test_cli_baseline_writes_json_and_csv(folders, tmp_path, capsys):
    out_json, out_csv = tmp_path / "r.json", tmp_path / "r.csv"
    code = evaluate.evaluate_cli(["--clean", str(folders / "clean"), "--noisy",
                                  str(folders / "noisy"), "--baseline", "noisy", "--json",
                                  str(out_json), "--csv", str(out_csv), "--jobs", "1"])
    assert code == 0
    printed = capsys.readouterr()
    assert "pesq" in printed.out and "±95% CI" in printed.out
    assert printed.err.splitlines()[-2:] == [f"dcu evaluate: wrote {out_json}",
                                             f"dcu evaluate: wrote {out_csv}"]
    doc = json.loads(out_json.read_text())
    expected = _direct(folders)
    for m in METRICS:  # top level: metric -> mean
        assert doc[m] == pytest.approx(np.mean([r[m] for r in expected]), rel=1e-9)
        assert doc["n"][m] == 3 and doc["ci95"][m] > 0
    assert [f["name"] for f in doc["files"]] == NAMES
    with open(out_csv, newline="") as fh:
        table = list(csv.DictReader(fh))
    assert list(table[0]) == ["name", *METRICS] and len(table) == 3
    assert float(table[1]["pesq"]) == pytest.approx(expected[1]["pesq"])
    # rerunning may replace its own output, and says that it did
    assert evaluate.evaluate_cli(["--clean", str(folders / "clean"), "--noisy",
                                  str(folders / "noisy"), "--baseline", "noisy", "--json",
                                  str(out_json), "--jobs", "1"]) == 0
    assert capsys.readouterr().err.splitlines()[-1] == (
        f"dcu evaluate: replaced its earlier results in {out_json}")


def test_cli_split_scores_a_shipped_split_with_its_rebuilt_noisy_side(mini_p239, tmp_path, capsys):
    _, rows = mini_p239  # two p239_test pairs; their noisy side exists only once list_pairs rebuilds it
    out = tmp_path / "r.json"
    code = evaluate.evaluate_cli(["--split", "p239_test", "--baseline", "noisy", "--json", str(out),
                                  "--jobs", "1", "--group-by", "peak_scale"])
    assert code == 0
    doc, pairs = json.loads(out.read_text()), list_pairs("p239_test")
    assert [f["name"] for f in doc["files"]] == [c.stem for _, c in pairs] == sorted(r["name"] for r in rows)
    for f, (noisy, clean) in zip(doc["files"], pairs):
        assert f["pesq"] == pytest.approx(compute_all(load_audio(clean), load_audio(noisy))["pesq"])
    printed = capsys.readouterr().out  # --group-by reads the split's own table
    assert "peak_scale = 1.0" in printed and f"peak_scale = {rows[1]['peak_scale']}" in printed
    with pytest.raises(SystemExit):
        evaluate.evaluate_cli(["--split", "p239_test", "--clean", "a", "--baseline", "noisy"])
    with pytest.raises(SystemExit):
        evaluate.evaluate_cli(["--clean", "a", "--baseline", "noisy"])


def test_cli_enhanced_folder_of_clean_copies_scores_perfectly(folders, tmp_path):
    out = tmp_path / "e.json"
    assert evaluate.evaluate_cli(["--clean", str(folders / "clean"), "--noisy",
                                  str(folders / "noisy"), "--enhanced",
                                  str(folders / "enhanced"), "--json", str(out)]) == 0
    doc = json.loads(out.read_text())
    assert doc["pesq"] == pytest.approx(4.644, abs=0.01) and doc["ssnr"] == 35.0
    assert doc["stoi"] == pytest.approx(1.0) and doc["csig"] == 5.0


def test_cli_names_unmatched_files(folders, tmp_path, capsys):
    partial = tmp_path / "noisy"
    shutil.copytree(folders / "noisy", partial)
    (partial / "p232_203.flac").unlink()
    code = evaluate.evaluate_cli(["--clean", str(folders / "clean"), "--noisy", str(partial),
                                  "--baseline", "wiener"])
    err = capsys.readouterr().err
    assert code == 1 and "p232_203" in err and len(err.strip().splitlines()) == 1


def test_cli_names_a_file_of_the_wrong_length(folders, tmp_path, capsys):
    import soundfile as sf

    bad = tmp_path / "enhanced"
    shutil.copytree(folders / "enhanced", bad)
    wav = load_audio(bad / "p257_006.flac")
    sf.write(bad / "p257_006.flac", wav[:-100], 16000)
    code = evaluate.evaluate_cli(["--clean", str(folders / "clean"), "--noisy",
                                  str(folders / "noisy"), "--enhanced", str(bad)])
    err = capsys.readouterr().err
    assert code == 1 and "p257_006" in err and "samples" in err


def test_cli_never_overwrites_a_file_it_did_not_write(folders, tmp_path, capsys):
    mine = tmp_path / "notes.json"
    mine.write_text('{"my": "notes"}')
    code = evaluate.evaluate_cli(["--clean", str(folders / "clean"), "--noisy",
                                  str(folders / "noisy"), "--baseline", "noisy",
                                  "--json", str(mine), "--jobs", "1"])
    assert code == 1 and "not written by dcu evaluate" in capsys.readouterr().err
    assert mine.read_text() == '{"my": "notes"}'


def test_cli_requires_exactly_one_method(folders):
    with pytest.raises(SystemExit):
        evaluate.evaluate_cli(["--clean", str(folders / "clean"), "--noisy",
                               str(folders / "noisy")])
    with pytest.raises(SystemExit):
        evaluate.evaluate_cli(["--clean", "a", "--noisy", "b", "--baseline", "noisy",
                               "--enhanced", "c"])


def test_cli_model(folders, tmp_path):
    import dcu

    path = tmp_path / "tiny.pt"
    dcu.save(dcu.DCUnet(arch="tiny"), path)
    out = tmp_path / "m.json"
    assert evaluate.evaluate_cli(["--clean", str(folders / "clean"), "--noisy",
                                  str(folders / "noisy"), "--model", str(path),
                                  "--json", str(out)]) == 0
    doc = json.loads(out.read_text())
    assert all(doc[m] is not None for m in METRICS) and len(doc["files"]) == 3


# --------------------------------------------------------------------------- reliability (issue 15)
def test_cli_isolates_each_file_and_scores_the_rest(folders, tmp_path, capsys):
    import soundfile as sf

    bad = tmp_path / "enhanced"
    shutil.copytree(folders / "enhanced", bad)
    (bad / "p232_112.flac").write_bytes(b"fLaC not really")  # unreadable
    sf.write(bad / "p257_006.flac", load_audio(bad / "p257_006.flac")[:-100], 16000)  # too short
    (bad / "notes.txt").write_text("mine")
    out = tmp_path / "r.json"
    code = evaluate.evaluate_cli(["--clean", str(folders / "clean"), "--noisy",
                                  str(folders / "noisy"), "--enhanced", str(bad), "--json", str(out)])
    captured = capsys.readouterr()
    errors = [l for l in captured.err.splitlines() if l.startswith("dcu evaluate: error:")]
    assert code == 1 and len(errors) == 2
    assert "p232_112" in errors[0] and "p257_006" in errors[1] and "samples" in errors[1]
    assert "notes.txt" in captured.err and "note:" in captured.err  # what was not read is named
    assert "1 of 3 files" in captured.out
    doc = json.loads(out.read_text())
    assert [f["name"] for f in doc["files"]] == ["p232_203"] and len(doc["meta"]["failed"]) == 2


@pytest.mark.parametrize("jobs", [1, 2])
def test_any_exception_in_one_file_stays_with_it(folders, jobs):
    def flaky(x, sr):  # runs in this process (a closure), like a model's enhance
        if x.size == load_audio(folders / "noisy" / "p232_203.flac").size:
            raise MemoryError()
        return x

    errors = []
    _, rows = evaluate.evaluate_pairs(_pairs(folders), enhance=flaky, jobs=jobs,
                                      progress=False, errors=errors)
    assert [r["name"] for r in rows] == ["p232_112", "p257_006"]
    assert len(errors) == 1 and errors[0].startswith("p232_203: MemoryError")
    with pytest.raises(ValueError, match="p232_203"):  # without a list: raise, as before
        evaluate.evaluate_pairs(_pairs(folders), enhance=flaky, jobs=jobs, progress=False)


def test_cli_plans_its_output_files_before_any_work(folders, tmp_path, capsys, monkeypatch):
    def never(*a, **k):
        raise AssertionError("scored although the outputs were refused")

    monkeypatch.setattr(evaluate, "evaluate_pairs", never)
    base = ["--clean", str(folders / "clean"), "--noisy", str(folders / "noisy"),
            "--baseline", "noisy"]
    mine = tmp_path / "notes.csv"
    mine.write_text("my,own\n1,2\n")
    for extra, message in ((["--json", str(tmp_path / "r"), "--csv", str(tmp_path / "r")],
                            "name the same file"),
                           (["--json", str(folders / "clean" / "r.json")], "inside the input folder"),
                           (["--csv", str(mine)], "not written by dcu evaluate"),
                           (["--json", str(tmp_path)], "is a folder")):
        assert evaluate.evaluate_cli(base + extra) == 1
        err = capsys.readouterr().err.strip().splitlines()
        assert len(err) == 1 and message in err[0], err
    assert mine.read_text() == "my,own\n1,2\n"
    with pytest.raises(SystemExit):
        evaluate.evaluate_cli(base + ["--jobs", "0"])
    assert "--jobs" in capsys.readouterr().err


def test_result_files_get_the_umask_permissions(folders, tmp_path):
    import os

    old = os.umask(0o002)
    try:
        assert evaluate.evaluate_cli(["--clean", str(folders / "clean"), "--noisy",
                                      str(folders / "noisy"), "--enhanced",
                                      str(folders / "enhanced"), "--jobs", "1",
                                      "--csv", str(tmp_path / "r.csv")]) == 0
    finally:
        os.umask(old)
    assert (tmp_path / "r.csv").stat().st_mode & 0o777 == 0o664
