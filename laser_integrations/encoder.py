"""``LaSEREncoder``: queries and documents in, L2-normalised LaSER embeddings out."""

from __future__ import annotations

import logging
import os
import threading
from collections.abc import Callable, Iterator, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
import torch
from torch import nn
from tqdm.auto import tqdm
from transformers import PreTrainedTokenizerBase

from .config import LaSERConfig, validate_num_thinking_steps
from .formatting import Formatter, Kind
from .latent import KVWorkspace, latent_think, pool_steps, unwrap_causal_lm
from .options import check_max_length
from .quantization import Precision, check_precision, check_truncate_dim, quantize_embeddings, truncate_embeddings

if TYPE_CHECKING:
    from .parallel import EncoderPool

logger = logging.getLogger(__name__)


def check_texts(texts: Any, argument: str = "texts") -> list[str]:
    """``texts`` as a list of strings, or a ``TypeError`` naming the first offending index."""
    if isinstance(texts, (str, bytes)):
        msg = f"{argument} must be a list of strings, got a single {type(texts).__name__}; wrap it as [{argument}]."
        raise TypeError(msg)
    if not isinstance(texts, Sequence) and not isinstance(texts, Iterator) and not hasattr(texts, "__iter__"):
        msg = f"{argument} must be a list of strings, got {type(texts).__name__}."
        raise TypeError(msg)
    texts = list(texts)
    for i, text in enumerate(texts):
        if not isinstance(text, str):
            msg = f"{argument}[{i}] must be a string, got {type(text).__name__}: {text!r:.80}."
            raise TypeError(msg)
    return texts


def default_device() -> torch.device:
    if torch.cuda.is_available():
        return torch.device("cuda")
    if getattr(torch.backends, "mps", None) is not None and torch.backends.mps.is_available():
        return torch.device("mps")
    return torch.device("cpu")


def default_dtype(device: torch.device) -> torch.dtype:
    """bf16 on CUDA; fp32 elsewhere (see benchmarks/encoder_speed.py for the CPU measurements)."""
    return torch.bfloat16 if device.type == "cuda" else torch.float32


