"""JSON Lines reading shared by the corpus indexer, the trainer and the evaluation loaders, and the atomic JSON
writer of ``laser eval`` and the demo."""

from __future__ import annotations

import json
import os
from collections.abc import Iterator
from pathlib import Path
from typing import Any


def read_jsonl(path: str | os.PathLike, error: type[Exception] = ValueError) -> Iterator[tuple[int, dict[str, Any]]]:
    """Yield ``(line_number, object)`` for each non-empty line of a JSON Lines file.

    Args:
        path: the file.
        error: exception class raised for a line that is not one JSON object (callers pass their own
            ``ValueError`` subclass, e.g. the trainer's ``DataError``); the message names the file and line.
    """
    path = Path(path)
    with path.open("rb") as f:  # bytes, so that a byte that is not UTF-8 is reported with its line
        for lineno, raw in enumerate(f, start=1):
            try:
                line = raw.decode("utf-8")
            except UnicodeDecodeError as e:
                msg = (
                    f"{path}:{lineno}: byte {raw[e.start]:#04x} at column {e.start + 1} is not UTF-8; save the file "
                    "as UTF-8 (e.g. `iconv -f latin1 -t utf-8`)."
                )
                raise error(msg) from e
            if not line.strip():
                continue
            try:
                obj = json.loads(line)
            except json.JSONDecodeError as e:
                msg = f"{path}:{lineno}: not valid JSON ({e.msg}); each line must hold one JSON object."
                raise error(msg) from e
            if not isinstance(obj, dict):
                msg = f"{path}:{lineno}: expected a JSON object, got {type(obj).__name__}."
                raise error(msg)
            yield lineno, obj


def write_json(path: str | os.PathLike, data: Any) -> None:
    """Write ``data`` as JSON atomically: a temporary sibling, then a rename, so an interrupted run never leaves half
    a file. The file gets the permissions any new file gets (the umask), like one written in place."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.tmp-{os.getpid()}")
    tmp.write_text(json.dumps(data, indent=1, ensure_ascii=False) + "\n", encoding="utf-8")
    tmp.replace(path)
