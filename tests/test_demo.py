"""``laser demo`` offline, end to end, on a tiny random backbone and a small subset of the shipped demo data."""

from __future__ import annotations

import contextlib
import io
import json
import os
from pathlib import Path

import pytest

from laser_integrations.cli.main import main
from laser_integrations.demo.run import (
    DEMO_DATA,
    RELEASED_MODEL,
    DemoOptions,
    choose_model,
    hub_reachable,
    remove_built,
    slug,
    training_values,
)
from laser_integrations.evaluation import load_beir

N_TEST, N_TRAIN, N_EXTRA_DOCS = 6, 16, 20


def _subset(folder: Path) -> Path:
    """The first test and train questions of the shipped data, their gold passages and some others."""
    test, train = load_beir(DEMO_DATA, "test"), load_beir(DEMO_DATA, "train")
    test_q, train_q = list(test.queries)[:N_TEST], list(train.queries)[:N_TRAIN]
    gold = {d for q in test_q for d in test.qrels[q]} | {d for q in train_q for d in train.qrels[q]}
    docs = sorted(gold) + [d for d in test.corpus if d not in gold][:N_EXTRA_DOCS]
    (folder / "qrels").mkdir(parents=True)
    rows = [json.loads(line) for line in (DEMO_DATA / "corpus.jsonl").read_text(encoding="utf-8").splitlines() if line]
    keep = set(docs)
    (folder / "corpus.jsonl").write_text("".join(json.dumps(r) + "\n" for r in rows if r["_id"] in keep), encoding="utf-8")
    queries = {**{q: test.queries[q] for q in test_q}, **{q: train.queries[q] for q in train_q}}
    (folder / "queries.jsonl").write_text("".join(json.dumps({"_id": q, "text": t}) + "\n" for q, t in queries.items()),
                                          encoding="utf-8")  # fmt: skip
    reasoning = {**test.reasoning, **train.reasoning}
    (folder / "reasoning.jsonl").write_text(
        "".join(json.dumps({"_id": q, "reasoning": reasoning[q]}) + "\n" for q in queries if q in reasoning), encoding="utf-8"
    )
    for split, ds, ids in (("test", test, test_q), ("train", train, train_q)):
        lines = [f"{q}\t{d}\t{r}\n" for q in ids for d, r in ds.qrels[q].items()]
        (folder / "qrels" / f"{split}.tsv").write_text("query-id\tcorpus-id\tscore\n" + "".join(lines), encoding="utf-8")
    return folder


def _demo(*args: str) -> tuple[int, str]:
    out = io.StringIO()
    with contextlib.redirect_stdout(out):
        code = main(["demo", *args])
    return code, out.getvalue()


@pytest.fixture(scope="module")
def runs(tmp_path_factory, encoder_dir: Path) -> dict:
    """An interrupted training, then two demo runs on the same workdir (offline: HF_HUB_OFFLINE=1)."""
    from laser_integrations.training import LaSERTrainer, build_config

    root = tmp_path_factory.mktemp("demo")
    data, workdir = _subset(root / "data"), root / "work"
    args = ["--workdir", str(workdir), "--backbone", str(encoder_dir), "--data", str(data), "--max-steps", "2",
            "--questions", "2", "--top-k", "3"]  # fmt: skip
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("HF_HUB_OFFLINE", "1")
        # A run killed after its first step: the demo must resume it, not start over.
        options = DemoOptions(workdir=workdir, backbone=str(encoder_dir), data=data, max_steps=2)
        output_dir = workdir / f"train-{slug(str(encoder_dir))}"
        values = {**training_values(str(encoder_dir), data, output_dir, options), "save_steps": 1, "progress_bar": False}
        assert LaSERTrainer(build_config(values)).train(stop_after_steps=1) is None
        first_code, first = _demo(*args)
        final = output_dir / "final"
        stamps = {p: p.stat().st_mtime_ns for p in [*final.iterdir(), *(workdir / "qdrant").rglob("*")] if p.is_file()}
        first_results = json.loads((workdir / "results.json").read_text(encoding="utf-8"))
        second_code, second = _demo(*args)
        second_results = json.loads((workdir / "results.json").read_text(encoding="utf-8"))
    return {"data": data, "workdir": workdir, "output_dir": output_dir, "first": (first_code, first, first_results),
            "second": (second_code, second, second_results), "stamps": stamps}  # fmt: skip


