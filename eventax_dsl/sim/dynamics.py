"""Network-level dynamics: the pieces the event loop combines.

The simulator's whole-network state ``y`` is a tuple with one state dict per
population (leaves of shape ``(n, *shape)``), a PyTree Diffrax integrates as a
single ODE. This module lifts the population methods of the model contract to
the network:

- :func:`vector_field` -- ``dy/dt`` between events, with refractory clamping and
  the held states of spent neurons (:class:`Hold`);
- :func:`conditions` / :func:`earliest_condition` -- the spike conditions, and
  the one scalar whose upward zero crossing Diffrax's event root-finding locates
  (spikes of armed neurons, and re-arming of neurons that spiked without being
  reset below threshold);
- :func:`deliver` -- spikes (and input spikes) turned into summed weights per
  channel and passed to ``apply_input``;
- :func:`reset` -- ``apply_reset`` on the neurons that spiked.

Masks (``refractory``, ``armed``, ``spiked``) are tuples of boolean ``(n,)``
arrays, one per population; non-spiking populations still get one (all
``False``) so that every function has the same shape of arguments.

Why one scalar condition? ``diffrax.Event`` accepts a PyTree of conditions, but
when several trigger in the same step the *later in the list* wins (Diffrax issue
#639), not the earliest. The maximum of all conditions crosses zero exactly when
the first of them does, so root-finding on ``max_j c_j`` returns the earliest
spike; its gradient flows (through the argmax) to the neuron that spiked.
"""

from __future__ import annotations

import equinox as eqx
import jax
import jax.numpy as jnp

from ..contract import NeuronModel
from .network import Network

State = tuple[dict[str, jax.Array], ...]
Masks = tuple[jax.Array, ...]


def _select(mask, new, old):
    mask = jnp.reshape(mask, mask.shape + (1,) * (jnp.ndim(old) - jnp.ndim(mask)))
    return jnp.where(mask, new, old)


def initial_state(net: Network) -> State:
    return tuple(pop.initial_state() for pop in net.populations)


class Hold(eqx.Module):
    """Which neurons' states stand still during one interval (one mask per population).

    - ``refractory``: neurons in their refractory period; their ``CLAMPED`` states
      are held (the model's ``refractory T clamp ...``);
    - ``spent``: with ``amos``, the neurons that have spiked; *all* their states are
      held at their value after the reset, and input to them is dropped. ``None``
      without ``amos``.

    Holding a spent neuron is what makes ``amos`` safe for models whose upswing
    only the reset stops (Izhikevich, EIF, AdEx): a neuron that is never armed
    again would otherwise be driven to a finite-time blow-up by later input. It
    changes nothing else: a spent neuron never spikes again, so its later state
    reaches no spike and no loss (only a recorded trace of it shows the hold).
    """

    refractory: Masks
    spent: Masks | None = None


def vector_field(populations: tuple[NeuronModel, ...], y: State, hold: Hold) -> State:
    """``dy/dt``; the ``CLAMPED`` states of ``hold.refractory`` neurons, and every state
    of a ``hold.spent`` neuron, have derivative 0."""
    out = []
    for i, (pop, s, refr) in enumerate(zip(populations, y, hold.refractory)):
        f = pop.vector_field(s)
        model = type(pop)
        if model.REFRACTORY and model.CLAMPED:
            f = {
                k: (_select(refr, jnp.zeros_like(v), v) if k in model.CLAMPED else v)
                for k, v in f.items()
            }
        if hold.spent is not None and model.SPIKING:
            f = {k: _select(hold.spent[i], jnp.zeros_like(v), v) for k, v in f.items()}
        out.append(f)
    return tuple(out)


def conditions(populations: tuple[NeuronModel, ...], y: State) -> tuple[jax.Array, ...]:
    """Spike condition of every neuron; ``-1`` for populations that do not spike."""
    out = []
    for pop, s in zip(populations, y):
        if type(pop).SPIKING:
            out.append(pop.spike_conditions(s))
        else:
            leaf = jax.tree_util.tree_leaves(s)[0]
            out.append(-jnp.ones((pop.n,), leaf.dtype))
    return tuple(out)


class Watch(eqx.Module):
    """What the event function watches during one interval (one mask per population).

    - ``armed``: neurons whose spike (upward crossing of ``c_j``) is detected;
    - ``rearm``: disarmed neurons waiting for ``c_j`` to fall below ``-margin_j``
      (a downward crossing, detected as the upward crossing of ``-c_j - margin_j``);
    - ``margin``: the re-arming depth, per neuron.
    """

    armed: Masks
    rearm: Masks
    margin: tuple[jax.Array, ...]


def event_terms(populations, y: State, watch: Watch) -> tuple[jax.Array, ...]:
    """Per neuron: ``c_j`` if armed, ``-c_j - margin_j`` if waiting to re-arm, else ``-1``.

    An event happens when any term crosses zero upwards. Every term is negative
    at the start of an interval (see :mod:`eventax_dsl.sim.loop`), so the
    maximum crosses zero exactly when the first term does. Unwatched neurons get a
    constant (rather than ``-inf``) so that every derivative stays finite.
    """
    out = []
    for c, a, r, m in zip(conditions(populations, y), watch.armed, watch.rearm, watch.margin):
        out.append(jnp.where(a, c, jnp.where(r, -c - m, -jnp.ones_like(c))))
    return tuple(out)


