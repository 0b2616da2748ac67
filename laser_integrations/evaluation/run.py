"""Evaluate retrievers on retrieval datasets: encode the corpus once per (model, K), search exactly, score with ranx.

Document embeddings depend on K as much as query embeddings do (documents go through the same latent
procedure), so a K sweep encodes the corpus once per K; the query modes of one (model, K) share that encoding.
"""

from __future__ import annotations

import logging
import os
import re
import time
from collections.abc import Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any, Literal, Protocol

import numpy as np

from .baselines import BM25Baseline, SentenceTransformerBaseline, is_sentence_transformers_folder
from .data import RetrievalDataset
from .metrics import DEFAULT_METRICS, score_run
from .search import SEARCH_BACKENDS, SearchBackend, exact_search, search_hybrid

logger = logging.getLogger(__name__)

QueryMode = Literal["query", "reasoning"]
QUERY_MODES: tuple[str, ...] = ("query", "reasoning")
MissingReasoning = Literal["fallback", "skip"]
# Inputs longer than this (BRIGHT's 8192-token budget) are batched by tokens: batch_size texts of this length a pass.
LONG_INPUT_TOKENS = 1024


class DenseModel(Protocol):
    """What the evaluator needs from an embedding model (``LaSEREncoder`` and the sentence-transformers baseline)."""

    def encode_queries(self, texts: Sequence[str], **kwargs: Any) -> np.ndarray: ...

    def encode_documents(self, texts: Sequence[str], **kwargs: Any) -> np.ndarray: ...


@dataclass
class EvalResult:
    """Scores of one (model, K, query mode) on one dataset.

    Attributes:
        model: the model's label (``bm25``, ``minilm``, a folder name or hub id).
        dataset: dataset name (BEIR folder name or BRIGHT subset).
        query_mode: ``"query"`` or ``"reasoning"`` (the rationale used as the query).
        num_thinking_steps: K for LaSER models, None for baselines.
        metrics: metric -> mean over queries (``{"ndcg@10": 0.41, ...}``).
        per_query: metric -> {query id: value}.
        num_queries: queries scored.
        queries_without_reasoning: in reasoning mode, queries with no rationale (fell back to the query text,
            or were skipped with ``missing_reasoning="skip"``).
        encode_documents_seconds: time spent embedding (or indexing) the corpus; 0 when it came from the cache.
        encode_queries_seconds: time spent embedding the queries.
        search_seconds: time spent ranking.
        max_length: the token budget LaSER models' queries and documents were cut to on this dataset (the
            dataset's, e.g. 8192 on BRIGHT, or ``evaluate(max_length=...)``); None: the model's own max lengths.
    """

    model: str
    dataset: str
    query_mode: str
    num_thinking_steps: int | None
    metrics: dict[str, float]
    per_query: dict[str, dict[str, float]] = field(repr=False)
    num_queries: int
    queries_without_reasoning: int = 0
    encode_documents_seconds: float = 0.0
    encode_queries_seconds: float = 0.0
    search_seconds: float = 0.0
    max_length: int | None = None
    run: dict[str, dict[str, float]] = field(default_factory=dict, repr=False)

    @property
    def label(self) -> str:
        """``model``, with ``K=k`` for LaSER models and ``[reasoning]`` in reasoning mode."""
        label = self.model if self.num_thinking_steps is None else f"{self.model} K={self.num_thinking_steps}"
        return label if self.query_mode == "query" else f"{label} [{self.query_mode}]"

    def to_dict(self) -> dict[str, Any]:
        """Everything but the rankings (``run``, which ``laser eval --run-dir`` writes as TREC run files)."""
        data = asdict(self)
        data.pop("run")
        return {"label": self.label, **data}


# -- models --------------------------------------------------------------------------------------------------------
def model_label(spec: str | os.PathLike) -> str:
    """A short name for a ``--model`` value: the folder or file name of a path, the spec itself otherwise."""
    text = str(spec)
    return Path(text).name if os.path.exists(text) else text


