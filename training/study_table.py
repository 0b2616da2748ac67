"""Tables and charts of the TheoremQA study (``training/theoremqa_study.sh``) for ``training/RESULTS.md``.

    python training/study_table.py [--runs runs/study] [--plots RUNS/plots]
    python training/study_table.py --folds runs/heldout/study-fold1 runs/heldout/study-fold2

Reads ``RUN/eval.json`` (written by ``laser eval``) and ``RUN/wall.json`` of every run, prints one Markdown row
per (run, K, query mode) with the command that reproduces it, a per-objective mean over seeds with the seed
spread, a paired comparison of each LaSER recipe with its matched contrastive run and of each variant with the run it
changes in one setting (e.g. two epochs against one), and draws the dev nDCG@10
chart (best first), the seeds chart (``theoremqa_seeds.png``), the internalization-gap chart
(``theoremqa_internalization_gap.png``: question vs LLM rationale as the query, at 128 and 512 tokens) and, for each
run evaluated at several K, its
inference-scaling curve (``theoremqa_k_scaling_RUN.png``) with ``laser eval``'s own plots. ``--folds`` prints the
held-back folds' tables instead (``training/heldout_folds.py``).
"""

from __future__ import annotations

import argparse
import json
import re
import statistics
from collections.abc import Iterable
from dataclasses import replace
from pathlib import Path

from laser_integrations.evaluation.plots import _pyplot, _save, bar_chart, scaling_plot
from laser_integrations.evaluation.run import EvalResult

SEED = re.compile(r"^(?P<name>.+)-s(?P<seed>\d+)$")


def load_runs(root: Path) -> list[tuple[str, EvalResult, dict]]:
    """(run name, result relabelled with the run name, wall times) for every finished run under ``root``."""
    rows = []
    for eval_json in sorted(root.glob("*/eval.json")):
        run = eval_json.parent.name
        wall_path = eval_json.parent / "wall.json"
        wall = json.loads(wall_path.read_text()) if wall_path.is_file() else {}
        for r in json.loads(eval_json.read_text())["results"]:
            fields = {k: v for k, v in r.items() if k != "label"}
            # Every run is scored on the same dev split; the reasoned runs' records name the folder that held their
            # training data (its dev queries and qrels are links to the set's), so one dataset name for all.
            rows.append((run, replace(EvalResult(**fields), model=run, dataset="TheoremQA dev"), wall))
    return rows


def trained_k(root: Path, run: str, runs: list[tuple[str, EvalResult, dict]]) -> int | None:
    """The K ``run`` was trained with: its exported ``laser_config.json`` or, where the weights were not kept (the
    records in ``results/study_runs``), the K of its evaluation when it was evaluated at one K only."""
    config = root / run / "final" / "laser_config.json"
    if config.is_file():
        return json.loads(config.read_text()).get("num_thinking_steps")
    ks = {r.num_thinking_steps for name, r, _ in runs if name == run}
    return ks.pop() if len(ks) == 1 else None


def command(run: str, result: EvalResult, trained: int | None) -> str:
    """The study script's line for one row; ``trained`` is the K the run was trained with."""
    env = []
    if result.query_mode == "reasoning":
        env.append("REASONING=1")
    # A trained run is evaluated at its own K; any other K comes from the K = 1..6 sweep.
    if run not in ("untrained", "minilm", "bm25") and result.num_thinking_steps not in (None, trained):
        env.append("KSWEEP=1")
    return " ".join([*env, f"training/theoremqa_study.sh {run}"])


