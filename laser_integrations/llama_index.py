"""LaSER as a LlamaIndex embed model: ``LaSEREmbedding``.

LlamaIndex calls the query path (``get_query_embedding``) for questions and the text path
(``get_text_embedding_batch``) for nodes; LaSER encodes them with its query and document templates.

Example:
    >>> from llama_index.core import Settings, StorageContext, VectorStoreIndex
    >>> from laser_integrations.llama_index import LaSEREmbedding
    >>> from laser_integrations.qdrant import open_vector_store
    >>> Settings.embed_model = LaSEREmbedding(model_name="Alibaba-NLP/LaSER-Qwen3-0.6B")  # doctest: +SKIP
    >>> store = open_vector_store(path="laser_qdrant", collection="notes", embedding_dim=Settings.embed_model.dimension)  # doctest: +SKIP
    >>> index = VectorStoreIndex.from_documents(docs, storage_context=StorageContext.from_defaults(vector_store=store))  # doctest: +SKIP
    >>> index.as_retriever(similarity_top_k=3).retrieve("Which inequality bounds prefix codes?")  # doctest: +SKIP
"""

from __future__ import annotations

import asyncio
from typing import Any, Literal

import torch
from llama_index.core.base.embeddings.base import BaseEmbedding, Embedding
from llama_index.core.bridge.pydantic import Field, PrivateAttr, field_serializer
from llama_index.core.callbacks import CallbackManager

from .backend import get_encoder
from .config import validate_num_thinking_steps
from .encoder import LaSEREncoder
from .options import (
    MULTI_DEVICE_REFUSAL,
    check_backend,
    check_instruction_is_used,
    check_mapping,
    check_max_length,
    unknown_keywords_error,
)
from .quantization import check_truncate_dim

DEFAULT_MODEL = "Alibaba-NLP/LaSER-Qwen3-0.6B"
# LlamaIndex hands the embed model `embed_batch_size` texts per call, and the encoder can only sort by length (to
# pad less) within one call. So the hand-over is large and the forward pass is sized separately.
DEFAULT_EMBED_BATCH_SIZE = 256
DEFAULT_ENCODE_BATCH_SIZE = 32