def load_model(
    spec: str | os.PathLike, *, device: str | None = None, dtype: str | None = None
) -> BM25Baseline | DenseModel:
    """Turn a ``--model`` value into a retriever.

    - ``bm25``: :class:`BM25Baseline`;
    - ``minilm``: all-MiniLM-L6-v2 (offline copy); ``st:NAME`` or a sentence-transformers folder: that model;
    - anything else: ``LaSEREncoder.from_pretrained`` (hub id, folder, LoRA adapter folder, ``.gguf`` file, or an
      offline alias from :mod:`laser_integrations.offline`).
    """
    text = str(spec)
    if text == "bm25":
        return BM25Baseline()
    if text == "minilm":
        return SentenceTransformerBaseline("minilm", device=device)
    if text.startswith("st:"):
        return SentenceTransformerBaseline(text.removeprefix("st:"), device=device)
    if is_sentence_transformers_folder(text):
        return SentenceTransformerBaseline(text, device=device)
    from ..encoder import LaSEREncoder

    # from_pretrained resolves offline aliases and their input format itself.
    return LaSEREncoder.from_pretrained(text, device=device, dtype=dtype)


def _supports_k(model: Any) -> bool:
    return bool(getattr(model, "supports_thinking_steps", hasattr(model, "config")))


def _default_k(model: Any) -> int | None:
    config = getattr(model, "config", None)
    return getattr(config, "num_thinking_steps", None)


class _EachKCache:
    """A LaSER model seen through one latent run per text list: the first ``encode_*`` call for any K embeds for
    every K of the sweep at once (:meth:`LaSEREncoder.encode_each_k`), later calls for other K reuse it. The
    whole sweep then costs what its largest K costs; the time lands on the first K's row."""

    def __init__(self, model: Any, ks: Sequence[int]):
        self.model, self.ks = model, list(ks)
        self.config = model.config
        self._cache: dict[tuple, dict[int, np.ndarray]] = {}

    def _encode(self, kind: str, texts: Sequence[str], num_thinking_steps: int, **kwargs: Any) -> np.ndarray:
        key = (kind, tuple(texts), kwargs.get("instruction"), kwargs.get("max_length"))
        if key not in self._cache:
            self._cache[key] = self.model.encode_each_k(texts, self.ks, kind=kind, **kwargs)
        return self._cache[key][num_thinking_steps]

    def clear(self) -> None:
        """Forget the embeddings (between datasets, so memory holds one dataset's sweep)."""
        self._cache.clear()

    def encode_documents(self, texts: Sequence[str], *, num_thinking_steps: int, **kwargs: Any) -> np.ndarray:
        return self._encode("document", texts, num_thinking_steps, **kwargs)

    def encode_queries(self, texts: Sequence[str], *, num_thinking_steps: int, **kwargs: Any) -> np.ndarray:
        return self._encode("query", texts, num_thinking_steps, **kwargs)


# -- queries -------------------------------------------------------------------------------------------------------
def query_texts(
    dataset: RetrievalDataset, mode: QueryMode, missing_reasoning: MissingReasoning = "fallback"
) -> tuple[dict[str, str], int]:
    """The texts to search with, and how many queries had no rationale (reasoning mode only).

    In ``"reasoning"`` mode the rationale replaces the query (the rewrite-then-retrieve upper bound). A query
    without a rationale falls back to its own text (``missing_reasoning="fallback"``) or is left out
    (``"skip"``); either way it is counted.
    """
    if mode == "query":
        return dict(dataset.queries), 0
    if mode != "reasoning":
        msg = f"Invalid query mode {mode!r}. Valid modes are: {list(QUERY_MODES)}."
        raise ValueError(msg)
    if missing_reasoning not in ("fallback", "skip"):
        msg = f"Invalid missing_reasoning {missing_reasoning!r}. Valid values are: ['fallback', 'skip']."
        raise ValueError(msg)
    missing = {q for q in dataset.queries if not dataset.reasoning.get(q, "").strip()}
    if missing_reasoning == "skip":
        texts = {q: dataset.reasoning[q] for q in dataset.queries if q not in missing}
        if not texts:
            msg = (
                f"Dataset {dataset.name!r} has no rationale for any of its {len(dataset.queries)} queries; "
                "reasoning mode has nothing to score (use --missing-reasoning fallback or add reasoning.jsonl)."
            )
            raise ValueError(msg)
    else:
        texts = {q: t if q in missing else dataset.reasoning[q] for q, t in dataset.queries.items()}
    if missing:
        logger.warning(
            "%s: %d of %d queries have no rationale; %s.", dataset.name, len(missing), len(dataset.queries),
            "they are left out" if missing_reasoning == "skip" else "their query text is used instead",
        )  # fmt: skip
    return texts, len(missing)


