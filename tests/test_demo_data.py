"""Integrity of the demo's reasoning-QA set (laser_integrations/demo/data)."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

import laser_integrations
from laser_integrations.evaluation.data import load_beir, read_qrels

DATA = Path(laser_integrations.__file__).parent / "demo" / "data"


def rows(name: str) -> list[dict]:
    return [json.loads(line) for line in (DATA / name).read_text(encoding="utf-8").splitlines() if line.strip()]


def test_files_are_in_beir_layout_and_load():
    assert (DATA / "qrels" / "train.tsv").read_text(encoding="utf-8").startswith("query-id\tcorpus-id\tscore\n")
    train, test = load_beir(DATA, "train"), load_beir(DATA, "test")  # fails if a qrel names a missing id
    assert 200 <= len(train.corpus) <= 300
    assert 100 <= len(train.queries) + len(test.queries) <= 250
    assert 0.2 <= len(test.queries) / (len(train.queries) + len(test.queries)) <= 0.3


def test_every_qrel_id_exists_and_one_passage_per_question():
    corpus = {r["_id"] for r in rows("corpus.jsonl")}
    queries = {r["_id"] for r in rows("queries.jsonl")}
    for split in ("train", "test"):
        qrels = read_qrels(DATA / "qrels" / f"{split}.tsv")
        for qid, rels in qrels.items():
            assert qid in queries, (split, qid)
            assert len(rels) == 1 and all(d in corpus and r == 1 for d, r in rels.items()), (split, qid, rels)


def test_splits_are_disjoint_and_cover_every_question():
    train, test = read_qrels(DATA / "qrels" / "train.tsv"), read_qrels(DATA / "qrels" / "test.tsv")
    assert not set(train) & set(test)
    assert set(train) | set(test) == {r["_id"] for r in rows("queries.jsonl")}


def test_every_question_has_a_rationale_in_paragraphs():
    queries = {r["_id"]: r["text"] for r in rows("queries.jsonl")}
    reasoning = {r["_id"]: r["reasoning"] for r in rows("reasoning.jsonl")}
    assert set(reasoning) == set(queries)
    for qid, text in reasoning.items():
        paragraphs = text.split("\n\n")
        assert 2 <= len(paragraphs) <= 4 and all(p.strip() == p and p for p in paragraphs), qid
        assert text != queries[qid]


def test_ids_and_texts_are_unique():
    for name, key in (("corpus.jsonl", "text"), ("queries.jsonl", "text")):
        data = rows(name)
        assert len({r["_id"] for r in data}) == len(data), name
        assert len({r[key] for r in data}) == len(data), name


def test_generator_reproduces_the_files(tmp_path: Path, load_script):
    module = load_script(DATA / "make_data.py")
    counts = module.build(tmp_path)
    assert counts["questions"] == len(rows("queries.jsonl"))
    for name in ("corpus.jsonl", "queries.jsonl", "reasoning.jsonl", "qrels/train.tsv", "qrels/test.tsv"):
        assert (tmp_path / name).read_bytes() == (DATA / name).read_bytes(), name


@pytest.mark.parametrize("name", ["corpus.jsonl", "queries.jsonl", "reasoning.jsonl", "qrels/test.tsv", "README.md"])
def test_data_is_reachable_as_package_resources(name: str):
    from importlib.resources import files

    assert files("laser_integrations.demo").joinpath("data", *name.split("/")).is_file()
