"""``laser-train reason`` (local LM and an OpenAI-compatible endpoint, resumable) and ``laser-train mine``."""

from __future__ import annotations

import json
import logging
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import ClassVar

import pytest

from laser_integrations import LaSERConfig
from laser_integrations.testing import tiny_encoder
from laser_integrations.training.cli import main
from laser_integrations.training.data import load_reasoning, load_training_data
from laser_integrations.training.mine import mine_hard_negatives
from laser_integrations.training.reason import REASON_PROMPT, http_generator, load_queries, write_rationales


pytestmark = pytest.mark.usefixtures("one_torch_thread")  # tests/conftest.py


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
    """A fake OpenAI-compatible endpoint: answers each prompt with its text reversed, after the failures queued
    for it in ``fail`` (HTTP statuses, each sent once, with a short Retry-After so the client retries at once)."""

    seen: ClassVar[list] = []
    fail: ClassVar[dict[str, list[int]]] = {}
    lock = threading.Lock()
    in_flight = 0
    most_in_flight = 0
    # When set, each request waits (at most 5 s) until two are in flight at once, so overlap is certain.
    wait_for_overlap = False
    overlap = threading.Event()

    def do_POST(self):
        body = json.loads(self.rfile.read(int(self.headers["Content-Length"])))
        prompt = body["messages"][0]["content"]
        with _Chat.lock:
            _Chat.seen.append((self.path, self.headers.get("Authorization"), body))
            status = _Chat.fail.get(prompt, []).pop(0) if _Chat.fail.get(prompt) else 200
            _Chat.in_flight += 1
            _Chat.most_in_flight = max(_Chat.most_in_flight, _Chat.in_flight)
            if _Chat.in_flight >= 2:
                _Chat.overlap.set()
        try:
            if _Chat.wait_for_overlap:
                _Chat.overlap.wait(5)
            if status == 200:
                answer = {"id": "x", "object": "chat.completion", "created": 0, "model": body["model"],
                          "choices": [{"index": 0, "finish_reason": "stop",
                                       "message": {"role": "assistant", "content": f" {prompt[::-1]} "}}]}  # fmt: skip
            else:
                answer = {"error": {"message": f"injected {status}", "type": "test"}}
            data = json.dumps(answer).encode()
            self.send_response(status)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(data)))
            self.send_header("retry-after-ms", "10")
            self.end_headers()
            self.wfile.write(data)
        finally:
            with _Chat.lock:
                _Chat.in_flight -= 1

    def log_message(self, *args):
        pass


@pytest.fixture
def chat_server(monkeypatch):
    _Chat.seen, _Chat.fail, _Chat.in_flight, _Chat.most_in_flight = [], {}, 0, 0
    _Chat.wait_for_overlap, _Chat.overlap = False, threading.Event()
    server = ThreadingHTTPServer(("127.0.0.1", 0), _Chat)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    monkeypatch.setenv("LASER_REASON_BASE_URL", f"http://127.0.0.1:{server.server_port}/v1")
    monkeypatch.setenv("LASER_REASON_API_KEY", "sk-test-secret")
    yield server
    server.shutdown()
    server.server_close()


def test_http_generator_uses_env_url_and_key(chat_server, caplog):
    generate = http_generator("some-model", max_new_tokens=32, concurrency=2)
    with caplog.at_level(logging.DEBUG):
        assert generate(["p1", "p2"]) == ["1p", "2p"]
    path, auth, body = _Chat.seen[0]
    assert path == "/v1/chat/completions" and auth == "Bearer sk-test-secret"
    assert body["model"] == "some-model" and body["max_tokens"] == 32 and body["temperature"] == 0
    assert sorted(b["messages"][0]["content"] for _, _, b in _Chat.seen) == ["p1", "p2"]
    assert "sk-test-secret" not in caplog.text


def test_http_generator_retries_429_and_500_and_bounds_concurrency(chat_server):
    _Chat.fail, _Chat.wait_for_overlap = {"p3": [429, 500]}, True
    prompts = [f"p{i}" for i in range(9)]
    assert http_generator("m", concurrency=3, max_retries=2)(prompts) == [p[::-1] for p in prompts]  # in order
    assert [b["messages"][0]["content"] for _, _, b in _Chat.seen].count("p3") == 3  # two failures, then the answer
    assert 2 <= _Chat.most_in_flight <= 3


def test_http_generator_gives_up_naming_the_status(chat_server):
    _Chat.fail = {"p0": [503, 503, 503]}
    with pytest.raises(RuntimeError, match=r"answered HTTP 503 \(after up to 1 retries\)"):
        http_generator("m", max_retries=1)(["p0"])
    assert len(_Chat.seen) == 2


def test_reason_cli_over_http_resumes_after_a_failed_batch(chat_server, tmp_path, capsys):
    folder = make_beir(tmp_path / "beir")
    _Chat.fail = {REASON_PROMPT.format(query="about relativity?"): [500, 500]}  # q4: fails in the second batch
    args = ["reason", "--data", str(folder), "--generator", "http", "--model", "m", "--batch_size", "3",
            "--concurrency", "2", "--max_retries", "1"]  # fmt: skip
    assert main(args) == 1  # a runtime failure: one line, exit status 1
    assert "HTTP 500" in capsys.readouterr().err
    assert set(load_reasoning(folder / "reasoning.jsonl")) == {"q0", "q1", "q2", "q3"}  # the first batch is kept
    assert main(args) == 0  # the failure queue is spent: the rerun does only what is missing
    rows = [json.loads(line) for line in (folder / "reasoning.jsonl").read_text().splitlines()]
    assert sorted(r["_id"] for r in rows) == [f"q{i}" for i in range(6)]
    assert rows[-1]["reasoning"] == REASON_PROMPT.format(query="about bayes theorem?")[::-1].strip()


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
