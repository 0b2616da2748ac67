"""One loaded :class:`LaSEREncoder` per set of load parameters, shared by every framework component.

A Haystack text embedder, a document embedder, a retriever and a LlamaIndex embed model that name the same
checkpoint with the same load parameters share one model in memory. Parameters that only change how texts are
encoded (instruction, K, batch size, prefix, normalisation, sequence length, truncate_dim, precision) are per call,
so they never cause a second load.
"""

from __future__ import annotations

import hashlib
import json
import threading
from typing import Any

import torch

from .encoder import LaSEREncoder
from .loading import resolve_device, resolve_dtype

_ENCODERS: dict[str, LaSEREncoder] = {}
_LOCK = threading.Lock()


def encoder_cache_key(params: dict[str, Any]) -> str:
    """Unambiguous cache key of load parameters (JSON, sorted keys), as the Haystack integrations build theirs."""
    return json.dumps(params, sort_keys=True, default=str)


def get_encoder(
    model: str,
    *,
    device: str | None = None,
    token: str | None = None,
    trust_remote_code: bool = False,
    local_files_only: bool = False,
    revision: str | None = None,
    model_kwargs: dict[str, Any] | None = None,
    tokenizer_kwargs: dict[str, Any] | None = None,
    config_kwargs: dict[str, Any] | None = None,
    cache_folder: str | None = None,
) -> LaSEREncoder:
    """The shared encoder for these load parameters, loaded with :meth:`LaSEREncoder.from_pretrained` on first use.

    The cache key is canonical: the device as torch names it (``None`` and ``"cpu"`` are one key on a CPU-only
    machine), the dtype under one name whichever way it is written (``torch.float16``, ``"float16"``,
    ``"torch.float16"``, ``"fp16"``, under ``dtype`` or ``torch_dtype``; ``None`` is the device's default dtype).
    Normalisation, K, the instruction and the sequence-length budget are per call, so they never load a copy.

    Args:
        model: hub id or local folder of a LaSER checkpoint.
        device: torch device string (``"cpu"``, ``"cuda:0"``); ``None`` picks CUDA > MPS > CPU.
        token: resolved hub token. Only its SHA-256 enters the cache key, so it is never kept in clear.
        trust_remote_code: run code shipped with the checkpoint.
        local_files_only: never reach the hub.
        revision: hub branch, tag or commit.
        model_kwargs: extra ``AutoModelForCausalLM.from_pretrained`` arguments; ``dtype`` / ``torch_dtype``
            here selects the weights' dtype.
        tokenizer_kwargs: extra ``AutoTokenizer.from_pretrained`` arguments (``model_max_length`` is a
            per-call budget, not a load parameter: components pass it to ``encode`` as ``max_length``).
        config_kwargs: model config attributes to override (see ``LaSEREncoder.from_pretrained``).
        cache_folder: where hub downloads are cached.
    """
    resolved_device = _canonical_device(device)
    kwargs = dict(model_kwargs or {})
    # from_pretrained takes the dtype as its own argument; the key "torch_dtype" is transformers' old name.
    dtype, old_dtype = kwargs.pop("dtype", None), kwargs.pop("torch_dtype", None)
    dtype = resolve_dtype(dtype if dtype is not None else old_dtype, torch.device(resolved_device))
    tok_kwargs = {k: v for k, v in (tokenizer_kwargs or {}).items() if k != "model_max_length"}
    params = {
        "model": str(model),
        "device": resolved_device,
        "dtype": str(dtype).removeprefix("torch."),
        "token_sha256": hashlib.sha256(token.encode()).hexdigest() if token else None,
        "trust_remote_code": trust_remote_code,
        "local_files_only": local_files_only,
        "revision": revision,
        "model_kwargs": kwargs or None,
        "tokenizer_kwargs": tok_kwargs or None,
        "config_kwargs": config_kwargs or None,
        "cache_folder": None if cache_folder is None else str(cache_folder),
    }
    key = encoder_cache_key(params)
    encoder = _ENCODERS.get(key)
    if encoder is not None:
        return encoder
    # One lock for loading: concurrent warm-ups of components with the same parameters load the model once.
    with _LOCK:
        encoder = _ENCODERS.get(key)
        if encoder is None:
            encoder = LaSEREncoder.from_pretrained(
                model,
                device=resolved_device,
                dtype=dtype,
                token=token,
                trust_remote_code=trust_remote_code,
                local_files_only=local_files_only,
                revision=revision,
                model_kwargs=kwargs or None,
                tokenizer_kwargs=tok_kwargs or None,
                config_kwargs=config_kwargs or None,
                cache_dir=cache_folder,
            )
            _ENCODERS[key] = encoder
    return encoder


def _canonical_device(device: str | None) -> str:
    """One spelling per device ("cuda" and "cuda:0", None and "cpu" on a CPU-only machine), for the cache key."""
    resolved = resolve_device(device)
    if resolved.type == "cuda" and resolved.index is None:
        resolved = torch.device("cuda", torch.cuda.current_device())
    return str(resolved)


def clear_encoder_cache() -> None:
    """Forget every shared encoder (their memory is freed once no component holds them)."""
    with _LOCK:
        _ENCODERS.clear()


def loaded_encoder_count() -> int:
    """How many distinct encoders are loaded (for tests and diagnostics)."""
    return len(_ENCODERS)