def seed_chart(per_recipe: dict[str, dict[int, float]], path: Path) -> Path:
    """One row per recipe run with several seeds, best mean on top: a dot per seed and a bar at the mean, so a gap
    between two recipes can be read against each one's seed spread."""
    plt = _pyplot()
    rows = sorted(((n, s) for n, s in per_recipe.items() if len(s) > 1), key=lambda r: statistics.mean(r[1].values()))
    fig, ax = plt.subplots(figsize=(8, 0.45 * len(rows) + 1.2))
    for y, (name, by_seed) in enumerate(rows):
        mean = statistics.mean(by_seed.values())
        colour = "tab:orange" if "contrastive" in name else "tab:blue"  # plain contrastive vs LaSER
        ax.plot(list(by_seed.values()), [y] * len(by_seed), "o", color=colour, alpha=0.7)
        ax.plot([mean, mean], [y - 0.3, y + 0.3], color="black")
        ax.annotate(f"{mean:.3f}", (max(by_seed.values()), y), xytext=(6, -3), textcoords="offset points", fontsize=7)
    ax.set_yticks(range(len(rows)), [f"{n} ({len(s)} seeds)" for n, s in rows], fontsize=8)
    ax.set_xlabel("ndcg@10 (dots: seeds, bar: mean; orange: plain contrastive, blue: LaSER)")
    ax.set_title("Seeds on TheoremQA dev")
    ax.grid(axis="x", alpha=0.3)
    return _save(plt, fig, path)


# Each LaSER recipe and the plain-contrastive run trained the same way (negatives, learning rate, steps), for the
# paired comparison: on the same dev questions, is a gap between the two larger than the questions' own noise?
# Pairs, not a dict, like VARIANTS: a recipe can be compared with more than one baseline.
MATCHED = [
    ("inprompt_lr5e4", "contrastive_lr5e4"),
    ("inprompt_lr1e3", "contrastive_lr1e3"),
    ("reasoned-inprompt_lr5e4", "contrastive_lr5e4"),
    ("hardneg-inprompt_lr5e4", "hardneg-contrastive_lr5e4"),
    ("hardneg-inprompt_lr5e4_lout1", "hardneg-contrastive_lr5e4"),
    ("hardneg-inprompt_lr5e4_clipterm", "hardneg-contrastive_lr5e4"),
    ("hardneg-inprompt_lr5e4_clipsplit", "hardneg-contrastive_lr5e4"),
    ("hardneg-inprompt_lr5e4_lout3", "hardneg-contrastive_lr5e4"),
    ("hardneg-reasoned-inprompt_lr5e4", "hardneg-contrastive_lr5e4"),
    # Plain contrastive reads no rationale, so its runs are the match for the LLM-rationale recipes too (the BM25
    # negatives are mined from the questions and the corpus only, the same file either way).
    ("hardneg-llm-inprompt_lr5e4", "hardneg-contrastive_lr5e4"),
    ("hardneg-llm-inprompt_lr5e4_2ep", "hardneg-contrastive_lr5e4_2ep"),
    ("hardneg-llm-paperlayout_lr5e4", "hardneg-contrastive_lr5e4"),
    ("hardneg-llm-inprompt_lr5e4_lmid10", "hardneg-contrastive_lr5e4"),
    ("hardneg-inprompt_lr5e4_2ep", "hardneg-contrastive_lr5e4_2ep"),
    ("hardneg-llm-inprompt_lr5e4_doc512", "hardneg-llm-contrastive_lr5e4_doc512"),
    ("hardneg-llm-inprompt_lr5e4_nowarm", "hardneg-contrastive_lr5e4"),
    # The recipe as shipped (documents trained at 128) against contrastive trained with documents at the 512 tokens
    # they are scored at, the baseline RESULTS advises: not matched in training, what a user following it would see.
    ("hardneg-llm-inprompt_lr5e4", "hardneg-llm-contrastive_lr5e4_doc512"),
    # The recipe on a held-back fold's half of the training questions (warm-up and ramp a quarter each) and
    # contrastive on the same half (--folds)
    ("hardneg-llm-inprompt_lr5e4_half", "hardneg-llm-contrastive_lr5e4"),
]

