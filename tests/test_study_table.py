"""training/study_table.py's paired comparison: the differences RESULTS.md quotes come from it."""

from __future__ import annotations

import statistics
from pathlib import Path

import pytest

pytest.importorskip("scipy")
pytest.importorskip("matplotlib")
from scipy import stats  # noqa: E402

SCRIPT = Path(__file__).resolve().parents[1] / "training" / "study_table.py"


@pytest.fixture(scope="module")
def study_table(load_script):
    return load_script(SCRIPT)


def _row(line: str) -> list[str]:
    return [cell.strip() for cell in line.strip("|").split("|")]


def test_paired_rows_per_seed_and_pooled(study_table):
    questions = [f"q{i}" for i in range(8)]
    a42 = [0.9, 0.1, 0.5, 0.7, 0.3, 0.8, 0.2, 0.6]
    b42 = [0.8, 0.2, 0.5, 0.4, 0.1, 0.9, 0.2, 0.3]
    a43 = [0.7, 0.3, 0.6, 0.9, 0.2, 0.4, 0.1, 0.5]
    b43 = [0.6, 0.4, 0.2, 0.5, 0.3, 0.5, 0.0, 0.4]
    per_query = {
        "variant-s42": dict(zip(questions, a42)), "base-s42": dict(zip(questions, b42)),
        "variant-s43": dict(zip(questions, a43)), "base-s43": dict(zip(questions, b43)),
        "variant-s44": dict(zip(questions, a43)),  # no base at seed 44: not paired
    }
    rows = [_row(r) for r in study_table.paired_rows(per_query, [("variant", "base"), ("absent", "base")])]
    assert [r[2] for r in rows] == ["42", "43", "pooled"]

    pooled_a = [(x + y) / 2 for x, y in zip(a42, a43)]  # each question averaged over the seeds first
    pooled_b = [(x + y) / 2 for x, y in zip(b42, b43)]
    for row, (x, y) in zip(rows, [(a42, b42), (a43, b43), (pooled_a, pooled_b)]):
        assert row[:2] == ["variant", "base"]
        assert float(row[3]) == pytest.approx(statistics.mean(x) - statistics.mean(y), abs=5e-5)
        won, lost = sum(u > v for u, v in zip(x, y)), sum(u < v for u, v in zip(x, y))
        assert row[4] == f"{won} / {lost}"
        assert float(row[5]) == pytest.approx(stats.ttest_rel(x, y).pvalue, abs=5e-4)
        assert float(row[6]) == pytest.approx(stats.wilcoxon(x, y).pvalue, abs=5e-4)
    assert rows[0][3] == "+0.0875" and rows[0][4] == "4 / 2"


def test_paired_header_names_both_sides(study_table):
    header = study_table.paired_header("variant", "the run it changes").splitlines()
    assert _row(header[0])[:2] == ["variant", "the run it changes"]
    assert len(_row(header[0])) == len(_row(header[1])) == 7


def _write_run(root: Path, run: str, scores: list[float]) -> None:
    """A finished study run as ``laser eval`` (its own ``results_to_json``) and the study script leave it."""
    import json

    from laser_integrations.evaluation import EvalResult, results_to_json

    per_query = {f"q{i}": s for i, s in enumerate(scores)}
    metrics = {m: statistics.mean(scores) for m in ("ndcg@10", "recall@10", "recall@100", "mrr@10")}
    result = EvalResult(model=run, dataset="dev", query_mode="query", num_thinking_steps=None, metrics=metrics,
                        per_query={"ndcg@10": per_query}, num_queries=len(scores), max_length=128)  # fmt: skip
    (root / run).mkdir(parents=True)
    (root / run / "eval.json").write_text(json.dumps(results_to_json([result], {"data": "data/dev"})))
    (root / run / "wall.json").write_text(json.dumps({"train_seconds": 60, "eval_seconds": 30}))


