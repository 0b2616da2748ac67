"""Embedding truncation and quantization with sentence-transformers' semantics (``truncate_dim``, ``precision``).

Users coming from sentence-transformers expect ``precision="int8"`` etc. to give exactly what
``sentence_transformers.quantize_embeddings`` gives on the same float embeddings; this module reimplements those
rules in a few lines of numpy (sentence-transformers is not a dependency) and the tests compare the two.
"""

from __future__ import annotations

from typing import Any, Literal

import numpy as np

Precision = Literal["float32", "int8", "uint8", "binary", "ubinary"]
PRECISIONS: tuple[str, ...] = ("float32", "int8", "uint8", "binary", "ubinary")


def check_precision(precision: Any, quantization_ranges: Any = None) -> None:
    """A ``ValueError`` for a precision sentence-transformers does not know, or ranges of the wrong shape."""
    if precision not in PRECISIONS:
        msg = f"Invalid precision {precision!r}. Valid precisions are: {list(PRECISIONS)}."
        raise ValueError(msg)
    if quantization_ranges is not None:
        ranges = np.asarray(quantization_ranges, dtype=np.float64)
        if ranges.ndim != 2 or ranges.shape[0] != 2:
            msg = (
                "quantization_ranges must have shape (2, embedding_dim): the minimum of each dimension in the first "
                f"row and the maximum in the second; got shape {ranges.shape}."
            )
            raise ValueError(msg)
        if precision not in ("int8", "uint8"):
            msg = f"quantization_ranges is only used with precision 'int8' or 'uint8', not {precision!r}."
            raise ValueError(msg)


def check_truncate_dim(truncate_dim: Any) -> None:
    if truncate_dim is None:
        return
    if isinstance(truncate_dim, bool) or not isinstance(truncate_dim, int) or truncate_dim < 1:
        msg = f"truncate_dim must be a positive integer or None (no truncation), got {truncate_dim!r}."
        raise ValueError(msg)


def truncate_embeddings(embeddings: np.ndarray, truncate_dim: int | None) -> np.ndarray:
    """The first ``truncate_dim`` dimensions (sentence-transformers truncates before it normalises)."""
    if truncate_dim is None:
        return embeddings
    if truncate_dim > embeddings.shape[-1]:
        msg = f"truncate_dim={truncate_dim} is larger than the model's embedding dimension {embeddings.shape[-1]}."
        raise ValueError(msg)
    return np.ascontiguousarray(embeddings[..., :truncate_dim])


def quantize_embeddings(embeddings: np.ndarray, precision: Precision, ranges: Any = None) -> np.ndarray:
    """Float embeddings ``(n, dim)`` in the given precision, as ``sentence_transformers.quantize_embeddings``.

    - ``int8`` / ``uint8``: each dimension's [min, max] (from ``ranges``, shape ``(2, dim)``, else from these
      embeddings, which needs at least two of them) is cut into 255 equal steps; uint8 holds the step index
      0..255, int8 the index minus 128.
    - ``binary`` / ``ubinary``: one bit per dimension (1 where the value is > 0), packed 8 to a byte, so the
      result has ``ceil(dim / 8)`` columns; ubinary as uint8, binary as int8 (the byte minus 128).
    """
    check_precision(precision, ranges)
    embeddings = np.asarray(embeddings)
    if precision == "float32":
        return embeddings.astype(np.float32)
    if precision in ("binary", "ubinary"):
        packed = np.packbits(embeddings > 0, axis=-1)
        return packed if precision == "ubinary" else (packed.astype(np.int16) - 128).astype(np.int8)
    if ranges is None:
        if embeddings.shape[0] < 2:
            msg = (
                f"Cannot compute {precision} quantization ranges from a single embedding. Pass quantization_ranges "
                "(shape (2, embedding_dim): per-dimension minima and maxima) computed from a representative sample "
                "of embeddings."
            )
            raise ValueError(msg)
        ranges = np.vstack((embeddings.min(axis=0), embeddings.max(axis=0)))
    ranges = np.asarray(ranges, dtype=np.float32)
    if ranges.shape[1] != embeddings.shape[-1]:
        msg = (
            f"quantization_ranges has {ranges.shape[1]} columns, but the embeddings have {embeddings.shape[-1]} "
            "dimensions (after truncate_dim, if set)."
        )
        raise ValueError(msg)
    starts = ranges[0]
    steps = (ranges[1] - starts) / 255
    steps = np.where(steps == 0, 1, steps)
    buckets = np.clip(np.floor((embeddings - starts) / steps), 0, 255)
    return buckets.astype(np.uint8) if precision == "uint8" else (buckets - 128).astype(np.int8)