# Each variant and the run it changes in one setting, same objective and seed: did the change move the score by more
# than the questions' own noise? Pairs, not a dict: a variant can be compared with more than one run.
VARIANTS = [
    ("hardneg-llm-inprompt_lr5e4", "hardneg-inprompt_lr5e4"),  # the LLM rationales instead of the set's
    ("hardneg-llm-inprompt_lr5e4_2ep", "hardneg-llm-inprompt_lr5e4"),
    ("hardneg-llm-inprompt_lr5e4_2ep", "hardneg-inprompt_lr5e4_2ep"),
    ("hardneg-inprompt_lr5e4_2ep", "hardneg-inprompt_lr5e4"),
    ("hardneg-contrastive_lr5e4_2ep", "hardneg-contrastive_lr5e4"),
    ("hardneg-llm-paperlayout_lr5e4", "hardneg-llm-inprompt_lr5e4"),
    ("hardneg-llm-inprompt_lr5e4_lmid10", "hardneg-llm-inprompt_lr5e4"),
    ("hardneg-llm-inprompt_lr5e4_lout3", "hardneg-llm-inprompt_lr5e4"),
    ("hardneg-llm-inprompt_lr5e4_k2", "hardneg-llm-inprompt_lr5e4"),
    # Documents trained at 512 tokens instead of 128 (queries at 128 either way)
    ("hardneg-llm-inprompt_lr5e4_doc512", "hardneg-llm-inprompt_lr5e4"),
    ("hardneg-llm-contrastive_lr5e4_doc512", "hardneg-contrastive_lr5e4"),
    ("hardneg-llm-inprompt_lr5e4_nowarm", "hardneg-llm-inprompt_lr5e4"),  # distillation from step 1
]


def rationale_score(run_dir: Path, trained: int | None) -> float | None:
    """nDCG@10 of ``run_dir``'s checkpoint with the set's LLM-written rationale of every dev question as the query:
    the ``reasoning`` row of ``eval.json`` when it was scored on the LLM rationales (``REASONING=1`` since
    2026-12-04), else ``eval_llm_reasoning.json`` where a run was scored on them separately. Rows scored on the
    set's own 34 dev rationales (the rest fall back to the question) measure something else and are not used."""
    for name in ("eval.json", "eval_llm_reasoning.json"):
        path = run_dir / name
        if not path.is_file():
            continue
        record = json.loads(path.read_text())
        if not str(record["config"].get("data", "")).rstrip("/").endswith("theoremqa-llm"):
            continue
        for r in record["results"]:
            if r["query_mode"] == "reasoning" and r["num_thinking_steps"] in (None, trained):
                return r["metrics"]["ndcg@10"]
    return None


def question_rows(
    runs: list[tuple[str, EvalResult, dict]], trained: dict[str, int | None]
) -> list[tuple[str, EvalResult, dict]]:
    """Each run's row with the question as the query at the K it was trained with (None: a reference without K):
    the rows the gap and length tables and the gap chart compare against the same checkpoint reading a rationale."""
    return [(run, r, wall) for run, r, wall in runs
            if r.query_mode == "query" and r.num_thinking_steps in (None, trained[run])]  # fmt: skip


def gap_rows(root: Path, runs: list[tuple[str, EvalResult, dict]], trained: dict[str, int | None]) -> list[str]:
    """The internalization gap of every run that has both scores: the latent view with the question against the
    same checkpoint reading the LLM-written rationale (the rewrite-then-retrieve reference of that checkpoint)."""
    rows = []
    for run, r, wall in question_rows(runs, trained):
        with_rationale = rationale_score(root / run, trained[run])
        if with_rationale is None:
            continue
        question = r.metrics["ndcg@10"]
        peak = wall.get("train_peak_rss_mb")
        peak_gb = f"{peak / 1024:.1f}" if peak else ""
        rows.append(f"| {run} | {question:.4f} | {with_rationale:.4f} | {with_rationale - question:+.4f} | "
                    f"{minutes(wall.get('train_seconds'))} | {peak_gb} |")  # fmt: skip
    return rows


def results_512(folder: Path, trained: int | None) -> dict[str, dict]:
    """{query mode: result record} of ``folder/eval_512.json`` (``EVAL512=1``) at the K the run was trained with;
    empty if the run was not scored at 512 tokens."""
    path = folder / "eval_512.json"
    if not path.is_file():
        return {}
    return {r["query_mode"]: r for r in json.loads(path.read_text())["results"]
            if r["num_thinking_steps"] in (None, trained)}  # fmt: skip


