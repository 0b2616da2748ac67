"""laser eval: score retrievers on a BEIR folder or BRIGHT, print a comparison table, write JSON and charts.

Examples::

    laser eval --model bm25 minilm ./my-laser-model --data ../shared/data/theoremqa --split dev --output results.json
    laser eval --model Alibaba-NLP/LaSER-Qwen3-0.6B --data xlangai/BRIGHT --subsets biology economics
    laser eval --model ./my-laser-model --data DIR --split dev --num-thinking-steps 1 2 3 4 5 6 --output k.json
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

from ..jsonl import write_json

LAYOUTS = """\
data layouts:
  BEIR folder:    corpus.jsonl {_id,title,text}, queries.jsonl {_id,text}, qrels/<split>.tsv
                  (query-id, corpus-id, score), optional reasoning.jsonl {_id,reasoning}
  BRIGHT:         a hub id (xlangai/BRIGHT; configs examples/documents/long_documents, one split per
                  subset) or a local folder DIR/examples/<subset>.jsonl {id,query,gold_ids,excluded_ids}
                  and DIR/documents/<subset>.jsonl {id,content} (.parquet files from a hub snapshot work
                  too). excluded_ids are removed from each ranking before scoring.
models:
  bm25 (bm25s), minilm (all-MiniLM-L6-v2, offline), st:NAME or a sentence-transformers folder,
  anything else is loaded as a LaSER encoder (hub id, folder, LoRA adapter folder, .gguf file).
