"""Held-back folds of a BEIR training split, for comparing two recipes on questions no choice of recipe has seen.

    python training/heldout_folds.py --data ../shared/data/theoremqa --out runs/heldout --folds 2

TheoremQA's test split is not distributed, and the recipes were chosen on dev, so dev scores favour the choice.
Fold i (``OUT/fold1`` ... ``OUT/foldN``) trains on the other folds' questions (``qrels/train.tsv``) and holds its
own back (``qrels/test.tsv``); scored on every fold, each training question is judged once by a model that never
trained on it. The questions are shuffled with ``--seed`` before the split. A fold is a folder of symlinks to the
set's files (corpus, queries, rationales, the other qrels), so nothing is copied, plus its two qrels files.
"""

from __future__ import annotations

import argparse
import os
import random
import sys
import tempfile
from pathlib import Path

from laser_integrations.evaluation.data import read_qrels
from laser_integrations.testing import shared_dir


def split_questions(qids: list[str], folds: int, seed: int) -> list[list[str]]:
    """The questions shuffled with ``seed`` and dealt into ``folds`` parts whose sizes differ by at most one."""
    order = sorted(qids)  # the file's order must not matter, only the seed
    random.Random(seed).shuffle(order)
    return [order[i::folds] for i in range(folds)]


def _write_qrels(path: Path, qrels: dict[str, dict[str, int]], qids: list[str]) -> None:
    """Write atomically: a killed run leaves the old file or none, never half of one."""
    with tempfile.NamedTemporaryFile("w", dir=path.parent, delete=False, encoding="utf-8", newline="") as f:
        f.write("query-id\tcorpus-id\tscore\n")
        for qid in sorted(qids):
            for did, rel in qrels[qid].items():
                f.write(f"{qid}\t{did}\t{rel}\n")
    os.chmod(f.name, 0o644)  # a temporary file is private; these are data files like the set's
    os.replace(f.name, path)


def write_folds(data: Path, out: Path, *, folds: int = 2, seed: int = 0, split: str = "train") -> list[Path]:
    """Write ``out/fold1`` ... ``out/fold<folds>``; returns their paths."""
    if folds < 2:
        raise ValueError(f"--folds must be at least 2, got {folds}: one fold would hold every question back.")
    qrels_dir = data / "qrels"
    if not (qrels_dir / f"{split}.tsv").is_file():
        raise ValueError(f"{qrels_dir / f'{split}.tsv'} not found: pass --data a BEIR folder with that split.")
    if (qrels_dir / "test.tsv").exists():
        raise ValueError(f"{data} already has qrels/test.tsv: score on that split instead of holding back folds.")
    qrels = read_qrels(qrels_dir / f"{split}.tsv")
    parts = split_questions(list(qrels), folds, seed)
    written = []
    for i, held in enumerate(parts, start=1):
        fold = out / f"fold{i}"
        (fold / "qrels").mkdir(parents=True, exist_ok=True)
        for item in [*data.glob("*.jsonl"), *(p for p in qrels_dir.glob("*.tsv") if p.stem != split)]:
            link = fold / item.relative_to(data)
            link.unlink(missing_ok=True)
            link.symlink_to(item.resolve())
        trained = [q for j, part in enumerate(parts, start=1) if j != i for q in part]
        _write_qrels(fold / "qrels" / "train.tsv", qrels, trained)
        _write_qrels(fold / "qrels" / "test.tsv", qrels, held)
        written.append(fold)
    return written


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    shared = shared_dir()
    default = shared / "data" / "theoremqa" if shared else None
    parser.add_argument("--data", type=Path, default=default, help="BEIR folder (default: ../shared/data/theoremqa)")
    parser.add_argument("--out", type=Path, required=True, help="folder for fold1 ... foldN")
    parser.add_argument("--folds", type=int, default=2)
    parser.add_argument("--seed", type=int, default=0, help="shuffles the questions before they are dealt")
    parser.add_argument("--split", default="train", help="the qrels split to fold (default: train)")
    args = parser.parse_args(argv)
    if args.data is None:
        parser.error("--data is required: ../shared was not found (or set LASER_SHARED_DIR)")
    try:
        folds = write_folds(args.data, args.out, folds=args.folds, seed=args.seed, split=args.split)
    except ValueError as e:
        print(f"error: {e}", file=sys.stderr)
        return 2
    for fold in folds:
        print(f"{fold}: {len(read_qrels(fold / 'qrels' / 'train.tsv'))} questions to train on, "
              f"{len(read_qrels(fold / 'qrels' / 'test.tsv'))} held back")  # fmt: skip
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
