"""The three benchmark tasks as arrays ready for training.

Each task gives a :class:`TaskData`: three :class:`Split` objects of NumPy
arrays -- ``x`` (input spike times, one row per sample in the simulator's
``input_times`` layout), ``y`` (labels) and ``t0`` (start of the read-out
window per sample) -- plus the input size and number of classes.

=========  ==========================================  =======  =========================
task       data (train / val / test)                   inputs   read-out window
=========  ==========================================  =======  =========================
yinyang    5000 / 1000 / 1000 canonical samples,       5        ``[0, t_max]``
           spikes in [0, 30] ms (+ a bias spike at 0)
mnist      first 50000 / last 10000 of the training    784      ``[0, t_max]``
           set / the 10000 test images, latency code
           in [0, 20] ms (black pixels silent)
xor        5000 / 1000 / 1000 delayed-XOR trials,      9 (x2)   ``[t_cue, t_max]``
           90 ms
=========  ==========================================  =======  =========================
"""

from __future__ import annotations

import math
from pathlib import Path
from typing import NamedTuple

import numpy as np

from .. import datasets

__all__ = ["Split", "TaskData", "check_windows", "load_task"]


class Split(NamedTuple):
    """One split: ``x`` input times, ``y`` int labels, ``t0`` window starts (ms)."""

    x: np.ndarray
    y: np.ndarray
    t0: np.ndarray

    def __len__(self) -> int:
        return int(self.y.shape[0])

    def head(self, n: int | None) -> "Split":
        """The first ``n`` samples (all if ``n`` is ``None``)."""
        if n is None:
            return self
        if n < 1:
            raise ValueError(f"a split size must be >= 1, got {n}")
        return Split(self.x[:n], self.y[:n], self.t0[:n])


class TaskData(NamedTuple):
    train: Split
    val: Split
    test: Split
    in_size: int
    n_classes: int


def _split(x, y, t0=None, dtype=np.float32):
    y = np.asarray(y, np.int32)
    t0 = np.zeros(y.shape, dtype) if t0 is None else np.asarray(t0, dtype)
    return Split(np.asarray(x, dtype), y, t0)


def load_task(task: str, *, data_dir=None, dtype=np.float32, sizes=(None, None, None)) -> TaskData:
    """Load ``task`` (``"yinyang"``, ``"mnist"`` or ``"xor"``) as a :class:`TaskData`.

    ``sizes``: keep only the first N samples of (train, val, test); ``None``: all.
    ``data_dir``: the folder with the four MNIST IDX files (``mnist`` only); a
    missing file raises :class:`~eventax_dsl.datasets.MnistNotFoundError` naming it.
    """
    if task == "yinyang":
        splits = datasets.yinyang_splits()
        parts = [_split(datasets.encode_yinyang(f), l, dtype=dtype) for f, l in splits]
        in_size, n_classes = 5, 3
    elif task == "mnist":
        if data_dir is None:
            raise ValueError("mnist needs data_dir, the folder with the MNIST IDX files")
        directory = Path(data_dir)
        images, labels = datasets.load_mnist(directory, "train", flatten=True)
        test_images, test_labels = datasets.load_mnist(directory, "test", flatten=True)
        enc = lambda im: datasets.encode_latency(im, t_max=20.0, dtype=dtype)  # noqa: E731
        n_val = 10000
        raw = [(images[:-n_val], labels[:-n_val]), (images[-n_val:], labels[-n_val:]),
               (test_images, test_labels)]
        # cut before encoding: the full training set is 188 MB of float32 times
        parts = [_split(enc(im[:n]), lab[:n], dtype=dtype) for (im, lab), n in zip(raw, sizes)]
        in_size, n_classes = 784, 10
    elif task == "xor":
        parts = [_split(s.times, s.labels, s.cue_times, dtype=dtype)
                 for s in datasets.delayed_xor_splits()]
        in_size, n_classes = 9, 2
    else:
        raise ValueError(f"unknown task {task!r}; choose one of: yinyang, mnist, xor")
    parts = [p.head(n) for p, n in zip(parts, sizes)]
    return TaskData(*parts, in_size=in_size, n_classes=n_classes)


def check_windows(data: TaskData, t_max: float) -> None:
    """Raise ``ValueError`` unless every sample's read-out window ``[t0, t_max]`` is
    non-empty: a ``t_max`` before a trial's cue (``xor``) would end the simulation before
    the cue and the window it opens, leaving those samples nothing to learn from."""
    latest = max(float(np.max(split.t0)) for split in data[:3])
    enough = math.floor(latest * 10 + 1) / 10  # rounded up, strictly above the latest cue
    for name, split in zip(("training", "validation", "test"), data[:3]):
        late = np.asarray(split.t0) >= t_max
        if late.any():
            raise ValueError(
                f"t_max = {t_max:g} ms ends {int(late.sum())} of the {len(split)} {name} "
                f"trials at or before their read-out window starts (at the cue, the latest "
                f"at {latest:.4g} ms); use t_max >= {enough:g} ms")