def test_first_run_resumes_training_indexes_and_reports_both_models(runs):
    code, out, results = runs["first"]
    assert code == 0, out
    assert "No model hub" not in out  # a given backbone means: train from it, no hub probe
    assert "Resuming the interrupted training" in out
    metrics = [json.loads(line) for line in (runs["output_dir"] / "metrics.jsonl").read_text().splitlines()]
    assert [m["step"] for m in metrics] == [1, 2]  # step 1 from the killed run, step 2 from the demo
    assert (runs["output_dir"] / "final" / "laser_config.json").is_file()
    test = load_beir(runs["data"], "test")
    assert out.count(f"indexing {len(test.corpus)} passages with") == 2
    assert set(results["models"]) == {"laser", "backbone"}
    assert results["models"]["laser"]["model"] == str(runs["output_dir"] / "final")
    for side in results["models"].values():
        assert 0.0 <= side["ndcg@10"] <= 1.0
        assert f"{side['ndcg@10']:.3f}  {side['label']}" in out  # printed as it was saved
    assert "nDCG@10 on the demo test split (6 questions" in out
    assert len(results["questions"]) == 2
    for question in results["questions"]:
        assert question["text"] in out
        for slot in ("laser", "backbone"):
            shown = question["hits"][slot]
            assert len(shown) == 3
            assert [h["gold"] for h in shown] == [test.qrels[question["id"]].get(h["id"], 0) > 0 for h in shown]
            assert [h["score"] for h in shown] == sorted((h["score"] for h in shown), reverse=True)


def test_second_run_reuses_checkpoint_and_collections(runs):
    code, out, results = runs["second"]
    assert code == 0, out
    assert "reusing the trained checkpoint" in out
    assert out.count("reusing the Qdrant collection") == 2
    assert "passages with" not in out and "Resuming" not in out
    for path, stamp in runs["stamps"].items():
        assert path.stat().st_mtime_ns == stamp, f"{path} was rewritten"
    assert results["stages"]["checkpoint"]["reused"] and results["stages"]["index_laser"]["reused"]
    first = runs["first"][2]
    assert {k: v["ndcg@10"] for k, v in results["models"].items()} == {k: v["ndcg@10"] for k, v in first["models"].items()}


def test_hub_probe_is_offline_safe(monkeypatch):
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    assert hub_reachable() == (False, "HF_HUB_OFFLINE is set")
    monkeypatch.delenv("HF_HUB_OFFLINE")
    monkeypatch.delenv("TRANSFORMERS_OFFLINE", raising=False)
    monkeypatch.setenv("HF_ENDPOINT", "http://127.0.0.1:9")  # nothing listens on the discard port
    ok, why = hub_reachable(timeout=2.0)
    assert not ok and "127.0.0.1:9" in why


@pytest.mark.parametrize(
    ("options", "hub", "expected"),
    [
        (DemoOptions(model="some/checkpoint"), True, ("given", "some/checkpoint")),
        (DemoOptions(), True, ("released", RELEASED_MODEL)),
        (DemoOptions(), False, ("train", "")),
        (DemoOptions(backbone="my-backbone"), True, ("train", "")),
    ],
)
def test_choose_model(options, hub, expected, capsys):
    assert choose_model(options, hub_check=lambda: (hub, "test")) == expected
    if expected[0] == "train" and not options.backbone:
        assert "training a small LaSER checkpoint" in capsys.readouterr().out


def test_rebuild_removes_only_what_the_demo_built(tmp_path):
    for folder in ("backbones/x", "train-y/final", "qdrant/laser"):
        (tmp_path / folder).mkdir(parents=True)
    (tmp_path / "results.json").write_text("{}")
    (tmp_path / "notes.txt").write_text("mine")
    remove_built(tmp_path)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["notes.txt"]


def test_missing_data_is_a_clear_error(tmp_path, capsys):
    code = main(["demo", "--workdir", str(tmp_path / "w"), "--data", str(tmp_path / "nowhere"), "--backbone", "x"])
    assert code == 2  # bad input (the shared exit-code convention)
    err = capsys.readouterr().err
    assert "laser demo: error" in err and "nowhere" in err
    assert not os.path.exists(tmp_path / "w" / "results.json")