def drop_excluded(
    rankings: list[dict[str, float]], query_ids: Sequence[str], excluded: dict[str, set[str]], top_k: int
) -> dict[str, dict[str, float]]:
    """Remove each query's excluded documents from its ranking, then keep its ``top_k`` best."""
    run: dict[str, dict[str, float]] = {}
    for qid, ranking in zip(query_ids, rankings):
        banned = excluded.get(qid, set())
        kept = [(d, s) for d, s in ranking.items() if d not in banned]
        run[qid] = dict(kept[:top_k])
    return run


# -- the evaluation loop -------------------------------------------------------------------------------------------
def evaluate(
    models: Sequence[str | os.PathLike],
    datasets: Sequence[RetrievalDataset],
    *,
    num_thinking_steps: Sequence[int | None] = (None,),
    query_modes: Sequence[QueryMode] = ("query",),
    search: SearchBackend = "memory",
    top_k: int = 100,
    metrics: Sequence[str] = DEFAULT_METRICS,
    batch_size: int = 8,
    device: str | None = None,
    dtype: str | None = None,
    missing_reasoning: MissingReasoning = "fallback",
    show_progress: bool = False,
    loaded: dict[str, Any] | None = None,
    max_length: int | None = None,
    hybrid: bool = False,
    max_tokens_per_batch: int | None = None,
) -> list[EvalResult]:
    """Evaluate every model on every dataset, for every K (LaSER models) and query mode.

    Args:
        models: ``--model`` values (see :func:`load_model`).
        datasets: loaded datasets (:mod:`laser_integrations.evaluation.data`).
        num_thinking_steps: K values for LaSER models; None means the model's own K. Baselines run once.
        query_modes: ``"query"`` and/or ``"reasoning"``.
        search: ``"memory"`` or ``"qdrant"`` exact search (same numbers).
        top_k: depth of each ranking (100 covers Recall@100).
        metrics: ranx metric names.
        batch_size: encoding batch size.
        device: torch device for the models.
        dtype: torch dtype for LaSER models.
        missing_reasoning: ``"fallback"`` or ``"skip"`` for queries without a rationale in reasoning mode.
        show_progress: progress bars while encoding.
        loaded: already loaded models by spec (skips :func:`load_model` for them; tests and notebooks).
        max_length: token budget of LaSER models' queries and documents on every dataset; None: each dataset's
            own (:attr:`RetrievalDataset.max_length`, 8192 on BRIGHT as the official harness), else the model's.
        hybrid: after each dense model's result, also one for hybrid search (its embeddings and BM25 sparse
            vectors in one Qdrant collection, fused by RRF; :func:`~.search.search_hybrid`), labelled ``MODEL+bm25``.
        max_tokens_per_batch: LaSER models: at most this many padded tokens per forward pass (texts sorted by
            length, see :meth:`LaSEREncoder.encode`). None: when the token budget is above
            :data:`LONG_INPUT_TOKENS` (BRIGHT's 8192), ``batch_size * LONG_INPUT_TOKENS``, so that a batch of long
            documents holds fewer of them and needs no more memory than ``batch_size`` texts of that length,
            while texts up to that length batch as before; otherwise plain batching by ``batch_size``.

    Returns:
        One :class:`EvalResult` per (model, K, query mode, dataset), in that nesting order.
    """
    if search not in SEARCH_BACKENDS:
        msg = f"Invalid search backend {search!r}. Valid backends are: {list(SEARCH_BACKENDS)}."
        raise ValueError(msg)
    for mode in query_modes:
        if mode not in QUERY_MODES:
            msg = f"Invalid query mode {mode!r}. Valid modes are: {list(QUERY_MODES)}."
            raise ValueError(msg)
    if not models or not datasets:
        msg = "evaluate() needs at least one model and one dataset."
        raise ValueError(msg)
    if max_length is not None and (isinstance(max_length, bool) or not isinstance(max_length, int) or max_length < 1):
        msg = f"max_length must be a positive number of tokens, got {max_length!r}."
        raise ValueError(msg)
    if max_tokens_per_batch is not None and (
        isinstance(max_tokens_per_batch, bool) or not isinstance(max_tokens_per_batch, int) or max_tokens_per_batch < 1
    ):
        msg = f"max_tokens_per_batch must be a positive number of tokens, got {max_tokens_per_batch!r}."
        raise ValueError(msg)
    labels = [model_label(m) for m in models]
    if len(set(labels)) != len(labels):
        labels = [f"{label}#{i + 1}" if labels.count(label) > 1 else label for i, label in enumerate(labels)]
    results: list[EvalResult] = []
    for spec, label in zip(models, labels):
        model = (loaded or {}).get(str(spec)) or load_model(spec, device=device, dtype=dtype)
        ks: list[int | None] = list(dict.fromkeys(num_thinking_steps)) if _supports_k(model) else [None]
        if _supports_k(model):
            ks = list(dict.fromkeys(k if k is not None else _default_k(model) for k in ks))
        common = (query_modes, search, top_k, metrics, batch_size, missing_reasoning, show_progress, hybrid,
                  max_tokens_per_batch)  # fmt: skip
        if len(ks) > 1 and hasattr(model, "encode_each_k"):
            # A K sweep: each dataset is embedded once for all K, so datasets go outside and K inside.
            sweep = _EachKCache(model, ks)  # type: ignore[arg-type]
            per: dict[tuple[int | None, str], list[EvalResult]] = {}
            for dataset in datasets:
                sweep.clear()
                budget = (max_length or dataset.max_length) if _supports_k(model) else None
                for k in ks:
                    per[k, dataset.name] = _evaluate_one(sweep, label, k, dataset, *common, budget)
            results.extend(r for k in ks for dataset in datasets for r in per[k, dataset.name])
            continue
        for k in ks:
            for dataset in datasets:
                # A LaSER model's inputs are cut to the dataset's budget (BRIGHT: 8192), a baseline keeps its own.
                budget = (max_length or dataset.max_length) if _supports_k(model) else None
                results.extend(_evaluate_one(model, label, k, dataset, *common, budget))
    return results


