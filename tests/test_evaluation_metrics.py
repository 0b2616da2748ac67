"""Metrics (ranx) against hand-computed values, and exact search: numpy and Qdrant agree."""

from __future__ import annotations

import math

import numpy as np
import pytest

from laser_integrations.evaluation.metrics import score_run
from laser_integrations.evaluation.run import drop_excluded
from laser_integrations.evaluation.search import exact_search

QRELS = {"q1": {"d1": 1}, "q2": {"d2": 1, "d3": 1, "d0": 0}, "q3": {"d4": 1}}
RUN = {
    "q1": {"d5": 0.9, "d1": 0.8, "d6": 0.7},  # the relevant document at rank 2
    "q2": {"d2": 0.9, "d7": 0.8, "d3": 0.7, "d0": 0.6},  # relevant at ranks 1 and 3; d0 is judged non-relevant
    "q3": {"d8": 0.9, "d9": 0.8},  # nothing relevant retrieved
}


def test_metrics_match_hand_computation():
    scores = score_run(QRELS, RUN, ["ndcg@10", "recall@10", "recall@1", "mrr@10"])
    # nDCG (binary gains, DCG = sum over relevant hits of 1 / log2(rank + 1)):
    #   q1: DCG = 1/log2(3) = 0.63093, ideal DCG = 1/log2(2) = 1            -> 0.63093
    #   q2: DCG = 1/log2(2) + 1/log2(4) = 1 + 0.5 = 1.5,
    #       ideal DCG = 1/log2(2) + 1/log2(3) = 1 + 0.63093 = 1.63093       -> 1.5 / 1.63093 = 0.91972
    #   q3: 0
    ndcg = {"q1": 1 / math.log2(3), "q2": (1 + 1 / math.log2(4)) / (1 + 1 / math.log2(3)), "q3": 0.0}
    # Recall@10: q1 1/1, q2 2/2, q3 0/1; Recall@1: q1 0/1, q2 1/2, q3 0/1.
    # MRR@10: q1 1/2, q2 1/1, q3 0.
    expected = {
        "ndcg@10": ndcg,
        "recall@10": {"q1": 1.0, "q2": 1.0, "q3": 0.0},
        "recall@1": {"q1": 0.0, "q2": 0.5, "q3": 0.0},
        "mrr@10": {"q1": 0.5, "q2": 1.0, "q3": 0.0},
    }
    assert ndcg["q2"] == pytest.approx(0.91972, abs=1e-5)
    for metric, per_query in expected.items():
        assert scores.per_query[metric] == pytest.approx(per_query), metric
        assert scores.aggregate[metric] == pytest.approx(sum(per_query.values()) / 3), metric
    assert scores.aggregate["ndcg@10"] == pytest.approx((0.63093 + 0.91972 + 0.0) / 3, abs=1e-5)
    assert scores.aggregate["recall@1"] == pytest.approx(1 / 6)


def test_cutoff_ignores_hits_below_k():
    qrels = {"q": {"rel": 1}}
    run = {"q": {**{f"x{i}": 1.0 - i / 100 for i in range(10)}, "rel": 0.5}}  # the relevant document at rank 11
    scores = score_run(qrels, run, ["ndcg@10", "recall@10", "recall@100", "mrr@10"])
    assert scores.aggregate == pytest.approx({"ndcg@10": 0.0, "recall@10": 0.0, "recall@100": 1.0, "mrr@10": 0.0})


def test_run_and_qrels_must_hold_the_same_queries():
    with pytest.raises(ValueError, match=r"1 judged queries have no ranking \(e.g. \['q3'\]\)"):
        score_run(QRELS, {q: RUN[q] for q in ("q1", "q2")})
    with pytest.raises(ValueError, match="qrels is empty"):
        score_run({}, {})


def test_drop_excluded_removes_before_cutting():
    rankings = [{"dup": 0.99, "a": 0.9, "b": 0.8, "c": 0.7}, {"a": 0.5, "dup": 0.4}]
    run = drop_excluded(rankings, ["q1", "q2"], {"q1": {"dup"}}, top_k=2)
    assert run == {"q1": {"a": 0.9, "b": 0.8}, "q2": {"a": 0.5, "dup": 0.4}}


def test_memory_and_qdrant_search_agree():
    rng = np.random.default_rng(0)
    docs = rng.normal(size=(50, 16)).astype(np.float32)
    docs /= np.linalg.norm(docs, axis=1, keepdims=True)
    queries = docs[:7] + 0.3 * rng.normal(size=(7, 16)).astype(np.float32)
    ids = [f"doc-{i}" for i in range(50)]
    memory = exact_search(queries, docs, ids, 10, backend="memory")
    qdrant = exact_search(queries, docs, ids, 10, backend="qdrant")
    assert [list(r) for r in memory] == [list(r) for r in qdrant]
    for m, q in zip(memory, qdrant):
        assert list(m.values()) == pytest.approx(list(q.values()), abs=1e-5)
    # Independent check of the memory backend: the brute-force argsort of the score matrix.
    full = queries @ docs.T
    assert [list(r) for r in memory] == [[ids[j] for j in np.argsort(-row, kind="stable")[:10]] for row in full]


def test_search_rejects_bad_input():
    docs = np.zeros((3, 4), dtype=np.float32)
    with pytest.raises(ValueError, match="same width"):
        exact_search(np.zeros((1, 5), dtype=np.float32), docs, ["a", "b", "c"], 2)
    with pytest.raises(ValueError, match="2 document ids for 3 document embeddings"):
        exact_search(np.zeros((1, 4), dtype=np.float32), docs, ["a", "b"], 2)
    with pytest.raises(ValueError, match="Invalid search backend 'faiss'"):
        exact_search(np.zeros((1, 4), dtype=np.float32), docs, ["a", "b", "c"], 2, backend="faiss")
