"""Options shared by ``laser index`` and ``laser search``: the model and where the Qdrant collection is."""

from __future__ import annotations

import argparse
from typing import Any

from ..qdrant import API_KEY_ENV, DEFAULT_COLLECTION, DEFAULT_PATH, ENGINES

DEFAULT_MODEL = "Alibaba-NLP/LaSER-Qwen3-0.6B"


def add_model_arguments(parser: argparse.ArgumentParser) -> None:
    group = parser.add_argument_group("model")
    group.add_argument("--model", default=DEFAULT_MODEL, help="hub id or local folder of a LaSER checkpoint (default: %(default)s)")
    group.add_argument("--device", default=None, help="cpu, cuda, cuda:1, mps (default: CUDA > MPS > CPU)")
    group.add_argument("--num-thinking-steps", type=int, default=None, metavar="K", help="latent thinking steps (default: the checkpoint's)")
    group.add_argument("--instruction", default=None, help="task instruction (default: the checkpoint's)")
    group.add_argument("--batch-size", type=int, default=32, help="texts embedded at once (default: %(default)s)")
    group.add_argument("--local-files-only", action="store_true", help="never reach the Hugging Face Hub")
    add_allow_pickle_argument(group)


def add_allow_pickle_argument(parser: argparse.ArgumentParser | argparse._ArgumentGroup) -> None:
    """``--allow-pickle``, for every command that loads a checkpoint (``laser.cli.main`` applies it to every load)."""
    parser.add_argument("--allow-pickle", action="store_true",
                        help="also load pickled pytorch_model.bin weights (they can run code: only files you trust)")  # fmt: skip


def add_store_arguments(parser: argparse.ArgumentParser) -> None:
    group = parser.add_argument_group("Qdrant (an embedded Qdrant Edge folder by default, or a server with --url)")
    where = group.add_mutually_exclusive_group()
    where.add_argument("--path", default=None, help=f"embedded Qdrant folder, no server needed (default: ./{DEFAULT_PATH})")
    where.add_argument("--url", default=None, help="Qdrant server or cluster, e.g. http://localhost:6333 (the scale-out path)")
    group.add_argument("--api-key-env", default=API_KEY_ENV, metavar="VAR", help="environment variable holding the server's API key (default: %(default)s)")
    group.add_argument("--collection", default=DEFAULT_COLLECTION, help="collection name (default: %(default)s)")
    group.add_argument("--engine", choices=ENGINES, default="auto",
                       help="auto (default): Qdrant Edge for --path, qdrant-client for --url; client: read or write "
                       "a folder of qdrant-client's local mode (earlier versions' embedded store)")  # fmt: skip


def missing_haystack() -> str | None:
    """An install hint when the Haystack extra (which the CLI runs on) is missing, else None."""
    try:
        import haystack  # noqa: F401
        import haystack_integrations.document_stores.qdrant  # noqa: F401
    except ImportError as e:
        return f"{e.name or e} is not installed; install it with pip: `pip install laser-integrations[haystack]`."
    return None


def embedder_kwargs(args: argparse.Namespace) -> dict[str, Any]:
    """Init arguments of the LaSER Haystack components from the command line."""
    from haystack.utils import ComponentDevice

    return {
        "model": args.model,
        "device": ComponentDevice.from_str(args.device) if args.device else None,
        "num_thinking_steps": args.num_thinking_steps,
        "instruction": args.instruction,
        "local_files_only": args.local_files_only,
    }


def store_kwargs(args: argparse.Namespace) -> dict[str, Any]:
    """Arguments of ``open_document_store`` from the command line (the API key only as an env-var reference)."""
    from haystack.utils import Secret

    kwargs: dict[str, Any] = {"collection": args.collection, "engine": args.engine}
    if args.url:
        kwargs.update(url=args.url, api_key=Secret.from_env_var(args.api_key_env, strict=False))
    else:
        kwargs["path"] = args.path
    return kwargs


def embedded_local_mode(args: argparse.Namespace) -> bool:
    """Whether the command runs on qdrant-client's local mode (``--engine client`` with a folder): the engine
    that searches by brute force, past whose size limit it warns."""
    from ..qdrant import resolve_engine

    return not args.url and resolve_engine(args.engine, path=args.path or DEFAULT_PATH) == "client"


def where(args: argparse.Namespace) -> str:
    return f"Qdrant server {args.url}" if args.url else f"embedded Qdrant folder {args.path or DEFAULT_PATH!r}"
