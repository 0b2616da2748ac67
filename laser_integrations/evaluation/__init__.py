"""Retrieval evaluation for LaSER and reference baselines: BEIR folders and BRIGHT, exact search, ranx metrics.

Example:
    >>> from laser_integrations.evaluation import load_beir, evaluate, comparison_table
    >>> data = load_beir("../shared/data/theoremqa", split="dev")  # doctest: +SKIP
    >>> results = evaluate(["bm25", "minilm"], [data])  # doctest: +SKIP
    >>> print(comparison_table(results))  # doctest: +SKIP
"""

from .data import (
    BRIGHT_HUB_ID,
    BRIGHT_INSTRUCTIONS,
    BRIGHT_SUBSETS,
    RetrievalDataset,
    available_bright_subsets,
    load_beir,
    load_bright,
)
from .metrics import DEFAULT_METRICS, Scores, score_run
from .run import EvalResult, comparison_table, evaluate, load_model, results_to_json
from .search import exact_search

__all__ = [
    "BRIGHT_HUB_ID",
    "BRIGHT_INSTRUCTIONS",
    "BRIGHT_SUBSETS",
    "DEFAULT_METRICS",
    "EvalResult",
    "RetrievalDataset",
    "Scores",
    "available_bright_subsets",
    "comparison_table",
    "evaluate",
    "exact_search",
    "load_beir",
    "load_bright",
    "load_model",
    "results_to_json",
    "score_run",
]
