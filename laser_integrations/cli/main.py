"""``laser``: index, search, evaluate and demo LaSER retrieval from the shell.

Each subcommand lives in its own module of this package and exposes ``add_parser(subparsers)`` and
``run(args) -> int``; modules are imported only when their subcommand runs, so ``laser --help`` is fast.
"""

from __future__ import annotations

import argparse
import importlib
import logging
import sys

# subcommand -> (module, one-line help)
SUBCOMMANDS: dict[str, tuple[str, str]] = {
    "index": ("laser_integrations.cli.index", "embed a corpus (JSONL or BEIR folder) into Qdrant, resumably"),
    "search": ("laser_integrations.cli.search", "search an indexed collection and print the top hits"),
    "eval": ("laser_integrations.cli.eval", "evaluate models on a BEIR folder or BRIGHT (nDCG@10, Recall, MRR)"),
    "demo": ("laser_integrations.cli.demo", "the offline end-to-end demo: index, answer, compare with BM25 and MiniLM"),
}


def build_parser(argv: list[str]) -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="laser", description=__doc__.splitlines()[0])
    parser.add_argument("-v", "--verbose", action="store_true", help="log at INFO level")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")
    chosen = next((a for a in argv if a in SUBCOMMANDS), None)
    for name, (module, help_text) in SUBCOMMANDS.items():
        if name == chosen:
            importlib.import_module(module).add_parser(sub)
        else:
            sub.add_parser(name, help=help_text)
    return parser


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    parser = build_parser(argv)
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO if args.verbose else logging.WARNING, format="%(levelname)s %(message)s")
    if not args.command:
        parser.print_help()
        return 2
    module = importlib.import_module(SUBCOMMANDS[args.command][0])
    return int(module.run(args) or 0)


if __name__ == "__main__":
    sys.exit(main())
