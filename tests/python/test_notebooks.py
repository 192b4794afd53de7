"""Every notebook runs top to bottom (code cells executed in order, in-process).

eda.ipynb reads ../shared/data when present and falls back to generated
data otherwise; where the shared data exists, the fallback is run as well.
"""

import json
import pathlib

import pytest

NOTEBOOK_DIR = pathlib.Path(__file__).resolve().parents[2] / "notebooks"
NOTEBOOKS = sorted(NOTEBOOK_DIR.glob("*.ipynb"))


def run_notebook(path):
    """Execute the code cells of ``path`` in one namespace; return the namespace."""
    notebook = json.loads(path.read_text())
    namespace = {"__name__": "__notebook__"}
    for index, cell in enumerate(notebook["cells"]):
        if cell["cell_type"] != "code":
            continue
        source = "".join(cell["source"])
        exec(compile(source, f"{path.name}[cell {index}]", "exec"), namespace)
    return namespace


@pytest.mark.parametrize("path", NOTEBOOKS, ids=lambda p: p.name)
def test_notebook_runs_top_to_bottom(path):
    run_notebook(path)


def test_there_is_a_notebook():
    assert NOTEBOOKS


def test_eda_notebook_falls_back_to_generated_data(shared_data, tmp_path, monkeypatch):
    """With the shared data present, the run above took the real-data branch;
    pointed at an empty folder, the notebook must run on generated data."""
    monkeypatch.setenv("FRAUDCORE_EDA_DATA", str(tmp_path))
    namespace = run_notebook(NOTEBOOK_DIR / "eda.ipynb")
    assert not namespace["REAL"]
    assert list(namespace["datasets"]) == ["generated"]
    assert set(namespace["fraud_tables"]["generated"]) == {"signup delay", "accounts on the device"}
