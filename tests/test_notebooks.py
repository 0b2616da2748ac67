"""The notebooks run top to bottom offline (on a tiny model), and are committed without outputs."""

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
def test_committed_notebook_has_no_outputs(name):
    book = nbformat.read(NOTEBOOKS / name, as_version=4)
    code = [cell for cell in book.cells if cell.cell_type == "code"]
    assert code
    for cell in code:
        assert cell.outputs == [] and cell.execution_count is None, f"{name}: strip outputs before committing"


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
    client.execute()  # raises CellExecutionError, with the failing cell and its traceback, on any error
    text = "\n".join(
        out.get("text", "") or str(out.get("data", {}).get("text/plain", ""))
        for cell in book.cells if cell.cell_type == "code" for out in cell.outputs
    )  # fmt: skip
    assert "ndcg@10" in text.lower()
    if name.startswith("03"):
        images = [out for cell in book.cells for out in cell.get("outputs", []) if "image/png" in out.get("data", {})]
        assert len(images) == 2  # the loss curve and the nDCG@10 bar chart
