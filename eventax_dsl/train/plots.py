"""PNG plots of a run (matplotlib, drawn off-screen with the Agg canvas).

- :func:`plot_curves` -- loss and accuracies per epoch;
- :func:`plot_raster` -- the spikes of one test sample, one row per neuron;
- :func:`plot_trace` -- the output neurons' observable (voltage) over time for
  the same sample.

No ``pyplot`` is used (so no global backend is switched and nothing opens a
window): each function builds a :class:`matplotlib.figure.Figure` and saves it.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
from matplotlib.ticker import MaxNLocator

__all__ = ["plot_curves", "plot_raster", "plot_trace"]


def _figure(width=6.4, height=4.0):
    from matplotlib.backends.backend_agg import FigureCanvasAgg  # noqa: PLC0415
    from matplotlib.figure import Figure  # noqa: PLC0415

    fig = Figure(figsize=(width, height), dpi=100)
    FigureCanvasAgg(fig)
    return fig


def plot_curves(history: list[dict], path) -> Path:
    """Training curves: train loss (and val/test loss), train/val/test accuracy per epoch.

    Where the training loss has more than one term (``train_<term>``, see
    :data:`~eventax_dsl.train.readout.LOSS_TERMS`), each term is drawn too, dashed.
    """
    from .readout import LOSS_TERMS  # noqa: PLC0415

    fig = _figure(9.0, 3.6)
    ax_loss, ax_acc = fig.subplots(1, 2)
    epochs = [h["epoch"] for h in history]
    for key, label in (("train_loss", "train"), ("val_loss", "validation"), ("test_loss", "test")):
        ax_loss.plot(epochs, [h[key] for h in history], marker="o", label=label)
    terms = [t for t in LOSS_TERMS if any(f"train_{t}" in h for h in history)]
    for term in terms if len(terms) > 1 else ():
        ax_loss.plot(epochs, [h.get(f"train_{term}", np.nan) for h in history], ls="--",
                     lw=1, marker=".", label=f"train: {term.replace('_', ' ')}")
    for key, label in (("train_acc", "train"), ("val_acc", "validation"), ("test_acc", "test")):
        ax_acc.plot(epochs, [h[key] for h in history], marker="o", label=label)
    ax_loss.set(xlabel="epoch", ylabel="loss", title="loss")
    ax_acc.set(xlabel="epoch", ylabel="accuracy", title="accuracy", ylim=(0, 1))
    for ax in (ax_loss, ax_acc):
        # min_n_ticks=1: with one epoch the locator gave up integers (ticks at 0.96, 0.98, ...)
        ax.xaxis.set_major_locator(MaxNLocator(integer=True, min_n_ticks=1))
        ax.legend(fontsize="small")
        ax.grid(alpha=0.3)
    fig.tight_layout()
    fig.savefig(path)
    return Path(path)


def plot_raster(times, ids, sizes, names, t_end: float, path, *, inputs=None, label=None) -> Path:
    """Spike raster of one sample: x = time (ms), y = neuron (global id), one colour per population.

    ``times``/``ids``: the spike buffers (padding ``inf`` / ``-1`` is ignored);
    ``sizes``/``names``: the populations; ``inputs``: the sample's input spike
    times ``(in_size[, k])``, drawn below the network as negative rows.
    """
    times, ids = np.asarray(times), np.asarray(ids)
    keep = (ids >= 0) & np.isfinite(times)
    times, ids = times[keep], ids[keep]
    fig = _figure(8.0, 4.0)
    ax = fig.subplots()
    start = 0
    for n, name in zip(sizes, names):
        sel = (ids >= start) & (ids < start + n)
        ax.scatter(times[sel], ids[sel], s=6, marker="|", label=f"{name} ({int(sel.sum())} spikes)")
        start += n
    if inputs is not None:
        x = np.asarray(inputs, float)
        x = x.reshape(x.shape[0], -1)
        rows, _ = np.nonzero(np.isfinite(x))
        ax.scatter(x[np.isfinite(x)], -1 - rows, s=6, marker="|", color="k",
                   label=f"input ({rows.size} spikes)")
    # a margin each side: a spike at t = 0 (Yin-Yang's bias input) would sit on the spine
    ax.set(xlabel="time (ms)", ylabel="neuron", xlim=(-0.02 * t_end, 1.02 * t_end),
           title="spike raster" + (f" (label {label})" if label is not None else ""))
    ax.yaxis.set_major_locator(MaxNLocator(integer=True))
    # beside the axes, not on them: the output rows (the top ids) are the ones to see
    ax.legend(loc="upper left", bbox_to_anchor=(1.01, 1.0), fontsize="small")
    fig.tight_layout()
    fig.savefig(path)
    return Path(path)


def plot_trace(t, values, path, *, observable: str = "v", window=None, label=None) -> Path:
    """Output observable over time, one line per output neuron (class).

    ``t``: ``(P,)``; ``values``: ``(P, n_out)``; non-finite values (e.g. the QIF
    voltage right after a spike) are left as gaps. ``window``: ``(t0, T)`` of
    the read-out, shaded.
    """
    t, values = np.asarray(t), np.asarray(values, float)
    values = np.where(np.isfinite(values), values, np.nan)
    fig = _figure()
    ax = fig.subplots()
    for k in range(values.shape[1]):
        ax.plot(t, values[:, k], label=f"output {k}" + (" (target)" if k == label else ""))
    finite = values[np.isfinite(values)]
    if finite.size:
        # robust limits: a QIF voltage goes to -inf/+inf around each spike
        lo, hi = np.percentile(finite, [1, 99])
        flat = hi - lo <= 1e-6 * max(1.0, abs(hi))  # e.g. a silent network's read-out
        pad = max(0.1 * abs(hi), 1.0) if flat else 0.1 * (hi - lo)
        ax.set_ylim(lo - pad, hi + pad)
    if window is not None:
        ax.axvspan(window[0], window[1], color="0.94", zorder=0, label="read-out window")
    ax.set(xlabel="time (ms)", ylabel=observable, title=f"output {observable}")
    ax.legend(fontsize="small")
    ax.grid(alpha=0.3)
    fig.tight_layout()
    fig.savefig(path)
    return Path(path)
