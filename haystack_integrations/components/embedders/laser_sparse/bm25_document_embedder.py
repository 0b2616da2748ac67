"""``BM25SparseDocumentEmbedder``: BM25 sparse vectors on Documents, the lexical half of LaSER hybrid search."""

from __future__ import annotations

import asyncio
from dataclasses import replace
from typing import Any

from haystack import Document, component, default_from_dict, default_to_dict

from laser_integrations.sparse import DEFAULT_AVG_DOC_LENGTH, DEFAULT_B, DEFAULT_K1, BM25SparseEncoder


@component
class BM25SparseDocumentEmbedder:
    """Sets each Document's ``sparse_embedding`` to its BM25 vector (``laser_integrations.sparse``), locally.

    No model is downloaded: terms are bm25s's tokens hashed to fixed ids, values are BM25's saturated term
    frequencies, and the store's sparse vector computes the IDF (``open_document_store(hybrid=True)`` sets Qdrant's
    IDF modifier). Put it after ``LaSERDocumentEmbedder`` and before the ``DocumentWriter``; search with
    ``LaSERHybridRetriever``.

    Usage example:

    ```python
    from haystack import Document
    from haystack_integrations.components.embedders.laser_sparse import BM25SparseDocumentEmbedder

    embedder = BM25SparseDocumentEmbedder(avg_doc_length=40)
    doc = embedder.run([Document(content="For a prefix code, sum 2^-l <= 1.")])["documents"][0]
    print(doc.sparse_embedding.indices[:3], doc.sparse_embedding.values[:3])
    ```
    """

    def __init__(
        self,
        *,
        k1: float = DEFAULT_K1,
        b: float = DEFAULT_B,
        avg_doc_length: float = DEFAULT_AVG_DOC_LENGTH,
        meta_fields_to_embed: list[str] | None = None,
        embedding_separator: str = "\n",
    ) -> None:
        """Create the component (nothing to load).

        :param k1: BM25's term-frequency saturation.
        :param b: BM25's document-length normalisation.
        :param avg_doc_length: Mean token count of your documents (``BM25SparseEncoder.fit(texts).avg_doc_length``);
            keep it fixed for a collection.
        :param meta_fields_to_embed: Meta fields put before the content (e.g. ``["title"]``), as the dense embedder.
        :param embedding_separator: Separator between the meta fields and the content.
        """
        self._encoder = BM25SparseEncoder(k1=k1, b=b, avg_doc_length=avg_doc_length)
        self.k1, self.b, self.avg_doc_length = k1, b, avg_doc_length
        self.meta_fields_to_embed = list(meta_fields_to_embed or [])
        self.embedding_separator = embedding_separator

    def to_dict(self) -> dict[str, Any]:
        return default_to_dict(
            self, k1=self.k1, b=self.b, avg_doc_length=self.avg_doc_length,
            meta_fields_to_embed=self.meta_fields_to_embed, embedding_separator=self.embedding_separator,
        )  # fmt: skip

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> BM25SparseDocumentEmbedder:
        return default_from_dict(cls, data)

    def _text(self, doc: Document) -> str:
        meta = [str(doc.meta[k]) for k in self.meta_fields_to_embed if doc.meta.get(k) is not None]
        return self.embedding_separator.join([*meta, doc.content or ""])

    @component.output_types(documents=list[Document])
    def run(self, documents: list[Document]) -> dict[str, list[Document]]:
        """Return copies of `documents` with `sparse_embedding` set.

        :param documents: The Documents (a list; ``content=None`` counts as empty text).
        :returns: A dictionary with the key `documents`.
        """
        if not isinstance(documents, list) or (documents and not isinstance(documents[0], Document)):
            msg = (
                "BM25SparseDocumentEmbedder expects a list of Documents. For a query string, use "
                "LaSERHybridRetriever, which computes the query's sparse vector itself."
            )
            raise TypeError(msg)
        vectors = self._encoder.encode_documents([self._text(d) for d in documents])
        return {"documents": [replace(d, sparse_embedding=v.to_haystack()) for d, v in zip(documents, vectors)]}

    @component.output_types(documents=list[Document])
    async def run_async(self, documents: list[Document]) -> dict[str, list[Document]]:
        """Same as :meth:`run`, in a worker thread."""
        return await asyncio.to_thread(self.run, documents)
