"""LaSER as a LlamaIndex embed model: ``LaSEREmbedding``.

LlamaIndex calls the query path (``get_query_embedding``) for questions and the text path
(``get_text_embedding_batch``) for nodes; LaSER encodes them with its query and document templates.

Example:
    >>> from llama_index.core import Settings, StorageContext, VectorStoreIndex
    >>> from laser_integrations.llama_index import LaSEREmbedding
    >>> from laser_integrations.qdrant import open_vector_store
    >>> Settings.embed_model = LaSEREmbedding(model_name="Alibaba-NLP/LaSER-Qwen3-0.6B")  # doctest: +SKIP
    >>> store = open_vector_store(path="laser_qdrant", collection="notes", embed_model=Settings.embed_model)  # doctest: +SKIP
    >>> index = VectorStoreIndex.from_documents(docs, storage_context=StorageContext.from_defaults(vector_store=store))  # doctest: +SKIP
    >>> index.as_retriever(similarity_top_k=3).retrieve("Which inequality bounds prefix codes?")  # doctest: +SKIP
"""

from __future__ import annotations

import asyncio
from typing import Any, Literal

from llama_index.core.base.embeddings.base import BaseEmbedding, Embedding
from llama_index.core.bridge.pydantic import Field, PrivateAttr
from llama_index.core.callbacks import CallbackManager

from .backend import get_encoder
from .config import validate_num_thinking_steps
from .encoder import LaSEREncoder

DEFAULT_MODEL = "Alibaba-NLP/LaSER-Qwen3-0.6B"
# LlamaIndex hands the embed model `embed_batch_size` texts per call, and the encoder can only sort by length (to
# pad less) within one call. So the hand-over is large and the forward pass is sized separately.
DEFAULT_EMBED_BATCH_SIZE = 256
DEFAULT_ENCODE_BATCH_SIZE = 32


