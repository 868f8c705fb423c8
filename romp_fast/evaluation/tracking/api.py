"""Entry points: one sequence -> TrackEval's results, and TrackEval's combination over sequences."""
from __future__ import annotations

import numpy as np

from romp_fast.evaluation.tracking import clear, hota, identity, native
from romp_fast.evaluation.tracking.sequence import Sequence, from_trackeval

METRICS = ("HOTA", "CLEAR", "Identity")
_EVAL = {"HOTA": lambda s, thr, exact: hota.eval_hota(s, exact),
         "CLEAR": lambda s, thr, exact: clear.eval_clear(s, thr, exact),
         "Identity": lambda s, thr, exact: identity.eval_identity(s, thr, exact)}
_COMBINE = {"HOTA": hota.combine_hota, "CLEAR": clear.combine_clear, "Identity": identity.combine_identity}


def _check_metrics(metrics):
    metrics = tuple(metrics)
    unknown = [m for m in metrics if m not in METRICS]
    if unknown:
        raise ValueError(f"unknown tracking metrics {unknown}; valid: {list(METRICS)}")
    return metrics


def eval_sequence(data, *, metrics=METRICS, threshold: float = 0.5, exact: bool = False) -> dict:
    """Every metric's result for one sequence, as TrackEval's ``Metric.eval_sequence`` returns it.

    Args:
        data: TrackEval's per-sequence dict (``num_timesteps``, ``num_gt_ids``, ``num_tracker_ids``,
            ``num_gt_dets``, ``num_tracker_dets``, ``gt_ids[t]``, ``tracker_ids[t]`` with ids
            0..n-1, ``similarity_scores[t]`` ``[n_gt, n_tracker]`` in [0, 1]), or a prepared
            :class:`~romp_fast.evaluation.tracking.sequence.Sequence`.
        metrics: any of "HOTA", "CLEAR", "Identity".
        threshold: CLEAR's and Identity's similarity threshold (TrackEval's ``THRESHOLD``).
        exact: solve every frame's full matrix with scipy, as TrackEval does, so that even among
            tied optimal assignments the same one is picked (slower). The default runs one fused
            native pass (``native.py``; the numpy path over batched ``linear_assignment`` when the
            extension is not built) that solves each frame's connected components on their own:
            identical whenever each frame's optimum is unique (continuous similarities).
    Returns:
        ``{"HOTA": {...}, "CLEAR": {...}, "Identity": {...}}`` with TrackEval's field names; HOTA's
        array fields are float64[19] over alpha = 0.05 .. 0.95.
    """
    metrics = _check_metrics(metrics)
    if not exact and not isinstance(data, Sequence):
        out = native.eval_lists(data, metrics, threshold)
        if out is not None:
            return out
    seq = data if isinstance(data, Sequence) else from_trackeval(data, keep_frames=exact)
    if not exact:
        out = native.eval_flat(seq, metrics, threshold)
        if out is not None:
            return out
    return {m: _EVAL[m](seq, threshold, exact) for m in metrics}


def combine_sequences(per_sequence, metrics=None) -> dict:
    """TrackEval's ``Metric.combine_sequences`` for each metric.

    Args:
        per_sequence: ``{name: eval_sequence(...) result}`` or a list of such results.
    """
    results = list(per_sequence.values()) if isinstance(per_sequence, dict) else list(per_sequence)
    if metrics is None:
        metrics = [m for m in METRICS if results and m in results[0]] if results else list(METRICS)
    return {m: _COMBINE[m]([r[m] for r in results]) for m in _check_metrics(metrics)}


def flatten(result: dict, per_alpha: bool = False) -> dict:
    """One flat ``{field: value}`` dict from an ``eval_sequence`` / ``combine_sequences`` result;
    HOTA's per-alpha arrays become their mean over alpha (TrackEval's summary), or stay arrays
    with ``per_alpha``."""
    out = {}
    for fields in result.values():
        for k, v in fields.items():
            if isinstance(v, np.ndarray):
                out[k] = v.copy() if per_alpha else float(np.mean(v))
            elif isinstance(v, (float, np.floating)):
                out[k] = float(v)
            else:
                out[k] = int(v)
    return out


def evaluate_sequence(data, *, metrics=METRICS, threshold: float = 0.5, exact: bool = False,
                      per_alpha: bool = False) -> dict:
    """HOTA, CLEAR and Identity of one sequence as one flat dict of TrackEval's field names.

    ``evaluate_sequence(data)["HOTA"]`` is the mean of HOTA over the 19 alphas (likewise DetA,
    AssA, LocA, DetRe, DetPr, AssRe, AssPr, OWTA, HOTA_TP/FN/FP); ``MOTA``, ``MOTP``, ``IDSW``,
    ``CLR_FP``, ``CLR_FN``, ``Frag``, ``MT``/``PT``/``ML``, ``CLR_Re``/``CLR_Pr``, ``IDF1``,
    ``IDP``, ``IDR`` ... as TrackEval reports them. See :func:`eval_sequence` for the arguments;
    ``per_alpha`` keeps HOTA's arrays instead of their means.
    """
    return flatten(eval_sequence(data, metrics=metrics, threshold=threshold, exact=exact), per_alpha)
