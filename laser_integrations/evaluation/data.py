"""Retrieval evaluation data: BEIR folders and BRIGHT (from the hub or a local folder in the hub layout).

Every loader returns a :class:`RetrievalDataset`, plain dicts of strings, so metrics, search and baselines
never care where the data came from.

BEIR folder (e.g. ``../shared/data/theoremqa``)::

    corpus.jsonl        {"_id", "title", "text"}      one document a line
    queries.jsonl       {"_id", "text"}               one query a line (every split)
    qrels/<split>.tsv   query-id <TAB> corpus-id <TAB> score   (header optional)
    reasoning.jsonl     {"_id", "reasoning"}          optional: a rationale for some queries

BRIGHT (``xlangai/BRIGHT`` on the hub: configs ``examples``, ``documents``, ``long_documents``, one split per
subset). A local folder in the same layout holds one file per config and subset::

    DIR/examples/<subset>.jsonl          {"id", "query", "gold_ids", "excluded_ids", "reasoning"?, "gold_ids_long"?}
    DIR/documents/<subset>.jsonl         {"id", "content"}
    DIR/long_documents/<subset>.jsonl    {"id", "content"}        (only for long_documents=True)

``.parquet`` files named ``<subset>.parquet`` or ``<subset>-00000-of-00001.parquet`` (what a snapshot of the hub
repository holds) are read as well. ``excluded_ids`` are documents that must not be counted for a query (BRIGHT
lists near-duplicates of the question); the scorer removes them from the ranking before metrics are computed.
"""

from __future__ import annotations

import csv
import logging
import os
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from ..config import OFFICIAL_EVAL_MAX_LENGTH
from ..jsonl import read_jsonl

logger = logging.getLogger(__name__)

BRIGHT_HUB_ID = "xlangai/BRIGHT"

# The official harness's, word for word (src/eval/run_mteb.py run_bright ``Instructions``; docs/fidelity.md).
BRIGHT_INSTRUCTIONS: dict[str, str] = {
    "biology": "Given a post, retrieve relevant passages that help answer the post.",
    "earth_science": "Given a post, retrieve relevant passages that help answer the post.",
    "economics": "Given a economics post, retrieve relevant passages that help answer the post.",
    "psychology": "Given a psychology post, retrieve relevant passages that help answer the post.",
    "robotics": "Given a robotics post, retrieve relevant passages that help answer the post.",
    "stackoverflow": "Given a stackoverflow post, retrieve relevant passages that help answer the post.",
    "sustainable_living": "Given a sustainable_living post, retrieve relevant passages that help answer the post.",
    "leetcode": "Given a coding problem, retrieve relevant examples that help answer the problem.",
    "pony": "Given a question about pony program language, retrieve relevant passages that help answer the question.",
    "aops": "Given a Math problem, retrieve relevant examples that help answer the problem.",
    "theoremqa_theorems": "Given a Math problem, retrieve relevant theorems that help answer the problem.",
    "theoremqa_questions": "Given a Math problem, retrieve relevant examples that help answer the problem.",
}
BRIGHT_SUBSETS: tuple[str, ...] = tuple(BRIGHT_INSTRUCTIONS)

# BRIGHT writes "N/A" where a query has nothing to exclude.
_NO_ID = {"", "N/A", "n/a", "None"}


@dataclass
class RetrievalDataset:
    """One retrieval task: documents, queries of one split, relevance judgements and optional extras.

    Attributes:
        name: short name used in tables and results (folder name, or BRIGHT subset).
        corpus: document id -> text.
        queries: query id -> text, only the queries judged in ``qrels``.
        qrels: query id -> {document id: relevance}; relevance > 0 is relevant.
        reasoning: query id -> rationale, for the queries that have one.
        excluded: query id -> document ids that are removed from that query's ranking before scoring.
        instruction: the task instruction for instruction-following encoders, or None for the encoder's default.
        max_length: token budget of LaSER models' queries and documents on this task (BRIGHT: 8192, as the
            official harness), or None for the model's own ``query_max_length`` / ``document_max_length``.
    """

    name: str
    corpus: dict[str, str]
    queries: dict[str, str]
    qrels: dict[str, dict[str, int]]
    reasoning: dict[str, str] = field(default_factory=dict)
    excluded: dict[str, set[str]] = field(default_factory=dict)
    instruction: str | None = None
    max_length: int | None = None

    def __repr__(self) -> str:
        return (
            f"RetrievalDataset(name={self.name!r}, documents={len(self.corpus)}, queries={len(self.queries)}, "
            f"with_reasoning={sum(q in self.reasoning for q in self.queries)}, "
            f"with_exclusions={sum(bool(self.excluded.get(q)) for q in self.queries)})"
        )


