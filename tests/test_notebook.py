"""notebooks/quickstart.ipynb runs top to bottom (executed with nbclient, as CI does)."""
from pathlib import Path

import pytest

NOTEBOOK = Path(__file__).resolve().parents[1] / "notebooks" / "quickstart.ipynb"


@pytest.mark.slow
def test_quickstart_notebook_executes(mini_root, tmp_path, monkeypatch):
    nbformat = pytest.importorskip("nbformat")
    nbclient = pytest.importorskip("nbclient")
    pytest.importorskip("ipykernel")
    pytest.importorskip("matplotlib")
    monkeypatch.setenv("BAPPS_NOTEBOOK_WORK", str(tmp_path / "work"))
    monkeypatch.setenv("BAPPS_NOTEBOOK_MINI", str(mini_root))
    monkeypatch.setenv("MPLBACKEND", "Agg")
    nb = nbformat.read(NOTEBOOK, as_version=4)
    client = nbclient.NotebookClient(nb, timeout=600, kernel_name="python3",
                                     resources={"metadata": {"path": str(tmp_path)}})
    client.execute()
    outputs = [o for c in nb.cells if c.cell_type == "code" for o in c.get("outputs", [])]
    assert not [o for o in outputs if o.get("output_type") == "error"]
    text = "".join(o.get("text", "") for o in outputs if o.get("output_type") == "stream")
    assert "loss" in text and "2AFC(l2-lab) - 2AFC(ssim)" in text
    assert (tmp_path / "work" / "quickstart.png").stat().st_size > 0
    # the table was displayed (markdown output) and carries the synthetic-data header
    shown = "".join(str(o.get("data", {}).get("text/markdown", "")) for o in outputs)
    assert "SYNTHETIC DATA" in shown
