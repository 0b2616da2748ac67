"""The notebooks run top to bottom offline (on a tiny model), and are committed with the outputs of a real run."""

from __future__ import annotations

from pathlib import Path

import pytest

nbformat = pytest.importorskip("nbformat", reason="the notebooks extra is not installed: pip install -e '.[notebooks]'")
nbclient = pytest.importorskip("nbclient", reason="the notebooks extra is not installed: pip install -e '.[notebooks]'")

NOTEBOOKS = Path(__file__).resolve().parents[1] / "notebooks"
NAMES = ["01_haystack_reasoning_qa.ipynb", "02_llamaindex_vector_store_index.ipynb", "03_train_and_evaluate.ipynb"]


def test_the_three_notebooks_are_there():
    assert sorted(p.name for p in NOTEBOOKS.glob("*.ipynb")) == NAMES


@pytest.mark.parametrize("name", NAMES)
def test_committed_notebook_carries_a_real_run(name):
    """Committed with the outputs of one top-to-bottom run on SmolLM2-135M, so it reads without running."""
    book = nbformat.read(NOTEBOOKS / name, as_version=4)
    code = [cell for cell in book.cells if cell.cell_type == "code"]
    assert code
    counts = [cell.execution_count for cell in code]
    assert counts == list(range(1, len(code) + 1)), f"{name}: run it top to bottom in one kernel before committing"
    assert not [out for cell in code for out in cell.outputs if out.output_type == "error"]
    text = _text(book)
    assert "ndcg@10" in text.lower() and "smollm2" in text.lower()  # the real backbone, not the tests' tiny model
    if name.startswith("03"):
        assert len(_images(book)) == 2  # the loss curve and the nDCG@10 bar chart


@pytest.mark.parametrize("name", NAMES)
def test_notebook_runs_offline(name, encoder_dir, tmp_path, monkeypatch):
    # The kernel inherits this environment: the parameters cell reads it.
    monkeypatch.setenv("LASER_NOTEBOOK_MODEL", str(encoder_dir))
    monkeypatch.setenv("LASER_NOTEBOOK_WORKDIR", str(tmp_path / "work"))
    monkeypatch.setenv("LASER_NOTEBOOK_MAX_STEPS", "2")
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    monkeypatch.setenv("HAYSTACK_TELEMETRY_ENABLED", "False")
    book = nbformat.read(NOTEBOOKS / name, as_version=4)
    client = nbclient.NotebookClient(book, timeout=300, kernel_name="python3", resources={"metadata": {"path": str(tmp_path)}})
    committed = (NOTEBOOKS / name).read_bytes()
    client.execute()  # raises CellExecutionError, with the failing cell and its traceback, on any error
    assert (NOTEBOOKS / name).read_bytes() == committed  # executed in memory: the committed outputs stay
    assert "ndcg@10" in _text(book).lower()
    if name.startswith("03"):
        assert len(_images(book)) == 2  # the loss curve and the nDCG@10 bar chart


def _text(book) -> str:
    return "\n".join(
        out.get("text", "") or str(out.get("data", {}).get("text/plain", ""))
        for cell in book.cells if cell.cell_type == "code" for out in cell.outputs
    )  # fmt: skip


def _images(book) -> list:
    return [out for cell in book.cells for out in cell.get("outputs", []) if "image/png" in out.get("data", {})]
