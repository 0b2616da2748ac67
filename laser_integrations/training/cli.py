"""``laser-train``: train a LaSER checkpoint, write rationales, mine hard negatives.

    laser-train --config training/cpu_smollm2_theoremqa.yaml [--key VALUE ...]   # same as `laser-train train`
    laser-train reason --data FOLDER_OR_JSONL --generator local --model smollm2-135m-offline
    laser-train mine --data BEIR_FOLDER --model ENCODER --output train.jsonl

Every training config key is also a ``--key VALUE`` option (``laser-train train --help`` lists them).
"""

from __future__ import annotations

import argparse
import importlib
import logging
import sys

SUBCOMMANDS = ("train", "reason", "mine")


def _train_parser(sub: argparse._SubParsersAction) -> None:
    from .arguments import add_arguments

    parser = sub.add_parser("train", help="train with dual-view self-distillation (or an ablation)",
                            description="Train a LaSER checkpoint. Config keys come from --config YAML and --key VALUE.")  # fmt: skip
    add_arguments(parser)


def run_train(args: argparse.Namespace) -> int:
    from .arguments import config_from_args
    from .trainer import LaSERTrainer

    config = config_from_args(args)
    trainer = LaSERTrainer(config)
    out = trainer.train()  # the allow_pickle key reaches every load through the trainer
    if out is not None and trainer.accelerator.is_main_process:
        print(f"Exported to {out}")
    return 0


def build_parser(argv: list[str]) -> argparse.ArgumentParser:
    from ..cli.main import Parser, version

    # Parser: no prefix matching (--learning_rat is not --learning_rate), and --help states the exit codes.
    parser = Parser(prog="laser-train", description=__doc__.splitlines()[0])
    parser.add_argument("-v", "--verbose", action="store_true", help="log at INFO level (and show tracebacks)")
    parser.add_argument("--version", action="version", version=f"laser-train {version()}")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND", parser_class=Parser)
    chosen = next((a for a in argv if a in SUBCOMMANDS), None)
    for name in SUBCOMMANDS:
        if name != chosen:
            sub.add_parser(name, help={"train": "train a checkpoint", "reason": "write missing rationales",
                                       "mine": "mine hard negatives"}[name])  # fmt: skip
    if chosen == "train":
        _train_parser(sub)
    elif chosen in ("reason", "mine"):
        from ..cli._qdrant_args import add_allow_pickle_argument

        module = importlib.import_module(f"{__package__}.{chosen}")
        module.add_parser(sub)
        add_allow_pickle_argument(sub.choices[chosen])  # both load a checkpoint (the generator, the encoder)
    return parser


def _unknown_keys(extra: list[str]) -> list[str]:
    """The option names among left-over arguments (``--learnin_rate 0.1`` -> ``['learnin_rate']``), never values."""
    return [token[2:].split("=", 1)[0] for token in extra if token.startswith("--")]


def main(argv: list[str] | None = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    if argv and argv[0] not in SUBCOMMANDS and argv[0] not in ("-h", "--help", "-v", "--verbose", "--version"):
        argv.insert(0, "train")  # `laser-train --config x.yaml` trains
    elif argv[:1] in (["-v"], ["--verbose"]) and len(argv) > 1 and argv[1] not in SUBCOMMANDS:
        argv.insert(1, "train")
    parser = build_parser(argv)
    args, extra = parser.parse_known_args(argv)
    if extra:
        keys = _unknown_keys(extra)
        if args.command == "train" and keys:
            import difflib

            from .arguments import all_fields

            close = {k: difflib.get_close_matches(k, all_fields(), n=1) for k in keys}
            hints = "".join(f" Did you mean --{m[0]} (for --{k})?" for k, m in close.items() if m)
            msg = f"Unknown config keys {keys}.{hints} Valid keys are: {sorted(all_fields())}."
        else:
            msg = f"unrecognized arguments: {' '.join(extra)}"
        print(f"laser-train: error: {msg}", file=sys.stderr)
        return 2
    logging.basicConfig(level=logging.INFO if args.verbose else logging.WARNING, format="%(levelname)s %(message)s")
    if not args.command:
        parser.print_help()
        return 2
    from ..cli.main import report
    from ..loading import allowing_pickle

    try:
        if args.command == "train":
            return run_train(args)
        module = importlib.import_module(f"{__package__}.{args.command}")
        with allowing_pickle(getattr(args, "allow_pickle", False)):
            return int(module.run(args) or 0)
    except Exception as e:  # noqa: BLE001 - report() re-raises what is not a user-facing failure
        # Bad config or data (2) or a runtime failure (1): one clear line, the traceback only with --verbose.
        return report("laser-train", e, args.verbose)


if __name__ == "__main__":
    sys.exit(main())