class LaSEREmbedding(BaseEmbedding):
    """LaSER embeddings for LlamaIndex: queries with the query template and instruction, nodes as documents.

    A drop-in for ``HuggingFaceEmbedding``: its parameters keep their meaning (``max_length``, ``normalize``,
    ``cache_folder``, ``truncate_dim``, ``model_kwargs``...), and the constructor takes exactly its declared fields:
    a misspelt keyword, or one of ``HuggingFaceEmbedding``'s that cannot mean anything for LaSER, is a ``TypeError``
    naming it and why (never dropped). Every setting is a pydantic field, so ``to_dict`` / ``from_dict`` rebuild
    the same model. The loaded encoder is shared with every other LaSER component (Haystack included) that uses
    the same load parameters. A hub token, when needed, comes from the ``HF_TOKEN`` environment variable (never a
    field, so never serialized).

    Args:
        model_name: hub id or local folder of a LaSER checkpoint.
        max_length: token budget of each query and text, template included (the text is cut, never the template);
            ``None`` uses the checkpoint's ``query_max_length`` / ``document_max_length``.
        query_instruction: task instruction in the query template; ``None`` uses the checkpoint's default.
        text_instruction: instruction for the document template (the released templates do not use one).
        normalize: L2-normalise embeddings (LaSER is trained for cosine similarity).
        embed_batch_size: texts LlamaIndex hands over per call (its own setting). LaSER sorts each call's texts by
            length before splitting them into forward passes, so a large value pads less; it is not the forward
            pass size (unlike ``HuggingFaceEmbedding``'s).
        cache_folder: where hub downloads are cached (default: the Hugging Face cache).
        trust_remote_code: run code shipped with the checkpoint (only for checkpoints you trust).
        device: ``"cpu"``, ``"cuda"``, ``"cuda:1"``, ``"mps"``; ``None`` picks CUDA > MPS > CPU.
        callback_manager: LlamaIndex callbacks.
        parallel_process, target_devices: multi-device encoding; refused until the encoder's multi-device
            option exists (only the defaults ``False`` / ``None`` are accepted).
        show_progress_bar: show a progress bar while embedding.
        num_workers, embeddings_cache, rate_limiter: ``BaseEmbedding``'s own fields.
        encode_batch_size: texts per forward pass; lower it if embedding runs out of memory.
        num_thinking_steps: K, the latent thinking steps; ``None`` uses the checkpoint's own K.
        truncate_dim: keep the first N dimensions (normalised after truncation, as sentence-transformers does).
            LaSER checkpoints are not trained for truncation (Matryoshka), so measure before relying on it.
        local_files_only: never reach the Hugging Face Hub.
        revision: hub branch, tag or commit.
        model_kwargs: extra ``AutoModelForCausalLM.from_pretrained`` arguments (e.g. ``{"dtype": "bfloat16"}``).
        tokenizer_kwargs: extra ``AutoTokenizer.from_pretrained`` arguments (the length budget is ``max_length``).
        config_kwargs: attributes of the model's transformers config to override (``AutoConfig`` keywords).
        backend: only ``"torch"`` (sentence-transformers' ONNX / OpenVINO exports cannot run the latent steps).
    """

    max_length: int | None = Field(
        default=None, description="Token budget per input, template included; None: the checkpoint's.", gt=0
    )
    query_instruction: str | None = Field(
        default=None, description="Instruction in the query template; None uses the checkpoint's default."
    )
    text_instruction: str | None = Field(default=None, description="Instruction in the document template.")
    normalize: bool = Field(default=True, description="L2-normalise embeddings.")
    cache_folder: str | None = Field(default=None, description="Cache folder for Hugging Face files.")
    trust_remote_code: bool = Field(default=False, description="Run code shipped with the checkpoint.")
    device: str | None = Field(default=None, description="Torch device; None picks CUDA > MPS > CPU.")
    parallel_process: bool = Field(default=False, description="Multi-device encoding (not available yet).")
    target_devices: list[str] | None = Field(default=None, description="Devices for parallel_process.")
    show_progress_bar: bool = Field(default=False, description="Show a progress bar while embedding.")
    encode_batch_size: int = Field(default=DEFAULT_ENCODE_BATCH_SIZE, description="Texts per forward pass.", ge=1)
    num_thinking_steps: int | None = Field(
        default=None, description="Latent thinking steps K; None uses the checkpoint's own.", ge=1
    )
    truncate_dim: int | None = Field(default=None, description="Keep the first N dimensions.", gt=0)
    local_files_only: bool = Field(default=False, description="Never reach the Hugging Face Hub.")
    revision: str | None = Field(default=None, description="Hub branch, tag or commit.")
    model_kwargs: dict[str, Any] | None = Field(default=None, description="Extra model loading arguments.")
    tokenizer_kwargs: dict[str, Any] | None = Field(default=None, description="Extra tokenizer loading arguments.")
    config_kwargs: dict[str, Any] | None = Field(default=None, description="Model config overrides.")
    backend: Literal["torch"] = Field(default="torch", description="Only 'torch'.")

    _encoder: LaSEREncoder = PrivateAttr()

    def __init__(
        self,
        model_name: str = DEFAULT_MODEL,
        *,
        max_length: int | None = None,
        query_instruction: str | None = None,
        text_instruction: str | None = None,
        normalize: bool = True,
        embed_batch_size: int = DEFAULT_EMBED_BATCH_SIZE,
        cache_folder: str | None = None,
        trust_remote_code: bool = False,
        device: str | None = None,
        callback_manager: CallbackManager | None = None,
        parallel_process: bool = False,
        target_devices: list[str] | None = None,
        show_progress_bar: bool = False,
        num_workers: int | None = None,
        embeddings_cache: Any | None = None,
        rate_limiter: Any | None = None,
        encode_batch_size: int = DEFAULT_ENCODE_BATCH_SIZE,
        num_thinking_steps: int | None = None,
        truncate_dim: int | None = None,
        local_files_only: bool = False,
        revision: str | None = None,
        model_kwargs: dict[str, Any] | None = None,
        tokenizer_kwargs: dict[str, Any] | None = None,
        config_kwargs: dict[str, Any] | None = None,
        backend: str = "torch",
        **unexpected: Any,
    ) -> None:
        # **unexpected exists only to name each wrong keyword and its fix; none is ever used.
        if unexpected:
            raise unknown_keywords_error("LaSEREmbedding", unexpected, _declared_parameters(), _REFUSED_KEYWORDS)
        if parallel_process or target_devices is not None:
            name = "parallel_process" if parallel_process else "target_devices"
            msg = f"LaSEREmbedding({name}=...): {MULTI_DEVICE_REFUSAL}"
            raise ValueError(msg)
        if num_thinking_steps is not None:
            validate_num_thinking_steps(num_thinking_steps)
        check_max_length("max_length", max_length)
        check_truncate_dim(truncate_dim)
        check_backend(backend)
        for name, value in (("model_kwargs", model_kwargs), ("tokenizer_kwargs", tokenizer_kwargs),
                            ("config_kwargs", config_kwargs)):  # fmt: skip
            check_mapping(name, value)
        if tokenizer_kwargs and "model_max_length" in tokenizer_kwargs:
            msg = (
                "LaSEREmbedding takes the token budget as max_length=N (HuggingFaceEmbedding's name), not as "
                "tokenizer_kwargs['model_max_length']."
            )
            raise ValueError(msg)
        super().__init__(
            model_name=model_name,
            max_length=max_length,
            query_instruction=query_instruction,
            text_instruction=text_instruction,
            normalize=normalize,
            embed_batch_size=embed_batch_size,
            cache_folder=cache_folder,
            trust_remote_code=trust_remote_code,
            device=device,
            callback_manager=callback_manager,
            parallel_process=parallel_process,
            target_devices=target_devices,
            show_progress_bar=show_progress_bar,
            num_workers=num_workers,
            embeddings_cache=embeddings_cache,
            rate_limiter=rate_limiter,
            encode_batch_size=encode_batch_size,
            num_thinking_steps=num_thinking_steps,
            truncate_dim=truncate_dim,
            local_files_only=local_files_only,
            revision=revision,
            model_kwargs=model_kwargs,
            tokenizer_kwargs=tokenizer_kwargs,
            config_kwargs=config_kwargs,
            backend=backend,
        )
        # Loads like HuggingFaceEmbedding does (at construction), but shares one model per load parameters.
        self._encoder = get_encoder(
            model_name,
            device=device,
            trust_remote_code=trust_remote_code,
            local_files_only=local_files_only,
            revision=revision,
            model_kwargs=model_kwargs,
            tokenizer_kwargs=tokenizer_kwargs,
            config_kwargs=config_kwargs,
            cache_folder=cache_folder,
        )
        check_instruction_is_used(self._encoder, "query", query_instruction, "query_instruction")
        check_instruction_is_used(self._encoder, "document", text_instruction, "text_instruction")
        if truncate_dim is not None and truncate_dim > self._encoder.dimension:
            msg = f"truncate_dim={truncate_dim} is larger than {model_name!r}'s dimension {self._encoder.dimension}."
            raise ValueError(msg)

    @field_serializer("model_kwargs")
    def _serialize_model_kwargs(self, model_kwargs: dict[str, Any] | None) -> dict[str, Any] | None:
        # A torch dtype is written by name ("bfloat16"), which loads the same, so to_json works.
        if model_kwargs is None:
            return None
        return {k: str(v).removeprefix("torch.") if isinstance(v, torch.dtype) else v for k, v in model_kwargs.items()}

    @classmethod
    def class_name(cls) -> str:
        return "LaSEREmbedding"

    @property
    def encoder(self) -> LaSEREncoder:
        """The underlying (shared) :class:`LaSEREncoder`."""
        return self._encoder

    @property
    def dimension(self) -> int:
        """Size of the embeddings (the collection's vector size), after ``truncate_dim``."""
        return self.truncate_dim or self._encoder.dimension

    def _encode(self, texts: list[str], kind: Literal["query", "document"], instruction: str | None) -> list[Embedding]:
        return self._encoder.encode(
            texts,
            kind=kind,
            instruction=instruction,
            batch_size=self.encode_batch_size,
            show_progress=self.show_progress_bar,
            num_thinking_steps=self.num_thinking_steps,
            normalize=self.normalize,
            max_length=self.max_length,
            truncate_dim=self.truncate_dim,
        ).tolist()

    def _get_query_embedding(self, query: str) -> Embedding:
        return self._encode([query], "query", self.query_instruction)[0]

    async def _aget_query_embedding(self, query: str) -> Embedding:
        return await asyncio.to_thread(self._get_query_embedding, query)

    def _get_text_embedding(self, text: str) -> Embedding:
        return self._encode([text], "document", self.text_instruction)[0]

    async def _aget_text_embedding(self, text: str) -> Embedding:
        return await asyncio.to_thread(self._get_text_embedding, text)

    def _get_text_embeddings(self, texts: list[str]) -> list[Embedding]:
        return self._encode(texts, "document", self.text_instruction)

    async def _aget_text_embeddings(self, texts: list[str]) -> list[Embedding]:
        return await asyncio.to_thread(self._get_text_embeddings, texts)


