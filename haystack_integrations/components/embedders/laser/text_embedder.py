"""``LaSERTextEmbedder``: embeds a query string with LaSER, for an embedding retriever."""

from __future__ import annotations

import asyncio
from typing import Any, ClassVar, Literal

from haystack import component
from haystack.utils import ComponentDevice, Secret

from .backend import DEFAULT_MODEL, LaSEREmbedderBase, default_token


@component
class LaSERTextEmbedder(LaSEREmbedderBase):
    """Embeds a query with LaSER: the query template, an instruction and K latent thinking steps.

    Pair it with :class:`LaSERDocumentEmbedder` (which embeds documents with the document template) and a
    retriever such as ``QdrantEmbeddingRetriever``; or use ``LaSERRetriever`` for both steps in one component.

    Usage example:

    ```python
    from haystack_integrations.components.embedders.laser import LaSERTextEmbedder

    embedder = LaSERTextEmbedder(model="Alibaba-NLP/LaSER-Qwen3-0.6B", instruction="Given a math question, "
                                 "retrieve theorems that help answer it")
    print(embedder.run("Which inequality bounds the codeword lengths of a prefix code?"))
    # {'embedding': [0.0123, -0.0456, ...]}
    ```
    """

    _kind: ClassVar[Literal["query", "document"]] = "query"
    _init_parameters: ClassVar[tuple[str, ...]] = (
        "model", "device", "token", "prefix", "suffix", "batch_size", "progress_bar", "normalize_embeddings",
        "trust_remote_code", "local_files_only", "revision", "model_kwargs", "tokenizer_kwargs",
        "num_thinking_steps", "instruction", "truncate_dim", "config_kwargs", "precision", "encode_kwargs", "backend",
        "quantization_ranges",
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
        :param prefix: Text put before the query, inside the query template.
        :param suffix: Text put after the query, inside the query template.
        :param batch_size: Number of texts embedded at once.
        :param progress_bar: Show a progress bar while embedding.
        :param normalize_embeddings: L2-normalise the embedding (LaSER is trained for cosine similarity).
        :param trust_remote_code: Run code shipped with the checkpoint (only for checkpoints you trust).
        :param local_files_only: Never reach the Hugging Face Hub.
        :param revision: Hub branch, tag or commit.
        :param model_kwargs: Extra arguments for ``AutoModelForCausalLM.from_pretrained`` (e.g. ``{"dtype": "bfloat16"}``).
        :param tokenizer_kwargs: Extra arguments for ``AutoTokenizer.from_pretrained``; ``{"model_max_length": N}``
            sets this component's token budget per input (template included; the text is cut, never the template).
        :param num_thinking_steps: K, the latent thinking steps; ``None`` uses the checkpoint's own K.
        :param instruction: The task instruction put in the query template; ``None`` uses the checkpoint's default.
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
        if precision in ("int8", "uint8") and quantization_ranges is None:
            # One query cannot calibrate a range (sentence-transformers' text embedder refuses the same way).
            msg = (
                f"Precision '{precision}' requires `quantization_ranges` computed from "
                "a representative sample of embeddings."
            )
            raise ValueError(msg)

    @component.output_types(embedding=list[float])
    def run(self, text: str) -> dict[str, Any]:
        """Embed one query.

        :param text: The query.
        :returns: A dictionary with the key `embedding`: the query's embedding.
        :raises TypeError: `text` is not a string (to embed Documents use `LaSERDocumentEmbedder`).
        """
        if not isinstance(text, str):
            msg = (
                f"LaSERTextEmbedder expects a string as input, got {type(text).__name__}. "
                "To embed a list of Documents, use LaSERDocumentEmbedder."
            )
            raise TypeError(msg)
        return {"embedding": self._embed([self.prefix + text + self.suffix], "query")[0]}

    @component.output_types(embedding=list[float])
    async def run_async(self, text: str) -> dict[str, Any]:
        """Asynchronously embed one query: :meth:`run` in a worker thread (the encoder is thread-safe).

        :param text: The query.
        :returns: A dictionary with the key `embedding`: the query's embedding.
        """
        return await asyncio.to_thread(self.run, text)
