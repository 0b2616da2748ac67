"""Training data: three input layouts, up-front validation, and the dual-view batch collator.

Layouts (``data_format: auto`` picks by what is on disk):

- ``jsonl``: one record a line: ``query`` (str), optional ``instruction`` (str), ``reasoning`` (str or null),
  ``positives`` (non-empty list), ``negatives`` (list). List items are document texts, ``{"title", "text"}``
  objects, or, when ``corpus`` is set, document ids into it.
- ``beir``: a BEIR folder (``corpus.jsonl``, ``queries.jsonl``, ``qrels/{split}.tsv``) with an optional
  ``reasoning.jsonl`` (``{"_id", "reasoning"}``), as ``../shared/data/theoremqa``. Qrels give the positives;
  negatives come from the document pool (mine hard ones with ``laser-train mine``).
- ``hf_disk``: a ``datasets.save_to_disk`` folder with the official LaSER training fields ``query``,
  ``reasoning_query`` (the rationale), ``prompt`` (the instruction), ``positive_passages`` and
  ``negative_passages`` (lists of ``{"docid", "title", "text"}``).

Queries without a rationale follow ``missing_reasoning``: ``use_query`` (default, the official code's
``TrainDatasetWithRewrite``) gives them, and every query whose rationale is shorter than 5 characters, the query
text as their rationale, so every query has a teacher; ``skip_explicit`` (the project's choice) keeps them for the
latent contrastive term only (they add nothing to L_cl^E, L_kl^out or L_kl^mid); ``drop`` removes them.
"""

from __future__ import annotations

import bisect
import csv
import logging
import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch

from ..formatting import Formatter
from ..jsonl import read_jsonl
from .losses import downsample_indices

logger = logging.getLogger(__name__)


class DataError(ValueError):
    """Bad training data; the message names the file, the line (or row) and the field."""


@dataclass
class TrainExample:
    """One training query with its documents (texts)."""

    query: str
    positives: list[str]
    negatives: list[str] = field(default_factory=list)
    reasoning: str | None = None
    instruction: str | None = None
    id: str | None = None


def document_text(title: Any, text: str) -> str:
    """A titled document as one string (Tevatron's convention: ``"{title} {text}"``)."""
    title = (title or "").strip() if isinstance(title, str) else ""
    return f"{title} {text.strip()}".strip() if title else text.strip()


def _read_jsonl(path: Path) -> list[tuple[int, dict[str, Any]]]:
    if not path.is_file():
        msg = f"{path} not found."
        raise DataError(msg)
    return list(read_jsonl(path, DataError))


def _text(row: dict[str, Any], key: str, where: str, *, required: bool) -> str | None:
    value = row.get(key)
    if value is None:
        if required:
            msg = f"{where}: missing field {key!r}."
            raise DataError(msg)
        return None
    if not isinstance(value, str):
        msg = f"{where}: field {key!r} must be a string, got {type(value).__name__}."
        raise DataError(msg)
    if required and not value.strip():
        msg = f"{where}: field {key!r} is empty."
        raise DataError(msg)
    return value


def load_corpus(path: str | os.PathLike) -> dict[str, str]:
    """``{_id: text}`` from a corpus JSONL file or a BEIR folder's ``corpus.jsonl``."""
    path = Path(path)
    if path.is_dir():
        path = path / "corpus.jsonl"
    corpus = {}
    for n, row in _read_jsonl(path):
        where = f"{path} line {n}"
        doc_id = row.get("_id", row.get("id"))
        if not isinstance(doc_id, (str, int)):
            msg = f"{where}: missing field '_id'."
            raise DataError(msg)
        text = _text(row, "text", where, required=True)
        corpus[str(doc_id)] = document_text(row.get("title"), text)
    return corpus


