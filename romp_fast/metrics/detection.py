"""Detection quality from match counts: precision, recall, F1 (misses and false positives counted)."""
from __future__ import annotations


def detection_prf(tp: int, fp: int, fn: int) -> dict[str, float]:
    """Precision, recall and F1 from true positives, false positives and misses.

    ``precision = tp / (tp + fp)``, ``recall = tp / (tp + fn)``, ``F1`` their harmonic mean. An empty
    denominator gives 0 (nothing predicted, or nothing to find), except that with no ground truth and
    no prediction all three are 1 (nothing was missed and nothing was invented).
    """
    tp, fp, fn = int(tp), int(fp), int(fn)
    if min(tp, fp, fn) < 0:
        raise ValueError(f"counts must be >= 0, got tp={tp}, fp={fp}, fn={fn}")
    if tp + fp + fn == 0:
        return {"precision": 1.0, "recall": 1.0, "F1": 1.0}
    p = tp / (tp + fp) if tp + fp else 0.0
    r = tp / (tp + fn) if tp + fn else 0.0
    f1 = 2 * p * r / (p + r) if p + r else 0.0
    return {"precision": p, "recall": r, "F1": f1}
