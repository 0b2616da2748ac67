"""training/heldout_folds.py: held-back folds that laser-train and laser eval read as BEIR splits."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from laser_integrations.evaluation.data import load_beir, read_qrels

SCRIPT = Path(__file__).resolve().parents[1] / "training" / "heldout_folds.py"


@pytest.fixture(scope="module")
def heldout_folds(load_script):
    return load_script(SCRIPT)


def rows(prefix: str, count: int) -> str:
    return "".join(json.dumps({"_id": f"{prefix}{i}", "text": str(i)}) + "\n" for i in range(count))


def make_beir(folder: Path, n: int = 7) -> Path:
    (folder / "qrels").mkdir(parents=True)
    (folder / "corpus.jsonl").write_text(rows("d", n))
    (folder / "queries.jsonl").write_text(rows("q", n + 2))
    (folder / "reasoning.jsonl").write_text(json.dumps({"_id": "q0", "reasoning": "because"}) + "\n")
    # q0 has two relevant documents: a question's whole judgement travels with it
    (folder / "qrels" / "train.tsv").write_text("query-id\tcorpus-id\tscore\nq0\td1\t1\n"
                                                + "".join(f"q{i}\td{i}\t1\n" for i in range(n)))  # fmt: skip
    (folder / "qrels" / "dev.tsv").write_text(f"q{n}\td0\t1\nq{n + 1}\td1\t1\n")
    return folder


def test_every_question_is_held_back_once_and_trained_on_by_the_other_folds(tmp_path, heldout_folds):
    data = make_beir(tmp_path / "set")
    folds = heldout_folds.write_folds(data, tmp_path / "out", folds=3, seed=5)
    assert [f.name for f in folds] == ["fold1", "fold2", "fold3"]
    original = read_qrels(data / "qrels" / "train.tsv")
    held = [read_qrels(f / "qrels" / "test.tsv") for f in folds]
    assert sorted(len(h) for h in held) == [2, 2, 3]  # 7 questions dealt into three
    assert sorted(q for h in held for q in h) == sorted(original)  # each question held back exactly once
    for fold, test in zip(folds, held):
        train = read_qrels(fold / "qrels" / "train.tsv")
        assert not set(train) & set(test) and set(train) | set(test) == set(original)
        assert {**train, **test} == original  # judgements unchanged, q0 with both its documents
        assert (fold / "corpus.jsonl").is_symlink() and (fold / "reasoning.jsonl").resolve() == data / "reasoning.jsonl"
        assert (fold / "qrels" / "dev.tsv").resolve() == data / "qrels" / "dev.tsv"  # dev stays scoreable
        assert set(load_beir(fold, "test").queries) == set(test)  # laser eval --split test reads it
    # the seed, not the file's order, decides the folds; rewriting them gives the same files
    again = heldout_folds.write_folds(data, tmp_path / "out", folds=3, seed=5)
    assert [read_qrels(f / "qrels" / "test.tsv") for f in again] == held
    other = heldout_folds.write_folds(data, tmp_path / "other", folds=3, seed=6)
    assert [read_qrels(f / "qrels" / "test.tsv") for f in other] != held


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--folds", "1"], "--folds must be at least 2"),
        (["--split", "validation"], "qrels/validation.tsv not found"),
        (["--with-test"], "already has qrels/test.tsv: score on that split"),
    ],
)
def test_bad_usage_exits_2_naming_the_problem(tmp_path, heldout_folds, capsys, args, message):
    data = make_beir(tmp_path / "set")
    if args == ["--with-test"]:
        (data / "qrels" / "test.tsv").write_text("q0\td0\t1\n")
        args = []
    assert heldout_folds.main(["--data", str(data), "--out", str(tmp_path / "out"), *args]) == 2
    assert message in capsys.readouterr().err
    assert not (tmp_path / "out").exists()  # nothing half-written
