"""``laser-train reason`` (local LM and an OpenAI-compatible endpoint, resumable) and ``laser-train mine``."""

from __future__ import annotations

import json
import threading
from http.server import BaseHTTPRequestHandler, HTTPServer
from pathlib import Path
from typing import ClassVar

import pytest
import torch

from laser_integrations import LaSERConfig
from laser_integrations.testing import tiny_encoder
from laser_integrations.training.cli import main
from laser_integrations.training.data import load_reasoning, load_training_data
from laser_integrations.training.mine import mine_hard_negatives
from laser_integrations.training.reason import REASON_PROMPT, http_generator, load_queries, write_rationales


@pytest.fixture(autouse=True)
def _one_thread():
    """Tiny models on shared cores: one intra-op thread is an order of magnitude faster than two."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


def make_beir(folder: Path, n: int = 6) -> Path:
    folder.mkdir(parents=True)
    docs = ["prime numbers", "kraft inequality", "entropy", "product rule", "relativity", "bayes theorem"]
    (folder / "corpus.jsonl").write_text("".join(json.dumps({"_id": f"d{i}", "title": "", "text": t}) + "\n"
                                                 for i, t in enumerate(docs)))  # fmt: skip
    (folder / "queries.jsonl").write_text("".join(json.dumps({"_id": f"q{i}", "text": f"about {docs[i]}?"}) + "\n"
                                                  for i in range(n)))  # fmt: skip
    (folder / "qrels").mkdir()
    (folder / "qrels" / "train.tsv").write_text(
        "query-id\tcorpus-id\tscore\n" + "".join(f"q{i}\td{i}\t1\n" for i in range(n))
    )
    (folder / "reasoning.jsonl").write_text(json.dumps({"_id": "q0", "reasoning": "already here"}) + "\n")
    return folder


def test_write_rationales_skips_done_ids_and_resumes(tmp_path):
    folder = make_beir(tmp_path / "beir")
    queries, existing = load_queries(folder, "train")
    calls: list[list[str]] = []

    def fake(prompts):
        calls.append(prompts)
        if len(calls) == 2:
            raise KeyboardInterrupt  # killed during the second batch
        return [f"because {p[-12:]}" for p in prompts]

    out = folder / "reasoning.jsonl"
    with pytest.raises(KeyboardInterrupt):
        write_rationales(queries, out, fake, existing=existing, batch_size=2, show_progress=False)
    assert set(load_reasoning(out)) == {"q0", "q1", "q2"}  # the finished batch was kept
    assert calls[0][0] == REASON_PROMPT.format(query="about kraft inequality?")
    calls.clear()
    n = write_rationales(queries, out, lambda ps: ["r"] * len(ps), batch_size=2, show_progress=False)
    assert n == 3 and set(load_reasoning(out)) == {f"q{i}" for i in range(6)}
    examples, _ = load_training_data(folder)
    assert examples[0].reasoning == "already here" and all(ex.reasoning for ex in examples)


def test_local_generator_through_the_cli(tmp_path):
    folder = make_beir(tmp_path / "beir", n=3)
    model_dir = tmp_path / "lm"
    tiny_encoder("llama", config=LaSERConfig.from_preset("plain")).save_pretrained(model_dir)
    assert main(["reason", "--data", str(folder), "--generator", "local", "--model", str(model_dir),
                 "--batch_size", "2", "--max_new_tokens", "4", "--device", "cpu"]) == 0  # fmt: skip
    rows = [json.loads(line) for line in (folder / "reasoning.jsonl").read_text().splitlines()]
    assert [r["_id"] for r in rows] == ["q0", "q1", "q2"] and rows[1]["source"] == f"generated:{model_dir}"


class _Chat(BaseHTTPRequestHandler):
    seen: ClassVar[list] = []

    def do_POST(self):
        body = json.loads(self.rfile.read(int(self.headers["Content-Length"])))
        _Chat.seen.append((self.path, self.headers.get("Authorization"), body))
        answer = {"choices": [{"message": {"content": " step one\n\nstep two "}}]}
        data = json.dumps(answer).encode()
        self.send_response(200)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)

    def log_message(self, *args):
        pass


def test_http_generator_uses_env_url_and_key(monkeypatch):
    server = HTTPServer(("127.0.0.1", 0), _Chat)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    try:
        monkeypatch.setenv("LASER_REASON_BASE_URL", f"http://127.0.0.1:{server.server_port}/v1")
        monkeypatch.setenv("LASER_REASON_API_KEY", "sk-test")
        generate = http_generator("some-model", max_new_tokens=32)
        assert generate(["p1", "p2"]) == ["step one\n\nstep two"] * 2
        path, auth, body = _Chat.seen[0]
        assert path == "/v1/chat/completions" and auth == "Bearer sk-test"
        assert body["model"] == "some-model" and body["messages"][0]["content"] == "p1" and body["max_tokens"] == 32
    finally:
        server.shutdown()


def test_http_generator_without_url_explains(monkeypatch):
    monkeypatch.delenv("LASER_REASON_BASE_URL", raising=False)
    monkeypatch.delenv("OPENAI_BASE_URL", raising=False)
    with pytest.raises(ValueError, match="LASER_REASON_BASE_URL"):
        http_generator("m")


def test_mine_excludes_positives_and_respects_the_window(tmp_path):
    folder = make_beir(tmp_path / "beir")
    encoder = tiny_encoder(config=LaSERConfig(query_template="{text}", document_template="{text}", query_instruction="",
                                              use_chat_template=False, chat_suffix=""))  # fmt: skip
    out = mine_hard_negatives(encoder, folder, tmp_path / "mined.jsonl", num_negatives=2, rank_start=1, rank_end=4,
                              show_progress=False)  # fmt: skip
    rows = [json.loads(line) for line in out.read_text().splitlines()]
    assert len(rows) == 6 and rows[0]["reasoning"] == "already here"
    docs = [json.loads(line)["text"] for line in (folder / "corpus.jsonl").read_text().splitlines()]
    d = encoder.encode_documents(docs)
    for row in rows:
        assert len(row["negatives"]) == 2 and row["positives"][0] not in row["negatives"]
        q = encoder.encode_queries([row["query"]])[0]
        ranked = [docs[j] for j in (-(d @ q)).argsort(kind="stable") if docs[j] not in row["positives"]]
        assert row["negatives"] == ranked[1:3]  # ranks 1 and 2 after removing the positive
    examples, _ = load_training_data(out)  # the output is a valid training file
    assert len(examples[3].negatives) == 2
    with pytest.raises(ValueError, match="rank window"):
        mine_hard_negatives(encoder, folder, tmp_path / "x.jsonl", rank_start=5, rank_end=5)


def test_mine_with_bm25_ranks_by_shared_terms(tmp_path):
    from laser_integrations.evaluation.baselines import BM25Baseline

    folder = tmp_path / "beir"
    (folder / "qrels").mkdir(parents=True)
    docs = ["alpha beta gamma", "alpha beta", "zeta eta", "alpha"]  # the query shares 3, 2, 0, 1 terms
    (folder / "corpus.jsonl").write_text("".join(json.dumps({"_id": f"d{i}", "text": t}) + "\n"
                                                 for i, t in enumerate(docs)))  # fmt: skip
    (folder / "queries.jsonl").write_text(json.dumps({"_id": "q0", "text": "alpha beta gamma"}) + "\n")
    (folder / "qrels" / "train.tsv").write_text("query-id\tcorpus-id\tscore\nq0\td0\t1\n")
    out = mine_hard_negatives(BM25Baseline(), folder, tmp_path / "all.jsonl", num_negatives=3, show_progress=False)
    # The positive is removed, and "zeta eta" shares no term with the query, so BM25 never offers it.
    assert json.loads(out.read_text())["negatives"] == ["alpha beta", "alpha"]
    out = mine_hard_negatives(BM25Baseline(), folder, tmp_path / "w.jsonl", rank_start=1, show_progress=False)
    assert json.loads(out.read_text())["negatives"] == ["alpha"]


def test_jsonl_records_get_rationales_merged(tmp_path):
    from laser_integrations.training.reason import merge_into_jsonl

    records = tmp_path / "train.jsonl"
    records.write_text(
        json.dumps({"query": "a", "positives": ["x"]}) + "\n"
        + json.dumps({"_id": "k", "query": "b", "positives": ["y"], "reasoning": "mine"}) + "\n"
    )  # fmt: skip
    queries, existing = load_queries(records)
    assert queries == [("1", "a"), ("k", "b")] and existing == {"k": "mine"}
    n = write_rationales(queries, tmp_path / "r.jsonl", lambda ps: ["written"] * len(ps), existing=existing,
                         show_progress=False)  # fmt: skip
    assert n == 1
    merged = merge_into_jsonl(records, tmp_path / "r.jsonl", tmp_path / "merged.jsonl")
    assert [ex.reasoning for ex in load_training_data(merged)[0]] == ["written", "mine"]
