"""Multi-person tracking evaluation: HOTA, CLEAR MOT and Identity, identical to TrackEval.

- :func:`evaluate_sequence` (flat dict) / :func:`eval_sequence` (per metric, HOTA per alpha) on
  TrackEval's per-sequence data dict; :func:`combine_sequences` combines as TrackEval does.
- :mod:`.motmetrics_compat`: CLEAR and Identity under py-motmetrics' conventions.
- :mod:`.similarity`: box IoU, boxes from 2D joints, keypoint similarity, 3D joint distance.
- :mod:`.files`: MOTChallenge text files and TRACE-style per-sequence files,
  ``score_tracking(gt_dir, pred_dir)`` for ``python -m romp_fast.evaluate --benchmark tracking``.
"""
from romp_fast.evaluation.tracking.api import (
    METRICS,
    combine_sequences,
    eval_sequence,
    evaluate_sequence,
    flatten,
)
from romp_fast.evaluation.tracking.hota import ALPHAS
from romp_fast.evaluation.tracking.sequence import Sequence, from_trackeval

__all__ = ["ALPHAS", "METRICS", "Sequence", "combine_sequences", "eval_sequence", "evaluate_sequence",
           "flatten", "from_trackeval"]
