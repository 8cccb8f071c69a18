"""The input spike schedule: a time-sorted list of ``(time, source)`` pairs.

Input spike times come as an array of shape ``(in_size,)`` (at most one spike
per input channel) or ``(in_size, k)`` (up to ``k`` spikes per channel);
``inf`` marks an absent spike. We flatten them to ``in_size * k`` entries with
their source index and sort by time, so that the event loop only needs a
pointer to the next undelivered input.

Sorting is differentiable (it is a permutation), so gradients reach the input
times; absent (``inf``) entries sort to the end and are never delivered.
Shapes are static, so a new *number* of spikes does not recompile, only a new
array shape does.
"""

from __future__ import annotations

import equinox as eqx
import jax
import jax.numpy as jnp


class InputSchedule(eqx.Module):
    """Sorted input spikes: ``times`` (ascending, ``inf`` last) and ``sources``."""

    times: jax.Array
    sources: jax.Array

    @property
    def size(self) -> int:
        """Number of entries (static): the capacity, not the number of real spikes."""
        return int(self.times.shape[0])

    def time_at(self, ptr) -> jax.Array:
        """Time of entry ``ptr``, ``inf`` past the end (never an out-of-bounds read)."""
        if self.size == 0:
            return jnp.asarray(jnp.inf, self.times.dtype)
        safe = jnp.minimum(ptr, self.size - 1)
        return jnp.where(ptr < self.size, self.times[safe], jnp.inf)

    def chunk(self, ptr, t, width: int):
        """The next at most ``width`` entries from ``ptr`` that lie at time ``t``.

        Returns ``(times, sources, valid, n, complete)``: the ``(width,)`` entry times
        (``inf`` past the end) and source indices (safe to index with), which of them
        lie at ``t``, how many do, and whether that finishes the group of entries at
        ``t``. The times carry each entry's own derivative, which the event loop needs
        to give every input of a simultaneous group the gradient of its own time. The event loop delivers a group of
        simultaneous input spikes in chunks of ``width`` gathered weight rows, so an
        input event costs ``O(width * n_dst)``, not the ``O(in_size * n_dst)`` of a
        dense ``counts @ W``.
        """
        if self.size == 0:
            none = jnp.zeros((width,), jnp.int32)
            times = jnp.full((width,), jnp.inf, self.times.dtype)
            return times, none, none > 0, jnp.asarray(0, jnp.int32), jnp.asarray(True)
        idx = ptr + jnp.arange(width, dtype=jnp.int32)
        times = self.time_at(idx)
        valid = times == t
        sources = self.sources[jnp.minimum(idx, self.size - 1)]
        complete = self.time_at(ptr + width) != t
        return times, sources, valid, jnp.sum(valid, dtype=jnp.int32), complete


def make_schedule(input_times, in_size: int, dtype) -> InputSchedule:
    """Flatten and sort ``input_times`` of shape ``(in_size,)`` or ``(in_size, k)``."""
    times = jnp.asarray(input_times, dtype)
    if times.ndim == 1:
        times = times[:, None]
    if times.ndim != 2 or times.shape[0] != in_size:
        raise ValueError(
            f"input_times has shape {tuple(jnp.shape(input_times))}; expected "
            f"({in_size},) or ({in_size}, k) for a network with in_size={in_size} "
            "(use inf for absent spikes)"
        )
    k = times.shape[1]
    flat = times.reshape(-1)
    sources = jnp.repeat(jnp.arange(in_size), k)
    flat = eqx.error_if(
        flat,
        jnp.isnan(flat) | (flat < 0),
        "input_times must be >= 0 (use inf for an absent spike); found NaN or a negative time",
    )
    order = jnp.argsort(flat, stable=True)
    return InputSchedule(times=flat[order], sources=sources[order])
