"""Event-driven, differentiable simulation of spiking neural networks.

The simulator runs any :class:`~eventax_dsl.contract.NeuronModel` (compiled from a
``.neuron`` file or written by hand): Diffrax integrates the whole network
between events, spikes are located by root finding on the solver's dense output,
and gradients flow end to end (through the solver steps, and through spike times
by the implicit function theorem).

Modules, in reading order:

- :mod:`~eventax_dsl.sim.network` -- :class:`Network`, :func:`FeedForward`,
  :func:`trainable`;
- :mod:`~eventax_dsl.sim.schedule` -- input spikes as a sorted schedule;
- :mod:`~eventax_dsl.sim.dynamics` -- the network's ODE, spike condition, delivery;
- :mod:`~eventax_dsl.sim.loop` -- the event loop, budget, errors;
- :mod:`~eventax_dsl.sim.forward` -- :func:`ttfs`, :func:`spikes`, :func:`state_at`;
- :mod:`~eventax_dsl.sim.options` -- :class:`SimOptions` (solver, tolerances, AMOS).
"""

from .forward import spikes, state_at, ttfs
from .loop import (BudgetExhausted, SimResult, SimulationError, event_budget, simulate,
                   spike_budget, status_error)
from .network import FeedForward, Network, default_weight_init, normal_init, trainable
from .options import DEFAULT_SPIKES_PER_NEURON, SimOptions
from .schedule import InputSchedule, make_schedule

__all__ = [
    "BudgetExhausted",
    "DEFAULT_SPIKES_PER_NEURON",
    "FeedForward",
    "InputSchedule",
    "Network",
    "SimOptions",
    "SimResult",
    "SimulationError",
    "default_weight_init",
    "event_budget",
    "make_schedule",
    "normal_init",
    "simulate",
    "spike_budget",
    "spikes",
    "state_at",
    "status_error",
    "trainable",
    "ttfs",
]
