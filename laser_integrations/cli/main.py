"""``laser``: index, search, evaluate and demo LaSER retrieval from the shell.

Each subcommand lives in its own module of this package and exposes ``add_parser(subparsers)`` and
``run(args) -> int``; modules are imported only when their subcommand runs, so ``laser --help`` is fast.
A subcommand signals a failure by raising: :func:`exit_code` turns the exception into one line on stderr and
the exit status below, the same for ``laser`` and ``laser-train``.
"""

from __future__ import annotations

import argparse
import contextlib
import importlib
import logging
import sys
import traceback
import warnings
from collections.abc import Iterator

EXIT_OK, EXIT_FAILURE, EXIT_USAGE = 0, 1, 2
EXIT_CODES_HELP = (
    "Exit status: 0 success; 1 runtime failure (Qdrant server unreachable, folder locked by another process, "
    "I/O or load error); 2 bad usage or bad input (unknown or invalid option, bad corpus, config or checkpoint "
    "file, missing collection, collection indexed by another model)."
)


class Parser(argparse.ArgumentParser):
    """An ArgumentParser without prefix matching (``--top 3`` is not ``--top-k 3``) that states the exit codes."""

    def __init__(self, *args, **kwargs) -> None:  # noqa: ANN002, ANN003 - argparse's own signature
        kwargs.setdefault("allow_abbrev", False)
        epilog = kwargs.get("epilog")
        kwargs["epilog"] = f"{epilog}\n\n{EXIT_CODES_HELP}" if epilog else EXIT_CODES_HELP
        super().__init__(*args, **kwargs)


def exit_code(error: BaseException) -> int | None:
    """The exit status for an exception a command raised, or None for one that is a bug (shown as a traceback)."""
    from ..qdrant import QdrantUnreachableError, StorageLockedError

    if isinstance(error, (StorageLockedError, QdrantUnreachableError)):
        return EXIT_FAILURE
    if isinstance(error, (ValueError, TypeError, FileNotFoundError, FileExistsError, NotADirectoryError,
                          IsADirectoryError)):  # fmt: skip
        return EXIT_USAGE
    if isinstance(error, (OSError, RuntimeError, ImportError)):
        return EXIT_FAILURE
    return None


def report(prog: str, error: BaseException, verbose: bool = False) -> int:
    """Print ``prog: error: message`` (the traceback too with --verbose) and return the exit status; re-raise a bug."""
    code = exit_code(error)
    if code is None:
        raise error
    if verbose:
        traceback.print_exception(error, file=sys.stderr)
    print(f"{prog}: error: {error}", file=sys.stderr)
    return code


def version() -> str:
    from importlib.metadata import PackageNotFoundError
    from importlib.metadata import version as package_version

    try:
        return package_version("laser-integrations")
    except PackageNotFoundError:  # a source tree that was not installed
        from .. import __version__

        return __version__

# subcommand -> (module, one-line help)
SUBCOMMANDS: dict[str, tuple[str, str]] = {
    "index": ("laser_integrations.cli.index", "embed a corpus (JSONL or BEIR folder) into Qdrant, resumably"),
    "search": ("laser_integrations.cli.search", "search an indexed collection and print the top hits"),
    "eval": ("laser_integrations.cli.eval", "evaluate models on a BEIR folder or BRIGHT (nDCG@10, Recall, MRR)"),
    "migrate": ("laser_integrations.cli.migrate",
                "copy an embedded collection to a Qdrant server (--to-url) or a new Qdrant Edge folder (--to-path)"),
    "demo": ("laser_integrations.cli.demo", "the offline end-to-end demo: index, answer, compare with BM25 and MiniLM"),
}


def build_parser(argv: list[str]) -> argparse.ArgumentParser:
    parser = Parser(prog="laser", description=__doc__.splitlines()[0])
    parser.add_argument("-v", "--verbose", action="store_true", help="log at INFO level (and show tracebacks)")
    parser.add_argument("--version", action="version", version=f"laser {version()}")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND", parser_class=Parser)
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
    from ..loading import allowing_pickle

    # qdrant-client's note, from a background thread, when a server does not answer; the command itself then
    # fails with one line naming the URL. (Process-wide: the thread may outlive the command.)
    warnings.filterwarnings("ignore", message="Failed to obtain server version")
    module = importlib.import_module(SUBCOMMANDS[args.command][0])
    prog = f"laser {args.command}"
    try:
        with allowing_pickle(getattr(args, "allow_pickle", False)), one_line_warnings(prog):
            return int(module.run(args) or 0)
    except Exception as e:  # noqa: BLE001 - report() re-raises what is not a user-facing failure
        return report(prog, e, args.verbose)


@contextlib.contextmanager
def one_line_warnings(prog: str) -> Iterator[None]:
    """Show each library warning (a collection of another model, a large embedded collection...) once, as
    ``prog: warning: message`` on stderr instead of Python's file:line form."""

    def show(message, category, filename, lineno, file=None, line=None) -> None:  # noqa: ANN001, ARG001
        print(f"{prog}: warning: {message}", file=sys.stderr)

    with warnings.catch_warnings():
        warnings.simplefilter("default")
        warnings.filterwarnings("ignore", message="Failed to obtain server version")  # see main()
        warnings.showwarning = show
        yield


if __name__ == "__main__":
    sys.exit(main())