class BatchLimits:
    """How many texts and padded positions one forward pass may hold; halved on an out-of-memory error."""

    def __init__(self, max_texts: int, max_tokens: int):
        self.max_texts, self.max_tokens = max_texts, max_tokens

    def take(self, order: list[int], start: int, cost: Callable[[int], int]) -> list[int]:
        """The next batch of ``order`` from ``start``: ``order`` is longest first, so the first row sets the width
        and a batch of n rows costs n times that. Always at least one row (a text alone is never split)."""
        width = cost(order[start])
        n = max(1, min(self.max_texts, self.max_tokens // width, len(order) - start))
        return order[start : start + n]

    def halve(self, rows: list[int], width: int, device: torch.device) -> None:
        """After an out-of-memory error on ``rows``: smaller limits, or the error again when one text was too many."""
        if len(rows) == 1:
            msg = (
                f"Out of memory on {device} embedding a single text of {width} positions; lower "
                "document_max_length/query_max_length or num_thinking_steps, or use a device with more memory."
            )
            raise torch.OutOfMemoryError(msg)
        new = len(rows) // 2
        logger.warning(
            "Out of memory on %s with a batch of %d texts x %d positions; retrying with batches of at most %d "
            "texts (%d positions) for the rest of this call.",
            device, len(rows), width, new, new * width,
        )  # fmt: skip
        self.max_texts, self.max_tokens = new, min(self.max_tokens, new * width)
        if device.type == "cuda":
            torch.cuda.empty_cache()  # give the failed batch's blocks back before the retry


class LaSEREncoder:
    """A LaSER dense retriever: a causal LM that thinks K latent steps before it embeds.

    Example:
        >>> encoder = LaSEREncoder.from_pretrained("Alibaba-NLP/LaSER-Qwen3-0.6B")  # doctest: +SKIP
        >>> q = encoder.encode_queries(["Which theorem bounds the sum of 2^-l over a prefix code?"])
        >>> d = encoder.encode_documents(["Kraft inequality: for a prefix code ..."])
        >>> (q @ d.T).shape
        (1, 1)

    Args:
        model: a transformers causal LM (or a peft model wrapping one), already on its device.
        tokenizer: its (fast) tokenizer.
        config: input format and number of thinking steps.
    """

    def __init__(self, model: nn.Module, tokenizer: PreTrainedTokenizerBase, config: LaSERConfig | None = None):
        if not getattr(tokenizer, "is_fast", False):
            msg = "LaSEREncoder needs a fast (Rust) tokenizer for exact truncation; load it with use_fast=True."
            raise ValueError(msg)
        causal_lm = unwrap_causal_lm(model)
        if causal_lm.get_output_embeddings() is None:
            msg = (
                f"{type(causal_lm).__name__} has no LM head; LaSER needs a causal LM "
                "(AutoModelForCausalLM), since soft tokens come from its next-token distribution."
            )
            raise ValueError(msg)
        self.model = model.eval()
        self.tokenizer = tokenizer
        self.config = config or LaSERConfig()
        self.formatter = Formatter(tokenizer, self.config)
        self.name_or_path: str | None = getattr(causal_lm, "name_or_path", None) or None
        self.chunk_size = 4096  # texts tokenised at a time
        # Fast tokenizers are not safe to call from several threads at once ("Already borrowed").
        self._tokenizer_lock = threading.Lock()
        # On CPU the latent steps' KV cache reuses the same memory from batch to batch (see KVWorkspace).
        self._kv_workspace = KVWorkspace()

    # -- properties ----------------------------------------------------------------------------------------
    @property
    def dimension(self) -> int:
        return int(unwrap_causal_lm(self.model).config.get_text_config().hidden_size)

    @property
    def device(self) -> torch.device:
        return next(self.model.parameters()).device

    @property
    def dtype(self) -> torch.dtype:
        return next(self.model.parameters()).dtype

    def __repr__(self) -> str:
        return (
            f"LaSEREncoder(model={self.name_or_path!r}, dimension={self.dimension}, "
            f"num_thinking_steps={self.config.num_thinking_steps}, device={self.device}, dtype={self.dtype})"
        )

    # -- encoding ------------------------------------------------------------------------------------------
    def encode_queries(
        self,
        texts: Sequence[str],
        *,
        instruction: str | None = None,
        batch_size: int = 8,
        show_progress: bool = False,
        num_thinking_steps: int | None = None,
        **options: Any,
    ) -> np.ndarray:
        """Embed queries (query template, ``instruction`` or the config's default instruction).

        ``options`` are :meth:`encode`'s other keywords (``normalize``, ``max_length``, ``truncate_dim``,
        ``precision``, ``quantization_ranges``).

        Returns:
            ``numpy.float32`` array of shape ``(len(texts), dimension)`` (other dtypes with ``precision``).
        """
        return self.encode(
            texts,
            kind="query",
            instruction=instruction,
            batch_size=batch_size,
            show_progress=show_progress,
            num_thinking_steps=num_thinking_steps,
            **options,
        )

    def encode_documents(
        self,
        texts: Sequence[str],
        *,
        instruction: str | None = None,
        batch_size: int = 8,
        show_progress: bool = False,
        num_thinking_steps: int | None = None,
        **options: Any,
    ) -> np.ndarray:
        """Embed documents (document template). Same options and return type as :meth:`encode_queries`."""
        return self.encode(
            texts,
            kind="document",
            instruction=instruction,
            batch_size=batch_size,
            show_progress=show_progress,
            num_thinking_steps=num_thinking_steps,
            **options,
        )

    def encode(
        self,
        texts: Sequence[str],
        *,
        kind: Kind,
        instruction: str | None = None,
        batch_size: int = 8,
        show_progress: bool = False,
        num_thinking_steps: int | None = None,
        normalize: bool | None = None,
        max_length: int | None = None,
        truncate_dim: int | None = None,
        precision: Precision = "float32",
        quantization_ranges: Any = None,
        max_tokens_per_batch: int | None = None,
        pool: EncoderPool | None = None,
    ) -> np.ndarray:
        """Embed ``texts`` as ``kind`` ("query" or "document"); the result keeps the texts' order.

        Args:
            batch_size: at most this many texts per forward pass.
            normalize: L2-normalise the embeddings; ``None`` uses the config's ``normalize``.
            max_length: token budget of each input, template included; ``None`` uses the config's
                ``query_max_length`` / ``document_max_length``.
            truncate_dim: keep the first ``truncate_dim`` dimensions (normalised after truncation, as
                sentence-transformers does). LaSER checkpoints are not trained for truncation (Matryoshka).
            precision: ``"float32"``, or ``"int8"`` / ``"uint8"`` / ``"binary"`` / ``"ubinary"`` with
                sentence-transformers' quantization (see :func:`laser_integrations.quantization.quantize_embeddings`).
            quantization_ranges: ``(2, dim)`` per-dimension minima and maxima for int8/uint8; without them the
                ranges come from this call's embeddings.
            max_tokens_per_batch: at most this many padded positions (input tokens plus the K - 1 latent steps)
                per forward pass. Texts are sorted by length and batches filled up to the budget, so a batch of
                long texts holds fewer of them and takes no more memory than a batch of short ones. Default:
                ``batch_size`` times the longest possible input, which never binds (plain batching).
            pool: an :class:`~laser_integrations.parallel.EncoderPool` (from :meth:`start_multi_process_pool`)
                that encodes the texts on several devices or processes; same embeddings, same order.
        """
        k = validate_num_thinking_steps(
            self.config.num_thinking_steps if num_thinking_steps is None else num_thinking_steps
        )
        check_truncate_dim(truncate_dim)
        if truncate_dim is not None and truncate_dim > self.dimension:
            msg = f"truncate_dim={truncate_dim} is larger than the model's embedding dimension {self.dimension}."
            raise ValueError(msg)
        check_precision(precision, quantization_ranges)
        normalize = self.config.normalize if normalize is None else bool(normalize)
        # Truncation comes before normalisation, so the pooled vectors stay raw until then.
        raw = truncate_dim is not None
        out = self._encode(texts, kind, instruction, batch_size, show_progress, [k], normalize and not raw, max_length,
                           max_tokens_per_batch, pool)  # fmt: skip
        out = out[:, 0]
        if raw:
            out = truncate_embeddings(out, truncate_dim)
            if normalize:
                out /= np.maximum(np.linalg.norm(out, axis=-1, keepdims=True), 1e-12)
        if precision != "float32" and len(out):
            out = quantize_embeddings(out, precision, quantization_ranges)
        return out

    def encode_each_k(
        self,
        texts: Sequence[str],
        num_thinking_steps: Sequence[int],
        *,
        kind: Kind,
        instruction: str | None = None,
        batch_size: int = 8,
        show_progress: bool = False,
        max_length: int | None = None,
        max_tokens_per_batch: int | None = None,
        pool: EncoderPool | None = None,
    ) -> dict[int, np.ndarray]:
        """Embeddings of ``texts`` for several K at the cost of the largest (the inference-scaling curve).

        The first k step states of a run with more steps are those of a k-step run, so one run at ``max(K)``
        gives every K's embedding; each array equals ``encode(texts, kind=kind, num_thinking_steps=k,
        max_length=max_length)``.

        Returns:
            ``{k: numpy.float32 array (len(texts), dimension)}`` for each k in ``num_thinking_steps``.
        """
        ks = [validate_num_thinking_steps(k) for k in dict.fromkeys(num_thinking_steps)]
        if not ks:
            msg = "encode_each_k needs at least one K in num_thinking_steps."
            raise ValueError(msg)
        out = self._encode(texts, kind, instruction, batch_size, show_progress, ks, self.config.normalize, max_length,
                           max_tokens_per_batch, pool)  # fmt: skip
        return {k: np.ascontiguousarray(out[:, i]) for i, k in enumerate(ks)}

    def _encode(
        self,
        texts: Sequence[str],
        kind: Kind,
        instruction: str | None,
        batch_size: int,
        show_progress: bool,
        ks: list[int],
        normalize: bool,
        max_length: int | None,
        max_tokens_per_batch: int | None = None,
        pool: EncoderPool | None = None,
    ) -> np.ndarray:
        """(len(texts), len(ks), dimension) embeddings, from one latent run of max(ks) steps per batch."""
        if kind not in ("query", "document"):
            msg = f"Invalid kind {kind!r}. Valid kinds are: ['query', 'document']."
            raise ValueError(msg)
        texts = check_texts(texts)
        if instruction is not None and not isinstance(instruction, str):
            msg = f"instruction must be a string or None, got {type(instruction).__name__}."
            raise TypeError(msg)
        if isinstance(batch_size, bool) or not isinstance(batch_size, int) or batch_size < 1:
            msg = f"batch_size must be a positive integer, got {batch_size!r}."
            raise ValueError(msg)
        check_max_length("max_length", max_length)
        if max_tokens_per_batch is not None and (
            isinstance(max_tokens_per_batch, bool) or not isinstance(max_tokens_per_batch, int) or max_tokens_per_batch < 1
        ):
            msg = f"max_tokens_per_batch must be a positive integer or None, got {max_tokens_per_batch!r}."
            raise ValueError(msg)
        args = (texts, kind, instruction, batch_size, show_progress, ks, normalize, max_length, max_tokens_per_batch)
        if pool is not None:
            if pool.encoder is not self:
                msg = "This pool was started from another encoder; start one with this encoder's start_multi_process_pool()."
                raise ValueError(msg)
            out, truncated = pool.encode_raw(*args)
        else:
            out, truncated = self.encode_local(*args)
        if truncated:
            plural = "queries" if kind == "query" else "documents"
            default = f"{kind}_max_length={self.formatter.max_length(kind)}"
            budget = f"max_length={max_length}" if max_length else default
            logger.warning(
                "%d of %d %s were longer than %s tokens and were truncated (the template is kept).",
                truncated, len(texts), plural, budget,
            )  # fmt: skip
        return out

    def encode_local(
        self,
        texts: list[str],
        kind: Kind,
        instruction: str | None,
        batch_size: int,
        show_progress: bool,
        ks: list[int],
        normalize: bool,
        max_length: int | None,
        max_tokens_per_batch: int | None = None,
    ) -> tuple[np.ndarray, int]:
        """Validated texts to (embeddings (n, len(ks), dimension), number truncated), in this process.

        The one batching loop, used directly and by every worker of an :class:`EncoderPool`: texts are sorted by
        length, batches filled up to ``batch_size`` texts and ``max_tokens_per_batch`` padded positions, and the
        embeddings put back in input order. On an out-of-memory error the batch is halved and retried (each size
        once; the smaller limit then holds for the rest of the call).
        """
        out = np.empty((len(texts), len(ks), self.dimension), dtype=np.float32)
        if not texts:
            return out, 0
        k_max = max(ks)
        latent = k_max - 1  # positions the latent steps add to every row
        if max_tokens_per_batch is None:
            max_tokens_per_batch = batch_size * ((max_length or self.formatter.max_length(kind)) + latent)
        limits = BatchLimits(batch_size, max_tokens_per_batch)
        truncated, plural = 0, "queries" if kind == "query" else "documents"
        with tqdm(total=len(texts), desc=f"Embedding {plural}", unit=kind, disable=not show_progress) as bar:
            # Tokenise a chunk at a time so a large corpus never holds all its token ids at once.
            for chunk_start in range(0, len(texts), self.chunk_size):
                chunk = texts[chunk_start : chunk_start + self.chunk_size]
                with self._tokenizer_lock:
                    ids, n_truncated = self.formatter.tokenize(chunk, kind, instruction, max_length)
                truncated += n_truncated
                # Longest first: similar lengths share a batch (less padding), and a too-large batch fails
                # at once rather than at the end.
                order = sorted(range(len(ids)), key=lambda i: -len(ids[i]))
                start = 0
                while start < len(order):
                    rows = limits.take(order, start, lambda i: len(ids[i]) + latent)
                    try:
                        embedded = self.embed_token_ids([ids[i] for i in rows], k_max, ks, normalize=normalize)
                    except torch.OutOfMemoryError:
                        limits.halve(rows, len(ids[rows[0]]) + latent, self.device)
                        continue
                    out[[chunk_start + i for i in rows]] = embedded
                    start += len(rows)
                    bar.update(len(rows))
        return out, truncated

    def start_multi_process_pool(
        self, devices: Sequence[str | torch.device] | str | None = None, *, threads_per_process: int | None = None
    ) -> EncoderPool:
        """Start worker processes that encode with this model on several devices (see :class:`EncoderPool`).

        Example:
            >>> with encoder.start_multi_process_pool(["cuda:0", "cuda:1"]) as pool:  # doctest: +SKIP
            ...     embeddings = encoder.encode_documents(corpus, pool=pool, max_tokens_per_batch=65536)

        Args:
            devices: ``["cuda:0", "cuda:1"]``, ``"cpu:0,cpu:1"`` (CPU processes), ...; default every CUDA device
                (an error on a machine without one).
            threads_per_process: torch threads of each CPU worker (default: the CPU cores shared out evenly).
        """
        from .parallel import EncoderPool

        return EncoderPool(self, devices, threads_per_process=threads_per_process)

    @torch.inference_mode()
    def embed_token_ids(
        self,
        batch: list[list[int]],
        num_thinking_steps: int,
        pool: Sequence[int] | None = None,
        *,
        normalize: bool | None = None,
    ) -> np.ndarray:
        """Embed already tokenised inputs (one padded batch): (batch, dimension), or (batch, len(pool), dimension)
        with the embedding of each K in ``pool`` (each at most ``num_thinking_steps``). ``normalize``: ``None``
        uses the config's."""
        normalize = self.config.normalize if normalize is None else normalize
        input_ids, attention_mask = self.pad(batch, self.device)
        workspace = self._kv_workspace if input_ids.device.type == "cpu" else None
        result = latent_think(
            self.model, input_ids, attention_mask, num_thinking_steps, normalize=normalize, workspace=workspace,
        )  # fmt: skip
        if pool is None:
            return result.embeddings.float().cpu().numpy()
        pooled = [pool_steps(result.step_states, k, normalize=normalize) for k in pool]
        return torch.stack(pooled, dim=1).float().cpu().numpy()

    def clear_kv_workspace(self) -> int:
        """Free the KV-cache memory that CPU encoding keeps between batches; returns the bytes freed.

        With K > 1 on CPU each batch's cache is written into memory kept from the previous batch (mapping fresh
        memory in cost more than the latent steps on the machines measured); it stays as large as the largest
        batch's cache. Call this when you are done encoding for a while.
        """
        freed = self._kv_workspace.nbytes
        self._kv_workspace.clear()
        return freed

    def pad(self, batch: list[list[int]], device: torch.device) -> tuple[torch.Tensor, torch.Tensor]:
        """Left-pad token ids into (input_ids, attention_mask) tensors."""
        width = max(len(ids) for ids in batch)
        pad_id = self.tokenizer.pad_token_id
        if pad_id is None:
            pad_id = self.tokenizer.eos_token_id if self.tokenizer.eos_token_id is not None else 0
        input_ids = torch.full((len(batch), width), pad_id, dtype=torch.long)
        attention_mask = torch.zeros((len(batch), width), dtype=torch.long)
        for row, ids in enumerate(batch):
            if ids:
                input_ids[row, width - len(ids) :] = torch.tensor(ids, dtype=torch.long)
                attention_mask[row, width - len(ids) :] = 1
        return input_ids.to(device), attention_mask.to(device)

    def similarity(self, queries: np.ndarray, documents: np.ndarray) -> np.ndarray:
        """Cosine similarity (a dot product of normalised embeddings), shape (n_queries, n_documents)."""
        return np.asarray(queries, dtype=np.float32) @ np.asarray(documents, dtype=np.float32).T

    # -- loading and saving --------------------------------------------------------------------------------
    @classmethod
    def from_pretrained(
        cls,
        name_or_path: str | os.PathLike,
        *,
        device: str | torch.device | None = None,
        dtype: str | torch.dtype | None = None,
        local_files_only: bool = False,
        trust_remote_code: bool = False,
        revision: str | None = None,
        token: str | None = None,
        allow_pickle: bool = False,
        gguf_file: str | None = None,
        model_kwargs: dict[str, Any] | None = None,
        tokenizer_kwargs: dict[str, Any] | None = None,
        config_kwargs: dict[str, Any] | None = None,
        cache_dir: str | os.PathLike | None = None,
        **config_overrides: Any,
    ) -> LaSEREncoder:
        """Load a LaSER encoder from a hub id, a local folder, a LoRA adapter folder or a GGUF file.

        Args:
            name_or_path: hub id (``"Alibaba-NLP/LaSER-Qwen3-0.6B"``), a folder written by
                :meth:`save_pretrained` or transformers, a folder holding a peft LoRA adapter (its base model is
                loaded and the adapter merged), or a ``.gguf`` file.
            device: ``"cpu"``, ``"cuda"``, ``"cuda:1"``...; default CUDA > MPS > CPU.
            dtype: torch dtype or its name (``"bfloat16"``); default bf16 on CUDA, fp32 elsewhere.
            local_files_only: never reach the hub.
            trust_remote_code: run code shipped with the checkpoint (off unless asked).
            revision: hub branch, tag or commit.
            token: hub token (prefer the ``HF_TOKEN`` environment variable).
            allow_pickle: also accept pickled ``.bin`` weights (unsafe with untrusted files; off by default).
            gguf_file: the GGUF file's name inside ``name_or_path`` when that is a folder.
            model_kwargs: extra keyword arguments for ``AutoModelForCausalLM.from_pretrained``.
            tokenizer_kwargs: extra keyword arguments for ``AutoTokenizer.from_pretrained``.
            config_kwargs: attributes of the transformers model config to override (``AutoConfig.from_pretrained``
                keywords); a name the config does not have is an error.
            cache_dir: where hub downloads are cached (default: the Hugging Face cache).
            **config_overrides: :class:`LaSERConfig` fields that replace the checkpoint's own
                (e.g. ``num_thinking_steps=5``).
        """
        from .loading import load_model_and_tokenizer

        model, tokenizer, config = load_model_and_tokenizer(
            name_or_path,
            device=device,
            dtype=dtype,
            local_files_only=local_files_only,
            trust_remote_code=trust_remote_code,
            revision=revision,
            token=token,
            allow_pickle=allow_pickle,
            gguf_file=gguf_file,
            model_kwargs=model_kwargs,
            tokenizer_kwargs=tokenizer_kwargs,
            config_kwargs=config_kwargs,
            cache_dir=cache_dir,
        )
        if config_overrides:
            config = config.replace(**config_overrides)
        return cls(model, tokenizer, config)

    def save_pretrained(self, folder: str | os.PathLike) -> Path:
        """Write safetensors weights, the tokenizer and ``laser_config.json`` to ``folder``, atomically.

        A peft model is written merged (a plain transformers checkpoint), so every loader reads it.
        """
        from .loading import save_model_and_tokenizer

        return save_model_and_tokenizer(self.model, self.tokenizer, self.config, folder)
