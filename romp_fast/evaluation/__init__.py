"""Evaluation: matchers now; the Evaluator protocol, inference loop and benchmark evaluators follow."""
from romp_fast.evaluation.matching import (
    Matching,
    match_greedy_agora,
    match_hungarian,
    match_nearest_center,
)

__all__ = ["Matching", "match_greedy_agora", "match_hungarian", "match_nearest_center"]
