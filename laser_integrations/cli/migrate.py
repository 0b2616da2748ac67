"""``laser migrate --from-path DIR (--to-url URL | --to-path NEW_DIR)``: copy a collection out of an embedded folder.

The source is a folder of Qdrant Edge collections (the default embedded engine) or one written by qdrant-client's
local mode (earlier versions), which is only read. ``--to-url`` moves the collection up to a Qdrant server or
cluster; ``--to-path`` converts it into a new Qdrant Edge folder. Points keep their ids, vectors and payloads, and
the collection keeps the record of the model that filled it. A stopped run resumes when the same command is run
again, with no point missing or duplicated.
"""

from __future__ import annotations

import argparse
import os
import sys

from ..migrate import DEFAULT_BATCH_SIZE
from ..qdrant import API_KEY_ENV


def add_parser(subparsers: argparse._SubParsersAction) -> argparse.ArgumentParser:
    parser = subparsers.add_parser(
        "migrate",
        help="copy an embedded collection to a Qdrant server or a new Qdrant Edge folder, resumably",
        description=__doc__.splitlines()[0].replace("``", ""),
        epilog="Examples: laser migrate --from-path laser_qdrant --to-url http://localhost:6333; "
        "laser migrate --from-path old_laser_qdrant --to-path laser_qdrant (a local-mode folder into Qdrant Edge).",
    )
    parser.add_argument("--from-path", required=True, metavar="DIR",
                        help="embedded Qdrant folder to read: Qdrant Edge collections or qdrant-client's local mode")  # fmt: skip
    parser.add_argument("--collection", default=None, help="collection to copy (default: the only one in DIR)")
    target = parser.add_mutually_exclusive_group(required=True)
    target.add_argument("--to-url", default=None, metavar="URL", help="Qdrant server or cluster, e.g. http://localhost:6333")
    target.add_argument("--to-path", default=None, metavar="NEW_DIR", help="a new (or empty) Qdrant Edge folder")
    parser.add_argument("--to-collection", default=None, metavar="NAME", help="target collection (default: the source's name)")
    parser.add_argument("--api-key-env", default=API_KEY_ENV, metavar="VAR",
                        help="environment variable holding the server's API key (default: %(default)s)")  # fmt: skip
    parser.add_argument("--batch-size", type=int, default=DEFAULT_BATCH_SIZE, help="points per scroll page (default: %(default)s)")
    parser.add_argument("--recreate", action="store_true", help="drop the target collection first (its points are lost)")
    parser.add_argument("--no-progress", action="store_true", help="no progress bar")
    parser.set_defaults(command="migrate")
    return parser


def run(args: argparse.Namespace) -> int:
    from ..migrate import migrate
    from ..qdrant import _is_connection_error, _require, _unreachable

    if args.to_path is not None:
        result = migrate(args.from_path, to_path=args.to_path, collection=args.collection,
                         to_collection=args.to_collection, batch_size=args.batch_size, recreate=args.recreate,
                         progress=not args.no_progress)  # fmt: skip
    else:
        _require("qdrant_client", "qdrant")
        from qdrant_client import QdrantClient

        # The key is read from the environment and handed to the client only: never printed or logged.
        key = os.environ.get(args.api_key_env) or None
        client = QdrantClient(url=args.to_url, api_key=key)
        try:
            result = migrate(args.from_path, to_client=client, collection=args.collection,
                             to_collection=args.to_collection, batch_size=args.batch_size, recreate=args.recreate,
                             progress=not args.no_progress, to_where=f"Qdrant server {args.to_url}")  # fmt: skip
        except Exception as e:
            if _is_connection_error(e):
                raise _unreachable(args.to_url, e) from e
            raise
        finally:
            client.close()
    how = "resumed and finished" if result.resumed else "copied"
    model = (result.provenance or {}).get("checkpoint", "no model record")
    print(f"{how} {result.points} points of {result.collection!r} into {result.target} ({model})", file=sys.stdout)
    return 0