def scores_512(folder: Path, trained: int | None) -> tuple[float | None, float | None]:
    """(question, LLM rationale as the query) nDCG@10 at 512 tokens, None where absent."""
    by_mode = {mode: r["metrics"]["ndcg@10"] for mode, r in results_512(folder, trained).items()}
    return by_mode.get("query"), by_mode.get("reasoning")


def per_query_512(root: Path, runs: list[tuple[str, EvalResult, dict]], trained: dict[str, int | None]
                  ) -> dict[str, dict[str, float]]:  # fmt: skip
    """{run: {question id: nDCG@10}} with the question as the query at 512 tokens, for the paired table at 512."""
    out = {}
    for run, _, _ in question_rows(runs, trained):
        question = results_512(root / run, trained[run]).get("query")
        if question is not None:
            out[run] = question["per_query"]["ndcg@10"]
    return out


def length_rows(root: Path, runs: list[tuple[str, EvalResult, dict]], trained: dict[str, int | None]) -> list[str]:
    """Every run scored at 512 tokens too: question and rationale scores at the recipe's 128 and at 512."""
    rows = []
    for run, r, _ in question_rows(runs, trained):
        question_512, rationale_512 = scores_512(root / run, trained[run])
        if question_512 is None:
            continue
        rationale = rationale_score(root / run, trained[run])
        cells = [r.metrics["ndcg@10"], rationale, question_512, rationale_512]
        text = [f"{v:.4f}" if v is not None else "" for v in cells]
        gap = f"{rationale_512 - question_512:+.4f}" if rationale_512 is not None else ""
        rows.append(f"| {run} | {' | '.join(text)} | {gap} |")
    return rows


def gap_scores(
    root: Path, runs: list[tuple[str, EvalResult, dict]], trained: dict[str, int | None]
) -> dict[int, dict[str, dict[int, tuple[float, float]]]]:
    """{tokens: {recipe: {seed: (question, LLM rationale as the query)}}} for every seeded run with both scores, at
    the recipe's 128 tokens (eval.json) and at 512 (eval_512.json)."""
    out: dict[int, dict[str, dict[int, tuple[float, float]]]] = {128: {}, 512: {}}
    for run, r, _ in question_rows(runs, trained):
        match = SEED.match(run)
        if not match:
            continue
        rationale = rationale_score(root / run, trained[run])
        if rationale is not None:
            out[128].setdefault(match["name"], {})[int(match["seed"])] = (r.metrics["ndcg@10"], rationale)
        question_512, rationale_512 = scores_512(root / run, trained[run])
        if question_512 is not None and rationale_512 is not None:
            out[512].setdefault(match["name"], {})[int(match["seed"])] = (question_512, rationale_512)
    return out


def gap_chart(scores: dict[int, dict[str, dict[int, tuple[float, float]]]], path: Path) -> Path | None:
    """The internalization gap at 128 and 512 tokens: per recipe and seed, a segment from the score with the
    question (dot) to the same checkpoint's score with the LLM rationale as the query (cross); the longer the
    segment, the more of the rationale the latent steps have yet to internalize."""
    lengths = [t for t in sorted(scores) if scores[t]]
    if not lengths:
        return None
    plt = _pyplot()
    recipes = sorted({name for t in lengths for name in scores[t]})
    fig, axes = plt.subplots(1, len(lengths), figsize=(5.5 * len(lengths), 0.6 * len(recipes) + 1.6), sharey=True,
                             squeeze=False)  # fmt: skip
    for ax, tokens in zip(axes[0], lengths):
        for y, name in enumerate(recipes):
            by_seed = scores[tokens].get(name, {})
            colour = "tab:orange" if "contrastive" in name else "tab:blue"  # plain contrastive vs LaSER
            for i, seed in enumerate(sorted(by_seed)):
                question, rationale = by_seed[seed]
                offset = y + 0.25 * (i - (len(by_seed) - 1) / 2) / max(len(by_seed), 1)
                ax.plot([question, rationale], [offset, offset], color=colour, alpha=0.6)
                ax.plot(question, offset, "o", color=colour)
                ax.plot(rationale, offset, "x", color=colour)
            if by_seed:
                gap = statistics.mean(r - q for q, r in by_seed.values())
                right = max(max(q, r) for q, r in by_seed.values())
                seeds = f"{len(by_seed)} seed" + ("s" if len(by_seed) > 1 else "")
                ax.annotate(f"gap {gap:+.3f} ({seeds})", (right, y), xytext=(6, -3),
                            textcoords="offset points", fontsize=7)  # fmt: skip
        left, right = ax.get_xlim()
        ax.set_xlim(left, right + 0.3 * (right - left))  # room for the labels
        ax.set_title(f"{tokens} tokens a text")
        ax.set_xlabel("dev nDCG@10 (o: question, x: LLM rationale as the query)")
        ax.grid(axis="x", alpha=0.3)
    axes[0][0].set_yticks(range(len(recipes)), recipes, fontsize=8)
    fig.suptitle("Internalization gap on TheoremQA dev (orange: plain contrastive, blue: LaSER)")
    return _save(plt, fig, path)


