"""The Yin-Yang dataset (Kriener, Göltz & Petrovici, 2022) and its spike-time code.

A sample is a point ``(x, y)`` drawn uniformly from the disc of radius
``r_big`` centred at ``(r_big, r_big)``, presented as the four features
``(x, y, 1 - x, 1 - y)`` (the mirrored pair lets networks without an intrinsic
bias see every point "from both sides"). Its label is the region of the
yin-yang symbol it falls in:

- ``0`` (``"yin"``): the lower half of the disc outside the left lobe, plus
  the right lobe (the disc of radius ``r_big / 2`` around ``(1.5 r_big, r_big)``);
- ``1`` (``"yang"``): the upper half of the disc outside the right lobe, plus
  the left lobe (radius ``r_big / 2`` around ``(0.5 r_big, r_big)``);
- ``2`` (``"dot"``): the two eyes, discs of radius ``r_small`` around the lobe
  centres (taking precedence over the two rules above).

The generator reproduces the reference implementation
(https://github.com/lkriener/yin_yang_data_set) sample for sample: for each
sample it first draws the wanted class with ``RandomState.randint(3)``, then
draws points with ``RandomState.rand(2)`` (scaled to ``[0, 2 r_big)``) until one
lies inside the big disc *and* has the wanted class (rejection sampling), so
the three classes are balanced in expectation. The canonical splits are 5000
(seed 42) / 1000 (seed 41) / 1000 (seed 40) samples; different seeds matter,
as equal seeds give equal samples.
"""

from __future__ import annotations

import math
from typing import NamedTuple

import numpy as np

__all__ = ["CLASS_NAMES", "Splits", "yinyang", "yinyang_splits", "encode_yinyang"]

#: Class names, indexed by label (as in the reference implementation).
CLASS_NAMES = ("yin", "yang", "dot")


class Splits(NamedTuple):
    """The canonical ``train`` / ``val`` / ``test`` parts of a dataset."""

    train: tuple
    val: tuple
    test: tuple


def _region(x: float, y: float, r_small: float, r_big: float) -> int:
    """Label of a point known to lie in the big disc (see the module docstring).

    The arithmetic (``** 2``, ``sqrt``) and the comparisons are those of the
    reference implementation, including which inequalities are strict, so that
    points on or next to a boundary get the same label.
    """
    d_left = math.sqrt((x - 0.5 * r_big) ** 2 + (y - r_big) ** 2)
    d_right = math.sqrt((x - 1.5 * r_big) ** 2 + (y - r_big) ** 2)
    if d_left < r_small or d_right < r_small:
        return 2
    in_left_lobe = r_small < d_left <= 0.5 * r_big
    upper_outside_right_lobe = y > r_big and d_right > 0.5 * r_big
    # ``d_right <= r_small`` is also "yang" in the reference; with the dot test
    # above it only matters for the measure-zero circle ``d_right == r_small``.
    return int(d_right <= r_small or in_left_lobe or upper_outside_right_lobe)


def yinyang(
    size: int = 1000, seed: int = 42, *, r_small: float = 0.1, r_big: float = 0.5
) -> tuple[np.ndarray, np.ndarray]:
    """Generate ``size`` Yin-Yang samples, identical to the reference generator.

    **Arguments:**

    - `size`: number of samples.
    - `seed`: seed of the ``numpy.random.RandomState`` stream that drives the
      generator (the reference uses the same legacy stream, so equal seeds give
      equal samples).
    - `r_small`: radius of the two dots.
    - `r_big`: radius of the symbol; points lie in ``[0, 2 r_big]²``.

    **Returns:**

    ``(features, labels)``: ``features`` is a float64 array of shape
    ``(size, 4)`` with rows ``(x, y, 1 - x, 1 - y)`` (so in ``[0, 1]`` for the
    default ``r_big = 0.5``); ``labels`` is an int64 array of shape ``(size,)``
    with values in ``{0, 1, 2}`` (see :data:`CLASS_NAMES`).

    **Example:**

    ```python
    features, labels = yinyang(5000, seed=42)     # the canonical training set
    features.shape, labels.shape                  # (5000, 4), (5000,)
    np.bincount(labels)                           # array([1681, 1702, 1617])
    ```
    """
    if size < 0:
        raise ValueError(f"size must be >= 0, got {size}")
    if not 0 < r_small < 0.5 * r_big:
        raise ValueError(f"need 0 < r_small < r_big / 2, got r_small={r_small}, r_big={r_big}")
    rng = np.random.RandomState(seed)
    points = np.empty((size, 2), dtype=np.float64)
    labels = np.empty(size, dtype=np.int64)
    for i in range(size):
        goal = rng.randint(3)
        while True:
            # Both coordinates come from one ``rand(2)`` call: x first, then y.
            x, y = (rng.rand(2) * (2.0 * r_big)).tolist()
            if math.sqrt((x - r_big) ** 2 + (y - r_big) ** 2) > r_big:
                continue  # outside the symbol
            label = _region(x, y, r_small, r_big)
            if label == goal:
                break
        points[i] = x, y
        labels[i] = label
    features = np.concatenate([points, 1.0 - points], axis=1)
    return features, labels


