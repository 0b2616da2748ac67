"""BM25 as sparse vectors for Qdrant: the lexical half of hybrid search, computed locally (no model hub).

A document's vector holds, for each of its terms, BM25's saturated term frequency (Lucene's variant, as bm25s
scores it)::

    tf / (tf + k1 * (1 - b + b * doc_length / avg_doc_length))

and a query's vector holds 1 for each query token (a repeated token counts again, as bm25s counts it). The
collection's sparse vector is configured with ``Modifier.IDF``, so Qdrant multiplies each query term by
``ln((N - df + 0.5) / (df + 0.5) + 1)`` over the points it holds, and a sparse search then scores exactly
``sum idf * saturated tf``: BM25 with its IDF kept up to date by Qdrant as documents are added or deleted.

Terms are bm25s's tokens (lowercased words of two or more characters, English stopwords removed, the tokenizer
``laser eval --model bm25`` uses), mapped to 32-bit term ids by a fixed hash (blake2b), so no vocabulary has to be
stored or shared between the indexing and the searching process. ``avg_doc_length`` is the only corpus statistic
on the document side; :meth:`BM25SparseEncoder.fit` measures it on a corpus.
"""

from __future__ import annotations

import hashlib
from collections import Counter
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from itertools import islice
from typing import Any

# Term ids are 32-bit: Qdrant's sparse indices are uint32.
_TERM_ID_BYTES = 4
DEFAULT_K1 = 1.5  # bm25s's default, the one `laser eval --model bm25` uses
DEFAULT_B = 0.75
# fastembed's Qdrant/bm25 assumes 256 tokens; set your corpus' own mean (fit) when you can.
DEFAULT_AVG_DOC_LENGTH = 256.0
STOPWORDS = "en"
_FIT_SLICE = 10_000  # texts tokenized at once by fit()


@dataclass(frozen=True)
class SparseTerms:
    """A sparse vector: term ids (sorted, unique) and their values."""

    indices: list[int]
    values: list[float]

    def to_qdrant(self) -> Any:
        """As ``qdrant_client.models.SparseVector``."""
        from qdrant_client import models

        return models.SparseVector(indices=self.indices, values=self.values)

    def to_haystack(self) -> Any:
        """As ``haystack.dataclasses.SparseEmbedding``."""
        from haystack.dataclasses import SparseEmbedding

        return SparseEmbedding(indices=self.indices, values=self.values)


def _import_bm25s() -> Any:
    try:
        import bm25s
    except ImportError as e:
        msg = "Hybrid search tokenizes with bm25s; install it with pip: `pip install laser-integrations[qdrant]`."
        raise ImportError(msg) from e
    return bm25s


def term_id(token: str) -> int:
    """The fixed 32-bit id of a token (the same in every process and on every machine)."""
    return int.from_bytes(hashlib.blake2b(token.encode("utf-8"), digest_size=_TERM_ID_BYTES).digest(), "little")


def tokenize(texts: Sequence[str]) -> list[list[str]]:
    """bm25s's tokens of each text (lowercased, English stopwords removed), in order."""
    if isinstance(texts, str):
        msg = "tokenize() takes a list of texts, got one string; wrap it in a list."
        raise TypeError(msg)
    bm25s = _import_bm25s()
    return bm25s.tokenize(list(texts), stopwords=STOPWORDS, return_ids=False, show_progress=False)


def _counts(tokens: list[str]) -> tuple[list[int], list[int]]:
    counts: Counter[int] = Counter(term_id(t) for t in tokens)
    indices = sorted(counts)
    return indices, [counts[i] for i in indices]