def paired_header(first: str, second: str) -> str:
    return (f"| {first} | {second} | seed | nDCG@10 difference | questions won / lost | paired t-test p | Wilcoxon p |"
            "\n|---|---|---|---:|---:|---:|---:|")  # fmt: skip


def paired_rows(per_query: dict[str, dict[str, float]], comparisons: Iterable[tuple[str, str]]) -> list[str]:
    """Markdown rows of each first run minus its second in ``comparisons`` (MATCHED: LaSER minus contrastive; VARIANTS:
    a variant minus the run it changes), per seed both ran and pooled over those seeds (each question's nDCG@10
    averaged over seeds first): mean difference, questions won / lost, and the two-sided p-values of a paired t-test
    and of a Wilcoxon signed-rank test over the dev questions (scipy)."""
    from scipy import stats

    rows = []
    for first, second in comparisons:
        seeds = sorted(int(m["seed"]) for m in map(SEED.match, per_query)
                       if m and m["name"] == first and f"{second}-s{m['seed']}" in per_query)  # fmt: skip
        pairs = []
        for seed in seeds:
            a, b = per_query[f"{first}-s{seed}"], per_query[f"{second}-s{seed}"]
            questions = sorted(a)
            pairs.append(([a[q] for q in questions], [b[q] for q in questions]))
        if len(seeds) > 1:  # each question's score averaged over the seeds, for either objective
            pairs.append(tuple([statistics.mean(v) for v in zip(*side)] for side in zip(*pairs)))
        for label, (x, y) in zip([*map(str, seeds), "pooled"], pairs):
            diff = statistics.mean(x) - statistics.mean(y)
            won, lost = sum(u > v for u, v in zip(x, y)), sum(u < v for u, v in zip(x, y))
            t_p, w_p = stats.ttest_rel(x, y).pvalue, stats.wilcoxon(x, y).pvalue
            rows.append(f"| {first} | {second} | {label} | {diff:+.4f} | {won} / {lost} | {t_p:.3f} | {w_p:.3f} |")
    return rows


def run_per_query(folder: Path, trained: int | None) -> dict[tuple[str, int], dict[str, float]]:
    """{(query mode, tokens): {question id: nDCG@10}} of one run at the K it was trained with: ``eval.json`` at the
    recipe's 128 tokens, ``eval_512.json`` at 512; a rationale row only where it read the LLM rationales."""
    out = {}
    for name, tokens in (("eval.json", 128), ("eval_512.json", 512)):
        path = folder / name
        if not path.is_file():
            continue
        record = json.loads(path.read_text())
        llm = str(record["config"].get("data", "")).rstrip("/").endswith("theoremqa-llm")
        for r in record["results"]:
            if r["num_thinking_steps"] in (None, trained) and (r["query_mode"] == "query" or llm):
                out[(r["query_mode"], tokens)] = r["per_query"]["ndcg@10"]
    return out


