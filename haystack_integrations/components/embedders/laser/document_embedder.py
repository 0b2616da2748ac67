"""``LaSERDocumentEmbedder``: embeds Documents with LaSER, for a document store."""

from __future__ import annotations

import asyncio
from dataclasses import replace
from typing import Any, ClassVar, Literal

from haystack import Document, component
from haystack.utils import ComponentDevice, Secret

from .backend import DEFAULT_MODEL, LaSEREmbedderBase, default_token, logger


@component
class LaSERDocumentEmbedder(LaSEREmbedderBase):
    """Embeds Documents with LaSER (the document template and K latent thinking steps).

    The embedding of each Document is stored in its `embedding` field; the input Documents are not changed
    (copies are returned). Pair it with :class:`LaSERTextEmbedder` for the queries.

    Usage example:

    ```python
    from haystack import Document
    from haystack_integrations.components.embedders.laser import LaSERDocumentEmbedder

    embedder = LaSERDocumentEmbedder(model="Alibaba-NLP/LaSER-Qwen3-0.6B", meta_fields_to_embed=["title"])
    result = embedder.run([Document(content="For a prefix code, sum 2^-l <= 1.", meta={"title": "Kraft"})])
    print(result["documents"][0].embedding)
    # [0.0123, -0.0456, ...]
    ```
    """

    _kind: ClassVar[Literal["query", "document"]] = "document"
    _init_parameters: ClassVar[tuple[str, ...]] = (
        "model", "device", "token", "prefix", "suffix", "batch_size", "progress_bar", "normalize_embeddings",
        "meta_fields_to_embed", "embedding_separator", "trust_remote_code", "local_files_only", "revision",
        "model_kwargs", "tokenizer_kwargs", "num_thinking_steps", "instruction", "truncate_dim", "config_kwargs",
        "precision", "encode_kwargs", "backend", "quantization_ranges",
    )  # fmt: skip

    def __init__(
        self,
        *,
        model: str = DEFAULT_MODEL,
        device: ComponentDevice | None = None,
        token: Secret | None = default_token(),  # noqa: B008 - an env-var reference, resolved at warm-up
        prefix: str = "",
        suffix: str = "",
        batch_size: int = 32,
        progress_bar: bool = True,
        normalize_embeddings: bool = True,
        meta_fields_to_embed: list[str] | None = None,
        embedding_separator: str = "\n",
        trust_remote_code: bool = False,
        local_files_only: bool = False,
        revision: str | None = None,
        model_kwargs: dict[str, Any] | None = None,
        tokenizer_kwargs: dict[str, Any] | None = None,
        num_thinking_steps: int | None = None,
        instruction: str | None = None,
        truncate_dim: int | None = None,
        config_kwargs: dict[str, Any] | None = None,
        precision: Literal["float32", "int8", "uint8", "binary", "ubinary"] = "float32",
        encode_kwargs: dict[str, Any] | None = None,
        backend: Literal["torch", "onnx", "openvino"] = "torch",
        quantization_ranges: list[list[float]] | None = None,
    ) -> None:
        """Create the component; nothing loads until :meth:`warm_up` or the first :meth:`run`.

        :param model: Hub id or local folder of a LaSER checkpoint (written by ``LaSEREncoder.save_pretrained``).
        :param device: Device to load the model on; default CUDA > MPS > CPU.
        :param token: Hugging Face token for private models, from an environment variable.
        :param prefix: Text put before each document, inside the document template.
        :param suffix: Text put after each document, inside the document template.
        :param batch_size: Number of documents embedded at once.
        :param progress_bar: Show a progress bar while embedding.
        :param normalize_embeddings: L2-normalise embeddings (LaSER is trained for cosine similarity).
        :param meta_fields_to_embed: Meta fields embedded before the content (e.g. ``["title"]``).
        :param embedding_separator: Separator between the meta fields and the content.
        :param trust_remote_code: Run code shipped with the checkpoint (only for checkpoints you trust).
        :param local_files_only: Never reach the Hugging Face Hub.
        :param revision: Hub branch, tag or commit.
        :param model_kwargs: Extra arguments for ``AutoModelForCausalLM.from_pretrained`` (e.g. ``{"dtype": "bfloat16"}``).
        :param tokenizer_kwargs: Extra arguments for ``AutoTokenizer.from_pretrained``; ``{"model_max_length": N}``
            sets this component's token budget per input (template included; the text is cut, never the template).
        :param num_thinking_steps: K, the latent thinking steps; ``None`` uses the checkpoint's own K.
        :param instruction: Instruction for the document template (the released templates do not use one).
        :param truncate_dim: Keep the first N dimensions of each embedding (normalised after truncation, as
            sentence-transformers does); ``None`` keeps all. LaSER checkpoints are not trained for truncation.
        :param config_kwargs: Attributes of the model's transformers config to override (``AutoConfig.from_pretrained``
            keywords); a name the config does not have is an error.
        :param precision: ``"float32"``, or quantized embeddings with sentence-transformers' rules: ``"int8"`` /
            ``"uint8"`` (255 steps per dimension between its minimum and maximum), ``"binary"`` / ``"ubinary"`` (one
            bit per dimension, 8 packed per number, so ``dimension / 8`` numbers).
        :param encode_kwargs: Extra keyword arguments for ``LaSEREncoder.encode``; a key that a parameter of this
            component sets, or that has no meaning for LaSER (``prompt``, ``task``...), is refused with the reason.
        :param backend: Only ``"torch"``; ``"onnx"`` and ``"openvino"`` are refused (they cannot run the latent steps).
        :param quantization_ranges: Per-dimension minima (first row) and maxima (second row), shape ``(2, dim)``, for
            ``"int8"`` / ``"uint8"``. Without them the range comes from the embeddings of each run.
        """
        self._set_common(
            model=model, device=device, token=token, prefix=prefix, suffix=suffix, batch_size=batch_size,
            progress_bar=progress_bar, normalize_embeddings=normalize_embeddings, trust_remote_code=trust_remote_code,
            local_files_only=local_files_only, revision=revision, model_kwargs=model_kwargs,
            tokenizer_kwargs=tokenizer_kwargs, num_thinking_steps=num_thinking_steps, instruction=instruction,
            truncate_dim=truncate_dim, config_kwargs=config_kwargs, precision=precision, encode_kwargs=encode_kwargs,
            backend=backend, quantization_ranges=quantization_ranges,
        )  # fmt: skip
        self.meta_fields_to_embed = list(meta_fields_to_embed or [])
        self.embedding_separator = embedding_separator
        if precision in ("int8", "uint8") and quantization_ranges is None:
            logger.warning(
                "Using precision '%s' without `quantization_ranges` calibrates the quantization range from the "
                "documents of each run, which is degenerate for small runs and inconsistent across runs (and with "
                "the queries). Pass `quantization_ranges` computed from a representative sample of embeddings.",
                precision,
            )

    def _text_to_embed(self, doc: Document) -> str:
        meta_values = [
            str(doc.meta[key]) for key in self.meta_fields_to_embed if key in doc.meta and doc.meta[key] is not None
        ]
        # content=None (e.g. a Document holding only a blob) is embedded as empty text, its meta fields still used.
        return self.prefix + self.embedding_separator.join([*meta_values, doc.content or ""]) + self.suffix

    @component.output_types(documents=list[Document])
    def run(self, documents: list[Document]) -> dict[str, list[Document]]:
        """Embed Documents.

        :param documents: The Documents to embed.
        :returns: A dictionary with the key `documents`: copies of the Documents with their `embedding` set.
        :raises TypeError: `documents` is not a list of Documents (to embed a string use `LaSERTextEmbedder`).
        """
        if not isinstance(documents, list) or any(not isinstance(doc, Document) for doc in documents):
            msg = (
                "LaSERDocumentEmbedder expects a list of Documents as input. "
                "To embed a string, use LaSERTextEmbedder."
            )
            raise TypeError(msg)
        if not documents:
            return {"documents": []}
        embeddings = self._embed([self._text_to_embed(doc) for doc in documents], "document")
        return {"documents": [replace(doc, embedding=emb) for doc, emb in zip(documents, embeddings, strict=True)]}

    @component.output_types(documents=list[Document])
    async def run_async(self, documents: list[Document]) -> dict[str, list[Document]]:
        """Asynchronously embed Documents: :meth:`run` in a worker thread (the encoder is thread-safe).

        :param documents: The Documents to embed.
        :returns: A dictionary with the key `documents`: copies of the Documents with their `embedding` set.
        """
        return await asyncio.to_thread(self.run, documents)