class BM25SparseEncoder:
    """BM25 document and query vectors for a Qdrant sparse vector with ``Modifier.IDF``.

    Example:
        >>> encoder = BM25SparseEncoder.fit(["Kraft inequality for prefix codes", "Bayes theorem"])
        >>> [len(v.indices) for v in encoder.encode_documents(["prefix codes"])]
        [2]

    Args:
        k1: term-frequency saturation.
        b: document-length normalisation.
        avg_doc_length: mean number of tokens of the corpus' documents (:meth:`fit` measures it). Changing it
            after indexing changes only new documents' vectors, so keep it fixed for a collection.
    """

    def __init__(
        self, *, k1: float = DEFAULT_K1, b: float = DEFAULT_B, avg_doc_length: float = DEFAULT_AVG_DOC_LENGTH
    ) -> None:
        if not k1 > 0:
            msg = f"k1 must be positive, got {k1!r}."
            raise ValueError(msg)
        if not 0 <= b <= 1:
            msg = f"b must be between 0 and 1, got {b!r}."
            raise ValueError(msg)
        if not avg_doc_length > 0:
            msg = f"avg_doc_length must be positive (the corpus' mean token count), got {avg_doc_length!r}."
            raise ValueError(msg)
        self.k1, self.b, self.avg_doc_length = float(k1), float(b), float(avg_doc_length)

    @classmethod
    def fit(cls, texts: Iterable[str], *, k1: float = DEFAULT_K1, b: float = DEFAULT_B) -> BM25SparseEncoder:
        """An encoder whose ``avg_doc_length`` is the mean token count of ``texts`` (as bm25s measures it).

        ``texts`` may be a generator: it is tokenized a slice at a time (integer counts, so the mean is the same
        as over one list), so measuring a corpus never holds it whole.
        """
        if isinstance(texts, str):
            msg = "fit() takes a list (or iterable) of texts, got one string; wrap it in a list."
            raise TypeError(msg)
        tokens = documents = 0
        iterator = iter(texts)
        while batch := list(islice(iterator, _FIT_SLICE)):
            tokens += sum(len(t) for t in tokenize(batch))
            documents += len(batch)
        mean = tokens / documents if documents else 0.0
        return cls(k1=k1, b=b, avg_doc_length=mean if mean > 0 else DEFAULT_AVG_DOC_LENGTH)

    def to_dict(self) -> dict[str, float]:
        return {"k1": self.k1, "b": self.b, "avg_doc_length": self.avg_doc_length}

    def __repr__(self) -> str:
        return f"BM25SparseEncoder(k1={self.k1}, b={self.b}, avg_doc_length={self.avg_doc_length})"

    def encode_documents(self, texts: Sequence[str]) -> list[SparseTerms]:
        """One vector per document: saturated, length-normalised term frequencies (IDF is Qdrant's part)."""
        out: list[SparseTerms] = []
        for tokens in tokenize(texts):
            indices, counts = _counts(tokens)
            norm = self.k1 * (1 - self.b + self.b * len(tokens) / self.avg_doc_length)
            out.append(SparseTerms(indices, [tf / (tf + norm) for tf in counts]))
        return out

    def encode_queries(self, texts: Sequence[str]) -> list[SparseTerms]:
        """One vector per query: how often each term occurs in it (Qdrant multiplies by the term's IDF)."""
        out: list[SparseTerms] = []
        for tokens in tokenize(texts):
            indices, counts = _counts(tokens)
            out.append(SparseTerms(indices, [float(c) for c in counts]))
        return out

    # LlamaIndex's QdrantVectorStore takes (texts) -> (list of indices, list of values) for each side.
    def llama_index_doc_fn(self, texts: list[str]) -> tuple[list[list[int]], list[list[float]]]:
        vectors = self.encode_documents(texts)
        return [v.indices for v in vectors], [v.values for v in vectors]

    def llama_index_query_fn(self, texts: list[str]) -> tuple[list[list[int]], list[list[float]]]:
        vectors = self.encode_queries(texts)
        return [v.indices for v in vectors], [v.values for v in vectors]


def sparse_vector_params(*, on_disk: bool | None = None) -> Any:
    """The collection's sparse-vector settings for BM25: Qdrant computes the IDF (``Modifier.IDF``)."""
    from qdrant_client import models

    return models.SparseVectorParams(index=models.SparseIndexParams(on_disk=on_disk), modifier=models.Modifier.IDF)
