"""dcu.plots and dcu plot-log: curves from real logs, spectrograms, clear errors."""

import subprocess
import sys
from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import numpy as np  # noqa: E402
import pytest  # noqa: E402

from dcu.plots import plot_log, plot_spectrogram, read_log  # noqa: E402

LOGS = Path(__file__).resolve().parent.parent / "data" / "checkpoints" / "logs"


def test_plot_log_cli_writes_a_png_of_the_shipped_logs(tmp_path):
    out = tmp_path / "curves.png"
    r = subprocess.run([sys.executable, "-m", "dcu", "plot-log", *map(str, sorted(LOGS.glob("*.json"))),
                        "--out", str(out)], capture_output=True, text=True, timeout=300)
    assert r.returncode == 0, r.stderr
    assert out.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n" and out.stat().st_size > 10_000


def test_plot_log_draws_one_line_per_run_and_metric(tmp_path):
    logs = {p.stem: read_log(p) for p in sorted(LOGS.glob("*.json"))}
    fig = plot_log(logs, metrics=("valid_si_sdr", "valid_stoi"))
    assert len(fig.axes) == 2
    for ax in fig.axes:
        assert len(ax.lines) == len(logs)
        steps = ax.lines[0].get_xdata()
        assert list(steps) == sorted(steps)


def test_plot_log_cli_errors_on_a_missing_run(tmp_path):
    r = subprocess.run([sys.executable, "-m", "dcu", "plot-log", str(tmp_path / "nope")],
                       capture_output=True, text=True, timeout=300)
    assert r.returncode == 1 and "nope" in r.stderr and "Traceback" not in r.stderr


def test_spectrogram_of_a_tone_peaks_at_its_frequency():
    import matplotlib.pyplot as plt

    t = np.arange(16000) / 16000
    im = plot_spectrogram(np.sin(2 * np.pi * 1000 * t), ax=plt.figure().gca())
    db = im.get_array()
    peak_bin = int(np.argmax(db[:, db.shape[1] // 2]))
    assert abs(peak_bin * 16000 / 1024 - 1000) < 16000 / 1024


def test_spectrogram_grid_fits_the_text_column_with_one_colour_bar():
    from dcu.plots import plot_spectrograms

    t = np.arange(8000) / 16000
    fig = plot_spectrograms({f"tone {f}": np.sin(2 * np.pi * f * t) for f in (500, 1000, 2000, 4000)},
                            ncols=2)
    assert fig.get_size_inches()[0] <= 7.5
    images = [ax for ax in fig.axes if ax.images]
    colour_bars = [ax for ax in fig.axes if not ax.images and ax.get_ylabel() == "dB re. peak"]
    assert len(images) == 4 and len(colour_bars) == 1


def test_audio_grid_wraps_and_escapes_its_labels():
    from dcu.plots import audio_grid

    html = audio_grid({"noisy <raw>": np.full(1600, 0.05), "clean": np.full(1600, 0.1)}, title="a & b").data
    assert "flex-wrap:wrap" in html and html.count("<audio") == 2
    assert "noisy &lt;raw&gt;" in html and "a &amp; b" in html and "<raw>" not in html


def test_plot_differences_draws_each_interval_and_greys_the_unresolved():
    from dcu.plots import plot_differences

    diffs = {"complex − real": {"pesq": {"mean": -0.1, "ci95": 0.02, "n": 180},
                                "stoi": {"mean": 0.01, "ci95": 0.03, "n": 180}},
             "UBD − BDT": {"pesq": {"mean": 0.2, "ci95": 0.05, "n": 180},
                           "stoi": {"mean": float("nan"), "ci95": float("nan"), "n": 0}}}
    fig = plot_differences(diffs, metrics=("pesq", "stoi"))
    assert len(fig.axes) == 2
    assert [t.get_text() for t in fig.axes[0].get_yticklabels()] == list(diffs)
    for ax, resolved, unresolved in zip(fig.axes, ([-0.1, 0.2], []), ([], [0.01])):
        # one black line at 0; the resolved points in colour, the rest grey
        assert [tuple(line.get_xdata()) for line in ax.lines if line.get_linestyle() == "-"
                and line.get_color() == "k"] == [(0, 0)]
        def points(colour):  # the x of each errorbar's marker drawn in that colour
            return sorted(x for c in ax.containers for x in c.lines[0].get_xdata()
                          if c.lines[0].get_color() == colour and np.isfinite(x))

        assert points("C0") == resolved and points("0.55") == unresolved
    assert [ax.get_title() for ax in fig.axes] == ["Δ PESQ", "Δ STOI"]
    renamed = {k: {"si_sdr": d["pesq"], "dnsmos_ovrl": d["stoi"]} for k, d in diffs.items()}
    fig = plot_differences(renamed, metrics=("si_sdr", "dnsmos_ovrl"))
    assert [ax.get_title() for ax in fig.axes] == ["Δ SI-SDR (dB)", "Δ DNSMOS OVRL"]


def test_plot_log_styles_groups_of_runs_and_moves_a_long_legend_below():
    logs = {f"{net} seed {s}": [{"step": 250, "valid_pesq": 2.0 + s / 10}, {"step": 500, "valid_pesq": 2.1}]
            for net in ("complex", "real") for s in range(3)}
    styles = {k: {"color": "C0" if k.startswith("complex") else "C1", "ls": ["-", "--", ":"][int(k[-1])]}
              for k in logs}
    fig = plot_log(logs, metrics=("valid_pesq",), styles=styles)
    lines = {line.get_label(): line for line in fig.axes[0].lines}
    assert set(lines) == set(logs)
    assert lines["real seed 2"].get_color() == "C1" and lines["real seed 2"].get_linestyle() == ":"
    assert lines["complex seed 1"].get_linestyle() == "--"
    assert fig.axes[0].get_legend() is None and len(fig.legends) == 1  # six runs: legend below
    assert len(fig.legends[0].get_texts()) == 6
    few = plot_log({k: logs[k] for k in list(logs)[:2]}, metrics=("valid_pesq",))
    assert few.axes[0].get_legend() is not None and not few.legends


def test_plot_log_says_which_metrics_it_could_not_find():
    with pytest.raises(ValueError, match="valid_pesq.*0 run"):
        plot_log({}, metrics=("valid_pesq",))
    with pytest.raises(ValueError, match="valid_pesq, valid_stoi.*1 run"):
        plot_log({"a": [{"step": 1, "train_loss": 0.5}]}, metrics=("valid_pesq", "valid_stoi"))


def test_plot_log_on_cpu_hours_with_titles():
    from dcu.plots import VOICES_PANELS

    rows = [{"step": s, "cpu_seconds": 1800.0 * s / 250, "valid_voices_valid_pesq": 2.0 + s / 1e4,
             "valid_score": 0.5} for s in (0, 250, 500)]
    fig = plot_log({"run": rows, "no cpu column": [{"step": 0, "valid_score": 0.4}]},
                   metrics=tuple(VOICES_PANELS), x="cpu_hours", titles=VOICES_PANELS)
    assert [ax.get_title() for ax in fig.axes[:2]] == ["unseen voices: PESQ", "selection score (three sets)"]
    line = fig.axes[0].lines[0]
    np.testing.assert_allclose(line.get_xdata(), [0.0, 0.5, 1.0])  # 1800 s a 250 steps = half an hour
    np.testing.assert_allclose(line.get_ydata(), [2.0, 2.025, 2.05])
    assert fig.axes[0].get_xlabel() == "CPU hours"
    assert len(fig.axes[1].lines) == 1  # a log without cpu_seconds has no point on that axis
