"""examples/quickstart.ipynb runs top to bottom in a fresh kernel and shows what it promises."""

from pathlib import Path

import pytest

NOTEBOOK = Path(__file__).resolve().parents[1] / "examples" / "quickstart.ipynb"

nbformat = pytest.importorskip("nbformat")
nbclient = pytest.importorskip("nbclient")
pytest.importorskip("ipykernel")


def _data(cell):
    """The mime bundles a code cell displayed, merged (later outputs win)."""
    out = {}
    for output in cell.get("outputs", []):
        out.update(output.get("data", {}))
        if output.get("output_type") == "stream":
            out["stream"] = out.get("stream", "") + output["text"]
    return out


def _cell(nb, source_start):
    return next(c for c in nb.cells if c.cell_type == "code" and c.source.startswith(source_start))


def test_quickstart_notebook(tmp_path):
    """About 15 s on two cores with the numba kernels cached (30 s when they compile)."""
    nb = nbformat.read(NOTEBOOK, as_version=4)
    nbformat.validate(nb)
    assert all(not c.get("outputs") for c in nb.cells if c.cell_type == "code"), (
        "store the notebook without outputs"
    )
    client = nbclient.NotebookClient(
        nb, timeout=300, kernel_name="python3", resources={"metadata": {"path": str(tmp_path)}}
    )
    client.execute()  # raises CellExecutionError on the first failing cell
    # the fitted ranker: scikit-learn's diagram and the fit summary in HTML, the repr as text
    fitted = _data(_cell(nb, "ranker = HierarchicalRanker"))
    assert fitted["text/plain"].startswith("HierarchicalRanker(formula=")
    html = fitted["text/html"]
    for expected in ("sk-top-container", "Fit summary", "collapsed", "nutpie", "Top 10 of 30",
                     "P(top 10)", "What to look at next", "G06"):  # fmt: skip
        assert expected in html, expected
    # the rank table, the plot (inline PNG), the diagnostics
    assert "expected_rank" in _data(_cell(nb, "columns = "))["text/html"]
    plot = _data(_cell(nb, "ax = plot_ranks"))
    assert "image/png" in plot and len(plot["image/png"]) > 10_000
    diagnostics = _data(_cell(nb, "ranker.diagnostics_"))
    assert "Sampler diagnostics: PASSED" in diagnostics["text/plain"]
    assert "Sampler diagnostics:" in diagnostics["text/html"]
    assert "HierarchicalRanker (fitted)" in _data(_cell(nb, "print(ranker.summary"))["stream"]