# HuggingFaceEmbedding (and SentenceTransformer, which takes its **model_kwargs) keywords with no LaSER meaning.
_REFUSED_KEYWORDS = {
    "tokenizer_name": "deprecated in HuggingFaceEmbedding too; the tokenizer is the checkpoint's own. Remove it.",
    "pooling": "deprecated in HuggingFaceEmbedding too; LaSER pools its K thinking states by their mean. Remove it.",
    "model": "deprecated in HuggingFaceEmbedding too; name the checkpoint with model_name. Remove it.",
    "tokenizer": "deprecated in HuggingFaceEmbedding too; the tokenizer is the checkpoint's own. Remove it.",
    "token": "a hub token is read only from the HF_TOKEN environment variable, so it is never stored or logged.",
    "use_auth_token": "a hub token is read only from the HF_TOKEN environment variable, so it is never stored "
    "or logged.",
    "prompts": "LaSER has no prompts: use query_instruction / text_instruction (they go into its query and "
    "document templates).",
    "default_prompt_name": "LaSER has no named prompts: use query_instruction / text_instruction.",
    "prompt_name": "LaSER has no named prompts: use query_instruction / text_instruction.",
    "similarity_fn_name": "LaSER is trained for cosine similarity (normalised vectors); the vector store computes it.",
    "modules": "a LaSER encoder is a causal LM with its latent thinking loop, not a module list; use model_name.",
    "model_card_data": "LaSER checkpoints keep their own model card; remove it.",
    "processor_kwargs": "named tokenizer_kwargs here.",
    "cache_dir": "named cache_folder here (HuggingFaceEmbedding's name).",
    "precision": "LlamaIndex embeddings are float lists; quantize in the vector store (Qdrant's quantization).",
    "devices": MULTI_DEVICE_REFUSAL,
}


def _declared_parameters() -> list[str]:
    import inspect

    params = inspect.signature(LaSEREmbedding.__init__).parameters
    return [name for name, p in params.items() if name != "self" and p.kind is not p.VAR_KEYWORD]
