"""notebooks/quickstart.ipynb executed top to bottom with tiny local models (nbclient)."""
import os

import pytest

nbclient = pytest.importorskip("nbclient")
nbformat = pytest.importorskip("nbformat")
pytest.importorskip("ipykernel")
pytest.importorskip("torch")        # tests/tiny.py builds the tiny models with transformers

pytestmark = pytest.mark.slow
REPO = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))


def _outputs(cell) -> str:
  return "".join(o.get("text", "") + "".join(o.get("data", {}).get("text/plain", ""))
                 for o in cell.get("outputs", []))


def test_quickstart_runs_with_tiny_models(monkeypatch):
  monkeypatch.setenv("HPPROMPT_TINY", "1")
  monkeypatch.setenv("PYTHONPATH", os.pathsep.join(
      p for p in (REPO, os.environ.get("PYTHONPATH")) if p))
  nb = nbformat.read(os.path.join(REPO, "notebooks", "quickstart.ipynb"), as_version=4)
  assert any("parameters" in c.metadata.get("tags", []) for c in nb.cells)
  nbclient.NotebookClient(nb, timeout=300, kernel_name="python3",
                          resources={"metadata": {"path": REPO}}).execute()
  text = "\n".join(_outputs(c) for c in nb.cells if c.cell_type == "code")
  assert "step 4/4" in text                              # live progress of the PIN run
  assert "dev accuracy" in text and "best prompt:" in text
  assert "d spmax / dz = sparsemax" in text and "tsallis: loss" in text
  images = [o for c in nb.cells for o in c.get("outputs", []) if "image/png" in o.get("data", {})]
  assert len(images) == 3                                # reward, validation and timing figures