def _documents(value: Any, key: str, where: str, corpus: dict[str, str] | None, *, required: bool) -> list[str]:
    if value is None:
        if required:
            msg = f"{where}: missing field {key!r}."
            raise DataError(msg)
        value = []
    if not isinstance(value, list):
        msg = f"{where}: field {key!r} must be a list, got {type(value).__name__}."
        raise DataError(msg)
    if required and not value:
        msg = f"{where}: field {key!r} must hold at least one document."
        raise DataError(msg)
    out = []
    for i, item in enumerate(value):
        if isinstance(item, dict):
            if isinstance(item.get("text"), str) and item["text"].strip():
                out.append(document_text(item.get("title"), item["text"]))
                continue
            ref = item.get("docid", item.get("_id", item.get("id")))
            if ref is None:
                msg = f"{where}: field {key!r}[{i}] is an object without 'text' (or 'docid' into a corpus)."
                raise DataError(msg)
            item = str(ref)
        if not isinstance(item, str) or not item.strip():
            msg = f"{where}: field {key!r}[{i}] must be a non-empty string, got {item!r:.60}."
            raise DataError(msg)
        if corpus is not None:
            if item not in corpus:
                msg = f"{where}: field {key!r}[{i}] is {item!r}, which is not a document id of the corpus."
                raise DataError(msg)
            out.append(corpus[item])
        else:
            out.append(item)
    return out


def load_jsonl_records(path: str | os.PathLike, corpus: dict[str, str] | None = None) -> list[TrainExample]:
    path = Path(path)
    examples = []
    for n, row in _read_jsonl(path):
        where = f"{path} line {n}"
        unknown = sorted(set(row) - {"query", "instruction", "reasoning", "positives", "negatives", "_id", "id"})
        if unknown:
            msg = (
                f"{where}: unknown fields {unknown}. Valid fields are: "
                "['query', 'instruction', 'reasoning', 'positives', 'negatives', '_id', 'id']."
            )
            raise DataError(msg)
        examples.append(
            TrainExample(
                query=_text(row, "query", where, required=True),
                instruction=_text(row, "instruction", where, required=False),
                reasoning=_text(row, "reasoning", where, required=False),
                positives=_documents(row.get("positives"), "positives", where, corpus, required=True),
                negatives=_documents(row.get("negatives"), "negatives", where, corpus, required=False),
                id=str(row.get("_id", row.get("id", n))),
            )
        )
    return examples


def load_reasoning(path: Path) -> dict[str, str]:
    """``{_id: reasoning}`` from a ``reasoning.jsonl`` (``{"_id", "reasoning"}`` lines); empty when absent."""
    if not path.is_file():
        return {}
    out = {}
    for n, row in _read_jsonl(path):
        where = f"{path} line {n}"
        if "_id" not in row:
            msg = f"{where}: missing field '_id'."
            raise DataError(msg)
        text = _text(row, "reasoning", where, required=False)
        if text and text.strip():
            out[str(row["_id"])] = text
    return out


def load_beir(folder: str | os.PathLike, split: str = "train") -> tuple[list[TrainExample], dict[str, str]]:
    """Examples from a BEIR folder's ``split`` qrels, and its corpus."""
    folder = Path(folder)
    corpus = load_corpus(folder)
    queries = {}
    for n, row in _read_jsonl(folder / "queries.jsonl"):
        where = f"{folder / 'queries.jsonl'} line {n}"
        if "_id" not in row:
            msg = f"{where}: missing field '_id'."
            raise DataError(msg)
        queries[str(row["_id"])] = (_text(row, "text", where, required=True), row.get("instruction"))
    qrels_path = folder / "qrels" / f"{split}.tsv"
    if not qrels_path.is_file():
        found = sorted(p.stem for p in (folder / "qrels").glob("*.tsv")) if (folder / "qrels").is_dir() else []
        msg = f"{qrels_path} not found; the split {split!r} has no qrels. Splits found: {found}."
        raise DataError(msg)
    positives: dict[str, list[str]] = {}
    with qrels_path.open(encoding="utf-8") as f:
        for n, parts in enumerate(csv.reader(f, delimiter="\t"), start=1):
            if n == 1 and parts[:1] == ["query-id"]:
                continue
            where = f"{qrels_path} line {n}"
            if len(parts) != 3:
                msg = f"{where}: expected 3 tab-separated fields (query-id, corpus-id, score), got {len(parts)}."
                raise DataError(msg)
            qid, did, score = parts
            if qid not in queries:
                msg = f"{where}: query-id {qid!r} is not in queries.jsonl."
                raise DataError(msg)
            if did not in corpus:
                msg = f"{where}: corpus-id {did!r} is not in corpus.jsonl."
                raise DataError(msg)
            try:
                relevant = float(score) > 0
            except ValueError as e:
                msg = f"{where}: score {score!r} is not a number."
                raise DataError(msg) from e
            if relevant:
                positives.setdefault(qid, []).append(did)
    reasoning = load_reasoning(folder / "reasoning.jsonl")
    examples = [
        TrainExample(
            query=queries[qid][0],
            instruction=queries[qid][1] if isinstance(queries[qid][1], str) else None,
            reasoning=reasoning.get(qid),
            positives=[corpus[d] for d in dids],
            id=qid,
        )
        for qid, dids in positives.items()
    ]
    return examples, corpus


