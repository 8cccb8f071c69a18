"""Forward functions: what a training loop calls (one sample; ``jax.vmap`` for a batch).

All three are thin views of :func:`eventax_dsl.sim.loop.simulate`:

- :func:`ttfs` -- time to first spike of each output neuron;
- :func:`spikes` -- every spike (time, neuron id) up to ``t_end``;
- :func:`state_at` -- observables of the output population at given times.

Example::

    net = FeedForward([LIF, LIF], layers=[20, 3], in_size=5, key=jr.key(0))
    t_first = jax.vmap(lambda x: net.ttfs(x, t_max=50.0))(batch_of_input_times)
    grads = jax.grad(lambda n: loss(jax.vmap(lambda x: n.ttfs(x, 50.0))(xs)))(net)

Batching note: under ``vmap`` the event loop runs until the *slowest* sample is
done (the others idle), and both sides of every branch are computed.
"""

from __future__ import annotations

import jax.numpy as jnp

from .loop import simulate
from .network import Network
from .options import SimOptions


def ttfs(net: Network, input_times, t_max, *, options: SimOptions | None = None, **kwargs):
    """First spike time of each output neuron, ``inf`` if it does not spike by ``t_max``.

    The simulation stops as soon as every output neuron has spiked (or at
    ``t_max``). Gradients w.r.t. the finite entries are exact (implicit function
    theorem at the spike); an ``inf`` entry has zero gradient, so replace it
    (e.g. ``jnp.where(jnp.isfinite(t), t, t_max)``) *before* any arithmetic in a
    loss to keep gradients NaN-free.
    """
    if not type(net.populations[net.output]).SPIKING:
        raise ValueError(
            f"ttfs: the output population ({type(net.populations[net.output]).NAME}) "
            "does not spike; use state_at for a read-out"
        )
    res = simulate(
        net,
        input_times,
        t_max,
        options=options,
        stop_when_output_spiked=True,
        record_spikes=False,
        **kwargs,
    )
    return res.first_spike[net.output]


def spikes(net: Network, input_times, t_end, *, options: SimOptions | None = None, **kwargs):
    """All spikes until ``t_end``, in time order: ``(times, ids, count)``.

    ``times`` (float) and ``ids`` (int32, global: population ``p``'s neuron ``j``
    has id ``net.offsets[p] + j``) are buffers of static size ``max_spikes``
    (option; default see :func:`~eventax_dsl.sim.loop.spike_budget`), padded
    with ``inf`` and ``-1``; ``count`` is the number of real spikes. More spikes
    than the buffer holds is an error.
    """
    res = simulate(net, input_times, t_end, options=options, **kwargs)
    return res.spike_times, res.spike_ids, res.n_spikes


def state_at(net: Network, input_times, times, *, options: SimOptions | None = None, **kwargs):
    """Observables of the output population at ``times`` (``>= 0``, any order).

    Returns ``{name: array of shape (len(times), n_out, ...)}``. The value at a
    time at which an input spike arrives is the one just *before* it (inputs
    are jumps; the recorded state is the left limit). The simulation runs until
    ``max(times)``.
    """
    times = jnp.asarray(times)
    if times.ndim != 1 or times.shape[0] == 0:
        raise ValueError(f"times must be a non-empty 1-D array, got shape {times.shape}")
    res = simulate(
        net,
        input_times,
        jnp.max(times),
        options=options,
        obs_times=times,
        record_spikes=False,
        **kwargs,
    )
    return res.observed