def fold_tables(folders: list[Path]) -> list[str]:
    """Runs scored on held-back folds (``training/heldout_folds.py``, ``SPLIT=test``), one study folder a fold: each
    run's nDCG@10 per fold and over all the folds' questions (each judged by the run trained without it), its gap,
    and the paired comparisons of MATCHED over those questions."""
    per_fold = []
    for folder in folders:
        runs = load_runs(folder)
        if not runs:
            raise SystemExit(f"No finished run under {folder}; run training/theoremqa_study.sh with SPLIT=test first.")
        per_fold.append({run: (run_per_query(folder / run, trained_k(folder, run, runs)), wall)
                         for run, _, wall in runs})  # fmt: skip
    common = [run for run in per_fold[0] if all(run in fold for fold in per_fold)]
    keys = [("query", 128), ("reasoning", 128), ("query", 512), ("reasoning", 512)]
    lines = ["| run | fold | questions | question, 128 | rationale, 128 | question, 512 | rationale, 512 | gap at 512 "
             "| train min | peak GiB |", "|---|---|---:|---:|---:|---:|---:|---:|---:|---:|"]  # fmt: skip
    union: dict[str, dict[tuple[str, int], dict[str, float]]] = {}
    for run in common:
        merged: dict[tuple[str, int], dict[str, float]] = {}
        for key in keys:
            if all(key in fold[run][0] for fold in per_fold):
                merged[key] = {}
                for fold in per_fold:
                    if set(merged[key]) & set(fold[run][0][key]):
                        raise SystemExit(f"{run}: a question is scored in two folds; the folds must hold back "
                                         "disjoint questions (training/heldout_folds.py writes them so).")  # fmt: skip
                    merged[key].update(fold[run][0][key])
        union[run] = merged
        walls = [fold[run][1] for fold in per_fold]
        rows = [(f"fold{i}", fold[run][0], [wall]) for i, (fold, wall) in enumerate(zip(per_fold, walls), start=1)]
        for label, scores, wall_list in [*rows, ("all", merged, walls)]:
            cells = [statistics.mean(scores[k].values()) if k in scores else None for k in keys]
            text = " | ".join(f"{v:.4f}" if v is not None else "" for v in cells)
            gap = f"{cells[3] - cells[2]:+.4f}" if cells[2] is not None and cells[3] is not None else ""
            train = sum(w.get("train_seconds") or 0 for w in wall_list)
            peak = max(w.get("train_peak_rss_mb") or 0 for w in wall_list)
            count = len(scores[("query", 128)]) if ("query", 128) in scores else ""
            lines.append(f"| {run} | {label} | {count} | {text} | {gap} | {minutes(train)} | "
                         f"{f'{peak / 1024:.1f}' if peak else ''} |")  # fmt: skip
    for tokens in (128, 512):
        per_query = {run: scores[("query", tokens)] for run, scores in union.items() if ("query", tokens) in scores}
        lines += ["", f"Paired over every fold's held-back questions, {tokens} tokens a text:", "",
                  paired_header("LaSER", "contrastive"), *paired_rows(per_query, MATCHED)]  # fmt: skip
    return lines