def load_hf_disk(path: str | os.PathLike, split: str = "train") -> list[TrainExample]:
    """Examples from a ``datasets.save_to_disk`` folder in the official LaSER layout."""
    try:
        from datasets import DatasetDict, load_from_disk
    except ImportError as e:
        msg = "Reading a datasets folder needs `datasets`: `pip install laser-integrations[train]`."
        raise ImportError(msg) from e
    data = load_from_disk(str(path))
    if isinstance(data, DatasetDict):
        if split not in data:
            msg = f"{path} holds the splits {sorted(data)}, not {split!r}; set split."
            raise DataError(msg)
        data = data[split]
    missing = sorted({"query", "positive_passages"} - set(data.column_names))
    if missing:
        msg = (
            f"{path} lacks the columns {missing}; the official LaSER layout has query, reasoning_query, prompt, "
            f"positive_passages, negative_passages (found {data.column_names})."
        )
        raise DataError(msg)
    examples = []
    for n, row in enumerate(data):
        where = f"{path} row {n}"
        examples.append(
            TrainExample(
                query=_text(row, "query", where, required=True),
                instruction=_text(row, "prompt", where, required=False),
                reasoning=_text(row, "reasoning_query", where, required=False),
                positives=_documents(row.get("positive_passages"), "positive_passages", where, None, required=True),
                negatives=_documents(row.get("negative_passages"), "negative_passages", where, None, required=False),
                id=str(row.get("query_id", n)),
            )
        )
    return examples


def detect_format(path: Path) -> str:
    if path.is_file():
        return "jsonl"
    if (path / "dataset_info.json").is_file() or (path / "dataset_dict.json").is_file():
        return "hf_disk"
    if (path / "corpus.jsonl").is_file() and (path / "queries.jsonl").is_file():
        return "beir"
    msg = (
        f"Cannot tell the format of {str(path)!r}: expected a JSONL file, a BEIR folder (corpus.jsonl, queries.jsonl, "
        "qrels/) or a datasets.save_to_disk folder. Set data_format to one of: jsonl, beir, hf_disk."
    )
    raise DataError(msg)


