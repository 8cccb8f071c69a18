"""Building the network of a run, and a data-driven initial weight scale.

**Architecture** (:func:`build_network`):

- ``yinyang``, ``mnist``: feed-forward, ``in -> hidden[0] -> ... -> n_classes``
  (:func:`~eventax_dsl.sim.FeedForward`);
- ``xor``: one recurrent population (no self-connections) and the read-out,
  ``Network.create([hidden, readout], 9, [("input", 0), (0, 0), (0, 1)], output=1)``.

For a voltage loss the read-out population is wrapped with quadrature states
(:func:`~eventax_dsl.train.quadrature.attach_quadrature`).

**Initial weights** are Gaussian and scaled by ``1 / sqrt(fan_in)``:

- into a spiking population: ``N(4, 2^2)`` (positive on average, so that a few
  coincident inputs reach threshold, see the models' docstrings: a weight-1
  input to ``lif``/``qif`` gives a voltage bump of 1/4 of the threshold);
- recurrent: ``N(0, 1)`` (zero mean: no runaway excitation);
- into a non-spiking read-out: ``N(0, 1)``.

**Calibration.** Models differ in how much input they need (an ``eif`` neuron in
nA fires with ~1/3 of the input a ``lif`` neuron needs), so the default
``init_gain="auto"`` multiplies the weights into each spiking population
(feed-forward and recurrent) by a gain chosen on a batch of training data (:func:`calibrate`):
population by population, the gain is searched (doubling / halving, then
bisection in log scale) until the fraction of (sample, neuron) pairs with at
least one spike lies in a target band -- ``[0.4, 0.95]`` for hidden
populations, ``[0.9, 1]`` for a spiking output layer (every output should spike
so that the time-to-first-spike loss has gradients) -- and the mean number of
spikes per (sample, neuron) is at most ``RATE_CAP = 4`` (no tonic firing). A
gain at which the spike buffer or the event budget runs out
(:class:`~eventax_dsl.sim.BudgetExhausted`) counts as too strong.
Populations downstream of the one being calibrated are silenced meanwhile
(their input gain is 0).

**Time constants stay positive.** Gradient steps know nothing about physics: on
Yin-Yang LIF -> LI with the exp-integral loss (lr 5e-3), the read-out's
``tau_mem`` fell from 10 ms to below 0 within 14 epochs, and the simulation
stopped with NaN. :func:`time_constant_floors` lists every learnable parameter
with the dimension of time (from its unit) and a positive default; after each
optimiser step the trainer clips it to at least ``TIME_FLOOR`` times that
default (a projected gradient step).
"""

from __future__ import annotations

import time
from collections.abc import Callable

import equinox as eqx
import jax.numpy as jnp
import jax.random as jr
import numpy as np

from ..checker.units import TIME, UnitError, parse_unit
from ..sim import BudgetExhausted, FeedForward, Network, normal_init
from .quadrature import attach_quadrature

__all__ = ["apply_gains", "build_network", "calibrate", "time_constant_floors"]

#: Target band of the active fraction (sample, neuron) for hidden / output populations.
HIDDEN_BAND = (0.4, 0.95)
OUTPUT_BAND = (0.9, 1.0)
#: Largest mean number of spikes per (sample, neuron) accepted: more counts as too strong.
RATE_CAP = 4.0
#: Learnable time constants are kept at or above this fraction of the model's default.
TIME_FLOOR = 0.01


def _init_for(model, recurrent: bool = False):
    if recurrent or not model.SPIKING:
        return normal_init(0.0, 1.0)
    return normal_init(4.0, 2.0)


def build_network(task: str, hidden_model, readout_model, hidden, in_size: int, n_classes: int,
                  *, key, dtype, readout=None, delay: float | None = None) -> Network:
    """The network of a run (module docs), with ungained initial weights.

    ``delay``: an axonal delay (ms) on every projection between populations
    (:meth:`~eventax_dsl.sim.Network.with_delays`; ``None``: none).

    ``readout``: the :class:`~eventax_dsl.train.readout.Readout`; for a voltage
    loss (of the observable) and for TTFS with ``silent_push`` (of the spike
    condition) the output population gets quadrature states.
    """
    if readout is not None and not readout.voltage and not readout_model.SPIKING:
        raise ValueError(
            f"the ttfs loss needs a spiking output layer, but the read-out model "
            f"{readout_model.NAME} does not spike; use a voltage loss (max, integral, "
            "exp-integral) or a spiking --readout-model"
        )
    if readout is not None and readout.voltage and readout.observable not in readout_model.OBSERVABLES:
        raise ValueError(
            f"the {readout.kind} loss reads the observable {readout.observable!r}, but the "
            f"read-out model {readout_model.NAME} observes only: "
            f"{', '.join(readout_model.OBSERVABLES) or '(nothing)'}"
        )
    if task == "xor":
        (n_hidden,) = hidden
        pops = [hidden_model.create(n_hidden, dtype), readout_model.create(n_classes, dtype)]
        net = Network.create(
            pops, in_size, [("input", 0), (0, 0), (0, 1)], key=key, output=1,
            weight_init=[_init_for(hidden_model), _init_for(hidden_model, recurrent=True),
                         _init_for(readout_model)],
        )
    else:
        models = [hidden_model] * len(hidden) + [readout_model]
        net = FeedForward(models, list(hidden) + [n_classes], in_size, key=key, dtype=dtype,
                          weight_init=[_init_for(m) for m in models])
    if readout is not None and readout.quadrature is not None:
        net = attach_quadrature(net, readout.quadrature, readout.tau, readout.integrals)
    if delay is not None:
        net = net.with_delays({j: delay for j, (src, _) in enumerate(net.projections) if src >= 0})
    return net