def minutes(seconds: float | None) -> str:
    return f"{seconds / 60:.1f}" if seconds else ""


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", default="runs/study", help="the study's output folder")
    # Beside the runs by default: drawing into training/results on a subset of runs would overwrite RESULTS' charts.
    parser.add_argument("--plots", help="where the PNG charts go (default: RUNS/plots; training/results for RESULTS')")
    parser.add_argument("--folds", nargs="+", type=Path, metavar="RUNS",
                        help="study folders of held-back folds (SPLIT=test): tables over their questions")
    args = parser.parse_args(argv)
    if args.folds:
        print("\n".join(fold_tables(args.folds)))
        return
    root = Path(args.runs)
    runs = load_runs(root)
    if not runs:
        raise SystemExit(f"No finished run under {args.runs}; run training/theoremqa_study.sh first.")

    trained = {run: trained_k(root, run, runs) for run, _, _ in runs}
    print("| run | K | query | nDCG@10 | Recall@10 | Recall@100 | MRR@10 | train min | eval min | command |")
    print("|---|---|---|---|---|---|---|---|---|---|")
    for run, r, wall in runs:
        m = r.metrics
        k = "" if r.num_thinking_steps is None else r.num_thinking_steps
        print(f"| {run} | {k} | {r.query_mode} | {m['ndcg@10']:.4f} | {m['recall@10']:.4f} | {m['recall@100']:.4f} | "
              f"{m['mrr@10']:.4f} | {minutes(wall.get('train_seconds'))} | {minutes(wall.get('eval_seconds'))} | "
              f"`{command(run, r, trained[run])}` |")  # fmt: skip

    # Seeds: each trained run at the K it was trained with.
    per_recipe: dict[str, dict[int, float]] = {}
    for run, r, _ in runs:
        match = SEED.match(run)
        if match and r.query_mode == "query" and r.num_thinking_steps == trained[run]:
            per_recipe.setdefault(match["name"], {})[int(match["seed"])] = r.metrics["ndcg@10"]
    print("\n| objective | seeds | nDCG@10 per seed | mean | spread (max - min) |")
    print("|---|---|---|---|---|")
    for name, by_seed in per_recipe.items():
        values = [by_seed[s] for s in sorted(by_seed)]
        spread = max(values) - min(values) if len(values) > 1 else float("nan")
        print(f"| {name} | {', '.join(map(str, sorted(by_seed)))} | {', '.join(f'{v:.4f}' for v in values)} | "
              f"{statistics.mean(values):.4f} | {spread:.4f} |")  # fmt: skip

    # Paired over the dev questions: each run at the K it was trained with.
    per_query = {run: r.per_query["ndcg@10"] for run, r, _ in runs
                 if r.query_mode == "query" and r.num_thinking_steps == trained[run]}  # fmt: skip
    per_query_long = per_query_512(root, runs, trained)
    for comparisons, header in [(MATCHED, paired_header("LaSER", "contrastive")),
                                (VARIANTS, paired_header("variant", "the run it changes"))]:  # fmt: skip
        print("\n" + header)
        print("\n".join(paired_rows(per_query, comparisons)))
        print("\nThe same at 512 tokens a text (runs with eval_512.json, EVAL512=1):\n")
        print(header)
        print("\n".join(paired_rows(per_query_long, comparisons)))

    print("\n| run | nDCG@10, question | nDCG@10, LLM rationale as the query | gap | train min | peak GiB |")
    print("|---|---:|---:|---:|---:|---:|")
    print("\n".join(gap_rows(root, runs, trained)))

    print("\n| run | question, 128 tokens | rationale, 128 | question, 512 | rationale, 512 | gap at 512 |")
    print("|---|---:|---:|---:|---:|---:|")
    print("\n".join(length_rows(root, runs, trained)))

    plots = Path(args.plots) if args.plots else root / "plots"
    print(seed_chart(per_recipe, plots / "theoremqa_seeds.png"))
    gaps = gap_chart(gap_scores(root, runs, trained), plots / "theoremqa_internalization_gap.png")
    if gaps is not None:
        print(gaps)
    headline = [r for run, r, _ in runs if r.query_mode == "query" and (
        r.num_thinking_steps in (None, trained[run]) or run == "untrained")]  # fmt: skip
    headline.sort(key=lambda r: -r.metrics["ndcg@10"])
    print(f"\n{bar_chart(headline, plots / 'theoremqa_dev_ndcg.png')}")
    # One inference-scaling chart per run evaluated at several K (KSWEEP=1), with the references as flat lines.
    references = [r for _, r, _ in runs if r.num_thinking_steps is None]
    for swept in sorted({run for run, r, _ in runs if r.num_thinking_steps not in (None, trained[run])}):
        curves = [r for run, r, _ in runs if run == swept and run != "untrained"]
        if curves:
            print(scaling_plot(curves + references, plots / f"theoremqa_k_scaling_{swept}.png"))


if __name__ == "__main__":
    main()
