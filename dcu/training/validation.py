"""Validation during training: a model's wSDR loss, SI-SDR, STOI and PESQ on held-out pairs.

:func:`validate` scores a model on full-length validation pairs, or on several validation sets at
once (``dcu train --valid-sets valid,p239_valid``), each set counted equally; its ``"score"`` is
what the training loop keeps ``best.pt`` by (:func:`dcu.training.trainer.selection_score`), with
:func:`validation_score` for ``--select-by pesq_stoi``. A metric whose package is missing (a
bare GPU box) gives NaN; every other failure of a metric is raised, not hidden.

Book: book/07_training.ipynb (validation and the best checkpoint)
"""

from __future__ import annotations

import numpy as np
import torch

from dcu import metrics
from dcu.audio import load_audio
from dcu.losses import wsdr_loss
from dcu.unet import DCUnet

__all__ = ["validate", "validation_score"]


def validation_score(pesq: float, stoi: float) -> float:
    """The ``--select-by pesq_stoi`` score of one validation set, in [0, 1], higher is better:
    ``((PESQ - 1) / 3.5 + STOI) / 2``, PESQ (wide-band, 1 to 4.5) mapped to [0, 1] and counted
    as much as STOI. Where PESQ is unavailable (nan) the score is STOI alone."""
    if not np.isfinite(pesq):
        return float(stoi)
    return 0.5 * ((pesq - 1.0) / 3.5 + stoi)


@torch.no_grad()
def validate(model: DCUnet, pairs, device, select_by: str = "pesq") -> dict:
    """Mean wSDR loss, SI-SDR, STOI and PESQ of ``model`` on full-length validation pairs.

    ``pairs`` may be a dict ``{split: pairs}``: then every metric is also given per split
    (``"<split>_pesq"``...), the unprefixed ones average all files, and ``"score"`` is the mean
    over splits of :func:`validation_score` (``select_by="pesq_stoi"``) or of PESQ, so each set
    counts equally however many files it has.
    """
    if isinstance(pairs, dict):
        per = {name: validate(model, p, device) for name, p in pairs.items()}
        sizes = {name: len(p) for name, p in pairs.items()}
        out = {}
        for k in ("wsdr", "si_sdr", "stoi", "pesq"):  # the mean over all files of all sets
            have = [n for n in per if np.isfinite(per[n][k])]
            out[k] = float(sum(per[n][k] * sizes[n] for n in have) / sum(sizes[n] for n in have)) \
                if have else float("nan")
        for name, v in per.items():
            out.update({f"{name}_{k}": x for k, x in v.items()})
        scores = [validation_score(v["pesq"], v["stoi"]) if select_by == "pesq_stoi" else v["pesq"]
                  for v in per.values()]
        out["score"] = float(np.mean(scores))
        return out
    was_training = model.training
    model.eval()
    benchmark = torch.backends.cudnn.benchmark
    torch.backends.cudnn.benchmark = False  # every file has its own length: don't re-tune each
    rows = []
    for noisy_path, clean_path in pairs:
        noisy = torch.from_numpy(load_audio(noisy_path)).to(device)
        clean = load_audio(clean_path)
        est = model(noisy.unsqueeze(0))[0]
        loss = float(wsdr_loss(noisy, torch.from_numpy(clean).to(device), est))
        e = est.float().cpu().numpy()
        row = {"wsdr": loss, "si_sdr": metrics.si_sdr(clean, e)}
        # a metric's package missing (a bare GPU box): NaN, and the best checkpoint is chosen by
        # SI-SDR (selection_score); metrics.pesq itself returns NaN where PESQ is undefined (no speech)
        try:
            row["stoi"] = metrics.stoi(clean, e)
        except ImportError:
            row["stoi"] = float("nan")
        try:
            row["pesq"] = metrics.pesq(clean, e)
        except ImportError:
            row["pesq"] = float("nan")
        rows.append(row)
    model.train(was_training)
    torch.backends.cudnn.benchmark = benchmark
    return {k: _mean_of_defined([r[k] for r in rows]) for k in ("wsdr", "si_sdr", "stoi", "pesq")}


def _mean_of_defined(values) -> float:
    """The mean over the files where a metric is defined; NaN when it is defined on none (a
    metric's package missing), without numpy's "Mean of empty slice" warning."""
    defined = [v for v in values if not np.isnan(v)]
    return float(np.mean(defined)) if defined else float("nan")