# -- small readers with errors that name file and line ---------------------------------------------------------
def _field(obj: Mapping[str, Any], key: str, where: str, *, kind: type = str) -> Any:
    if key not in obj:
        msg = f"{where}: missing field {key!r} (fields present: {sorted(obj)})."
        raise ValueError(msg)
    value = obj[key]
    if kind is str and isinstance(value, int) and not isinstance(value, bool):
        value = str(value)  # BEIR ids are sometimes written as numbers
    if not isinstance(value, kind):
        msg = f"{where}: field {key!r} must be a {kind.__name__}, got {type(value).__name__}: {value!r:.80}."
        raise ValueError(msg)  # noqa: TRY004  (malformed file content, not a wrong Python argument)
    return value


def _require_file(path: Path, what: str, fix: str) -> Path:
    if not path.is_file():
        msg = f"{what} not found: {path}. {fix}"
        raise FileNotFoundError(msg)
    return path


def document_text(title: str, text: str) -> str:
    """One string for a titled document: ``title`` and ``text`` on separate lines (the bare text if no title)."""
    title = title.strip()
    return f"{title}\n{text}" if title else text


def read_qrels(path: str | os.PathLike) -> dict[str, dict[str, int]]:
    """Read a BEIR qrels TSV (``query-id<TAB>corpus-id<TAB>score``, header optional)."""
    path = Path(path)
    qrels: dict[str, dict[str, int]] = {}
    with path.open(encoding="utf-8", newline="") as f:
        for lineno, row in enumerate(csv.reader(f, delimiter="\t", quoting=csv.QUOTE_NONE), start=1):
            if not row or not "".join(row).strip():
                continue
            if lineno == 1 and row[0].strip().lower() in ("query-id", "query_id", "qid"):
                continue
            if len(row) != 3:
                msg = f"{path}:{lineno}: expected 3 tab-separated columns (query-id, corpus-id, score), got {len(row)}: {row!r:.120}."
                raise ValueError(msg)
            qid, did, score = (c.strip() for c in row)
            try:
                rel = int(float(score))
            except ValueError as e:
                msg = f"{path}:{lineno}: score must be an integer, got {score!r}."
                raise ValueError(msg) from e
            qrels.setdefault(qid, {})[did] = rel
    return qrels


