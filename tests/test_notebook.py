"""The walkthrough notebook runs headless end to end (fast mode: fresh model, no checkpoint)."""
from pathlib import Path

import nbformat
from nbclient import NotebookClient

NOTEBOOK = Path(__file__).resolve().parent.parent / "notebooks" / "pks4_walkthrough.ipynb"


def test_saved_notebook_is_executed():
    nb = nbformat.read(NOTEBOOK, as_version=4)
    code = [c for c in nb.cells if c.cell_type == "code"]
    assert code and all(c.get("execution_count") for c in code), "save the notebook executed"
    assert sum(o.get("output_type") == "display_data" and "image/png" in o.get("data", {})
               for c in code for o in c.outputs) >= 4


def test_notebook_executes_in_fast_mode(monkeypatch):
    monkeypatch.setenv("PKS4_NB_FAST", "1")
    nb = nbformat.read(NOTEBOOK, as_version=4)
    NotebookClient(nb, timeout=120, kernel_name="python3",
                   resources={"metadata": {"path": str(NOTEBOOK.parent)}}).execute()
    outputs = [o for c in nb.cells if c.cell_type == "code" for o in c.outputs]
    assert not [o for o in outputs if o.get("output_type") == "error"]
    text = "".join(o.get("text", "") for o in outputs if o.get("output_type") == "stream")
    assert "FRESH, UNTRAINED" in text and "'displacement': (1, 8, 2, 7, 7)" in text
    assert sum("image/png" in o.get("data", {}) for o in outputs) >= 4