def test_charts_go_beside_the_runs_unless_told(study_table, tmp_path, capsys):
    # Drawn into training/results by default, a table of a few runs overwrote RESULTS' committed charts.
    runs = tmp_path / "runs"
    _write_run(runs, "bm25", [0.5, 0.2, 0.9, 0.1])
    _write_run(runs, "minilm", [0.6, 0.4, 0.8, 0.3])
    study_table.main(["--runs", str(runs)])
    assert (runs / "plots" / "theoremqa_dev_ndcg.png").is_file()
    assert "| bm25 |" in capsys.readouterr().out

    study_table.main(["--runs", str(runs), "--plots", str(tmp_path / "charts")])
    assert (tmp_path / "charts" / "theoremqa_dev_ndcg.png").is_file()


def _write_fold_run(root: Path, run: str, scores: dict[tuple[str, int], dict[str, float]], train_s: int) -> None:
    """A run scored on a fold's held-back questions: question and LLM rationale rows at 128 and 512 tokens."""
    import json

    from laser_integrations.evaluation import EvalResult, results_to_json

    (root / run).mkdir(parents=True)
    for name, tokens in (("eval.json", 128), ("eval_512.json", 512)):
        results = [EvalResult(model=run, dataset="test", query_mode=mode, num_thinking_steps=3,
                              metrics={"ndcg@10": statistics.mean(per_query.values())},
                              per_query={"ndcg@10": per_query}, num_queries=len(per_query), max_length=tokens)
                   for (mode, length), per_query in scores.items() if length == tokens]  # fmt: skip
        record = results_to_json(results, {"data": f"runs/heldout/study-{root.name}/theoremqa-llm"})
        (root / run / name).write_text(json.dumps(record))
    (root / run / "wall.json").write_text(json.dumps({"train_seconds": train_s, "train_peak_rss_mb": 2048}))


def test_fold_tables_judge_every_question_once_and_pair_over_all_of_them(study_table, tmp_path, capsys):
    laser, contrastive = "hardneg-llm-inprompt_lr5e4_half-s42", "hardneg-llm-contrastive_lr5e4-s42"
    folds = {"fold1": ["q0", "q1", "q2", "q3"], "fold2": ["q4", "q5", "q6"]}
    values = {laser: [0.9, 0.1, 0.5, 0.7, 0.3, 0.8, 0.2], contrastive: [0.8, 0.2, 0.5, 0.4, 0.1, 0.9, 0.6]}
    keys = [("query", 128), ("reasoning", 128), ("query", 512), ("reasoning", 512)]
    for fold, questions in folds.items():
        for run, scores in values.items():
            # each key shifts the scores, so a row that read the wrong file or mode shows it
            per_key = {key: {q: scores[int(q[1:])] + 0.01 * k for q in questions} for k, key in enumerate(keys)}
            _write_fold_run(tmp_path / fold, run, per_key, train_s=600)
    study_table.main(["--folds", str(tmp_path / "fold1"), str(tmp_path / "fold2")])
    out = capsys.readouterr().out
    rows = {(r[0], r[1]): r for r in map(_row, out.splitlines()) if len(r) == 10 and r[1] in ("fold1", "fold2", "all")}
    for run, scores in values.items():
        everything = rows[(run, "all")]
        assert everything[2] == "7" and everything[8] == "20.0" and everything[9] == "2.0"  # minutes summed over folds
        for k, cell in enumerate(everything[3:7]):
            assert float(cell) == pytest.approx(statistics.mean(scores) + 0.01 * k, abs=5e-5)
        assert float(everything[7]) == pytest.approx(0.01, abs=5e-5)  # rationale minus question at 512
        assert float(rows[(run, "fold2")][3]) == pytest.approx(statistics.mean(scores[4:]), abs=5e-5)
    # the paired rows are paired_rows over all seven questions, once at 128 tokens and once at 512
    every_question = folds["fold1"] + folds["fold2"]
    per_query = {run: dict(zip(every_question, scores)) for run, scores in values.items()}
    expected = study_table.paired_rows(per_query, [(laser[:-4], contrastive[:-4])])
    assert out.count(expected[0]) == 2

    # a question scored in two folds would be counted twice: refused
    _write_fold_run(tmp_path / "fold3", laser, {("query", 128): {"q0": 0.5}}, train_s=1)
    with pytest.raises(SystemExit, match="a question is scored in two folds"):
        study_table.main(["--folds", str(tmp_path / "fold1"), str(tmp_path / "fold3")])