# -- BEIR ----------------------------------------------------------------------------------------------------------
def load_beir(folder: str | os.PathLike, split: str = "test", *, instruction: str | None = None) -> RetrievalDataset:
    """Load one split of a BEIR folder.

    Args:
        folder: folder holding ``corpus.jsonl``, ``queries.jsonl``, ``qrels/<split>.tsv`` and optionally
            ``reasoning.jsonl``.
        split: name of the qrels file to evaluate (``dev`` reads ``qrels/dev.tsv``).
        instruction: task instruction for the encoder (None keeps the encoder's default).

    Raises:
        FileNotFoundError: a required file is missing (the message lists the splits that exist).
        ValueError: a malformed line, or a qrels id that names no query or document.
    """
    folder = Path(folder)
    if not folder.is_dir():
        msg = f"BEIR folder not found: {folder}. Pass a folder holding corpus.jsonl, queries.jsonl and qrels/."
        raise FileNotFoundError(msg)
    corpus_path = _require_file(
        folder / "corpus.jsonl", "corpus", "A BEIR folder needs corpus.jsonl ({_id, title, text})."
    )
    queries_path = _require_file(
        folder / "queries.jsonl", "queries", "A BEIR folder needs queries.jsonl ({_id, text})."
    )
    qrels_path = folder / "qrels" / f"{split}.tsv"
    if not qrels_path.is_file():
        splits = sorted(p.stem for p in (folder / "qrels").glob("*.tsv"))
        msg = f"qrels for split {split!r} not found: {qrels_path}. Splits in this folder: {splits or 'none'}; pass one of them."
        raise FileNotFoundError(msg)

    corpus: dict[str, str] = {}
    for lineno, obj in read_jsonl(corpus_path):
        where = f"{corpus_path}:{lineno}"
        doc_id = _field(obj, "_id", where)
        corpus[doc_id] = document_text(str(obj.get("title") or ""), _field(obj, "text", where))
    qrels = read_qrels(qrels_path)
    all_queries: dict[str, str] = {}
    for lineno, obj in read_jsonl(queries_path):
        where = f"{queries_path}:{lineno}"
        all_queries[_field(obj, "_id", where)] = _field(obj, "text", where)
    reasoning: dict[str, str] = {}
    reasoning_path = folder / "reasoning.jsonl"
    if reasoning_path.is_file():
        for lineno, obj in read_jsonl(reasoning_path):
            where = f"{reasoning_path}:{lineno}"
            qid = _field(obj, "_id", where)
            if qid in qrels:
                reasoning[qid] = _field(obj, "reasoning", where)

    missing_q = [q for q in qrels if q not in all_queries]
    if missing_q:
        msg = f"{qrels_path}: {len(missing_q)} query ids are not in {queries_path.name}, e.g. {missing_q[:3]}; fix the ids or add the queries."
        raise ValueError(msg)
    missing_d = sorted({d for rels in qrels.values() for d in rels if d not in corpus})
    if missing_d:
        msg = f"{qrels_path}: {len(missing_d)} corpus ids are not in {corpus_path.name}, e.g. {missing_d[:3]}; fix the ids or add the documents."
        raise ValueError(msg)
    queries = {q: all_queries[q] for q in qrels}
    return RetrievalDataset(folder.name, corpus, queries, qrels, reasoning, {}, instruction)


def is_beir_folder(path: str | os.PathLike) -> bool:
    path = Path(path)
    return (path / "corpus.jsonl").is_file() and (path / "queries.jsonl").is_file()


# -- BRIGHT --------------------------------------------------------------------------------------------------------
def is_bright_folder(path: str | os.PathLike) -> bool:
    path = Path(path)
    return (path / "examples").is_dir() and ((path / "documents").is_dir() or (path / "long_documents").is_dir())


def _check_subset(subset: str) -> None:
    if subset not in BRIGHT_INSTRUCTIONS:
        msg = f"Unknown BRIGHT subset {subset!r}. Valid subsets are: {list(BRIGHT_SUBSETS)}."
        raise ValueError(msg)


def _local_rows(folder: Path, config: str, subset: str) -> tuple[str, Iterable[tuple[int, Mapping[str, Any]]]]:
    """Rows of ``folder/config/subset.*`` with their line numbers (1-based rows for parquet)."""
    base = folder / config
    jsonl = base / f"{subset}.jsonl"
    if jsonl.is_file():
        return str(jsonl), read_jsonl(jsonl)
    parquet = sorted(base.glob(f"{subset}.parquet")) + sorted(base.glob(f"{subset}-*.parquet"))
    if parquet:
        datasets = _import_datasets()
        table = datasets.load_dataset("parquet", data_files=[str(p) for p in parquet], split="train")
        return str(parquet[0]), enumerate(table, start=1)
    present = sorted({p.name.split(".")[0].split("-")[0] for p in base.glob("*")}) if base.is_dir() else []
    msg = (
        f"BRIGHT {config} for subset {subset!r} not found in {base}: expected {subset}.jsonl or {subset}-*.parquet. "
        f"Subsets present: {present or 'none'}."
    )
    raise FileNotFoundError(msg)


def _import_datasets():
    try:
        import datasets
    except ImportError as e:
        msg = "BRIGHT loading needs the datasets library; install it with pip: `pip install laser-integrations[eval]`."
        raise ImportError(msg) from e
    return datasets


