"""Options shared by ``laser index`` and ``laser search``: the model and where the Qdrant collection is."""

from __future__ import annotations

import argparse
import copy
from pathlib import Path
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


# The settings a new Qdrant Edge shard of `laser index` gets, chosen for 10^6 LaSER vectors on one machine
# (docs/edge.md, "A million points"): a denser graph than Qdrant's default (m=16, ef_construct=100) for recall
# on crowded neighbourhoods, int8 copies in RAM for the graph walk (a quarter of the float vectors' memory) and
# the float vectors on disk, read only to rescore the best candidates.
EDGE_INDEX_DEFAULTS: dict[str, Any] = {"m": 32, "ef_construct": 128, "quantization": "int8", "on_disk": True}
# --quantization int8 in Qdrant's REST form (laser_integrations.edge / qdrant-client take it as it is).
INT8_QUANTIZATION: dict[str, Any] = {"scalar": {"type": "int8", "quantile": 0.99, "always_ram": True}}
# Oversampling 4: recall@10 0.983 at 10^6 x 576 with p50 2.4 ms; 2.0 gave 0.900 (docs/edge.md, edge_million.py).
EDGE_SEARCH_DEFAULTS: dict[str, Any] = {"hnsw_ef": 256, "oversampling": 4.0}


def add_index_settings(parser: argparse.ArgumentParser) -> None:
    """``laser index``'s HNSW and storage settings of a new collection."""
    group = parser.add_argument_group(
        "HNSW index and vector storage of a new collection (default on a new Qdrant Edge folder: "
        f"--hnsw-m {EDGE_INDEX_DEFAULTS['m']} --hnsw-ef-construct {EDGE_INDEX_DEFAULTS['ef_construct']} "
        "--quantization int8 --on-disk; an existing one keeps its settings unless given)"
    )
    group.add_argument("--hnsw-m", type=int, default=None, metavar="M", help="HNSW edges per node")
    group.add_argument("--hnsw-ef-construct", type=int, default=None, metavar="EF", help="HNSW build beam width")
    group.add_argument("--quantization", choices=("int8", "none"), default=None,
                       help="int8: scalar quantization kept in RAM (searches rescore with the float vectors)")  # fmt: skip
    group.add_argument("--on-disk", action=argparse.BooleanOptionalAction, default=None,
                       help="keep the float vectors on disk, memory-mapped, instead of in RAM")  # fmt: skip


def add_search_settings(parser: argparse.ArgumentParser) -> None:
    """``laser search``'s Qdrant Edge search settings."""
    group = parser.add_argument_group("HNSW search (Qdrant Edge folders)")
    group.add_argument("--hnsw-ef", type=int, default=None, metavar="EF",
                       help=f"search beam width (default on Edge: {EDGE_SEARCH_DEFAULTS['hnsw_ef']})")  # fmt: skip
    group.add_argument("--oversampling", type=float, default=None, metavar="X",
                       help="with int8 quantization: rescore X * top-k candidates with the float vectors "
                       f"(default on Edge: {EDGE_SEARCH_DEFAULTS['oversampling']})")  # fmt: skip
    group.add_argument("--exact", action="store_true", help="exact search (every vector compared), no HNSW")


def _on_edge(args: argparse.Namespace) -> bool:
    from ..qdrant import resolve_engine

    return not args.url and resolve_engine(args.engine, path=args.path or DEFAULT_PATH) == "edge"


def index_settings(args: argparse.Namespace) -> dict[str, Any]:
    """``open_document_store`` keywords for ``laser index``'s HNSW/storage flags.

    A new Edge collection (or ``--recreate``) gets :data:`EDGE_INDEX_DEFAULTS` for what is not given; an
    existing one keeps its stored settings unless a flag asks otherwise. Elsewhere only given flags are passed
    (a server applies them to a new collection; qdrant-client's local mode refuses them, naming them).
    """
    given = {"m": args.hnsw_m, "ef_construct": args.hnsw_ef_construct, "quantization": args.quantization,
             "on_disk": args.on_disk}  # fmt: skip
    for name in ("m", "ef_construct"):
        if given[name] is not None and given[name] < (0 if name == "m" else 4):
            msg = f"--hnsw-{name.replace('_', '-')} must be at least {0 if name == 'm' else 4}, got {given[name]}."
            raise ValueError(msg)
    stored: dict[str, Any] = {}
    if _on_edge(args):
        from .. import edge

        folder = Path(args.path or DEFAULT_PATH).expanduser() / args.collection
        stored = {} if args.recreate else edge.stored_config(folder) or {}
        if not stored:
            given = {k: EDGE_INDEX_DEFAULTS[k] if v is None else v for k, v in given.items()}
    kwargs: dict[str, Any] = {}
    hnsw = {k: given[k] for k in ("m", "ef_construct") if given[k] is not None}
    if hnsw and stored.get("hnsw_config"):  # Edge wants every HNSW key: the stored ones, not Qdrant's defaults
        hnsw = {k: stored["hnsw_config"][k] for k in ("m", "ef_construct", "full_scan_threshold")} | hnsw
    if hnsw:
        kwargs["hnsw_config"] = hnsw
    if given["quantization"] == "int8":
        kwargs["quantization_config"] = copy.deepcopy(INT8_QUANTIZATION)  # a store may keep and change its own
    elif given["quantization"] == "none":
        # Edge keeps a stored quantization when given none; removing it needs a rebuilt collection.
        if stored.get("quantization_config"):
            msg = "--quantization none cannot remove the quantization of an existing collection; add --recreate."
            raise ValueError(msg)
    if given["on_disk"] is not None:
        kwargs["on_disk"] = given["on_disk"]
    return kwargs


def search_settings(args: argparse.Namespace) -> dict[str, Any]:
    """``open_document_store`` keywords for ``laser search``'s flags: Edge's ``search_params`` (defaults
    :data:`EDGE_SEARCH_DEFAULTS`); refused elsewhere, where this command cannot apply them."""
    if not _on_edge(args):
        given = [f for f, v in (("--hnsw-ef", args.hnsw_ef), ("--oversampling", args.oversampling),
                                ("--exact", args.exact or None)) if v is not None]  # fmt: skip
        if given:
            msg = (
                f"{', '.join(given)} apply to Qdrant Edge folders only; this search goes to "
                f"{'a Qdrant server' if args.url else 'qdrant-client local mode (exact search)'}. Remove them."
            )
            raise ValueError(msg)
        return {}
    if args.exact:
        if args.hnsw_ef is not None or args.oversampling is not None:
            msg = "--exact compares every vector; --hnsw-ef and --oversampling do not apply. Give one or the other."
            raise ValueError(msg)
        return {"search_params": {"exact": True}}
    ef = EDGE_SEARCH_DEFAULTS["hnsw_ef"] if args.hnsw_ef is None else args.hnsw_ef
    oversampling = EDGE_SEARCH_DEFAULTS["oversampling"] if args.oversampling is None else args.oversampling
    if ef < 1 or oversampling < 1:
        msg = f"--hnsw-ef must be >= 1 and --oversampling >= 1.0, got {ef} and {oversampling}."
        raise ValueError(msg)
    # The quantization part is ignored by Qdrant on a collection without quantization.
    return {"search_params": {"hnsw_ef": ef, "quantization": {"rescore": True, "oversampling": oversampling}}}


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
