"""Training data: the three layouts, validation messages, rationale segments and the collator."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from laser_integrations import LaSERConfig
from laser_integrations.formatting import Formatter
from laser_integrations.testing import build_bpe_tokenizer, tiny_encoder
from laser_integrations.training.data import (
    DataError,
    DualViewCollator,
    load_training_data,
    segment_spans,
    tokenize_explicit_view,
)
from laser_integrations.training.losses import downsample_indices

DOCS = ["the prime numbers", "a prefix code", "entropy measures information", "the product rule"]


pytestmark = pytest.mark.usefixtures("one_torch_thread")  # tests/conftest.py


def write_jsonl(path: Path, rows: list) -> Path:
    path.write_text("".join((r if isinstance(r, str) else json.dumps(r)) + "\n" for r in rows), encoding="utf-8")
    return path


@pytest.fixture(scope="module")
def formatter() -> Formatter:
    return Formatter(build_bpe_tokenizer(), LaSERConfig.from_preset("plain"))


def test_jsonl_records_texts_and_ids(tmp_path):
    corpus = write_jsonl(
        tmp_path / "corpus.jsonl", [{"_id": f"d{i}", "title": "T", "text": t} for i, t in enumerate(DOCS)]
    )
    data = write_jsonl(tmp_path / "train.jsonl", [
        {"query": "q1", "reasoning": "r", "positives": ["d0"], "negatives": ["d1", {"text": "inline text"}]},
        {"query": "q2", "instruction": "Find", "positives": ["d2"]},
    ])  # fmt: skip
    examples, pool = load_training_data(data, corpus=corpus)
    assert examples[0].positives == ["T the prime numbers"]
    assert examples[0].negatives == ["T a prefix code", "inline text"]
    assert examples[1].instruction == "Find" and examples[1].reasoning is None
    assert "T the product rule" in pool and "inline text" in pool


@pytest.mark.parametrize(
    ("row", "message"),
    [
        ({"positives": ["a"]}, "line 2: missing field 'query'"),
        ({"query": "q", "positives": []}, "line 2: field 'positives' must hold at least one document"),
        ({"query": "q", "positives": "a"}, "line 2: field 'positives' must be a list"),
        (
            {"query": "q", "positives": ["a"], "negatives": [3]},
            r"line 2: field 'negatives'\[0\] must be a non-empty string",
        ),
        ({"query": 5, "positives": ["a"]}, "line 2: field 'query' must be a string"),
        ({"query": "q", "positives": ["a"], "pos": []}, r"line 2: unknown fields \['pos'\]"),
        ("{not json", "bad.jsonl:2: not valid JSON"),
    ],
)
def test_jsonl_errors_name_file_line_and_field(tmp_path, row, message):
    data = write_jsonl(tmp_path / "bad.jsonl", [{"query": "ok", "positives": ["a"]}, row])
    with pytest.raises(DataError, match=message) as info:
        load_training_data(data)
    assert "bad.jsonl" in str(info.value)


def test_unknown_corpus_id_is_named(tmp_path):
    corpus = write_jsonl(tmp_path / "corpus.jsonl", [{"_id": "d0", "text": "x"}])
    data = write_jsonl(tmp_path / "train.jsonl", [{"query": "q", "positives": ["d9"]}])
    with pytest.raises(DataError, match="line 1: field 'positives'\\[0\\] is 'd9', which is not a document id"):
        load_training_data(data, corpus=corpus)


def make_beir(folder: Path) -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    write_jsonl(folder / "corpus.jsonl", [{"_id": f"d{i}", "title": "", "text": t} for i, t in enumerate(DOCS)])
    write_jsonl(folder / "queries.jsonl", [{"_id": f"q{i}", "text": f"question {i}"} for i in range(4)])
    (folder / "qrels").mkdir(exist_ok=True)
    (folder / "qrels" / "train.tsv").write_text(
        "query-id\tcorpus-id\tscore\n" + "".join(f"q{i}\td{i}\t1\n" for i in range(4)), encoding="utf-8"
    )
    write_jsonl(folder / "reasoning.jsonl", [{"_id": "q1", "reasoning": "a\n\nb"}, {"_id": "q3", "reasoning": "c"}])
    return folder


def test_beir_folder_with_reasoning_and_missing_reasoning_option(tmp_path):
    folder = make_beir(tmp_path / "beir")
    examples, pool = load_training_data(folder)
    assert [ex.id for ex in examples] == ["q0", "q1", "q2", "q3"]
    assert [ex.reasoning for ex in examples] == [None, "a\n\nb", None, "c"]
    assert examples[2].positives == [DOCS[2]] and len(pool) == 4
    kept, _ = load_training_data(folder, missing_reasoning="drop")
    assert [ex.id for ex in kept] == ["q1", "q3"]


def test_beir_qrels_errors(tmp_path):
    folder = make_beir(tmp_path / "beir")
    (folder / "qrels" / "train.tsv").write_text("query-id\tcorpus-id\tscore\nq0\tnope\t1\n", encoding="utf-8")
    with pytest.raises(DataError, match=r"train.tsv line 2: corpus-id 'nope' is not in corpus.jsonl"):
        load_training_data(folder)
    with pytest.raises(DataError, match=r"split 'dev' has no qrels. Splits found: \['train'\]"):
        load_training_data(folder, split="dev")


def test_hf_disk_official_layout(tmp_path):
    from datasets import Dataset

    Dataset.from_list([
        {"query": "q", "reasoning_query": "think\n\nmore", "prompt": "Find the theorem",
         "positive_passages": [{"docid": "1", "title": "Kraft", "text": "inequality"}],
         "negative_passages": [{"docid": "2", "title": "", "text": "entropy"}]},
    ]).save_to_disk(str(tmp_path / "hf"))  # fmt: skip
    (ex,), _ = load_training_data(tmp_path / "hf")
    assert (ex.query, ex.instruction, ex.reasoning) == ("q", "Find the theorem", "think\n\nmore")
    assert ex.positives == ["Kraft inequality"] and ex.negatives == ["entropy"]


def test_undetectable_format_is_explained(tmp_path):
    (tmp_path / "empty").mkdir()
    with pytest.raises(DataError, match="Set data_format to one of"):
        load_training_data(tmp_path / "empty")


def test_segment_spans_trim_and_skip_blank():
    text = "First step.\n\n  Second step. \n\n\n\nLast"
    assert [text[a:b] for a, b in segment_spans(text)] == ["First step.", "Second step.", "Last"]
    s = "a | b"
    assert [s[a:b] for a, b in segment_spans(s, " | ")] == ["a", "b"]


def test_explicit_view_segment_ends_use_offsets(formatter):
    reasoning = "prime numbers\n\nthe kraft inequality\n\nentropy"
    view = tokenize_explicit_view(formatter, "question", reasoning, None, targets="text_spans")
    tok = formatter.tokenizer
    q_len = len(formatter.tokenize(["question"], "query")[0][0])
    assert view.input_ids[-1] == tok.eos_token_id
    assert len(view.segment_ends) == 3
    # Each segment end decodes to the segment's last characters, and the view starts with the latent view's query.
    assert view.input_ids[:q_len] == formatter.tokenize(["question"], "query")[0][0]
    for end, word in zip(view.segment_ends, ["numbers", "inequality", "entropy"]):
        assert word.endswith(tok.decode(view.input_ids[end]).strip())
        assert view.input_ids[end + 1 : end + 2] != [] or end == len(view.input_ids) - 2


def test_explicit_view_truncation_keeps_eos_and_cut_segment(formatter):
    reasoning = "prime numbers\n\n" + " ".join(["entropy"] * 50)
    spans = {"targets": "text_spans", "eos_in_budget": True}  # the project's options
    full = tokenize_explicit_view(formatter, "q", reasoning, None, max_length=1000, **spans)
    cut = tokenize_explicit_view(formatter, "q", reasoning, None, max_length=len(full.input_ids) - 10, **spans)
    assert len(cut.input_ids) == len(full.input_ids) - 10 and cut.input_ids[-1] == formatter.tokenizer.eos_token_id
    assert cut.segment_ends[0] == full.segment_ends[0] and cut.segment_ends[-1] == len(cut.input_ids) - 2
    assert tokenize_explicit_view(formatter, "q", "  \n\n ", None) is None


@pytest.mark.parametrize("use_chat_template", [False, True])
def test_in_prompt_layout_is_the_query_template_around_question_and_rationale(qwen3_tokenizer, use_chat_template):
    config = LaSERConfig(query_max_length=200) if use_chat_template else LaSERConfig.from_preset("plain")
    f = Formatter(qwen3_tokenizer, config)
    question, reasoning = "What is 3 squared?", "Square it.\n\n3 * 3 = 9.\n\nSo 9."
    view = tokenize_explicit_view(f, question, reasoning, None, layout="in_prompt", targets="text_spans")
    # The same tokens the latent view would read for the question and the rationale written as one query text,
    # so v* (the last position) sits where the latent view reads h_1.
    assert view.input_ids == f.tokenize([question + "\n\n" + reasoning], "query")[0][0]
    assert [qwen3_tokenizer.decode(view.input_ids[e]).strip() for e in view.segment_ends] == [".", ".", "."]
    assert qwen3_tokenizer.decode(view.input_ids[view.segment_ends[0] - 1 : view.segment_ends[0] + 1]).strip() == "it."


def test_in_prompt_layout_cuts_question_as_the_latent_view_and_rationale_to_fit(qwen3_tokenizer):
    f = Formatter(qwen3_tokenizer, LaSERConfig.from_preset("plain", query_max_length=8))
    question, reasoning = "one two three four five six seven eight nine ten", "alpha beta.\n\n" + "gamma " * 40
    latent_query = f.tokenize([question], "query")[0][0]
    view = tokenize_explicit_view(f, question, reasoning, None, layout="in_prompt", max_length=30,
                                  targets="text_spans")
    assert len(view.input_ids) == 30
    assert view.input_ids[: len(latent_query)] == latent_query  # the plain template has no tail after the text
    gap = qwen3_tokenizer("\n\n", add_special_tokens=False)["input_ids"]
    assert view.input_ids[len(latent_query) : len(latent_query) + len(gap)] == gap
    assert qwen3_tokenizer.decode(view.input_ids[view.segment_ends[0]]).strip() == "."
    assert view.segment_ends[-1] == 29  # the cut segment ends at the last kept token
    with pytest.raises(ValueError, match=r"explicit_max_length=9 leaves no room for a rationale"):
        tokenize_explicit_view(f, question, reasoning, None, layout="in_prompt", max_length=9)
    with pytest.raises(ValueError, match=r"Invalid explicit layout 'prompt'. Valid layouts are: \['paper', 'in_prompt'\]"):
        tokenize_explicit_view(f, question, reasoning, None, layout="prompt")


def test_collator_groups_positions_and_determinism(tmp_path):
    enc = tiny_encoder(config=LaSERConfig.from_preset("plain"))
    folder = make_beir(tmp_path / "beir")
    examples, pool = load_training_data(folder)
    collate = DualViewCollator(
        enc.formatter, enc.pad, examples, pool, num_thinking_steps=3, negatives_per_query=2, seed=1,
        missing_reasoning="skip_explicit", trajectory_targets="text_spans", downsample="evenly",
    )
    group = collate.group(1, epoch=0)
    assert group[0] == DOCS[1] and DOCS[1] not in group[1:] and len(set(group)) == 3
    assert collate.group(1, epoch=0) == group  # the same draw for a resumed run
    batch = collate([0, 1, 2, 3], epoch=0, device=enc.device)
    assert batch["doc_ids"].shape[0] == 12 and batch["explicit_rows"].tolist() == [1, 3]
    # q1's rationale has 2 segments -> indices [0, 1, 1]; q3 has 1 -> [0, 0, 0]; positions land on real tokens.
    view = collate.explicit[1]
    width = batch["explicit_ids"].shape[1]
    expected = [width - len(view.input_ids) + view.segment_ends[j] for j in downsample_indices(2, 3, "evenly")]
    assert batch["segment_positions"][0].tolist() == expected
    assert bool(batch["explicit_mask"].gather(1, batch["segment_positions"]).all())
