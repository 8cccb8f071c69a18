"""Delayed-memory XOR: remember two binary inputs until a cue, then answer their XOR.

A trial presents two binary values one after the other, then a cue; the
network has to hold the first value in memory across the gap, combine it with
the second, and report ``value_1 XOR value_2`` after the cue.

**Channels** (9 in all): ``0, 1, 2`` code the value 0, ``3, 4, 5`` the value 1,
``6, 7, 8`` the cue. An *event* (an input value or the cue) at time ``t``
makes each of the three channels of its group spike once, at ``t + u`` with
its own ``u ~ Uniform[-jitter, jitter]``.

**Timing** (ms; defaults in brackets):

- first input at the fixed time ``t_first`` [5];
- second input at ``t_second ~ Uniform[t_first + min_gap, t_trial / 3]``
  [Uniform(10, 30)];
- cue at ``t_cue = t_second + d``, ``d ~ Uniform[*cue_delay]`` [Uniform(10, 30)],
  so ``t_cue`` lies in [20, 60];
- the trial lasts ``t_trial`` [90]; read the answer in ``(t_cue + jitter, t_trial]``.

The constraints ``jitter <= t_first``, ``2 jitter < min_gap`` and
``2 jitter < cue_delay[0]`` make all times non-negative and keep the three
events apart: every spike of an event precedes every spike of the next.
"""

from __future__ import annotations

from typing import NamedTuple

import numpy as np

from .yinyang import Splits

__all__ = ["XorTrials", "delayed_xor", "delayed_xor_splits"]

N_CHANNELS = 9
_CUE = 6  # first cue channel


class XorTrials(NamedTuple):
    """A batch of delayed-XOR trials (see :func:`delayed_xor`)."""

    times: np.ndarray
    """Spike times ``(size, 9, 2)``, ms, ascending per channel, ``inf`` = no spike."""
    labels: np.ndarray
    """``value_1 XOR value_2``, int64 ``(size,)``."""
    cue_times: np.ndarray
    """Nominal cue time ``t_cue`` of each trial, ms, float ``(size,)``."""
    values: np.ndarray
    """The two input values, int64 ``(size, 2)`` in presentation order."""


def delayed_xor(
    size: int = 1000,
    seed: int = 0,
    *,
    t_trial: float = 90.0,
    t_first: float = 5.0,
    min_gap: float = 5.0,
    cue_delay: tuple[float, float] = (10.0, 30.0),
    jitter: float = 1.0,
    dtype=np.float64,
) -> XorTrials:
    """Generate `size` delayed-XOR trials (the timing is in the module docstring).

    **Arguments:**

    - `size`: number of trials.
    - `seed`: seed of the ``numpy.random.default_rng`` stream; equal arguments
      give equal trials.
    - `t_trial`: trial length, ms; the second input comes in its first third.
    - `t_first`: time of the first input, ms.
    - `min_gap`: smallest time between the two inputs, ms.
    - `cue_delay`: ``(low, high)`` range of the delay from the second input to
      the cue, ms; ``low == high`` gives a fixed delay.
    - `jitter`: half-width of the uniform jitter of each spike, ms (0 for none).
    - `dtype`: floating dtype of `times` and `cue_times`.

    **Returns:**

    An :class:`XorTrials` ``(times, labels, cue_times, values)``:

    - `times`: shape ``(size, 9, 2)``: up to two spikes per channel, ascending,
      ``inf`` for an absent spike. A value channel spikes twice when both inputs
      have its value and once when one does; each cue channel spikes once.
      ``times[n]`` is the ``input_times`` of trial ``n`` (``in_size=9``, ``k=2``).
    - `labels`: int64 ``(size,)``, ``values[:, 0] ^ values[:, 1]``.
    - `cue_times`: shape ``(size,)``, the nominal cue time; every cue spike lies
      in ``[t_cue - jitter, t_cue + jitter]``, and no input follows it.
    - `values`: int64 ``(size, 2)``, the first and second input value.

    **Example:**

    ```python
    trials = delayed_xor(1000, seed=0)
    trials.times.shape                         # (1000, 9, 2)
    times, labels, cue_times, values = trials
    # e.g. score the first output spike after t_cue + jitter (before t_trial)
    ```
    """
    lo_cue, hi_cue = cue_delay
    latest_second = t_trial / 3.0
    if size < 0:
        raise ValueError(f"size must be >= 0, got {size}")
    if not 0.0 <= jitter <= t_first:
        raise ValueError(f"need 0 <= jitter <= t_first (times must be >= 0), got {jitter}, {t_first}")
    if not 2.0 * jitter < min_gap <= latest_second - t_first:
        raise ValueError(
            f"need 2 * jitter < min_gap <= t_trial / 3 - t_first, got min_gap={min_gap} "
            f"(jitter={jitter}, t_trial={t_trial}, t_first={t_first})"
        )
    if not 2.0 * jitter < lo_cue <= hi_cue:
        raise ValueError(f"need 2 * jitter < cue_delay[0] <= cue_delay[1], got {cue_delay}")
    if not latest_second + hi_cue + jitter < t_trial:
        raise ValueError(
            f"the cue can come as late as t_trial / 3 + cue_delay[1] + jitter = "
            f"{latest_second + hi_cue + jitter}, which must be < t_trial = {t_trial}"
        )

    rng = np.random.default_rng(seed)
    values = rng.integers(0, 2, size=(size, 2))
    t_second = rng.uniform(t_first + min_gap, latest_second, size=size)
    t_cue = t_second + rng.uniform(lo_cue, hi_cue, size=size)
    noise = rng.uniform(-jitter, jitter, size=(size, 3, 3))  # (trial, event, channel in group)

    times = np.full((size, N_CHANNELS, 2), np.inf)
    rows = np.arange(size)[:, None]
    group = np.arange(3)[None, :]
    # First input: slot 0 of its value's channels. Second input: slot 1 if the
    # same channels already spiked (equal values), else slot 0 of the others.
    times[rows, 3 * values[:, :1] + group, 0] = t_first + noise[:, 0]
    slot = (values[:, 0] == values[:, 1]).astype(np.int64)[:, None]
    times[rows, 3 * values[:, 1:] + group, slot] = t_second[:, None] + noise[:, 1]
    times[:, _CUE:, 0] = t_cue[:, None] + noise[:, 2]

    labels = (values[:, 0] ^ values[:, 1]).astype(np.int64)
    return XorTrials(times.astype(dtype), labels, t_cue.astype(dtype), values.astype(np.int64))


def delayed_xor_splits(**kwargs) -> Splits:
    """Standard splits: 5000 / 1000 / 1000 trials with seeds 42 / 41 / 40.

    **Arguments:** keyword arguments of :func:`delayed_xor` (timing, jitter,
    dtype), applied to all three splits.

    **Returns:** a :class:`~eventax_dsl.datasets.Splits` ``(train, val, test)``
    of :class:`XorTrials`.

    **Example:**

    ```python
    train, val, test = delayed_xor_splits()
    train.times.shape                          # (5000, 9, 2)
    ```
    """
    return Splits(
        delayed_xor(5000, 42, **kwargs), delayed_xor(1000, 41, **kwargs), delayed_xor(1000, 40, **kwargs)
    )
