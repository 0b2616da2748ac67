"""Loaders: BRIGHT in the hub layout (local folder and the hub code path) with exclusions, BEIR folders, errors."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from laser_integrations.evaluation import data as data_module
from laser_integrations.evaluation.data import BRIGHT_INSTRUCTIONS, load_beir, load_bright, load_datasets
from laser_integrations.evaluation.run import evaluate

QUERY = "how do green plants turn sunlight into stored chemical energy in their leaves"
EXAMPLES = [
    # BRIGHT lists near-copies of the question as excluded_ids: BM25 ranks "dup" first, it must not count.
    {
        "id": "0",
        "query": QUERY,
        "gold_ids": ["photo"],
        "excluded_ids": ["dup"],
        "reasoning": "Photosynthesis in chloroplasts.",
    },
    {"id": "1", "query": "why does ice float on liquid water", "gold_ids": ["ice"], "excluded_ids": ["N/A"]},
]
DOCUMENTS = [
    {"id": "dup", "content": QUERY + " asked again"},
    {
        "id": "photo",
        "content": "Plants use sunlight in chloroplasts of green leaves to turn water and carbon dioxide into sugar, storing chemical energy.",
    },
    {"id": "ice", "content": "Ice is less dense than liquid water, so ice floats."},
    {"id": "rock", "content": "Granite is an igneous rock rich in quartz and feldspar."},
]


def write_jsonl(path: Path, rows: list[dict]) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text("".join(json.dumps(r) + "\n" for r in rows), encoding="utf-8")


@pytest.fixture
def bright_dir(tmp_path: Path) -> Path:
    write_jsonl(tmp_path / "examples" / "biology.jsonl", EXAMPLES)
    write_jsonl(tmp_path / "documents" / "biology.jsonl", DOCUMENTS)
    return tmp_path


def test_bright_folder_loads_with_exclusions_and_instruction(bright_dir: Path):
    ds = load_bright("biology", bright_dir)
    assert ds.name == "biology"
    assert ds.corpus["ice"] == DOCUMENTS[2]["content"]
    assert ds.queries == {"0": QUERY, "1": "why does ice float on liquid water"}
    assert ds.qrels == {"0": {"photo": 1}, "1": {"ice": 1}}
    assert ds.excluded == {"0": {"dup"}}  # "N/A" means nothing to exclude
    assert ds.reasoning == {"0": "Photosynthesis in chloroplasts."}
    # The official harness's wording (src/eval/run_mteb.py run_bright), and its max length (run_eval.sh).
    assert ds.instruction == BRIGHT_INSTRUCTIONS["biology"] == "Given a post, retrieve relevant passages that help answer the post."
    assert BRIGHT_INSTRUCTIONS["economics"] == "Given a economics post, retrieve relevant passages that help answer the post."
    assert BRIGHT_INSTRUCTIONS["theoremqa_theorems"] == (
        "Given a Math problem, retrieve relevant theorems that help answer the problem."
    )
    assert len(BRIGHT_INSTRUCTIONS) == 12
    assert ds.max_length == 8192
    assert load_bright("biology", bright_dir, instruction="Find it").instruction == "Find it"


def test_excluded_document_ranked_first_does_not_count(bright_dir: Path):
    ds = load_bright("biology", bright_dir)
    with_exclusions = evaluate(["bm25"], [ds], metrics=["mrr@10", "ndcg@10"])[0]
    ds.excluded = {}
    without = evaluate(["bm25"], [ds], metrics=["mrr@10", "ndcg@10"])[0]
    # Without exclusions BM25 puts the near-copy "dup" first and the gold passage second: MRR 1/2 for query 0.
    assert without.per_query["mrr@10"]["0"] == pytest.approx(0.5)
    # With it removed the gold passage is first: MRR 1, nDCG 1.
    assert with_exclusions.per_query["mrr@10"]["0"] == pytest.approx(1.0)
    assert with_exclusions.per_query["ndcg@10"]["0"] == pytest.approx(1.0)


def test_bright_hub_path_calls_load_dataset_per_config(bright_dir: Path, monkeypatch):
    import datasets

    calls = []

    def fake_load_dataset(path, name=None, split=None, **kwargs):
        calls.append((path, name, split, kwargs))
        rows = EXAMPLES if name == "examples" else DOCUMENTS
        return datasets.Dataset.from_list([{k: v for k, v in r.items()} for r in rows])

    monkeypatch.setattr(datasets, "load_dataset", fake_load_dataset)
    ds = load_bright("biology", "xlangai/BRIGHT", cache_dir="/tmp/x")
    assert calls == [
        ("xlangai/BRIGHT", "examples", "biology", {"cache_dir": "/tmp/x"}),
        ("xlangai/BRIGHT", "documents", "biology", {"cache_dir": "/tmp/x"}),
    ]
    assert ds.excluded == {"0": {"dup"}} and ds.qrels["1"] == {"ice": 1}
    [auto] = load_datasets("xlangai/BRIGHT", subsets=["biology"])  # a hub id is recognised by its name
    assert auto.name == "biology"


def test_bright_errors_name_the_problem(bright_dir: Path):
    with pytest.raises(ValueError, match=r"Unknown BRIGHT subset 'biolgy'. Valid subsets are: \['biology'"):
        load_bright("biolgy", bright_dir)
    with pytest.raises(FileNotFoundError, match=r"subset 'economics' not found .* Subsets present: \['biology'\]"):
        load_bright("economics", bright_dir)
    write_jsonl(bright_dir / "examples" / "biology.jsonl", [{**EXAMPLES[0], "gold_ids": ["nope"]}])
    with pytest.raises(ValueError, match=r"biology.jsonl row 1: gold_ids \['nope'\] of query '0' are not in"):
        load_bright("biology", bright_dir)
    write_jsonl(bright_dir / "examples" / "biology.jsonl", [{"id": "0", "gold_ids": ["photo"]}])
    with pytest.raises(ValueError, match=r"row 1: missing field 'query'"):
        load_bright("biology", bright_dir)


def test_bright_parquet_snapshot_layout(tmp_path: Path):
    import datasets

    (tmp_path / "examples").mkdir()
    (tmp_path / "documents").mkdir()
    datasets.Dataset.from_list(EXAMPLES[1:]).to_parquet(str(tmp_path / "examples" / "economics-00000-of-00001.parquet"))
    datasets.Dataset.from_list(DOCUMENTS).to_parquet(str(tmp_path / "documents" / "economics-00000-of-00001.parquet"))
    [ds] = load_datasets(tmp_path)  # auto: a BRIGHT folder, every subset it holds
    assert ds.name == "economics" and ds.qrels == {"1": {"ice": 1}} and len(ds.corpus) == 4


@pytest.fixture
def beir_dir(tmp_path: Path) -> Path:
    write_jsonl(
        tmp_path / "corpus.jsonl",
        [{"_id": "a", "title": "Alpha", "text": "first"}, {"_id": "b", "title": "", "text": "second"}],
    )
    write_jsonl(tmp_path / "queries.jsonl", [{"_id": "q1", "text": "one"}, {"_id": "q2", "text": "two"}])
    write_jsonl(tmp_path / "reasoning.jsonl", [{"_id": "q2", "reasoning": "because"}])
    (tmp_path / "qrels").mkdir()
    (tmp_path / "qrels" / "dev.tsv").write_text("query-id\tcorpus-id\tscore\nq2\tb\t1\n", encoding="utf-8")
    return tmp_path


def test_beir_folder_loads_one_split(beir_dir: Path):
    ds = load_beir(beir_dir, "dev")
    assert ds.corpus == {"a": "Alpha\nfirst", "b": "second"}
    assert ds.queries == {"q2": "two"} and ds.qrels == {"q2": {"b": 1}} and ds.reasoning == {"q2": "because"}
    assert ds.excluded == {} and ds.instruction is None


def test_beir_errors_name_file_line_and_fix(beir_dir: Path):
    with pytest.raises(FileNotFoundError, match=r"split 'test' not found.*Splits in this folder: \['dev'\]"):
        load_beir(beir_dir, "test")
    (beir_dir / "qrels" / "dev.tsv").write_text("query-id\tcorpus-id\tscore\nq2\tzz\t1\n", encoding="utf-8")
    with pytest.raises(ValueError, match=r"dev.tsv: 1 corpus ids are not in corpus.jsonl, e.g. \['zz'\]"):
        load_beir(beir_dir, "dev")
    (beir_dir / "qrels" / "dev.tsv").write_text("q2\tb\n", encoding="utf-8")
    with pytest.raises(ValueError, match=r"dev.tsv:1: expected 3 tab-separated columns"):
        load_beir(beir_dir, "dev")
    (beir_dir / "qrels" / "dev.tsv").write_text("q2\tb\t1\n", encoding="utf-8")  # no header is fine
    (beir_dir / "queries.jsonl").write_text('{"_id": "q1", "text": "one"}\n{"_id": "q2", text}\n', encoding="utf-8")
    with pytest.raises(ValueError, match=r"queries.jsonl:2: not valid JSON"):
        load_beir(beir_dir, "dev")
    with pytest.raises(FileNotFoundError, match="neither a BEIR folder"):
        load_datasets(beir_dir / "qrels")


@pytest.mark.shared
def test_shared_theoremqa_dev_loads(shared: Path):
    ds = load_beir(shared / "data" / "theoremqa", "dev")
    assert len(ds.corpus) == 354
    assert len(ds.queries) == len(ds.qrels) == 149
    assert all(len(rels) == 1 for rels in ds.qrels.values())
    assert len(ds.reasoning) == 34  # the README: 34 of dev have a rationale
    assert ds.corpus["kraft-inequality"].startswith("Kraft inequality\nKraft inequality is")
    assert data_module.is_beir_folder(shared / "data" / "theoremqa")


def test_reasoning_mode_falls_back_or_skips_and_counts(beir_dir: Path):
    from laser_integrations.evaluation.run import query_texts

    (beir_dir / "qrels" / "dev.tsv").write_text("q1\ta\t1\nq2\tb\t1\n", encoding="utf-8")
    ds = load_beir(beir_dir, "dev")
    assert query_texts(ds, "query") == ({"q1": "one", "q2": "two"}, 0)
    assert query_texts(ds, "reasoning") == ({"q1": "one", "q2": "because"}, 1)  # q1 has no rationale: its text
    assert query_texts(ds, "reasoning", "skip") == ({"q2": "because"}, 1)
    ds.reasoning = {}
    with pytest.raises(ValueError, match="has no rationale for any of its 2 queries"):
        query_texts(ds, "reasoning", "skip")
    with pytest.raises(ValueError, match=r"Invalid query mode 'rationale'. Valid modes are: \['query', 'reasoning'\]"):
        query_texts(ds, "rationale")


def test_bright_is_embedded_at_the_official_8192_tokens_and_the_model_keeps_its_own(encoder, bright_dir: Path):
    import dataclasses

    from laser_integrations.encoder import LaSEREncoder

    long_doc = " ".join(["chloroplasts store chemical energy from sunlight"] * 80)  # over 512 tokens
    assert len(encoder.formatter.tokenize([long_doc], "document")[0][0]) == encoder.config.document_max_length == 512
    ds = load_bright("biology", bright_dir)
    ds.corpus["long"] = long_doc
    own = dataclasses.replace(ds, max_length=None)  # the same data without BRIGHT's budget
    wide = LaSEREncoder(encoder.model, encoder.tokenizer, encoder.config.replace(document_max_length=8192))
    bright = evaluate(["m"], [ds], loaded={"m": encoder}, top_k=5)[0]
    at_8192 = evaluate(["w"], [own], loaded={"w": wide}, top_k=5)[0]
    at_512 = evaluate(["m"], [own], loaded={"m": encoder}, top_k=5)[0]
    assert bright.max_length == 8192 and bright.to_dict()["max_length"] == 8192 and at_512.max_length is None
    for qid in ds.queries:
        assert bright.run[qid]["long"] == pytest.approx(at_8192.run[qid]["long"], abs=1e-5)
        assert bright.run[qid]["long"] != pytest.approx(at_512.run[qid]["long"], abs=1e-4)
        assert bright.run[qid]["photo"] == pytest.approx(at_512.run[qid]["photo"], abs=1e-5)  # short: unchanged
    sweep = evaluate(["m"], [ds], loaded={"m": encoder}, num_thinking_steps=[1, 3], top_k=5)  # encode_each_k's path
    assert [r.max_length for r in sweep] == [8192, 8192]
    assert sweep[1].run["0"]["long"] == pytest.approx(bright.run["0"]["long"], abs=1e-5)
    assert evaluate(["m"], [ds], loaded={"m": encoder}, top_k=3, max_length=200)[0].max_length == 200
    assert evaluate(["bm25"], [ds], top_k=3)[0].max_length is None  # a baseline keeps its own
    with pytest.raises(ValueError, match="max_length must be a positive number of tokens, got 0"):
        evaluate(["m"], [ds], loaded={"m": encoder}, max_length=0)
