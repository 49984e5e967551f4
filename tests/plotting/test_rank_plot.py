"""Tests of plot_diagnostics(kind="rank") (skhier.plotting._rank_plot)."""

import numpy as np
import pytest

from skhier.plotting import plot_diagnostics


def test_plot_diagnostics_rank(idata):
    fig = plot_diagnostics(idata, ["mu", "tau", "theta"], kind="rank")
    visible = [a for a in fig.axes if a.get_visible()]
    assert len(visible) == 6
    assert [a.get_title() for a in visible][:2] == ["mu", "tau"]
    assert len(visible[0].patches) == 3 * 15  # 3 chains x 15 bins (300 draws // 20)
    heights = np.array([p.get_height() for p in visible[0].patches])
    assert heights.max() == pytest.approx(0.85)