def load_training_data(
    path: str | os.PathLike,
    data_format: str = "auto",
    *,
    corpus: str | os.PathLike | None = None,
    split: str = "train",
    missing_reasoning: str = "use_query",
    max_examples: int | None = None,
) -> tuple[list[TrainExample], list[str]]:
    """Load and validate every record; returns the examples and the document pool for random negatives."""
    path = Path(path)
    if not path.exists():
        msg = f"train_data {str(path)!r} does not exist."
        raise DataError(msg)
    fmt = detect_format(path) if data_format == "auto" else data_format
    corpus_docs = load_corpus(corpus) if corpus else None
    if fmt == "jsonl":
        examples = load_jsonl_records(path, corpus_docs)
    elif fmt == "beir":
        examples, corpus_docs = load_beir(path, split)
    elif fmt == "hf_disk":
        examples = load_hf_disk(path, split)
    else:
        msg = f"Invalid data_format {fmt!r}. Valid formats are: ['auto', 'jsonl', 'beir', 'hf_disk']."
        raise DataError(msg)
    if max_examples:
        examples = examples[:max_examples]
    for ex in examples:
        if ex.reasoning is not None and not ex.reasoning.strip():
            ex.reasoning = None
    with_reasoning = sum(ex.reasoning is not None for ex in examples)
    if missing_reasoning == "drop":
        examples = [ex for ex in examples if ex.reasoning is not None]
    elif missing_reasoning not in MISSING_REASONING:
        msg = f"Invalid missing_reasoning {missing_reasoning!r}. Valid values are: {list(MISSING_REASONING)}."
        raise DataError(msg)
    if not examples:
        msg = f"{path}: no training examples left (records: 0 with a rationale, missing_reasoning={missing_reasoning})."
        raise DataError(msg)
    logger.info("%s: %d examples, %d with a rationale (missing_reasoning=%s).", path, len(examples), with_reasoning,
                missing_reasoning)  # fmt: skip
    pool = dict.fromkeys(corpus_docs.values()) if corpus_docs else {}
    for ex in examples:
        pool.update(dict.fromkeys(ex.positives + ex.negatives))
    return examples, list(pool)


MISSING_REASONING = ("use_query", "skip_explicit", "drop")
# The official dataset replaces a rationale shorter than this (or an empty one) by the query text.
MIN_REASONING_CHARS = 5


def teacher_rationale(ex: TrainExample, missing_reasoning: str = "use_query") -> str | None:
    """The text the explicit view reads after the query, or None for a query trained on the latent view only.

    ``use_query`` (the official ``TrainDatasetWithRewrite``): a missing rationale or one shorter than 5 characters
    is replaced by the query's own text (without its instruction). Otherwise the rationale as given.
    """
    if missing_reasoning == "use_query" and (ex.reasoning is None or len(ex.reasoning) < MIN_REASONING_CHARS):
        return ex.query
    return ex.reasoning


# -- tokenisation and batching ----------------------------------------------------------------------------------------
def segment_spans(text: str, separator: str = "\n\n") -> list[tuple[int, int]]:
    """Character spans of the non-blank segments of ``text`` split at ``separator`` (surrounding space trimmed)."""
    spans, start = [], 0
    for piece in text.split(separator):
        stripped = piece.strip()
        if stripped:
            begin = start + piece.index(stripped)
            spans.append((begin, begin + len(stripped)))
        start += len(piece) + len(separator)
    return spans


@dataclass
class ExplicitView:
    """Token ids of query + rationale + EOS and the positions of each segment's last token."""

    input_ids: list[int]
    segment_ends: list[int]


EXPLICIT_LAYOUTS = ("paper", "in_prompt")
TRAJECTORY_TARGETS = ("newline_token", "text_spans")


def separator_token_id(tokenizer: Any, separator: str = "\n\n") -> int:
    """The token id the official code splits rationales at: the last token of ``separator`` alone (271 for
    ``"\n\n"`` in Qwen3's vocabulary), EOS when it tokenises to nothing."""
    ids = tokenizer.encode(separator, add_special_tokens=False)
    return ids[-1] if ids else tokenizer.eos_token_id


def _newline_ends(ids: list[int], separator_id: int) -> list[int]:
    """The official trajectory targets in ``ids``: every standalone separator token, and the last token."""
    ends = [j for j, t in enumerate(ids) if t == separator_id]
    if ids and (not ends or ends[-1] != len(ids) - 1):
        ends.append(len(ids) - 1)
    return ends


