"""``laser demo`` offline, end to end, on a tiny random backbone and a small subset of the shipped demo data; the
shipped checkpoint: its files, its packaging, and that it loads."""

from __future__ import annotations

import contextlib
import fnmatch
import io
import json
import os
from pathlib import Path

import numpy as np
import pytest
import torch
import yaml

from laser_integrations.cli.main import main
from laser_integrations.demo.run import (
    DEMO_DATA,
    DEMO_TRAINING,
    OFFLINE_BACKBONE,
    SHIPPED_CHECKPOINT,
    DemoOptions,
    choose_model,
    open_index,
    remove_built,
    slug,
    training_values,
)
from laser_integrations.evaluation import evaluate, load_beir

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
        # The checkpoint and the index manifests (rewritten only by an indexing); Edge itself rewrites its segment
        # files when a shard is opened and closed, so the reuse of the collections is read from the output below.
        stamps = {p: p.stat().st_mtime_ns for p in [*final.iterdir(), *(workdir / "qdrant").glob("*.json")] if p.is_file()}
        first_results = json.loads((workdir / "results.json").read_text(encoding="utf-8"))
        second_code, second = _demo(*args)
        second_results = json.loads((workdir / "results.json").read_text(encoding="utf-8"))
    return {"data": data, "workdir": workdir, "output_dir": output_dir, "first": (first_code, first, first_results),
            "second": (second_code, second, second_results), "stamps": stamps}  # fmt: skip


def test_first_run_resumes_training_indexes_and_reports_every_model(runs):
    code, out, results = runs["first"]
    assert code == 0, out
    assert "Training a LaSER checkpoint from" in out and "shipped" not in out  # a given backbone: train from it
    assert "Resuming the interrupted training" in out
    metrics = [json.loads(line) for line in (runs["output_dir"] / "metrics.jsonl").read_text().splitlines()]
    assert [m["step"] for m in metrics] == [1, 2]  # step 1 from the killed run, step 2 from the demo
    assert (runs["output_dir"] / "final" / "adapter_config.json").is_file()  # the recipe exports the adapter
    test = load_beir(runs["data"], "test")
    assert out.count(f"indexing {len(test.corpus)} passages with") == 2
    assert set(results["models"]) == {"laser", "backbone", "bm25", "minilm"} and results["left_out"] == {}
    assert results["models"]["laser"]["model"] == str(runs["output_dir"] / "final")
    for side in results["models"].values():
        assert 0.0 <= side["ndcg@10"] <= 1.0
        assert f"{side['ndcg@10']:.3f}  {side['label']}" in out  # printed as it was saved
    assert "nDCG@10 on the demo test split (6 questions" in out
    assert len(results["questions"]) == 2
    for question in results["questions"]:
        assert question["text"] in out
        assert set(question["hits"]) == {"laser", "bm25", "minilm"}  # side by side: LaSER and the two references
        for shown in question["hits"].values():
            assert len(shown) == 3
            assert [h["gold"] for h in shown] == [test.qrels[question["id"]].get(h["id"], 0) > 0 for h in shown]
            assert [h["score"] for h in shown] == sorted((h["score"] for h in shown), reverse=True)


def test_reference_scores_match_laser_eval(runs):
    """BM25 and MiniLM in the demo score what `laser eval --model bm25 minilm` scores on the same questions."""
    test = load_beir(runs["data"], "test")
    expected = {r.model: r.metrics["ndcg@10"] for r in evaluate(["bm25", "minilm"], [test], metrics=["ndcg@10"])}
    got = {name: runs["first"][2]["models"][name]["ndcg@10"] for name in ("bm25", "minilm")}
    assert got == pytest.approx(expected, abs=1e-6)


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


@pytest.mark.parametrize(
    ("options", "expected"),
    [
        (DemoOptions(model="some/checkpoint"), ("given", "some/checkpoint")),
        (DemoOptions(), ("shipped", str(SHIPPED_CHECKPOINT))),
        (DemoOptions(train=True), ("train", "")),
        (DemoOptions(backbone="my-backbone"), ("train", "")),
        (DemoOptions(model="some/checkpoint", backbone="my-backbone"), ("given", "some/checkpoint")),
    ],
)
def test_choose_model(options, expected):
    assert choose_model(options) == expected


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--max-steps", "5"], "add --train"),
        (["--num-epochs", "2"], "add --train"),
        (["--model", "x", "--train"], "give one of the two"),
        (["--train", "--max-steps", "0"], "must be positive"),
    ],
)
def test_contradicting_options_are_refused(args, message, tmp_path, capsys):
    assert main(["demo", "--workdir", str(tmp_path / "w"), *args]) == 2
    assert message in capsys.readouterr().err
    assert not (tmp_path / "w").exists()  # refused before anything was built