def earliest_condition(populations, y: State, watch: Watch) -> jax.Array:
    """The scalar event function: ``max`` of :func:`event_terms` (``-1`` if empty)."""
    best = None
    for term in event_terms(populations, y, watch):
        if term.shape[0] == 0:
            continue
        m = jnp.max(term)
        best = m if best is None else jnp.maximum(best, m)
    if best is None:
        leaf = jax.tree_util.tree_leaves(y)[0]
        return -jnp.ones((), leaf.dtype)
    return best


def condition_slopes(populations, y: State, hold: Hold) -> tuple[jax.Array, ...]:
    """``dc_j/dt = grad c_j . f(y)`` for every neuron (a forward-mode JVP)."""
    f = vector_field(populations, y, hold)
    _, slopes = jax.jvp(lambda y_: conditions(populations, y_), (y,), (f,))
    return slopes


def argmax_mask(values: tuple[jax.Array, ...], valid: Masks) -> Masks:
    """One-hot (over the whole network) of the largest valid value."""
    flat = jnp.concatenate([jnp.where(v, c, -jnp.inf) for c, v in zip(values, valid)])
    if flat.shape[0] == 0:  # a network without neurons
        return tuple(jnp.zeros(c.shape, bool) for c in values)
    hot = jnp.arange(flat.shape[0]) == jnp.argmax(flat)
    out, start = [], 0
    for c in values:
        out.append(hot[start : start + c.shape[0]])
        start += c.shape[0]
    return tuple(out)


def reset(populations, y: State, spiked: Masks) -> State:
    """``apply_reset`` for populations where any neuron spiked (others unchanged)."""
    out = []
    for pop, s, m in zip(populations, y, spiked):
        if type(pop).SPIKING:
            s = pop.apply_reset(s, m)
        out.append(s)
    return tuple(out)


def deliver(net: Network, y: State, sources: dict[int, jax.Array], blocked: Masks,
            direct: dict[int, tuple[dict[str, jax.Array], jax.Array]] | None = None,
            held: Masks | None = None) -> State:
    """Deliver spikes: ``sources[src]`` is a float ``(n_src,)`` array of spike counts
    (0/1 for a population, counts for the external input ``-1``).

    Per destination population the weights are summed per channel,
    ``sum_j count_j * W[j, :, ...]``, and passed once to ``apply_input``. Only
    neurons that actually receive a spike (a synapse from a spiking source) and are
    not ``blocked`` (refractory, unless the model has ``KEEP_INPUT``) are updated, so
    a model whose input rule has a constant part is not triggered by silence. The
    ``CLAMPED`` states of ``held`` (refractory) neurons keep their values.

    ``direct[j]``: for projection ``j``, its already summed input per channel and
    the mask of the neurons it reaches (the event loop passes the external input
    this way, see :meth:`~eventax_dsl.sim.schedule.InputSchedule.chunk`); such a
    projection ignores ``sources``.
    """
    direct = direct or {}
    acc: dict[int, dict[str, jax.Array]] = {}
    hit: dict[int, jax.Array] = {}

    def add(dst, contribs, receives):
        summed = acc.setdefault(dst, {})
        for name, contrib in contribs.items():
            summed[name] = summed[name] + contrib if name in summed else contrib
        hit[dst] = hit[dst] | receives if dst in hit else receives

    for j, (src, dst) in enumerate(net.projections):
        pop = net.populations[dst]
        if j in direct:
            add(dst, *direct[j])
            continue
        if src not in sources:
            continue
        counts = sources[src]
        weights = net.effective_weights(j)
        mask = net.masks[j]
        if mask is None:
            receives = jnp.broadcast_to(jnp.any(counts > 0), (pop.n,))
        else:
            receives = (counts @ mask) > 0
        add(dst, {c.name: jnp.tensordot(counts, weights[c.name], axes=1)
                  for c in type(pop).CHANNELS}, receives)
    out = list(y)
    for dst, summed in acc.items():
        pop = net.populations[dst]
        new = pop.apply_input(out[dst], summed)
        take = hit[dst] & ~blocked[dst]
        clamped = type(pop).CLAMPED if held is not None and type(pop).REFRACTORY else ()
        kept = take & ~held[dst] if clamped else take
        out[dst] = {k: _select(kept if k in clamped else take, new[k], v)
                    for k, v in out[dst].items()}
    return tuple(out)


def non_finite(y: State) -> jax.Array:
    """Flat boolean vector: is state variable ``k`` (population-major order) non-finite?"""
    flags = []
    for s in y:
        for k in sorted(s):
            flags.append(jnp.any(~jnp.isfinite(s[k])))
    return jnp.stack(flags) if flags else jnp.zeros((0,), bool)


def state_variable_names(net: Network) -> list[str]:
    """Names matching :func:`non_finite`: ``"population 0 (LIF), state 'v'"``..."""
    names = []
    for p, pop in enumerate(net.populations):
        for k in sorted(jax.eval_shape(pop.initial_state)):
            names.append(f"{type(pop).NAME} (population {p}), state variable '{k}'")
    return names
