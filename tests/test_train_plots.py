"""The run's PNG plots show what they claim: every spike visible, sensible axes.

Each plot function is called on edge-case data with ``_figure`` wrapped, so the
test reads the drawn :class:`matplotlib.figure.Figure` instead of the PNG.
"""

import sys

import numpy as np
import pytest

import eventax_dsl.train
from eventax_dsl.train import TrainConfig, plots
from eventax_dsl.train.trainer import Trainer


@pytest.fixture
def figures(monkeypatch):
    """The figures the plot functions draw, in order."""
    drawn = []
    real = plots._figure

    def keep(*args, **kwargs):
        drawn.append(real(*args, **kwargs))
        return drawn[-1]

    monkeypatch.setattr(plots, "_figure", keep)
    return drawn


ROW = dict(epoch=1, train_loss=2.0, train_acc=0.4, val_loss=2.2, val_acc=0.37, test_loss=1.4,
           test_acc=0.5)


def test_one_epoch_has_one_integer_tick(tmp_path, figures):
    # the locator gave up on integers for a single epoch: ticks at 0.96, 0.98, ...
    plots.plot_curves([ROW], tmp_path / "curves.png")
    for ax in figures[0].axes:
        ticks = [t for t in ax.get_xticks() if ax.get_xlim()[0] <= t <= ax.get_xlim()[1]]
        assert ticks == [1.0]
    plots.plot_curves([ROW, dict(ROW, epoch=2), dict(ROW, epoch=3)], tmp_path / "curves3.png")
    ax = figures[1].axes[0]
    assert all(float(t).is_integer() for t in ax.get_xticks())


def test_raster_shows_a_spike_at_zero_and_no_legend_covers_the_axes(tmp_path, figures):
    # Yin-Yang's bias input spikes at t = 0, which sat on the left spine; the legend sat
    # in the upper right corner, over the output rows' late spikes
    times = np.array([25.7, 28.5, 29.1, np.inf])
    ids = np.array([5, 4, 6, -1])
    plots.plot_raster(times, ids, [4, 3], ["hidden", "output"], 30.0, tmp_path / "raster.png",
                      inputs=np.array([22.9, 17.9, 7.0, 12.0, 0.0]), label=1)
    fig = figures[0]
    (ax,) = fig.axes
    assert ax.get_xlim()[0] < 0.0 < 30.0 < ax.get_xlim()[1]
    fig.canvas.draw()
    legend = ax.get_legend().get_window_extent()
    assert legend.x0 >= ax.get_window_extent().x1  # beside the axes
    assert [t.get_text() for t in ax.get_legend().get_texts()] == [
        "hidden (0 spikes)", "output (3 spikes)", "input (5 spikes)"]


@pytest.mark.parametrize("level, limits", [(0.0, (-1.0, 1.0)), (0.3, (-0.7, 1.3)),
                                           (-65.0, (-71.5, -58.5))])
def test_a_flat_trace_gets_a_readable_range(tmp_path, figures, level, limits):
    # the range was +-1e-9: a silent network's read-out showed ticks like 1e-9+3e-1
    t = np.linspace(0.0, 50.0, 100)
    plots.plot_trace(t, np.full((100, 3), level), tmp_path / "trace.png", window=(5.0, 50.0))
    np.testing.assert_allclose(figures[0].axes[0].get_ylim(), limits)
    plots.plot_trace(t, np.stack([np.sin(t), np.cos(t)], 1), tmp_path / "wave.png")
    lo, hi = figures[1].axes[0].get_ylim()
    assert -1.3 < lo < -1.0 and 1.0 < hi < 1.3  # a varying trace keeps its 10 % margin


def test_missing_matplotlib_is_one_clear_error_before_any_work(tmp_path, monkeypatch):
    # the import came after the first epoch, as a traceback, and ended the run there
    for name in [m for m in sys.modules if m.split(".")[0] == "matplotlib"] + ["matplotlib"]:
        monkeypatch.setitem(sys.modules, name, None)  # import matplotlib(.x) -> ImportError
    monkeypatch.delitem(sys.modules, "eventax_dsl.train.plots")
    monkeypatch.delattr(eventax_dsl.train, "plots")
    cfg = TrainConfig(task="yinyang", out=str(tmp_path / "run"))
    with pytest.raises(ValueError, match=r"plots need matplotlib.*--no-plots"):
        Trainer(cfg)
    assert not (tmp_path / "run").exists()
    monkeypatch.setattr("eventax_dsl.train.trainer.load_task", _stop)  # past the check
    with pytest.raises(RuntimeError, match="data"):
        Trainer(TrainConfig(task="yinyang", out=str(tmp_path / "run"), plots=False))


def _stop(*args, **kwargs):
    raise RuntimeError("data would be loaded now")