def yinyang_splits(*, r_small: float = 0.1, r_big: float = 0.5) -> Splits:
    """The canonical splits: 5000 / 1000 / 1000 samples with seeds 42 / 41 / 40.

    **Returns:**

    A :class:`Splits` ``(train, val, test)``, each a ``(features, labels)``
    pair as returned by :func:`yinyang`.

    **Example:**

    ```python
    (x_train, y_train), (x_val, y_val), (x_test, y_test) = yinyang_splits()
    ```
    """
    kw = dict(r_small=r_small, r_big=r_big)
    return Splits(yinyang(5000, 42, **kw), yinyang(1000, 41, **kw), yinyang(1000, 40, **kw))


def encode_yinyang(
    features,
    t_min: float = 0.0,
    t_max: float = 30.0,
    bias_time: float | None = None,
    *,
    dtype=np.float64,
) -> np.ndarray:
    """Encode Yin-Yang features as one input spike per channel (time-to-first-spike code).

    Each feature ``f`` in ``[0, 1]`` becomes one spike at

    ``t = t_min + (t_max - t_min) * (1 - f)``  (ms),

    so *large values spike early* (``f = 1`` at ``t_min``, ``f = 0`` at
    ``t_max``). A fifth channel is a bias: it spikes at ``bias_time`` in every
    sample, giving neurons a constant, learnable drive.

    **Arguments:**

    - `features`: array of shape ``(..., 4)`` with values in ``[0, 1]``, as
      returned by :func:`yinyang` (a single sample of shape ``(4,)`` works too).
    - `t_min`, `t_max`: earliest and latest feature spike time, ms,
      ``0 <= t_min < t_max``.
    - `bias_time`: spike time of the bias channel, ms; defaults to ``t_min``.
    - `dtype`: floating dtype of the result.

    **Returns:**

    Spike times of shape ``(..., 5)``: channels 0--3 are the features in order,
    channel 4 the bias. Every channel spikes exactly once (no ``inf``). This is
    the per-sample ``input_times`` layout of the simulator (``vmap`` over the
    leading axis for a batch).

    **Example:**

    ```python
    features, labels = yinyang(1000, seed=42)
    times = encode_yinyang(features)            # (1000, 5), in [0, 30] ms
    encode_yinyang(np.array([1.0, 0.0, 0.0, 1.0]))
    # array([ 0., 30., 30.,  0.,  0.])
    ```
    """
    if not 0.0 <= t_min < t_max:
        raise ValueError(f"need 0 <= t_min < t_max, got t_min={t_min}, t_max={t_max}")
    bias_time = t_min if bias_time is None else bias_time
    if not (bias_time >= 0.0 and math.isfinite(bias_time)):
        raise ValueError(f"bias_time must be finite and >= 0, got {bias_time}")
    f = np.asarray(features, dtype=np.float64)
    if f.ndim == 0 or f.shape[-1] != 4:
        raise ValueError(f"features must have shape (..., 4), got {f.shape}")
    if not np.all((f >= 0.0) & (f <= 1.0)):
        raise ValueError("features must lie in [0, 1] (the default r_big = 0.5 ensures this)")
    times = t_min + (t_max - t_min) * (1.0 - f)
    bias = np.full(f.shape[:-1] + (1,), bias_time, dtype=np.float64)
    return np.concatenate([times, bias], axis=-1).astype(dtype)