def _evaluate_one(
    model: Any,
    label: str,
    k: int | None,
    dataset: RetrievalDataset,
    query_modes: Sequence[QueryMode],
    search: SearchBackend,
    top_k: int,
    metrics: Sequence[str],
    batch_size: int,
    missing_reasoning: MissingReasoning,
    show_progress: bool,
    hybrid: bool = False,
    max_tokens_per_batch: int | None = None,
    max_length: int | None = None,
) -> list[EvalResult]:
    doc_ids = list(dataset.corpus)
    doc_texts = [dataset.corpus[d] for d in doc_ids]
    # Ask for enough extra hits that removing a query's excluded documents still leaves top_k.
    depth = top_k + max((len(v) for v in dataset.excluded.values()), default=0)
    name = f"{label}{'' if k is None else f' K={k}'} on {dataset.name}"
    logger.info("%s: %d documents, %d queries", name, len(doc_ids), len(dataset.queries))
    start = time.perf_counter()
    kwargs: dict[str, Any] = {
        "instruction": dataset.instruction,
        "batch_size": batch_size,
        "show_progress": show_progress,
    }
    if k is not None:
        kwargs["num_thinking_steps"] = k
    if max_length is not None:
        kwargs["max_length"] = max_length
        # Long inputs (BRIGHT: 8192 tokens) are batched by a token budget: fewer long documents a pass, the same
        # batches as before for texts up to LONG_INPUT_TOKENS.
        if max_tokens_per_batch is None and max_length > LONG_INPUT_TOKENS:
            max_tokens_per_batch = batch_size * LONG_INPUT_TOKENS
    if max_tokens_per_batch is not None and k is not None:
        kwargs["max_tokens_per_batch"] = max_tokens_per_batch
    # The corpus is encoded (or indexed) once here and shared by every query mode of this (model, K, dataset).
    if isinstance(model, BM25Baseline):
        model.index(doc_ids, doc_texts, show_progress=show_progress)
        doc_emb = None
    else:
        doc_emb = model.encode_documents(doc_texts, **kwargs)
    doc_seconds = time.perf_counter() - start

    out: list[EvalResult] = []
    for i, mode in enumerate(query_modes):
        texts, without = query_texts(dataset, mode, missing_reasoning)
        qids = list(texts)
        start = time.perf_counter()
        if doc_emb is None:
            q_seconds = 0.0
            rankings = model.search([texts[q] for q in qids], depth, show_progress=show_progress)
        else:
            q_emb = model.encode_queries([texts[q] for q in qids], **kwargs)
            q_seconds = time.perf_counter() - start
            start = time.perf_counter()
            rankings = exact_search(q_emb, doc_emb, doc_ids, depth, backend=search)
        run = drop_excluded(rankings, qids, dataset.excluded, top_k)
        search_seconds = time.perf_counter() - start
        scores = score_run({q: dataset.qrels[q] for q in qids}, run, metrics)
        out.append(
            EvalResult(
                model=label,
                dataset=dataset.name,
                query_mode=mode,
                num_thinking_steps=k,
                metrics=scores.aggregate,
                per_query=scores.per_query,
                num_queries=len(qids),
                queries_without_reasoning=without,
                encode_documents_seconds=doc_seconds if i == 0 else 0.0,
                encode_queries_seconds=q_seconds,
                search_seconds=search_seconds,
                max_length=max_length,
                run=run,
            )
        )
        if hybrid and doc_emb is not None:
            start = time.perf_counter()
            rankings = search_hybrid(q_emb, doc_emb, [texts[q] for q in qids], doc_texts, doc_ids, depth)
            run = drop_excluded(rankings, qids, dataset.excluded, top_k)
            scores = score_run({q: dataset.qrels[q] for q in qids}, run, metrics)
            out.append(
                EvalResult(
                    model=f"{label}+bm25", dataset=dataset.name, query_mode=mode, num_thinking_steps=k,
                    metrics=scores.aggregate, per_query=scores.per_query, num_queries=len(qids),
                    queries_without_reasoning=without, search_seconds=time.perf_counter() - start, run=run,
                    max_length=max_length,
                )  # fmt: skip
            )
    return out