def tokenize_explicit_view(
    formatter: Formatter,
    query: str,
    reasoning: str,
    instruction: str | None,
    *,
    separator: str = "\n\n",
    max_length: int = 1024,
    layout: str = "paper",
    targets: str = "newline_token",
    eos_in_budget: bool = False,
) -> ExplicitView | None:
    """The explicit view's input and the positions of its trajectory targets.

    Targets:
        ``"newline_token"`` (default, the official ``LaSERModel.encode_teacher``): every standalone
        ``separator`` token (``"\n\n"`` is one token, id 271 in Qwen3) among the rationale's tokens, plus the
        rationale's last token. A blank line merged into a neighbouring token (``".\n\n"``, ``"\n\n\n"``)
        does not count.
        ``"text_spans"`` (the project's): the rationale split at ``separator`` in the text, each non-blank
        segment's last token, found with the tokenizer's offset mapping.

    Layouts (``v*`` is always read at the last position):
        ``"paper"``: the latent view's query tokens, the rationale's tokens, then EOS (``v*`` at EOS). With
        ``newline_token`` it is built as the official ``TrainCollatorWithRewrite`` builds it: the rendered query
        and the rationale tokenised as one string, cut to ``max_length`` tokens, then EOS appended (so the view
        can be ``max_length + 1`` long; ``eos_in_budget`` keeps EOS inside ``max_length``, the project's
        choice); the rationale's tokens are those after the latent view's query length, as the official code
        counts them.
        ``"in_prompt"``: the rationale written into the query's own text, after the question and a blank line,
        so the whole input is the query template around ``question + "\n\n" + rationale`` and ``v*`` sits where
        the latent view reads ``h_1`` (the end of the template). The question is cut to what the latent view
        keeps of it.

    Segment ends are found with the tokenizer's offset mapping: the last token that starts inside each
    segment. When the rationale does not fit ``max_length`` its tail is cut (EOS, or the template, is kept);
    the cut segment ends at the last kept token. Returns None for a rationale without any non-blank segment.
    """
    if layout not in EXPLICIT_LAYOUTS:
        msg = f"Invalid explicit layout {layout!r}. Valid layouts are: {list(EXPLICIT_LAYOUTS)}."
        raise ValueError(msg)
    if targets not in TRAJECTORY_TARGETS:
        msg = f"Invalid trajectory targets {targets!r}. Valid targets are: {list(TRAJECTORY_TARGETS)}."
        raise ValueError(msg)
    spans = segment_spans(reasoning, separator)
    if not spans:
        return None
    if layout == "in_prompt":
        return _in_prompt_view(formatter, query, reasoning, spans, instruction, max_length, targets, separator)
    tokenizer = formatter.tokenizer
    eos = tokenizer.eos_token_id
    if eos is None:
        msg = "The tokenizer has no EOS token, which the explicit view ends with; set tokenizer.eos_token."
        raise ValueError(msg)
    query_ids = formatter.tokenize([query], "query", instruction)[0][0]
    budget = max_length - 1 if eos_in_budget else max_length
    if targets == "newline_token":
        prefix, suffix = formatter.frame("query", instruction)
        ids = tokenizer(prefix + query + suffix + reasoning,
                        add_special_tokens=not formatter.config.use_chat_template)["input_ids"][:budget]  # fmt: skip
        if len(ids) <= len(query_ids):
            msg = (
                f"explicit_max_length={max_length} leaves no room for a rationale after {len(query_ids)} tokens of "
                "query and template; raise explicit_max_length above the query_max_length."
            )
            raise ValueError(msg)
        start = len(query_ids)
        ends = [start + j for j in _newline_ends(ids[start:], separator_token_id(tokenizer, separator))]
        return ExplicitView(list(ids) + [eos], ends)
    encoded = tokenizer(reasoning, add_special_tokens=False, return_offsets_mapping=True)
    ids, offsets = encoded["input_ids"], encoded["offset_mapping"]
    ends = _segment_end_tokens([a for a, _ in offsets], spans, 0)
    ids, ends = _cut_rationale(ids, ends, budget - len(query_ids), len(query_ids), max_length)
    return ExplicitView(list(query_ids) + list(ids) + [eos], [len(query_ids) + e for e in ends])


def _segment_end_tokens(starts: list[int], spans: list[tuple[int, int]], shift: int) -> list[int]:
    """Index of the last token starting inside each character span (spans shifted by ``shift`` characters)."""
    return sorted({bisect.bisect_left(starts, end + shift) - 1 for _, end in spans})


