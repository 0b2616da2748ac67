"""Retrieval metrics, computed by ranx (nDCG@10, Recall@10/100, MRR@10 by default)."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass

DEFAULT_METRICS: tuple[str, ...] = ("ndcg@10", "recall@10", "recall@100", "mrr@10")


@dataclass
class Scores:
    """Metric values of one ranking.

    Attributes:
        aggregate: metric name -> mean over queries.
        per_query: metric name -> {query id: value}.
    """

    aggregate: dict[str, float]
    per_query: dict[str, dict[str, float]]


def _import_ranx():
    try:
        import ranx
    except ImportError as e:
        msg = "Evaluation needs ranx; install it with pip: `pip install laser-integrations[eval]`."
        raise ImportError(msg) from e
    return ranx


def score_run(
    qrels: Mapping[str, Mapping[str, int]],
    run: Mapping[str, Mapping[str, float]],
    metrics: Sequence[str] = DEFAULT_METRICS,
) -> Scores:
    """Score a ranking against relevance judgements with ranx.

    Args:
        qrels: query id -> {document id: relevance}; relevance > 0 counts as relevant.
        run: query id -> {document id: score}, higher is better. Must hold exactly the queries of ``qrels``
            (an empty dict for a query that retrieved nothing).
        metrics: ranx metric names, e.g. ``"ndcg@10"``, ``"recall@100"``, ``"mrr@10"``.

    Returns:
        Mean and per-query values of each metric.

    Example:
        >>> s = score_run({"q": {"a": 1}}, {"q": {"b": 0.9, "a": 0.5}}, ["mrr@10"])
        >>> s.aggregate["mrr@10"]
        0.5
    """
    if not qrels:
        msg = "qrels is empty: there is no query to evaluate."
        raise ValueError(msg)
    missing, extra = sorted(set(qrels) - set(run)), sorted(set(run) - set(qrels))
    if missing or extra:
        msg = (
            f"run and qrels must hold the same queries: {len(missing)} judged queries have no ranking "
            f"(e.g. {missing[:3]}), {len(extra)} ranked queries have no judgements (e.g. {extra[:3]})."
        )
        raise ValueError(msg)
    ranx = _import_ranx()
    ranx_qrels = ranx.Qrels.from_dict({q: {d: int(r) for d, r in rels.items()} for q, rels in qrels.items()})
    ranx_run = ranx.Run.from_dict({q: {d: float(s) for d, s in ranking.items()} for q, ranking in run.items()})
    means = ranx.evaluate(ranx_qrels, ranx_run, list(metrics), save_results_in_run=True)
    if isinstance(means, float) or not isinstance(means, Mapping):  # ranx returns a bare float for one metric
        means = {metrics[0]: means}
    aggregate = {m: float(means[m]) for m in metrics}
    per_query = {m: {q: float(v) for q, v in ranx_run.scores[m].items()} for m in metrics}
    return Scores(aggregate, per_query)