outputs:
  the table on stdout; --output writes results.json (metrics under "ndcg@10"... and per-query scores),
  a bar chart next to it (<output>.png), and with several K an inference-scaling plot (<output>_scaling.png);
  --run-dir writes one TREC run file per result ("qid Q0 docid rank score name", ranx's Run.save).
"""


def add_parser(subparsers: argparse._SubParsersAction) -> argparse.ArgumentParser:
    from ..evaluation.data import DATA_FORMATS
    from ..evaluation.metrics import DEFAULT_METRICS
    from ..evaluation.run import QUERY_MODES
    from ..evaluation.search import SEARCH_BACKENDS
    from ._qdrant_args import add_allow_pickle_argument

    p = subparsers.add_parser(
        "eval",
        help="evaluate models on a BEIR folder or BRIGHT (nDCG@10, Recall, MRR)",
        description=__doc__.splitlines()[0],
        epilog=LAYOUTS,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    p.add_argument(
        "--model", nargs="+", action="extend", required=True, metavar="M", help="one or more models (see below)"
    )
    p.add_argument("--data", required=True, help="BEIR folder, BRIGHT folder, or BRIGHT hub id (xlangai/BRIGHT)")
    p.add_argument("--split", default="test", help="BEIR qrels split, e.g. dev (default: %(default)s)")
    p.add_argument(
        "--format", dest="data_format", choices=DATA_FORMATS, default="auto", help="data layout (default: %(default)s)"
    )
    p.add_argument("--subsets", nargs="+", metavar="S", help="BRIGHT subsets (default: all present)")
    p.add_argument("--long-documents", action="store_true", help="BRIGHT: rank long_documents against gold_ids_long")
    p.add_argument("--instruction", help="query instruction for every dataset (default: the dataset's or the model's)")
    p.add_argument(
        "--query-mode",
        nargs="+",
        choices=QUERY_MODES,
        default=["query"],
        help="query text, or the rationale as the query (rewrite-then-retrieve upper bound); several allowed",
    )
    p.add_argument(
        "--missing-reasoning",
        choices=("fallback", "skip"),
        default="fallback",
        help="reasoning mode, query without rationale: use its text (fallback) or leave it out (skip); counted either way",
    )
    p.add_argument(
        "--num-thinking-steps",
        nargs="+",
        type=int,
        metavar="K",
        help="K for LaSER models; several values draw the inference-scaling curve (one latent run at the largest K embeds for all)",
    )
    p.add_argument(
        "--search",
        choices=SEARCH_BACKENDS,
        default="memory",
        help="exact search in numpy or through Qdrant (same numbers)",
    )
    p.add_argument("--top-k", type=int, default=100, help="ranking depth (default: %(default)s)")
    p.add_argument(
        "--metrics", nargs="+", default=list(DEFAULT_METRICS), help="ranx metric names (default: %(default)s)"
    )
    p.add_argument("--max-queries", type=int, help="only the first N queries of each dataset (a quick look)")
    p.add_argument("--batch-size", type=int, default=8, help="encoding batch size (default: %(default)s)")
    p.add_argument(
        "--max-length",
        type=int,
        metavar="N",
        help="token budget of LaSER models' queries and documents (default: 8192 on BRIGHT, as the official "
        "harness; the model's own max lengths on a BEIR folder)",
    )
    p.add_argument(
        "--max-tokens-per-batch",
        type=int,
        metavar="N",
        help="LaSER models: at most N padded tokens a forward pass, texts sorted by length (default: when the budget "
        "is above 1024 tokens, --batch-size x 1024, so 8192-token documents go a few at a time; else plain batching)",
    )
    p.add_argument("--device", help="cpu, cuda, cuda:1, mps (default: best available)")
    p.add_argument("--dtype", help="bfloat16, float16, float32 (default: bf16 on CUDA, fp32 elsewhere)")
    p.add_argument("--output", type=Path, help="write results.json here (and charts beside it)")
    p.add_argument("--plot", type=Path, help="bar chart path (default: the --output path with .png)")
    p.add_argument("--no-progress", action="store_true", help="no progress bars")
    p.add_argument(
        "--hybrid",
        action="store_true",
        help="also score each dense model fused with BM25 (RRF in Qdrant, as `laser search --hybrid`), as MODEL+bm25",
    )
    p.add_argument(
        "--run-dir",
        type=Path,
        metavar="DIR",
        help="write each result's ranking as a TREC run file (DIR/<model>.<dataset>.trec) for trec_eval or ranx",
    )
    add_allow_pickle_argument(p)
    p.set_defaults(func=run)
    return p


def run(args: argparse.Namespace) -> int:
    from ..evaluation.data import load_datasets
    from ..evaluation.plots import bar_chart, scaling_plot
    from ..evaluation.run import comparison_table, evaluate, results_to_json

    for name in ("top_k", "batch_size", "max_length", "max_tokens_per_batch"):
        if getattr(args, name) is not None and getattr(args, name) < 1:
            print(
                f"laser eval: error: --{name.replace('_', '-')} must be a positive integer, got {getattr(args, name)}.",
                file=sys.stderr,
            )
            return 2
    if args.num_thinking_steps and min(args.num_thinking_steps) < 1:
        print(
            f"laser eval: error: --num-thinking-steps must be >= 1 (1 is last-token pooling), got {args.num_thinking_steps}.",
            file=sys.stderr,
        )
        return 2
    if args.hybrid and all(m == "bm25" for m in args.model):
        print("laser eval: error: --hybrid fuses a dense model with BM25; give one with --model (e.g. minilm).", file=sys.stderr)
        return 2
    start = time.perf_counter()
    try:
        datasets = load_datasets(
            args.data, data_format=args.data_format, split=args.split, subsets=args.subsets,
            long_documents=args.long_documents, instruction=args.instruction, max_queries=args.max_queries,
        )  # fmt: skip
        results = evaluate(
            args.model, datasets, num_thinking_steps=args.num_thinking_steps or [None], query_modes=args.query_mode,
            search=args.search, top_k=args.top_k, metrics=args.metrics, batch_size=args.batch_size, device=args.device,
            dtype=args.dtype, missing_reasoning=args.missing_reasoning, show_progress=not args.no_progress,
            max_length=args.max_length, hybrid=args.hybrid, max_tokens_per_batch=args.max_tokens_per_batch,
        )  # fmt: skip
    except (FileNotFoundError, ValueError, ImportError, RuntimeError) as e:
        from .main import report

        return report("laser eval", e)  # the exit status of the shared convention (2 bad input, 1 runtime)
    wall = time.perf_counter() - start
    print(comparison_table(results, args.metrics))
    for r in results:
        if r.queries_without_reasoning:
            verb = "left out" if args.missing_reasoning == "skip" else "searched with the query text"
            print(
                f"note: {r.label} on {r.dataset}: {r.queries_without_reasoning} queries without a rationale were {verb}."
            )
    print(f"wall time: {wall:.1f} s", file=sys.stderr)

    if args.run_dir:
        from ..evaluation.run import write_run_files

        for path in write_run_files(results, args.run_dir):
            print(f"wrote {path}", file=sys.stderr)
    metric = args.metrics[0]
    if args.output:
        config = {k: (str(v) if isinstance(v, Path) else v) for k, v in vars(args).items() if k != "func"}
        write_json(args.output, {**results_to_json(results, config), "wall_seconds": round(wall, 2)})
        print(f"wrote {args.output}", file=sys.stderr)
    plot = args.plot or (args.output.with_suffix(".png") if args.output else None)
    if plot:
        print(f"wrote {bar_chart(results, plot, metric)}", file=sys.stderr)
        if len({r.num_thinking_steps for r in results if r.num_thinking_steps is not None}) > 1:
            scaling = plot.with_name(f"{plot.stem}_scaling.png")
            print(f"wrote {scaling_plot(results, scaling, metric)}", file=sys.stderr)
    return 0