# -- reporting -----------------------------------------------------------------------------------------------------
def averages(results: Sequence[EvalResult]) -> dict[str, dict[str, float]]:
    """Mean of each metric over datasets, per result label (BRIGHT reports the average of its subsets)."""
    grouped: dict[str, list[EvalResult]] = {}
    for r in results:
        grouped.setdefault(r.label, []).append(r)
    return {
        label: {m: float(np.mean([r.metrics[m] for r in rs])) for m in rs[0].metrics} for label, rs in grouped.items()
    }


def comparison_table(results: Sequence[EvalResult], metrics: Sequence[str] | None = None) -> str:
    """A plain-text table: one row per (label, dataset), one column per metric, averages when several datasets."""
    if not results:
        return "(no results)"
    metrics = list(metrics or results[0].metrics)
    datasets = list(dict.fromkeys(r.dataset for r in results))
    rows = [[r.label, r.dataset, str(r.num_queries)] + [f"{r.metrics[m]:.4f}" for m in metrics] for r in results]
    if len(datasets) > 1:
        for label, means in averages(results).items():
            rows.append([label, "average", ""] + [f"{means[m]:.4f}" for m in metrics])
    header = ["model", "dataset", "queries"] + metrics
    widths = [max(len(str(x)) for x in col) for col in zip(header, *rows)]
    lines = ["  ".join(h.ljust(w) for h, w in zip(header, widths)), "  ".join("-" * w for w in widths)]
    lines += [
        "  ".join(c.ljust(w) if j < 2 else c.rjust(w) for j, (c, w) in enumerate(zip(row, widths))) for row in rows
    ]
    return "\n".join(lines)


def results_to_json(results: Sequence[EvalResult], config: dict[str, Any] | None = None) -> dict[str, Any]:
    """The ``results.json`` document: the run's settings, every result with per-query scores, and averages."""
    doc: dict[str, Any] = {"config": config or {}, "results": [r.to_dict() for r in results]}
    if len({r.dataset for r in results}) > 1:
        doc["averages"] = averages(results)
    return doc


def run_file_name(result: EvalResult) -> str:
    """``<label>.<dataset>.trec`` with every character a file name or a TREC run name cannot hold replaced."""
    safe = lambda text: re.sub(r"[^A-Za-z0-9._=+-]+", "_", text).strip("_")  # noqa: E731
    return f"{safe(result.label)}.{safe(result.dataset)}.trec"


def write_run_files(results: Sequence[EvalResult], folder: str | os.PathLike) -> list[Path]:
    """Write each result's ranking as a TREC run file (ranx ``Run.save``), atomically; returns the paths.

    Lines are ``query_id Q0 doc_id rank score run_name``, the format trec_eval and ``ranx.Run.from_file`` read;
    a query that retrieved nothing has no line.
    """
    import ranx

    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    names = [run_file_name(r) for r in results]
    if len(set(names)) != len(names):
        msg = f"Two results would share a run file name ({names}); give the models distinct names."
        raise ValueError(msg)
    paths = []
    for result, name in zip(results, names):
        ranked = {q: ranking for q, ranking in result.run.items() if ranking}
        if not ranked:
            continue
        path = folder / name
        tmp = path.with_name(f".{name}.tmp")
        ranx.Run.from_dict(ranked, name=name.removesuffix(".trec")).save(str(tmp), kind="trec")
        os.replace(tmp, path)  # a stopped run never leaves a half-written run file under the final name
        paths.append(path)
    return paths
