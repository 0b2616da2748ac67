"""Checks of the options the framework components share with their sentence-transformers / HuggingFace anchors.

Each anchor parameter is honoured with the anchor's meaning or refused with the reason; nothing is dropped.
"""

from __future__ import annotations

import difflib
from collections.abc import Iterable, Mapping
from typing import Any

BACKEND_REFUSAL = (
    "LaSER runs only on the 'torch' backend: its K latent thinking steps feed a probability-weighted mix of input "
    "embeddings back into the causal LM (with a KV cache), which sentence-transformers' ONNX and OpenVINO exports "
    "(a fixed forward pass from token ids to one pooled vector) cannot do. Use backend='torch'."
)
MULTI_DEVICE_REFUSAL = (
    "multi-device encoding is not available in this version: it comes with the LaSER encoder's multi-device "
    "option (the scale-out work); until then encode on one device with `device`."
)


def check_backend(backend: Any) -> None:
    if backend != "torch":
        msg = f"backend={backend!r} is not supported. {BACKEND_REFUSAL}"
        raise ValueError(msg)


def check_mapping(name: str, value: Any) -> None:
    if value is not None and not isinstance(value, Mapping):
        msg = f"{name} must be a dict or None, got {type(value).__name__}."
        raise TypeError(msg)


def check_max_length(name: str, value: Any) -> int | None:
    if value is not None and (isinstance(value, bool) or not isinstance(value, int) or value < 1):
        msg = f"{name} must be a positive number of tokens or None (the checkpoint's budget), got {value!r}."
        raise ValueError(msg)
    return value


def max_length_from_tokenizer_kwargs(tokenizer_kwargs: Mapping[str, Any] | None) -> int | None:
    """``tokenizer_kwargs["model_max_length"]``: the per-component token budget (template included)."""
    if not tokenizer_kwargs:
        return None
    return check_max_length("tokenizer_kwargs['model_max_length']", tokenizer_kwargs.get("model_max_length"))


def unknown_keywords_error(
    owner: str, unknown: Iterable[str], valid: Iterable[str], reasons: Mapping[str, str]
) -> TypeError:
    """A ``TypeError`` for keywords ``owner`` does not take: each with its reason, or the closest valid names."""
    valid = sorted(valid)
    lines = []
    for name in sorted(unknown):
        if name in reasons:
            lines.append(f"{name!r}: {reasons[name]}")
        else:
            close = difflib.get_close_matches(name, valid, n=3, cutoff=0.6)
            hint = f"did you mean {' or '.join(repr(c) for c in close)}?" if close else f"valid keywords are {valid}."
            lines.append(f"{name!r} is not a parameter; {hint}")
    msg = f"{owner} got unexpected keyword arguments: " + " ".join(lines)
    return TypeError(msg)


def check_instruction_is_used(encoder: Any, kind: str, instruction: str | None, parameter: str) -> None:
    """Refuse an instruction the checkpoint's template has no place for (it would change nothing)."""
    template = encoder.config.query_template if kind == "query" else encoder.config.document_template
    if instruction and "{instruction}" not in template:
        msg = (
            f"{parameter}={instruction!r} would change nothing: this checkpoint's {kind} template {template!r} has "
            "no '{instruction}' placeholder (the released LaSER checkpoints embed documents as bare text). Leave "
            f"{parameter} unset" + (", or add text with prefix / suffix." if parameter == "instruction" else ".")
        )
        raise ValueError(msg)
