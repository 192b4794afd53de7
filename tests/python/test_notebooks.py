"""Every notebook runs top to bottom (code cells executed in order, in-process,
from the notebooks folder as Jupyter runs them).

eda.ipynb reads ../shared/data when present and falls back to generated
data otherwise; where the shared data exists, the fallback is run as well.
"""

import json
import pathlib

import pytest

NOTEBOOK_DIR = pathlib.Path(__file__).resolve().parents[2] / "notebooks"
NOTEBOOKS = sorted(NOTEBOOK_DIR.glob("*.ipynb"))


def run_notebook(path, monkeypatch, n_cells=None):
    """Execute the code cells of ``path`` (the first ``n_cells`` of them, or all)
    in one namespace; return the namespace."""
    monkeypatch.chdir(path.parent)
    notebook = json.loads(path.read_text())
    namespace = {"__name__": "__notebook__"}
    code = [(i, cell) for i, cell in enumerate(notebook["cells"]) if cell["cell_type"] == "code"]
    for index, cell in code[:n_cells]:
        source = "".join(cell["source"])
        exec(compile(source, f"{path.name}[cell {index}]", "exec"), namespace)
    return namespace


@pytest.mark.parametrize("path", NOTEBOOKS, ids=lambda p: p.name)
def test_notebook_runs_top_to_bottom(path, monkeypatch):
    run_notebook(path, monkeypatch)


def test_there_is_a_notebook():
    assert NOTEBOOKS


def test_eda_notebook_finds_the_shared_data(shared_data, monkeypatch):
    """Run from the notebooks folder, eda.ipynb reads ../shared/data, not generated data."""
    monkeypatch.delenv("FRAUDCORE_EDA_DATA", raising=False)
    namespace = run_notebook(NOTEBOOK_DIR / "eda.ipynb", monkeypatch, n_cells=1)
    assert namespace["REAL"]
    assert namespace["DATA"].resolve() == shared_data.resolve()


def test_eda_notebook_falls_back_to_generated_data(shared_data, tmp_path, monkeypatch):
    """Where the shared data exists, the notebook's own run reads it; pointed at
    an empty folder, the notebook must run on generated data instead."""
    monkeypatch.setenv("FRAUDCORE_EDA_DATA", str(tmp_path))
    namespace = run_notebook(NOTEBOOK_DIR / "eda.ipynb", monkeypatch)
    assert not namespace["REAL"]
    assert list(namespace["datasets"]) == ["generated"]
    assert set(namespace["fraud_tables"]["generated"]) == {"signup delay", "accounts on the device"}