def test_shipped_checkpoint_is_an_adapter_on_the_offline_backbone_and_is_packaged():
    config = json.loads((SHIPPED_CHECKPOINT / "adapter_config.json").read_text(encoding="utf-8"))
    assert config["base_model_name_or_path"] == OFFLINE_BACKBONE  # loads on any install, not only the trainer's
    assert config["r"] == DEMO_TRAINING["lora_r"] and config["lora_alpha"] == DEMO_TRAINING["lora_alpha"]
    recipe = yaml.safe_load((SHIPPED_CHECKPOINT / "train_config.yaml").read_text(encoding="utf-8"))
    # The shipped checkpoint is what DEMO_TRAINING trains (`laser demo --train` retrains it); checkpointing and
    # logging do not change the weights.
    keys = [k for k in DEMO_TRAINING if k not in ("laser_config", "save_steps", "save_total_limit", "logging_steps")]
    # Keys added after it was trained (issue 23) hold the behaviour the trainer had then.
    before = {"trajectory_targets": "text_spans", "explicit_eos_in_budget": True}
    assert {k: recipe.get(k, before.get(k)) for k in keys} == {k: DEMO_TRAINING[k] for k in keys}
    assert recipe["laser_config"] | DEMO_TRAINING["laser_config"] == recipe["laser_config"]
    files = sorted(p.name for p in SHIPPED_CHECKPOINT.iterdir())
    assert "adapter_model.safetensors" in files and "laser_config.json" in files
    # pyproject's package-data must carry every file of the folder into the wheel.
    tomllib = pytest.importorskip("tomllib", reason="reading pyproject.toml needs Python 3.11's tomllib")
    package_data = tomllib.loads((Path(__file__).parents[1] / "pyproject.toml").read_text())["tool"]["setuptools"][
        "package-data"
    ]["laser_integrations.demo.checkpoint"]
    assert all(any(fnmatch.fnmatch(name, pattern) for pattern in package_data) for name in files), (files, package_data)


def test_shipped_checkpoint_loads_and_matches_questions_to_their_passages():
    """The default `laser demo` path: the shipped adapter loads onto the offline SmolLM2 and retrieves."""
    from laser_integrations import LaSEREncoder
    from laser_integrations.offline import smollm2_path

    try:
        smollm2_path()
    except FileNotFoundError as e:
        pytest.skip(str(e))
    encoder = LaSEREncoder.from_pretrained(SHIPPED_CHECKPOINT, device="cpu")
    assert encoder.dimension == 576 and encoder.config.num_thinking_steps == DEMO_TRAINING["num_thinking_steps"]
    test = load_beir(DEMO_DATA, "test")
    qids = list(test.queries)[:8]
    golds = [next(iter(test.qrels[q])) for q in qids]
    scores = encoder.encode_queries([test.queries[q] for q in qids]) @ encoder.encode_documents(
        [test.corpus[d] for d in golds]
    ).T
    # Each question against the 8 gold passages: chance puts its own first 1 time in 8.
    hits = sum(int(np.argmax(row) == i) for i, row in enumerate(scores))
    assert hits >= 4, scores


@pytest.fixture(scope="module")
def tiny_shipped(tmp_path_factory, encoder_dir: Path) -> dict:
    """One demo-recipe step on the tiny backbone, packaged by ship.package_adapter as the shipped checkpoint is."""
    from laser_integrations.demo.ship import package_adapter
    from laser_integrations.training import LaSERTrainer, build_config

    root = tmp_path_factory.mktemp("ship")
    data = _subset(root / "data")
    options = DemoOptions(workdir=root, train=True, max_steps=1)
    values = {**training_values(str(encoder_dir), data, root / "train", options), "progress_bar": False,
              "save_steps": 0, "learning_rate": 5e-2}  # fmt: skip
    trained = LaSERTrainer(build_config(values)).train()
    shipped = package_adapter(trained, root / "shipped", base=str(encoder_dir))
    return {"data": data, "trained": trained, "shipped": shipped}