class LaSEREmbedding(BaseEmbedding):
    """LaSER embeddings for LlamaIndex: queries with the query template and instruction, nodes as documents.

    Every setting is a pydantic field, so ``to_dict`` / ``from_dict`` rebuild the same model. The loaded encoder
    is shared with every other LaSER component (Haystack included) that uses the same load parameters. A hub
    token, when needed, comes from the ``HF_TOKEN`` environment variable (never a field, so never serialized).

    Args:
        model_name: hub id or local folder of a LaSER checkpoint.
        embed_batch_size: texts LlamaIndex hands over per call (its own setting). LaSER sorts each call's texts by
            length before splitting them into forward passes, so a large value pads less; it is not the forward
            pass size (unlike ``HuggingFaceEmbedding``'s).
        encode_batch_size: texts per forward pass; lower it if embedding runs out of memory.
        device: ``"cpu"``, ``"cuda"``, ``"cuda:1"``, ``"mps"``; ``None`` picks CUDA > MPS > CPU.
        num_thinking_steps: K, the latent thinking steps; ``None`` uses the checkpoint's own K.
        query_instruction: task instruction in the query template; ``None`` uses the checkpoint's default.
        text_instruction: instruction for the document template (the released templates do not use one).
        normalize: L2-normalise embeddings (LaSER is trained for cosine similarity).
        show_progress_bar: show a progress bar while embedding.
        trust_remote_code: run code shipped with the checkpoint (only for checkpoints you trust).
        local_files_only: never reach the Hugging Face Hub.
        revision: hub branch, tag or commit.
        model_kwargs: extra ``AutoModelForCausalLM.from_pretrained`` arguments (e.g. ``{"dtype": "bfloat16"}``).
        tokenizer_kwargs: extra ``AutoTokenizer.from_pretrained`` arguments.
        callback_manager: LlamaIndex callbacks.
    """

    encode_batch_size: int = Field(default=DEFAULT_ENCODE_BATCH_SIZE, description="Texts per forward pass.", ge=1)
    device: str | None = Field(default=None, description="Torch device; None picks CUDA > MPS > CPU.")
    num_thinking_steps: int | None = Field(
        default=None, description="Latent thinking steps K; None uses the checkpoint's own.", ge=1
    )
    query_instruction: str | None = Field(
        default=None, description="Instruction in the query template; None uses the checkpoint's default."
    )
    text_instruction: str | None = Field(default=None, description="Instruction in the document template.")
    normalize: bool = Field(default=True, description="L2-normalise embeddings.")
    show_progress_bar: bool = Field(default=False, description="Show a progress bar while embedding.")
    trust_remote_code: bool = Field(default=False, description="Run code shipped with the checkpoint.")
    local_files_only: bool = Field(default=False, description="Never reach the Hugging Face Hub.")
    revision: str | None = Field(default=None, description="Hub branch, tag or commit.")
    model_kwargs: dict[str, Any] | None = Field(default=None, description="Extra model loading arguments.")
    tokenizer_kwargs: dict[str, Any] | None = Field(default=None, description="Extra tokenizer loading arguments.")

    _encoder: LaSEREncoder = PrivateAttr()

    def __init__(
        self,
        model_name: str = DEFAULT_MODEL,
        *,
        embed_batch_size: int = DEFAULT_EMBED_BATCH_SIZE,
        encode_batch_size: int = DEFAULT_ENCODE_BATCH_SIZE,
        device: str | None = None,
        num_thinking_steps: int | None = None,
        query_instruction: str | None = None,
        text_instruction: str | None = None,
        normalize: bool = True,
        show_progress_bar: bool = False,
        trust_remote_code: bool = False,
        local_files_only: bool = False,
        revision: str | None = None,
        model_kwargs: dict[str, Any] | None = None,
        tokenizer_kwargs: dict[str, Any] | None = None,
        callback_manager: CallbackManager | None = None,
        **kwargs: Any,
    ) -> None:
        if num_thinking_steps is not None:
            validate_num_thinking_steps(num_thinking_steps)
        super().__init__(
            model_name=model_name,
            embed_batch_size=embed_batch_size,
            encode_batch_size=encode_batch_size,
            callback_manager=callback_manager,
            device=device,
            num_thinking_steps=num_thinking_steps,
            query_instruction=query_instruction,
            text_instruction=text_instruction,
            normalize=normalize,
            show_progress_bar=show_progress_bar,
            trust_remote_code=trust_remote_code,
            local_files_only=local_files_only,
            revision=revision,
            model_kwargs=model_kwargs,
            tokenizer_kwargs=tokenizer_kwargs,
            **kwargs,
        )
        # Loads like HuggingFaceEmbedding does (at construction), but shares one model per load parameters.
        self._encoder = get_encoder(
            model_name,
            device=device,
            trust_remote_code=trust_remote_code,
            local_files_only=local_files_only,
            revision=revision,
            normalize=normalize,
            model_kwargs=model_kwargs,
            tokenizer_kwargs=tokenizer_kwargs,
        )

    @classmethod
    def class_name(cls) -> str:
        return "LaSEREmbedding"

    @property
    def encoder(self) -> LaSEREncoder:
        """The underlying (shared) :class:`LaSEREncoder`."""
        return self._encoder

    @property
    def dimension(self) -> int:
        """Size of the embeddings (the collection's vector size)."""
        return self._encoder.dimension

    def provenance_record(self) -> dict[str, Any]:
        """What this embed model writes into a collection (checked by ``open_vector_store(embed_model=...)``)."""
        from .provenance import describe_encoder

        return describe_encoder(self._encoder, num_thinking_steps=self.num_thinking_steps,
                                instruction=self.text_instruction, layout="llama_index")  # fmt: skip

    def _encode(self, texts: list[str], kind: Literal["query", "document"], instruction: str | None) -> list[Embedding]:
        return self._encoder.encode(
            texts,
            kind=kind,
            instruction=instruction,
            batch_size=self.encode_batch_size,
            show_progress=self.show_progress_bar,
            num_thinking_steps=self.num_thinking_steps,
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
