"""``laser eval`` end to end on a tiny model, the K sweep's encoding, and memory vs Qdrant search."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from laser_integrations import LaSEREncoder
from laser_integrations.cli.main import main
from laser_integrations.evaluation.data import load_beir
from laser_integrations.evaluation.run import evaluate

DOCS = {
    "prime": "the prime numbers are divisible only by one and themselves",
    "kraft": "a prefix code satisfies the kraft inequality on codeword lengths",
    "entropy": "entropy measures the average information of a random variable",
    "product": "the derivative of a product follows the product rule",
    "relativity": "special relativity dilates time for a moving clock",
    "bayes": "bayes theorem updates a prior with a likelihood",
}
QUERIES = {
    "q1": ("which numbers have no divisors but one and themselves", "prime", "Primes have exactly two divisors."),
    "q2": ("how fast does a moving clock tick", "relativity", None),
    "q3": ("update a belief after seeing evidence", "bayes", "Bayes theorem combines prior and likelihood."),
    "q4": ("differentiate f times g", "product", None),
}


@pytest.fixture
def beir_dir(tmp_path: Path) -> Path:
    folder = tmp_path / "tinyqa"
    (folder / "qrels").mkdir(parents=True)
    (folder / "corpus.jsonl").write_text(
        "".join(json.dumps({"_id": k, "title": "", "text": v}) + "\n" for k, v in DOCS.items())
    )
    (folder / "queries.jsonl").write_text(
        "".join(json.dumps({"_id": k, "text": v[0]}) + "\n" for k, v in QUERIES.items())
    )
    (folder / "reasoning.jsonl").write_text(
        "".join(json.dumps({"_id": k, "reasoning": v[2]}) + "\n" for k, v in QUERIES.items() if v[2])
    )
    (folder / "qrels" / "test.tsv").write_text(
        "query-id\tcorpus-id\tscore\n" + "".join(f"{k}\t{v[1]}\t1\n" for k, v in QUERIES.items())
    )
    return folder


def test_laser_eval_end_to_end(encoder_dir: Path, beir_dir: Path, tmp_path: Path, capsys):
    out = tmp_path / "out" / "results.json"
    rc = main([
        "eval", "--model", str(encoder_dir), "bm25", "--data", str(beir_dir), "--split", "test",
        "--num-thinking-steps", "1", "3", "--query-mode", "query", "reasoning", "--output", str(out), "--no-progress",
    ])  # fmt: skip
    assert rc == 0
    printed = capsys.readouterr().out
    assert "tiny-qwen3 K=1" in printed and "tiny-qwen3 K=3 [reasoning]" in printed and "bm25" in printed
    assert "2 queries without a rationale were searched with the query text" in printed
    doc = json.loads(out.read_text())
    labels = [r["label"] for r in doc["results"]]
    assert labels == [
        "tiny-qwen3 K=1", "tiny-qwen3 K=1 [reasoning]", "tiny-qwen3 K=3", "tiny-qwen3 K=3 [reasoning]",
        "bm25", "bm25 [reasoning]",
    ]  # fmt: skip
    for r in doc["results"]:
        assert set(r["metrics"]) == {"ndcg@10", "recall@10", "recall@100", "mrr@10"}
        assert set(r["per_query"]["ndcg@10"]) == set(QUERIES)
        for metric, value in r["metrics"].items():  # the aggregate is the mean of the per-query scores
            assert value == pytest.approx(np.mean(list(r["per_query"][metric].values())))
        if r["model"] != "bm25":  # a 6-document corpus: a dense model ranks everything (BM25 drops zero scores)
            assert r["metrics"]["recall@100"] == 1.0
        assert r["queries_without_reasoning"] == (2 if r["query_mode"] == "reasoning" else 0)
    for png in (out.with_suffix(".png"), out.with_name("results_scaling.png")):
        assert png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    # Written atomically, with no temporary file left, and readable as any new file is (not owner-only).
    assert not [p.name for p in out.parent.iterdir() if p.name.startswith(".")]
    plain = out.parent / "plain.txt"
    plain.write_text("x")
    assert out.stat().st_mode & 0o777 == plain.stat().st_mode & 0o777


def test_laser_eval_reports_bad_data_and_exits_2(tmp_path: Path, capsys):
    rc = main(["eval", "--model", "bm25", "--data", str(tmp_path / "missing"), "--no-progress"])
    assert rc == 2
    assert f"--data {tmp_path / 'missing'}: no such folder" in capsys.readouterr().err


class SpyEncoder:
    """Wraps an encoder and records the K of every document encoding."""

    def __init__(self, encoder: LaSEREncoder):
        self.inner, self.config, self.document_ks = encoder, encoder.config, []

    def encode_documents(self, texts, **kwargs):
        self.document_ks.append(kwargs["num_thinking_steps"])
        return self.inner.encode_documents(texts, **kwargs)

    def encode_queries(self, texts, **kwargs):
        return self.inner.encode_queries(texts, **kwargs)


def test_k_sweep_encodes_documents_once_per_k(encoder: LaSEREncoder, beir_dir: Path):
    spy = SpyEncoder(encoder)
    ds = load_beir(beir_dir, "test")
    results = evaluate(
        ["spy"], [ds], num_thinking_steps=[1, 2, None], query_modes=["query", "reasoning"], loaded={"spy": spy}
    )
    # None means the model's own K (3); each K encodes the corpus once, shared by both query modes.
    assert spy.document_ks == [1, 2, 3]
    assert [(r.num_thinking_steps, r.query_mode) for r in results] == [
        (k, m) for k in (1, 2, 3) for m in ("query", "reasoning")
    ]
    # Documents really differ by K, so re-encoding them per K matters.
    k1 = encoder.encode_documents(list(DOCS.values()), num_thinking_steps=1)
    k3 = encoder.encode_documents(list(DOCS.values()), num_thinking_steps=3)
    assert not np.allclose(k1, k3, atol=1e-4)


class EachKSpy(SpyEncoder):
    """Also records every one-pass sweep (``encode_each_k``) the evaluation asks for."""

    def __init__(self, encoder: LaSEREncoder):
        super().__init__(encoder)
        self.sweeps: list[tuple[str, list[int]]] = []

    def encode_each_k(self, texts, ks, **kwargs):
        self.sweeps.append((kwargs["kind"], list(ks)))
        return self.inner.encode_each_k(texts, ks, **kwargs)


def test_k_sweep_embeds_in_one_pass_with_the_same_numbers(encoder: LaSEREncoder, beir_dir: Path):
    ds = load_beir(beir_dir, "test")
    spy = EachKSpy(encoder)
    swept = evaluate(["m"], [ds], num_thinking_steps=[1, 2, 3], query_modes=["query", "reasoning"],
                     loaded={"m": spy})  # fmt: skip
    # One sweep for the corpus and one per query list, none per K.
    assert spy.sweeps == [("document", [1, 2, 3]), ("query", [1, 2, 3]), ("query", [1, 2, 3])]
    assert spy.document_ks == []
    assert [(r.num_thinking_steps, r.query_mode) for r in swept] == [
        (k, m) for k in (1, 2, 3) for m in ("query", "reasoning")
    ]
    for r in swept:
        (alone,) = evaluate(["m"], [ds], num_thinking_steps=[r.num_thinking_steps], query_modes=[r.query_mode],
                            loaded={"m": encoder})  # fmt: skip
        assert r.metrics == pytest.approx(alone.metrics, abs=1e-6)


def test_long_budgets_batch_by_tokens_with_the_same_numbers(encoder: LaSEREncoder, beir_dir: Path, monkeypatch):
    import laser_integrations.evaluation.run as run
    from laser_integrations.latent import unwrap_causal_lm

    ds = load_beir(beir_dir, "test")
    plain = evaluate(["m"], [ds], batch_size=4, max_length=4096, max_tokens_per_batch=10**6, loaded={"m": encoder})
    monkeypatch.setattr(run, "LONG_INPUT_TOKENS", 60)  # the test's texts are short: "long" is over 60 tokens
    prefills: list[tuple[int, int]] = []
    decoder = unwrap_causal_lm(encoder.model).get_decoder()

    def record(module, args, kwargs):
        rows, length = kwargs["inputs_embeds"].shape[:2]
        if length > 1:  # the prefill; latent steps add one position each
            prefills.append((rows, length))

    hook = decoder.register_forward_pre_hook(record, with_kwargs=True)
    try:
        budgeted = evaluate(["m"], [ds], batch_size=4, max_length=4096, loaded={"m": encoder})
        batches_of_long = list(prefills)
        prefills.clear()
        monkeypatch.setattr(run, "LONG_INPUT_TOKENS", 100)
        evaluate(["m"], [ds], batch_size=4, max_length=100, loaded={"m": encoder})  # not above 100: plain batches
    finally:
        hook.remove()
    assert budgeted[0].metrics == pytest.approx(plain[0].metrics, abs=1e-6)
    k = encoder.config.num_thinking_steps
    assert all(rows == 1 or rows * (length + k - 1) <= 4 * 60 for rows, length in batches_of_long)
    assert max(rows for rows, length in batches_of_long if length > 60) < 4  # long queries: fewer a pass
    assert max(rows for rows, _ in prefills) == 4  # short budgets keep batch_size texts a pass


def test_memory_and_qdrant_give_the_same_numbers(symmetric_encoder_dir: Path, beir_dir: Path):
    model = LaSEREncoder.from_pretrained(symmetric_encoder_dir, device="cpu")
    ds = load_beir(beir_dir, "test")
    memory = evaluate(["m"], [ds], search="memory", loaded={"m": model}, top_k=3)
    qdrant = evaluate(["m"], [ds], search="qdrant", loaded={"m": model}, top_k=3)
    assert memory[0].metrics == pytest.approx(qdrant[0].metrics, abs=1e-9)
    for metric in memory[0].per_query:
        assert memory[0].per_query[metric] == pytest.approx(qdrant[0].per_query[metric], abs=1e-9)


@pytest.mark.parametrize("datasets", [["theoremqa"], ["biology", "economics"]])
def test_bar_chart_shows_every_run(tmp_path, monkeypatch, datasets):
    """One dataset: one horizontal bar per run, in the given order, labelled with its value. Several datasets: one
    group per dataset plus their average, one bar per run in each."""
    from laser_integrations.evaluation import plots
    from laser_integrations.evaluation.run import EvalResult

    saved = []
    monkeypatch.setattr(plots, "_save", lambda plt, fig, path: saved.append(fig) or Path(path))
    runs = [("bm25", None, 0.58), ("laser", 3, 0.64), ("contrastive", 1, 0.66)]
    results = [
        EvalResult(
            model=m,
            dataset=d,
            query_mode="query",
            num_thinking_steps=k,
            metrics={"ndcg@10": v + i / 100},
            per_query={},
            num_queries=3,
        )
        for i, d in enumerate(datasets)
        for m, k, v in runs
    ]
    plots.bar_chart(results, tmp_path / "chart.png")
    (ax,) = saved[0].axes
    if len(datasets) == 1:
        assert [t.get_text() for t in ax.get_yticklabels()] == ["bm25", "laser K=3", "contrastive K=1"]
        assert [round(p.get_width(), 4) for p in ax.patches] == [0.58, 0.64, 0.66]
    else:
        assert [t.get_text() for t in ax.get_xticklabels()] == [*datasets, "average"]
        assert [t.get_text() for t in ax.get_legend().get_texts()] == ["bm25", "laser K=3", "contrastive K=1"]
        assert [round(p.get_height(), 4) for p in ax.patches][:3] == [0.58, 0.59, 0.585]  # bm25: each, then mean


def test_hybrid_rows_are_rrf_of_the_dense_and_bm25_runs_written_as_trec(encoder_dir: Path, beir_dir: Path, tmp_path: Path, capsys):
    import ranx

    runs = tmp_path / "runs"
    rc = main([
        "eval", "--model", "bm25", str(encoder_dir), "--data", str(beir_dir), "--split", "test", "--hybrid",
        "--run-dir", str(runs), "--output", str(tmp_path / "r.json"), "--no-progress",
    ])  # fmt: skip
    assert rc == 0
    assert "tiny-qwen3+bm25 K=3" in capsys.readouterr().out
    assert sorted(p.name for p in runs.iterdir()) == ["bm25.tinyqa.trec", "tiny-qwen3+bm25_K=3.tinyqa.trec", "tiny-qwen3_K=3.tinyqa.trec"]
    names = {"bm25": "bm25", "tiny-qwen3 K=3": "tiny-qwen3_K=3", "tiny-qwen3+bm25 K=3": "tiny-qwen3+bm25_K=3"}
    read = {label: ranx.Run.from_file(str(runs / f"{name}.tinyqa.trec")).to_dict() for label, name in names.items()}
    for qid in QUERIES:
        expected: dict[str, float] = {}
        for name in ("tiny-qwen3 K=3", "bm25"):  # RRF computed here: 1 / (0-based position + 60) from each ranking
            ranking = read[name].get(qid, {})
            for position, doc in enumerate(sorted(ranking, key=lambda d: -ranking[d])):
                expected[doc] = expected.get(doc, 0.0) + 1 / (position + 60)
        got = read["tiny-qwen3+bm25 K=3"][qid]
        assert got.keys() == expected.keys()
        assert all(got[d] == pytest.approx(expected[d], rel=1e-6) for d in got)
    # the run files score as the results did
    qrels = ranx.Qrels.from_dict({q: {v[1]: 1} for q, v in QUERIES.items()})
    results = {r["label"]: r["metrics"] for r in json.loads((tmp_path / "r.json").read_text())["results"]}
    for name, run in read.items():
        score = ranx.evaluate(qrels, ranx.Run.from_dict(run), "ndcg@10", make_comparable=True)  # a query without hits has no line
        assert score == pytest.approx(results[name]["ndcg@10"])
    assert "run" not in json.loads((tmp_path / "r.json").read_text())["results"][0]


def test_hybrid_needs_a_dense_model(beir_dir: Path, capsys):
    assert main(["eval", "--model", "bm25", "--data", str(beir_dir), "--hybrid"]) == 2
    assert "--hybrid fuses a dense model with BM25" in capsys.readouterr().err