def _hub_rows(
    hub_id: str, config: str, subset: str, **load_kwargs: Any
) -> tuple[str, Iterable[tuple[int, Mapping[str, Any]]]]:
    datasets = _import_datasets()
    try:
        table = datasets.load_dataset(hub_id, config, split=subset, **load_kwargs)
    except Exception as e:  # the hub, the network, or a bad subset name: say which request failed
        msg = f"Could not load {hub_id!r} config {config!r} split {subset!r} with datasets.load_dataset: {e}"
        raise RuntimeError(msg) from e
    return f"{hub_id}[{config}/{subset}]", enumerate(table, start=1)


def _id_list(value: Any, where: str, key: str) -> list[str]:
    if value is None:
        return []
    if isinstance(value, str):  # a single id written as a string
        value = [value]
    if not isinstance(value, (list, tuple)):
        msg = f"{where}: field {key!r} must be a list of document ids, got {type(value).__name__}."
        raise ValueError(msg)  # noqa: TRY004  (malformed file content, not a wrong Python argument)
    return [str(v) for v in value if str(v) not in _NO_ID]


def bright_from_rows(
    subset: str,
    examples: tuple[str, Iterable[tuple[int, Mapping[str, Any]]]],
    documents: tuple[str, Iterable[tuple[int, Mapping[str, Any]]]],
    *,
    long_documents: bool = False,
    instruction: str | None = None,
) -> RetrievalDataset:
    """Build a BRIGHT subset from ``(source name, numbered rows)`` of its examples and documents."""
    doc_source, doc_rows = documents
    corpus: dict[str, str] = {}
    for n, row in doc_rows:
        where = f"{doc_source} row {n}"
        corpus[_field(row, "id", where)] = _field(row, "content", where)
    gold_key = "gold_ids_long" if long_documents else "gold_ids"
    ex_source, ex_rows = examples
    queries: dict[str, str] = {}
    qrels: dict[str, dict[str, int]] = {}
    reasoning: dict[str, str] = {}
    excluded: dict[str, set[str]] = {}
    for n, row in ex_rows:
        where = f"{ex_source} row {n}"
        qid = _field(row, "id", where)
        queries[qid] = _field(row, "query", where)
        gold = _id_list(_field(row, gold_key, where, kind=object), where, gold_key)
        if not gold:
            msg = f"{where}: query {qid!r} has no {gold_key}; every BRIGHT example needs at least one gold document."
            raise ValueError(msg)
        missing = [d for d in gold if d not in corpus]
        if missing:
            msg = f"{where}: {gold_key} {missing[:3]} of query {qid!r} are not in {doc_source}; the examples and documents do not belong together."
            raise ValueError(msg)
        qrels[qid] = dict.fromkeys(gold, 1)
        excluded_ids = set(_id_list(row.get("excluded_ids"), where, "excluded_ids"))
        overlap = excluded_ids & set(gold)
        if overlap:
            msg = f"{where}: query {qid!r} lists {sorted(overlap)[:3]} both as gold and as excluded; fix the example."
            raise ValueError(msg)
        if excluded_ids:
            excluded[qid] = excluded_ids
        if isinstance(row.get("reasoning"), str) and row["reasoning"].strip():
            reasoning[qid] = row["reasoning"]
    if instruction is None:
        instruction = BRIGHT_INSTRUCTIONS[subset]
    return RetrievalDataset(subset, corpus, queries, qrels, reasoning, excluded, instruction, OFFICIAL_EVAL_MAX_LENGTH)


def load_bright(
    subset: str,
    source: str | os.PathLike = BRIGHT_HUB_ID,
    *,
    long_documents: bool = False,
    instruction: str | None = None,
    **load_kwargs: Any,
) -> RetrievalDataset:
    """Load one BRIGHT subset from the hub (``xlangai/BRIGHT``) or from a local folder in the hub layout.

    Args:
        subset: one of :data:`BRIGHT_SUBSETS` (``"biology"``, ``"theoremqa_theorems"``...).
        source: a hub dataset id, or a folder with ``examples/`` and ``documents/`` (see the module docstring).
        long_documents: rank the ``long_documents`` corpus against ``gold_ids_long`` instead.
        instruction: overrides the subset's instruction from :data:`BRIGHT_INSTRUCTIONS`.
        **load_kwargs: passed to ``datasets.load_dataset`` for a hub id (``cache_dir``, ``revision``...).

    Example:
        >>> ds = load_bright("biology")  # doctest: +SKIP
        >>> ds.instruction
        'Given a post, retrieve relevant passages that help answer the post.'
    """
    _check_subset(subset)
    config = "long_documents" if long_documents else "documents"
    path = Path(source)
    if path.is_dir():
        if not is_bright_folder(path):
            msg = f"{path} is not a BRIGHT folder: it needs examples/ and {config}/ subfolders (see laser_integrations.evaluation.data)."
            raise FileNotFoundError(msg)
        examples, documents = _local_rows(path, "examples", subset), _local_rows(path, config, subset)
    else:
        examples, documents = (
            _hub_rows(str(source), "examples", subset, **load_kwargs),
            _hub_rows(str(source), config, subset, **load_kwargs),
        )
    return bright_from_rows(subset, examples, documents, long_documents=long_documents, instruction=instruction)