def _cut_rationale(
    ids: list[int], ends: list[int], budget: int, used: int, max_length: int
) -> tuple[list[int], list[int]]:
    """Keep the first ``budget`` rationale tokens; segment ends past the cut collapse onto the last kept token."""
    if budget < 1:
        msg = (
            f"explicit_max_length={max_length} leaves no room for a rationale after {used} tokens of query and "
            "template; raise explicit_max_length above the query_max_length."
        )
        raise ValueError(msg)
    if len(ids) > budget:
        cut = [e for e in ends if e < budget]
        ends = cut if cut and cut[-1] == budget - 1 else [*cut, budget - 1]
        ids = ids[:budget]
    return ids, ends


def _in_prompt_view(
    formatter: Formatter,
    query: str,
    reasoning: str,
    spans: list[tuple[int, int]],
    instruction: str | None,
    max_length: int,
    targets: str = "text_spans",
    separator: str = "\n\n",
) -> ExplicitView:
    prefix, suffix = formatter.frame("query", instruction)
    gap = "\n\n"
    rendered = prefix + query + gap + reasoning + suffix
    encoded = formatter.tokenizer(rendered, add_special_tokens=not formatter.config.use_chat_template,
                                  return_offsets_mapping=True)  # fmt: skip
    ids, offsets = encoded["input_ids"], encoded["offset_mapping"]
    # Zero-width special tokens added by the tokenizer itself count as head (before any text) or tail (after).
    first_text = next((i for i, (a, b) in enumerate(offsets) if b > a), len(offsets))
    starts = [a if b > a else (0 if i < first_text else len(rendered)) for i, (a, b) in enumerate(offsets)]
    # Tokens by where they start: template head, question, gap, rationale, template tail.
    q_start, gap_start = len(prefix), len(prefix) + len(query)
    r_start, r_end = gap_start + len(gap), gap_start + len(gap) + len(reasoning)
    bounds = [bisect.bisect_left(starts, c) for c in (q_start, gap_start, r_start, r_end)]
    head, question, between = ids[: bounds[0]], ids[bounds[0] : bounds[1]], ids[bounds[1] : bounds[2]]
    rationale, tail = ids[bounds[2] : bounds[3]], ids[bounds[3] :]
    keep = max(formatter.max_length("query") - len(head) - len(tail), 0)
    if len(question) > keep:  # cut as the latent view cuts it; a gap token merged into the cut tail comes back
        question = question[:keep]
        between = between or formatter.tokenizer(gap, add_special_tokens=False)["input_ids"]
    used = len(head) + len(question) + len(between) + len(tail)
    if targets == "newline_token":
        ends = _newline_ends(rationale, separator_token_id(formatter.tokenizer, separator))
    else:
        ends = sorted({max(e - bounds[2], 0) for e in _segment_end_tokens(starts, spans, r_start)})
    rationale, ends = _cut_rationale(rationale, ends, max_length - used, used, max_length)
    offset = len(head) + len(question) + len(between)
    return ExplicitView(head + question + between + rationale + tail, [offset + e for e in ends])


