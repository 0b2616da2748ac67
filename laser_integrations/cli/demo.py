"""``laser demo``: the main job, offline and end to end.

Loads the LaSER checkpoint shipped with the package (a LoRA adapter on the offline SmolLM2-135M; ``--train``
retrains it from scratch with the project's trainer, ``--model`` uses another), indexes the shipped reasoning-QA
corpus into embedded Qdrant through a Haystack pipeline, answers the test questions, and prints its top hits next to
BM25's and all-MiniLM-L6-v2's, with nDCG@10 for those and the untrained backbone. A second run with the same
``--workdir`` reuses what the first built.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path


def add_parser(subparsers: argparse._SubParsersAction) -> argparse.ArgumentParser:
    from ..demo.run import DEMO_DATA, DEMO_TRAINING, default_workdir

    parser = subparsers.add_parser(
        "demo",
        help="the offline end-to-end demo: load (or train) a checkpoint, index, answer, compare",
        description=__doc__.split("\n\n")[1].replace("\n", " "),
    )
    parser.add_argument("--workdir", type=Path, default=default_workdir(),
                        help="where the checkpoint, Qdrant folders and results.json live; reused by the next run "
                        "(default: %(default)s)")  # fmt: skip
    parser.add_argument("--model", default=None,
                        help="a LaSER checkpoint (hub id or folder, e.g. Alibaba-NLP/LaSER-Qwen3-0.6B) to use instead "
                        "of the shipped demo checkpoint")  # fmt: skip
    parser.add_argument("--train", action="store_true",
                        help="train the checkpoint from scratch with the demo recipe (laser_integrations.demo."
                        "DEMO_TRAINING, the one that made the shipped checkpoint) instead of loading the shipped one")
    parser.add_argument("--backbone", default=None,
                        help="the untrained model to train from and compare with: hub id, folder, .gguf or "
                        "'smollm2-135m-offline' (default: smollm2-135m-offline; giving one trains from it)")  # fmt: skip
    parser.add_argument("--data", type=Path, default=DEMO_DATA,
                        help="a BEIR folder with qrels/train.tsv and qrels/test.tsv (default: the shipped demo data)")
    budget = parser.add_mutually_exclusive_group()
    budget.add_argument("--max-steps", type=int, default=None,
                        help=f"training steps, with --train (default: {DEMO_TRAINING['max_steps']})")
    budget.add_argument("--num-epochs", type=float, default=None,
                        help="with --train: train this many epochs instead of --max-steps")
    parser.add_argument("--questions", type=int, default=5, help="test questions shown side by side (default: %(default)s)")
    parser.add_argument("--top-k", type=int, default=3, help="hits shown per model and question (default: %(default)s)")
    parser.add_argument("--rebuild", action="store_true", help="delete what earlier runs built in --workdir first")
    parser.set_defaults(command="demo")
    return parser


def run(args: argparse.Namespace) -> int:
    import os

    # An offline demo: Haystack's usage telemetry would only retry against an unreachable server and print warnings.
    # An explicit setting of the user's wins. (Read when haystack is first imported, so set before that.)
    os.environ.setdefault("HAYSTACK_TELEMETRY_ENABLED", "False")
    from ..demo.run import DemoOptions, check_options, run_demo
    from ..qdrant import CollectionDimensionError, StorageLockedError

    if (args.max_steps is not None and args.max_steps < 1) or (args.num_epochs is not None and args.num_epochs <= 0):
        print("laser demo: --max-steps and --num-epochs must be positive.", file=sys.stderr)
        return 2
    options = DemoOptions(
        workdir=args.workdir, model=args.model, train=args.train, backbone=args.backbone, data=args.data,
        max_steps=args.max_steps, num_epochs=args.num_epochs, questions=args.questions, top_k=args.top_k,
        rebuild=args.rebuild,
    )  # fmt: skip
    try:
        check_options(options)
    except ValueError as e:  # options that contradict each other: bad usage
        print(f"laser demo: {e}", file=sys.stderr)
        return 2
    try:
        run_demo(options)
    except (OSError, ValueError, StorageLockedError, CollectionDimensionError) as e:
        # Bad data or options, a locked Qdrant folder, a checkpoint that cannot be loaded: one line, no traceback.
        print(f"laser demo: error: {e}", file=sys.stderr)
        return 1
    return 0
