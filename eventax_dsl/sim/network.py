"""Networks: populations of neurons connected by weighted projections.

A :class:`Network` is an :class:`equinox.Module`, hence a PyTree: its arrays
(model parameters, weights, connectivity masks) are leaves, everything else
(the wiring, which population is the output) is static. So ``jax.jit``,
``jax.grad`` and ``jax.vmap`` apply to it directly, and changing weights never
recompiles.

Structure
---------
- ``populations``: a tuple of :class:`~eventax_dsl.contract.NeuronModel`
  instances, each a population of ``n`` neurons of one model class (different
  populations may use different classes).
- ``projections``: static tuple of ``(src, dst)`` pairs. ``src`` is a
  population index or ``-1`` for the external input (``in_size`` sources).
- ``weights``: one dict per projection, ``{channel: array of shape
  (n_src, n_dst, *channel_shape)}``, one entry per weight channel of the
  *destination* model (``Model.CHANNELS``).
- ``masks``: one array of shape ``(n_src, n_dst)`` per projection (1 = a
  synapse exists), or ``None`` for all-to-all. The effective weight is
  ``weight * mask``; masks are not trained (see :func:`trainable`).
- ``delays`` (optional, :meth:`Network.with_delays`): per projection ``None``
  (spikes arrive at once) or the transmission delay in ms, trained like the
  weights: shape ``(n_src,)`` for an *axonal* delay (one per source neuron, the
  same to all its targets) or ``(n_src, n_dst)`` for a *synaptic* delay (one per
  synapse). A spike of neuron ``i`` at ``t`` reaches target ``k`` at
  ``t + max(d, 0)``; its effect moves with ``d``, so the loss has an exact
  gradient with respect to every delay. Only projections between populations
  have delays (shift the input spike times to delay the external input).

:class:`FeedForward` builds the usual layered network; :meth:`Network.create`
builds anything else (recurrent, several populations, sparse masks).

The simulation methods (:meth:`Network.ttfs`, :meth:`Network.spikes`,
:meth:`Network.state_at`) are for one sample; use ``jax.vmap`` for a batch.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable, Mapping, Sequence
from typing import Any

import equinox as eqx
import jax
import jax.numpy as jnp
import jax.random as jr
import jax.tree_util as jtu
import numpy as np

from ..contract import NeuronModel

WeightInit = Callable[[jax.Array, tuple[int, ...], Any], jax.Array]


def normal_init(mean: float = 0.0, std: float = 1.0, fan_in_scaling: bool = True) -> WeightInit:
    """Gaussian weights ``N(mean, std**2)``, both divided by ``sqrt(fan_in)`` if asked.

    ``fan_in`` is the first axis of the weight shape (number of sources).
    """

    def init(key, shape, dtype):
        scale = 1.0 / np.sqrt(max(shape[0], 1)) if fan_in_scaling else 1.0  # no source: no weight
        return (mean + std * jr.normal(key, shape, dtype)) * scale

    return init


def default_weight_init(key, shape, dtype):
    """Default initialiser: ``N(4, 2**2) / sqrt(fan_in)``.

    Positive on average so that a freshly built network of threshold-1 neurons
    (the hand-written models) actually spikes; pass ``weight_init`` for anything
    else.
    """
    return normal_init(4.0, 2.0)(key, shape, dtype)


def _population_index(index, count: int) -> int:
    """``index`` (negative counts from the end) as 0 .. count-1; out of range is an error."""
    i = int(index)
    if not -count <= i < count:
        raise ValueError(f"output population {i} out of range (have {count})")
    return i % count


class Network(eqx.Module):
    """Populations of neurons connected by weighted projections (see module docs)."""

    populations: tuple[NeuronModel, ...]
    weights: tuple[dict[str, jax.Array], ...]
    masks: tuple[jax.Array | None, ...]
    projections: tuple[tuple[int, int], ...] = eqx.field(static=True)
    in_size: int = eqx.field(static=True)
    output: int = eqx.field(static=True)
    delays: tuple[jax.Array | None, ...] | None = None

    def __check_init__(self):
        if len(self.weights) != len(self.projections) or len(self.masks) != len(self.projections):
            raise ValueError("weights, masks and projections must have the same length")
        npop = len(self.populations)
        if not -npop <= self.output < npop:
            raise ValueError(f"output population {self.output} out of range (have {npop})")
        for (src, dst), w, m in zip(self.projections, self.weights, self.masks):
            if not (-1 <= src < npop and 0 <= dst < npop):
                raise ValueError(f"projection ({src}, {dst}) out of range")
            n_src = self.in_size if src == -1 else self.populations[src].n
            n_dst = self.populations[dst].n
            model = type(self.populations[dst])
            names = [c.name for c in model.CHANNELS]
            if sorted(w) != sorted(names):
                raise ValueError(
                    f"projection ({src}, {dst}): weights for channels {sorted(w)}, "
                    f"but {model.NAME} has channels {names}"
                )
            for c in model.CHANNELS:
                expect = (n_src, n_dst, *c.shape)
                if tuple(w[c.name].shape) != expect:
                    raise ValueError(
                        f"projection ({src}, {dst}), channel '{c.name}': weight shape "
                        f"{tuple(w[c.name].shape)}, expected {expect}"
                    )
            if m is not None and tuple(m.shape) != (n_src, n_dst):
                raise ValueError(
                    f"projection ({src}, {dst}): mask shape {tuple(m.shape)}, "
                    f"expected {(n_src, n_dst)}"
                )
        if self.delays is not None:
            if len(self.delays) != len(self.projections):
                raise ValueError("delays must have one entry (or None) per projection")
            for (src, dst), d in zip(self.projections, self.delays):
                if d is None:
                    continue
                if src == -1:
                    raise ValueError(
                        f"projection (input, {dst}): the external input has no delays; "
                        "shift the input spike times instead")
                shapes = ((self.populations[src].n,),
                          (self.populations[src].n, self.populations[dst].n))
                if tuple(d.shape) not in shapes:
                    raise ValueError(
                        f"projection ({src}, {dst}): delay shape {tuple(d.shape)}, expected "
                        f"{shapes[0]} (axonal) or {shapes[1]} (synaptic)")

    # ----------------------------------------------------------- building
    @classmethod
    def create(
        cls,
        populations: Sequence[NeuronModel],
        in_size: int,
        connections: Sequence[tuple],
        *,
        key: jax.Array,
        output: int = -1,
        weight_init: WeightInit | Sequence[WeightInit | None] | None = None,
        self_connections: bool = False,
    ) -> "Network":
        """Build a network from populations and a list of connections.

        Each connection is ``(src, dst)`` or ``(src, dst, mask)``: ``src`` is a
        population index or ``"input"`` / ``-1``; ``mask`` an ``(n_src, n_dst)``
        0/1 array (default all-to-all). A population connected to itself
        (recurrent) gets no self-connections (``mask`` diagonal zeroed) unless
        ``self_connections=True``. ``output`` is the population read by
        :meth:`ttfs` and :meth:`state_at`. ``weight_init`` is one initialiser
        ``f(key, shape, dtype)`` or one per connection (``None``: the default).
        """
        populations = tuple(populations)
        inits = _as_list(weight_init, len(connections), "weight_init")
        projections, weights, masks = [], [], []
        keys = jr.split(key, max(len(connections), 1))
        for k, init, conn in zip(keys, inits, connections):
            init = default_weight_init if init is None else init
            if len(conn) == 2:
                (src, dst), mask = conn, None
            elif len(conn) == 3:
                src, dst, mask = conn
            else:
                raise ValueError(f"a connection is (src, dst) or (src, dst, mask), got {conn!r}")
            src = -1 if src in ("input", -1) else int(src)
            dst = int(dst)
            n_src = in_size if src == -1 else populations[src].n
            n_dst = populations[dst].n
            if src == dst and not self_connections:
                base = np.ones((n_src, n_dst)) if mask is None else np.asarray(mask)
                mask = base * (1.0 - np.eye(n_src, n_dst))
            model = populations[dst]
            dtype = next(iter(model.params.values())).dtype if model.params else jnp.result_type(float)
            w = {}
            for ck, c in zip(jr.split(k, len(model.CHANNELS)), model.CHANNELS):
                w[c.name] = jnp.asarray(init(ck, (n_src, n_dst, *c.shape), dtype), dtype)
            projections.append((src, dst))
            weights.append(w)
            masks.append(None if mask is None else jnp.asarray(mask, dtype))
        return cls(
            populations=populations,
            weights=tuple(weights),
            masks=tuple(masks),
            projections=tuple(projections),
            in_size=int(in_size),
            output=_population_index(output, len(populations)),
        )

    # ------------------------------------------------------------ queries
    @property
    def sizes(self) -> tuple[int, ...]:
        """Number of neurons of each population."""
        return tuple(p.n for p in self.populations)

    @property
    def offsets(self) -> tuple[int, ...]:
        """Global id of the first neuron of each population (ids used by :meth:`spikes`)."""
        return tuple(int(x) for x in np.cumsum((0,) + self.sizes)[:-1])

    @property
    def n_neurons(self) -> int:
        return sum(self.sizes)

    @property
    def n_spiking(self) -> int:
        """Number of neurons in populations whose model spikes."""
        return sum(p.n for p in self.populations if type(p).SPIKING)

    def effective_weights(self, index: int) -> dict[str, jax.Array]:
        """Weights of projection ``index`` with its mask applied."""
        w, m = self.weights[index], self.masks[index]
        if m is None:
            return w
        return {k: v * m.reshape(m.shape + (1,) * (v.ndim - 2)) for k, v in w.items()}

    def delay(self, index: int) -> jax.Array | None:
        """The delays the simulator uses for projection ``index``: ``max(d, 0)``, shape
        ``(n_src,)`` (axonal) or ``(n_src, n_dst)`` (synaptic); ``None`` if it has none."""
        if self.delays is None or self.delays[index] is None:
            return None
        return jnp.maximum(self.delays[index], 0.0)

    def with_delays(self, delays: Mapping[int, Any]) -> "Network":
        """A copy with transmission delays (ms) on the given projections.

        ``delays``: ``{projection index: d}``, ``d`` a scalar or an array of shape
        ``(n_src,)`` (axonal: one per source neuron, broadcast from a scalar) or
        ``(n_src, n_dst)`` (synaptic: one per synapse). ``None`` removes a delay.
        The delays are leaves of the network: :func:`trainable` marks them, and
        gradients with respect to them are exact (see the module docs)::

            net = FeedForward(LIF, [50, 3], in_size=5, key=key).with_delays({1: 1.0})
        """
        current = list(self.delays) if self.delays is not None else [None] * len(self.projections)
        dtype = next(iter(self.weights[0].values())).dtype if self.weights else jnp.result_type(float)
        for j, d in delays.items():
            if not 0 <= j < len(self.projections):
                raise ValueError(f"no projection {j} (the network has {len(self.projections)})")
            if d is not None:
                d = jnp.asarray(d, dtype)
                if d.ndim == 0:
                    d = jnp.full((self.populations[self.projections[j][0]].n,)
                                 if self.projections[j][0] >= 0 else (self.in_size,), d, dtype)
            current[j] = d
        value = None if all(d is None for d in current) else tuple(current)
        return dataclasses.replace(self, delays=value)  # (validated by __check_init__)

    # ---------------------------------------------------------- simulation
    def ttfs(self, input_times, t_max, *, options=None, **kwargs):
        """First spike time of every output neuron (``inf`` if none before ``t_max``).

        Stops as soon as every output neuron has spiked. See
        :func:`eventax_dsl.sim.forward.ttfs`.
        """
        from .forward import ttfs

        return ttfs(self, input_times, t_max, options=options, **kwargs)

    def spikes(self, input_times, t_end, *, options=None, **kwargs):
        """All spikes until ``t_end``: ``(times, ids, count)``. See
        :func:`eventax_dsl.sim.forward.spikes`."""
        from .forward import spikes

        return spikes(self, input_times, t_end, options=options, **kwargs)

    def state_at(self, input_times, times, *, options=None, **kwargs):
        """Observables of the output population at ``times``. See
        :func:`eventax_dsl.sim.forward.state_at`."""
        from .forward import state_at

        return state_at(self, input_times, times, options=options, **kwargs)

    def simulate(self, input_times, t_end, *, options=None, **kwargs):
        """The full :class:`~eventax_dsl.sim.loop.SimResult`. See
        :func:`eventax_dsl.sim.loop.simulate`."""
        from .loop import simulate

        return simulate(self, input_times, t_end, options=options, **kwargs)


def _as_list(value, n, what):
    if isinstance(value, (list, tuple)):
        if len(value) != n:
            raise ValueError(f"{what}: got {len(value)} entries, expected {n}")
        return list(value)
    return [value] * n


def FeedForward(
    model: type[NeuronModel] | Sequence[type[NeuronModel]],
    layers: Sequence[int],
    in_size: int,
    *,
    key: jax.Array,
    weight_init: WeightInit | Sequence[WeightInit] | None = None,
    overrides: Sequence[Mapping[str, Any]] | None = None,
    dtype=None,
    **common_overrides,
) -> Network:
    """A fully connected feed-forward :class:`Network`.

    - ``model``: one model class for every layer, or one per layer
      (``model=[QIF, LI]``).
    - ``layers``: neurons per layer; the last layer is the output.
    - ``weight_init``: ``f(key, shape, dtype)``, one for all or one per layer.
    - ``overrides``: one dict of parameter overrides per layer (scalar or
      per-neuron array, see :meth:`NeuronModel.create`).
    - ``**common_overrides``: overrides applied to every layer whose model has
      that parameter (an error if no layer has it).

    Example::

        net = FeedForward([LIF, LI], layers=[20, 3], in_size=5, key=jr.key(0),
                          overrides=[{"bias": 0.1}, {}], tau_mem=10.0)
    """
    layers = [int(n) for n in layers]
    if not layers:
        raise ValueError("FeedForward needs at least one layer")
    models = _as_list(model, len(layers), "model")
    inits = _as_list(weight_init, len(layers), "weight_init")
    per_layer = [dict(o) for o in overrides] if overrides is not None else [{} for _ in layers]
    if len(per_layer) != len(layers):
        raise ValueError(f"overrides: got {len(per_layer)} dicts for {len(layers)} layers")
    used = set()
    pops = []
    for m, n, own in zip(models, layers, per_layer):
        names = {p.name for p in m.PARAMETERS}
        common = {k: v for k, v in common_overrides.items() if k in names}
        used |= set(common)
        pops.append(m.from_overrides(n, {**common, **own}, dtype))
    unused = sorted(set(common_overrides) - used)
    if unused:
        raise TypeError(f"FeedForward: no layer's model has parameter(s) {', '.join(unused)}")
    connections = [(i - 1 if i > 0 else -1, i) for i in range(len(layers))]
    net = Network.create(pops, in_size, connections, key=key, weight_init=inits)
    return net


def trainable(net: Network) -> Network:
    """Filter spec (a PyTree of bools shaped like ``net``): what training updates.

    ``True`` for every weight, every delay and every parameter marked ``learnable``
    in its model's ``PARAMETERS``; ``False`` for everything else (other parameters,
    connectivity masks). Use with ``eqx.partition``::

        params, static = eqx.partition(net, trainable(net))
        grads = jax.grad(lambda p: loss(eqx.combine(p, static)))(params)
    """
    spec = jtu.tree_map(lambda _: False, net)
    pops = []
    for pop in net.populations:
        learn = set(type(pop).learnable_names())
        pops.append(
            eqx.tree_at(
                lambda p: p.params,
                jtu.tree_map(lambda _: False, pop),
                {k: (k in learn) for k in pop.params},
            )
        )
    spec = eqx.tree_at(lambda s: s.populations, spec, tuple(pops))
    spec = eqx.tree_at(
        lambda s: s.weights, spec, tuple({k: True for k in w} for w in net.weights)
    )
    if net.delays is not None:
        spec = eqx.tree_at(lambda s: s.delays, spec,
                           tuple(None if d is None else True for d in net.delays),
                           is_leaf=lambda x: x is None)
    return spec
