"""The example scripts run end to end (in a subprocess, as a user runs them)."""

import os
import subprocess
import sys
from pathlib import Path

EXAMPLES = Path(__file__).resolve().parents[1] / "examples"


def run_example(name, tmp_path):
    env = dict(os.environ, SKHIER_FIGURES=str(tmp_path), MPLBACKEND="Agg")
    out = subprocess.run(
        [sys.executable, str(EXAMPLES / name)],
        capture_output=True,
        text=True,
        env=env,
        cwd=tmp_path,
        timeout=600,
    )
    assert out.returncode == 0, out.stderr[-3000:]
    return out.stdout


def test_pooling_example(tmp_path):
    """examples/plot_pooling.py: 15 to 30 s on two cores (30 s with cold numba caches)."""
    stdout = run_example("plot_pooling.py", tmp_path)
    assert sorted(p.name for p in tmp_path.glob("*.png")) == [
        "pooling_ppc.png",
        "pooling_shrinkage.png",
    ]
    assert "chosen: {'pooling': 'partial'}" in stdout
    assert "complete:  0 of 24" not in stdout  # complete pooling misses sgRNA means
    assert " partial:  0 of 24 sgRNA means outside" in stdout