def apply_gains(net: Network, gains) -> Network:
    """Multiply every weight into population ``p`` (feed-forward and recurrent) by ``gains[p]``."""
    new = []
    for (_, dst), w in zip(net.projections, net.weights):
        new.append({k: v * jnp.asarray(gains[dst], v.dtype) for k, v in w.items()})
    return eqx.tree_at(lambda n: n.weights, net, tuple(new))


def calibrate(net: Network, activity: Callable[[Network], np.ndarray], *, max_evals: int = 8,
              log=None) -> tuple[Network, list[float]]:
    """Choose one input gain per spiking population (module docs); returns ``(net, gains)``.

    ``activity(net)`` simulates a fixed batch and returns spike counts
    ``(B, n_neurons)`` (global neuron ids). It raises
    :class:`~eventax_dsl.sim.BudgetExhausted` when the spike buffer or the event
    budget runs out, which counts as "too active"; any other error propagates.
    """
    npop = len(net.populations)
    gains = [1.0] * npop
    spiking = [type(p).SPIKING for p in net.populations]
    offsets = net.offsets
    for p in range(npop):
        if not spiking[p]:
            continue
        band = OUTPUT_BAND if p == net.output else HIDDEN_BAND
        lo_idx, hi_idx = offsets[p], offsets[p] + net.populations[p].n

        name = type(net.populations[p]).NAME

        def measure(g):
            trial = gains[:p] + [g] + [0.0] * (npop - p - 1)
            start = time.perf_counter()
            try:
                counts = np.asarray(activity(apply_gains(net, trial)))[:, lo_idx:hi_idx]
                f, rate = float(np.mean(counts > 0)), float(np.mean(counts))
                what = f"active fraction {f:.2f}, {rate:.2f} spikes per neuron and sample"
            except BudgetExhausted:  # more spikes than the simulation is sized for
                f, rate = np.inf, np.inf
                what = "spike buffer or event budget exhausted (too active)"
            if log is not None:  # slow models take minutes per trial: show progress
                log(f"calibration: population {p} ({name}) trial gain {g:.3g}: {what} "
                    f"({time.perf_counter() - start:.1f} s)")
            return f, rate

        def verdict(f, rate):  # -1 too weak, 0 fine, 1 too strong
            if f > band[1] or rate > RATE_CAP:
                return 1
            return -1 if f < band[0] else 0

        g, (f, rate) = 1.0, measure(1.0)
        below, above = None, None  # log2-gains known to be too weak / too strong
        for _ in range(max_evals - 1):
            if verdict(f, rate) == 0:
                break
            if verdict(f, rate) < 0:
                below = np.log2(g)
            else:
                above = np.log2(g)
            if below is not None and above is not None:
                g = 2.0 ** (0.5 * (below + above))
            else:
                g = g * 2.0 if above is None else g / 2.0
            f, rate = measure(g)
        for _ in range(12):  # never leave a gain at which the simulation fails
            if np.isfinite(f):
                break
            g = g / 2.0
            f, rate = measure(g)
        if not np.isfinite(f):
            raise ValueError(
                f"calibration: population {p} ({name}) fails to simulate "
                "even with tiny input weights (spike buffer or event budget exhausted?); raise "
                "max_spikes_per_neuron or set init_gain to a number")
        gains[p] = float(g)
        if log is not None:
            log(f"calibration: population {p} ({name}) gain {g:.3g}, "
                f"active fraction {f:.2f} (target {band[0]}-{band[1]}), "
                f"{rate:.2f} spikes per neuron and sample (at most {RATE_CAP})")
    return apply_gains(net, gains), gains


def time_constant_floors(net: Network) -> tuple[tuple[int, str, float], ...]:
    """``(population, parameter, lower bound)`` for every learnable time constant of ``net``.

    A time constant is a learnable parameter whose unit has the dimension of time
    (``ms``, ``s``, ...) and whose default is positive; its bound is ``TIME_FLOOR``
    times the default. The result is hashable (a static argument of the training step).
    """
    floors = []
    for p, pop in enumerate(net.populations):
        for spec in type(pop).PARAMETERS:
            if not spec.learnable or spec.name not in pop.params:
                continue
            try:
                time_like = parse_unit(spec.unit)[1] == TIME
            except UnitError:
                time_like = False
            default = np.min(np.asarray(spec.default, float))
            if time_like and default > 0:
                floors.append((p, spec.name, float(TIME_FLOOR * default)))
    return tuple(floors)


def init_key(seed: int):
    """The key the network is initialised with (the per-epoch shuffling keys are
    ``fold_in(key(seed), epoch)``; this one is ``fold_in(key(seed), -1)`` mod 2**32)."""
    return jr.fold_in(jr.key(seed), 2**32 - 1)