class DualViewCollator:
    """Turns examples into padded tensors for :class:`~laser_integrations.training.model.DualViewModel`.

    Per example and epoch, the positive (one of ``positives``) and ``negatives_per_query`` hard negatives are
    drawn with a generator seeded by ``(seed, epoch, index)``, so a resumed run sees the same batches.
    Missing hard negatives are drawn from the document pool (never one of the example's positives).
    """

    def __init__(
        self,
        formatter: Formatter,
        pad: Any,
        examples: list[TrainExample],
        pool: list[str],
        *,
        num_thinking_steps: int,
        negatives_per_query: int = 1,
        explicit_view: bool = True,
        separator: str = "\n\n",
        explicit_max_length: int = 1024,
        downsample: str = "linspace",
        explicit_layout: str = "paper",
        seed: int = 0,
        default_instruction: str | None = None,
        missing_reasoning: str = "use_query",
        trajectory_targets: str = "newline_token",
        explicit_eos_in_budget: bool = False,
    ):
        self.formatter, self.pad, self.examples, self.pool = formatter, pad, examples, pool
        self.k, self.negatives, self.seed, self.downsample = num_thinking_steps, negatives_per_query, seed, downsample
        self.default_instruction = default_instruction
        self._doc_cache: dict[str, list[int]] = {}
        # Tokenising queries and explicit views up front surfaces template/length errors before training.
        self.query_ids = [self._tokenize_query(ex) for ex in examples]
        rationales = [teacher_rationale(ex, missing_reasoning) if explicit_view else None for ex in examples]
        self.explicit: list[ExplicitView | None] = [
            tokenize_explicit_view(formatter, ex.query, text, self._instruction(ex), separator=separator,
                                   max_length=explicit_max_length, layout=explicit_layout,
                                   targets=trajectory_targets, eos_in_budget=explicit_eos_in_budget)
            if text else None
            for ex, text in zip(examples, rationales)
        ]  # fmt: skip
        self.num_explicit = sum(v is not None for v in self.explicit)
        if pool and len(pool) <= 1 and negatives_per_query:
            msg = "The document pool has a single document; random negatives need at least two documents."
            raise DataError(msg)

    def _instruction(self, ex: TrainExample) -> str | None:
        return ex.instruction if ex.instruction is not None else self.default_instruction

    def _tokenize_query(self, ex: TrainExample) -> list[int]:
        return self.formatter.tokenize([ex.query], "query", self._instruction(ex))[0][0]

    def _doc_ids(self, text: str) -> list[int]:
        if text not in self._doc_cache:
            self._doc_cache[text] = self.formatter.tokenize([text], "document")[0][0]
        return self._doc_cache[text]

    def group(self, index: int, epoch: int) -> list[str]:
        """The positive followed by the negatives for example ``index`` in ``epoch``."""
        ex = self.examples[index]
        rng = np.random.default_rng([self.seed, epoch, index])
        positive = ex.positives[int(rng.integers(len(ex.positives)))]
        excluded = set(ex.positives)
        hard = [d for d in ex.negatives if d not in excluded]
        if len(hard) > self.negatives:
            hard = [hard[i] for i in sorted(rng.choice(len(hard), self.negatives, replace=False))]
        if len(hard) < self.negatives and len(self.pool) - len(excluded) < self.negatives:
            msg = (
                f"Example {ex.id!r} needs {self.negatives} negatives but the document pool has only "
                f"{len(self.pool) - len(excluded)} non-positive documents; lower negatives_per_query."
            )
            raise DataError(msg)
        while len(hard) < self.negatives:
            candidate = self.pool[int(rng.integers(len(self.pool)))]
            if candidate not in excluded and candidate not in hard:
                hard.append(candidate)
        return [positive, *hard]

    def __call__(self, indices: list[int], epoch: int, device: torch.device) -> dict[str, torch.Tensor]:
        q_ids, q_mask = self.pad([self.query_ids[i] for i in indices], device)
        docs = [self._doc_ids(text) for i in indices for text in self.group(i, epoch)]
        d_ids, d_mask = self.pad(docs, device)
        batch = {"query_ids": q_ids, "query_mask": q_mask, "doc_ids": d_ids, "doc_mask": d_mask}
        rows = [r for r, i in enumerate(indices) if self.explicit[i] is not None]
        batch["explicit_rows"] = torch.tensor(rows, dtype=torch.long, device=device)
        if rows:
            views = [self.explicit[indices[r]] for r in rows]
            e_ids, e_mask = self.pad([v.input_ids for v in views], device)
            width = e_ids.shape[1]
            positions = [
                [width - len(v.input_ids) + v.segment_ends[j] for j in downsample_indices(len(v.segment_ends), self.k,
                                                                                          self.downsample)]
                for v in views
            ]  # fmt: skip
            batch.update(explicit_ids=e_ids, explicit_mask=e_mask,
                         segment_positions=torch.tensor(positions, dtype=torch.long, device=device))  # fmt: skip
        return batch
