"""``laser-train``: train a LaSER checkpoint, write rationales, mine hard negatives.

    laser-train --config training/cpu_smollm2_theoremqa.yaml [--key VALUE ...]   # same as `laser-train train`
    laser-train reason --data FOLDER_OR_JSONL --generator local --model smollm2-135m-offline
    laser-train mine --data BEIR_FOLDER --model ENCODER --output train.jsonl

Every training config key is also a ``--key VALUE`` option (``laser-train train --help`` lists them).
"""

from __future__ import annotations

import argparse
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
    out = trainer.train()
    if out is not None and trainer.accelerator.is_main_process:
        print(f"Exported to {out}")
    return 0


def build_parser(argv: list[str]) -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="laser-train", description=__doc__.splitlines()[0])
    parser.add_argument("-v", "--verbose", action="store_true", help="log at INFO level")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")
    chosen = next((a for a in argv if a in SUBCOMMANDS), None)
    for name in SUBCOMMANDS:
        if name != chosen:
            sub.add_parser(name, help={"train": "train a checkpoint", "reason": "write missing rationales",
                                       "mine": "mine hard negatives"}[name])  # fmt: skip
    if chosen == "train":
        _train_parser(sub)
    elif chosen == "reason":
        from .reason import add_parser

        add_parser(sub)
    elif chosen == "mine":
        from .mine import add_parser

        add_parser(sub)
    return parser


def main(argv: list[str] | None = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    if argv and argv[0] not in SUBCOMMANDS and argv[0] not in ("-h", "--help", "-v", "--verbose"):
        argv.insert(0, "train")  # `laser-train --config x.yaml` trains
    elif argv[:1] in (["-v"], ["--verbose"]) and len(argv) > 1 and argv[1] not in SUBCOMMANDS:
        argv.insert(1, "train")
    parser = build_parser(argv)
    args, extra = parser.parse_known_args(argv)
    if extra:
        if args.command == "train":
            from .arguments import all_fields

            msg = f"Unknown config keys {extra}. Valid keys are: {sorted(all_fields())}."
        else:
            msg = f"unrecognized arguments: {' '.join(extra)}"
        print(f"laser-train: error: {msg}", file=sys.stderr)
        return 2
    logging.basicConfig(level=logging.INFO if args.verbose else logging.WARNING, format="%(levelname)s %(message)s")
    if not args.command:
        parser.print_help()
        return 2
    try:
        if args.command == "train":
            return run_train(args)
        if args.command == "reason":
            from .reason import run
        else:
            from .mine import run
        return int(run(args) or 0)
    except (ValueError, FileNotFoundError, FileExistsError) as e:
        # Bad config or data: one clear line, no traceback (nothing was trained or written).
        print(f"laser-train: error: {e}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    sys.exit(main())