def test_package_adapter_rewrites_the_base_and_keeps_the_embeddings(tiny_shipped, encoder_dir):
    """ship.package_adapter: the packaged folder loads onto the base it names and embeds as the trained one."""
    from laser_integrations.demo.ship import embedding_drift

    shipped, data = tiny_shipped["shipped"], tiny_shipped["data"]
    config = json.loads((shipped / "adapter_config.json").read_text(encoding="utf-8"))
    assert config["base_model_name_or_path"] == str(encoder_dir)
    assert (shipped / "metrics.jsonl").is_file() and (shipped / "train_config.yaml").is_file()
    assert embedding_drift(str(tiny_shipped["trained"]), str(shipped), data) < 1e-4  # float16 adapter weights
    assert embedding_drift(str(encoder_dir), str(shipped), data) > 1e-3  # and the adapter is applied


def test_default_run_loads_the_shipped_checkpoint_without_training(tiny_shipped, encoder_dir, tmp_path, monkeypatch):
    """`laser demo` with no arguments: the shipped adapter, placed on the converted backbone; nothing trains."""
    import laser_integrations.demo.run as demo_run

    monkeypatch.setattr(demo_run, "SHIPPED_CHECKPOINT", tiny_shipped["shipped"])
    monkeypatch.setattr(demo_run, "OFFLINE_BACKBONE", str(encoder_dir))  # the tiny model stands in for SmolLM2
    options = DemoOptions(workdir=tmp_path, data=tiny_shipped["data"], questions=1)
    # A loaded machine: the demo runs on one torch thread and gives the caller its own count back.
    monkeypatch.setattr(demo_run, "threads_for_load", lambda: (1, "the load average (9.0) is above the 2 cores"))
    callers_threads = torch.get_num_threads()
    torch.set_num_threads(2)
    try:
        first = demo_run.run_demo(options)
        assert torch.get_num_threads() == 2
    finally:
        torch.set_num_threads(callers_threads)
    assert first["stages"]["checkpoint"] == {**first["stages"]["checkpoint"], "how": "shipped", "reused": False}
    assert not list(tmp_path.glob("train-*"))  # nothing was trained
    placed = tmp_path / "checkpoint"
    assert first["models"]["laser"]["model"] == str(placed)
    assert json.loads((placed / "adapter_config.json").read_text())["base_model_name_or_path"] == str(encoder_dir)
    assert (placed / "adapter_model.safetensors").read_bytes() == (
        tiny_shipped["shipped"] / "adapter_model.safetensors"
    ).read_bytes()
    second = demo_run.run_demo(options)
    assert second["stages"]["checkpoint"]["reused"] and second["stages"]["index_laser"]["reused"]
    assert second["models"]["laser"]["ndcg@10"] == first["models"]["laser"]["ndcg@10"]


@pytest.mark.parametrize(
    ("env", "load", "cores", "threads"),
    [({}, 9.5, 2, 1), ({}, 1.5, 2, None), ({"OMP_NUM_THREADS": "2"}, 9.5, 2, None), ({}, 3.0, 1, None)],
)
def test_threads_for_load(env, load, cores, threads, monkeypatch):
    """One torch thread when the machine is busier than its cores, unless the user chose (OMP_NUM_THREADS)."""
    import laser_integrations.demo.run as demo_run

    monkeypatch.delenv("OMP_NUM_THREADS", raising=False)
    for key, value in env.items():
        monkeypatch.setenv(key, value)
    monkeypatch.setattr(demo_run.os, "getloadavg", lambda: (load, load, load))
    monkeypatch.setattr(demo_run.os, "cpu_count", lambda: cores)
    got, why = demo_run.threads_for_load()
    assert got == threads
    assert ("OMP_NUM_THREADS" in why) == bool(env)


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


def test_a_local_mode_slot_left_by_an_earlier_version_is_rebuilt_on_edge(encoder_dir, tmp_path):
    from haystack_integrations.document_stores.laser_edge import QdrantEdgeDocumentStore
    from laser_integrations.qdrant import open_document_store

    folder = tmp_path / "qdrant" / "laser"
    open_document_store(path=folder, collection="demo", embedding_dim=4, engine="client").close()  # local mode
    corpus = {"p1": "angular momentum is conserved", "p2": "entropy never decreases"}
    indexed = open_index("laser", "tiny", str(encoder_dir), corpus, tmp_path)
    try:
        assert isinstance(indexed.store, QdrantEdgeDocumentStore) and not indexed.reused
        assert sorted(d.id for d in indexed.store.filter_documents()) == ["p1", "p2"]
        assert not (folder / "meta.json").exists()  # the demo's own cache, replaced, not written beside
    finally:
        indexed.store.close()