def available_bright_subsets(folder: str | os.PathLike) -> list[str]:
    """BRIGHT subsets present in a local folder's ``examples/``, in the canonical order."""
    names = {p.name.split(".")[0].split("-")[0] for p in (Path(folder) / "examples").glob("*")}
    return [s for s in BRIGHT_SUBSETS if s in names]


# -- one entry point for the CLI -----------------------------------------------------------------------------------
DATA_FORMATS: tuple[str, ...] = ("auto", "beir", "bright")


def load_datasets(
    data: str | os.PathLike,
    *,
    data_format: str = "auto",
    split: str = "test",
    subsets: list[str] | None = None,
    long_documents: bool = False,
    instruction: str | None = None,
    max_queries: int | None = None,
) -> list[RetrievalDataset]:
    """Load a BEIR folder (one dataset) or BRIGHT subsets (one dataset each) from a folder or a hub id.

    Args:
        data: a BEIR folder, a BRIGHT folder in the hub layout, or a hub id such as ``xlangai/BRIGHT``.
        data_format: ``"auto"`` (decide from the folder's files; a hub id whose name ends in ``BRIGHT``),
            ``"beir"`` or ``"bright"``.
        split: BEIR qrels split (ignored for BRIGHT, whose splits are its subsets).
        subsets: BRIGHT subsets; default every subset of a local folder, all twelve for the hub.
        long_documents: BRIGHT's ``long_documents`` corpus.
        instruction: overrides the dataset's instruction.
        max_queries: keep only the first N queries of each dataset (quick looks; not a benchmark number).
    """
    if data_format not in DATA_FORMATS:
        msg = f"Invalid data format {data_format!r}. Valid formats are: {list(DATA_FORMATS)}."
        raise ValueError(msg)
    path = Path(data)
    if data_format == "auto":
        if path.is_dir():
            if is_beir_folder(path):
                data_format = "beir"
            elif is_bright_folder(path):
                data_format = "bright"
            else:
                msg = (
                    f"{path} is neither a BEIR folder (corpus.jsonl, queries.jsonl, qrels/) nor a BRIGHT folder "
                    "(examples/, documents/); see `laser eval --help` for both layouts."
                )
                raise FileNotFoundError(msg)
        elif str(data).rstrip("/").lower().endswith("bright"):
            data_format = "bright"
        else:
            msg = f"--data {data}: no such folder. Pass a BEIR or BRIGHT folder, or a hub id with --format bright."
            raise FileNotFoundError(msg)
    if data_format == "beir":
        datasets = [load_beir(path, split, instruction=instruction)]
    else:
        if subsets is None:
            subsets = available_bright_subsets(path) if path.is_dir() else list(BRIGHT_SUBSETS)
            if not subsets:
                msg = f"{path / 'examples'} holds no file named after a BRIGHT subset ({list(BRIGHT_SUBSETS)})."
                raise FileNotFoundError(msg)
        for subset in subsets:
            _check_subset(subset)
        datasets = [load_bright(s, data, long_documents=long_documents, instruction=instruction) for s in subsets]
    if max_queries is not None:
        if max_queries < 1:
            msg = f"max_queries must be a positive integer, got {max_queries}."
            raise ValueError(msg)
        for ds in datasets:
            keep = list(ds.queries)[:max_queries]
            ds.queries = {q: ds.queries[q] for q in keep}
            ds.qrels = {q: ds.qrels[q] for q in keep}
    return datasets
