"""The model contract: the one interface between neuron models and the simulator.

A *model* describes one neuron. The simulator never sees the ``.neuron``
language: it only calls the methods below, so a compiled model and a
hand-written one are interchangeable.

Two levels
----------
A subclass implements the **single-neuron** methods, written for one neuron:
every parameter and state is a scalar, or a 1-D array for vector-valued
quantities (e.g. 7 dendritic compartments)::

    init(p)                 -> State         initial state
    dynamics(p, s)          -> State         ds/dt between events
    spike_condition(p, s)   -> scalar        a spike happens at an upward zero crossing
    reset(p, s)             -> State         the state right after this neuron spikes
    receive(p, s, w)        -> State         the state right after input of weights ``w`` arrives
    observe(p, s)           -> dict          named read-outs (e.g. the membrane voltage)
    refractory_period(p)    -> scalar        only if ``REFRACTORY``

``p`` is a dict ``{parameter name: value}``, ``s`` a dict ``{state name: value}``
and ``w`` a dict ``{channel name: summed weight}``. ``receive`` must be affine in
``w`` so that simultaneous spikes may be summed first (the compiler checks this).

The base class lifts them to a **population** of ``n`` neurons with
:func:`jax.vmap`; the simulator only uses the population methods
(:meth:`NeuronModel.initial_state`, :meth:`NeuronModel.vector_field`, ...), in which
every leaf has a leading axis of size ``n``.

Parameters live in ``self.params`` (one array per parameter, leading axis
``n``), so a population is an ``equinox.Module`` and thus a PyTree: ``jit``,
``vmap`` and ``grad`` work on it directly. Which parameters a training loop
should update is given by ``LEARNABLE``.

Exact integration (optional)
----------------------------
A model may also solve some of its states in closed form: ``EXACT_STATES``
names them, and ::

    flow(p, s, dt)          -> State         those states after ``dt`` ms without events
    flow_clamped(p, s, dt)  -> State         the same while refractory (``CLAMPED`` held)
    spike_rates(p)          -> tuple         if ``EXACT_SPIKE``: the rates of the states
                                             the spike condition depends on

return the state with the exact states advanced (others unchanged). The
compiler generates them for linear blocks with constant coefficients; the
simulator (:mod:`eventax_dsl.sim.exact`) then advances those states exactly and
integrates only the rest numerically. The default ``EXACT_STATES = ()`` means
"integrate everything numerically". ``EXACT_SPIKE`` promises that the spike
condition is affine in scalar ``EXACT_STATES`` only, with ``spike_rates``
giving the rate of each of them that changes between events: the simulator
then locates crossings on the closed form without missing brief ones.

Refractoriness is metadata: while a neuron is refractory (for
``refractory_period(p)`` after its spike) the simulator holds the states named
in ``CLAMPED`` fixed, drops its input and, if ``GUARDED`` is set, ignores its spike
condition. With ``KEEP_INPUT`` (the language's ``refractory ... keep input``) input
is not dropped: the input rule is applied as usual, except that the ``CLAMPED``
states keep their values (e.g. a synaptic current keeps collecting spikes while the
membrane is held).
"""

from __future__ import annotations

from typing import Any, ClassVar, Mapping, NamedTuple

import equinox as eqx
import jax
import jax.numpy as jnp
import numpy as np

State = dict[str, Any]


class StateSpec(NamedTuple):
    """A state variable: ``shape`` is ``()`` for a scalar, ``(k,)`` for a vector."""

    name: str
    shape: tuple[int, ...] = ()
    unit: str = ""


class ParamSpec(NamedTuple):
    """A parameter with its default (a float, or a tuple of floats for a vector)."""

    name: str
    default: float | tuple[float, ...]
    shape: tuple[int, ...] = ()
    learnable: bool = False
    unit: str = ""


class ChannelSpec(NamedTuple):
    """A weight channel of the input rule (``on input(w_u, w_r)``)."""

    name: str
    shape: tuple[int, ...] = ()


class NeuronModel(eqx.Module):
    """Base class of every neuron model; one instance is a population of ``n`` neurons.

    Build one with :meth:`create`::

        pop = LIF.create(50, tau_mem=jnp.linspace(10, 30, 50), bias=0.1)

    Subclasses set the class variables and implement the single-neuron methods.
    """

    params: dict[str, jax.Array]
    #: the number of neurons (read :attr:`n`); set by :meth:`create`, it is what gives a
    #: model without parameters its size
    size: int | None = eqx.field(static=True, default=None)

    NAME: ClassVar[str] = "model"
    DOC: ClassVar[str] = ""
    STATES: ClassVar[tuple[StateSpec, ...]] = ()
    PARAMETERS: ClassVar[tuple[ParamSpec, ...]] = ()
    CHANNELS: ClassVar[tuple[ChannelSpec, ...]] = (ChannelSpec("w"),)
    OBSERVABLES: ClassVar[tuple[str, ...]] = ()
    SPIKING: ClassVar[bool] = True
    REFRACTORY: ClassVar[bool] = False
    GUARDED: ClassVar[bool] = False
    CLAMPED: ClassVar[tuple[str, ...]] = ()
    KEEP_INPUT: ClassVar[bool] = False
    EXACT_STATES: ClassVar[tuple[str, ...]] = ()
    EXACT_SPIKE: ClassVar[bool] = False

    # ------------------------------------------------------------------ build
    @classmethod
    def create(cls, n: int, /, dtype=None, **overrides) -> "NeuronModel":
        """A population of ``n`` neurons with defaults, overridden by ``overrides``.

        Each override is a scalar (same for all neurons), an array of shape
        ``(n,)`` (one per neuron), or for a vector parameter of shape ``(k,)``
        one of ``(k,)`` (the same vector for all), ``(n, k)`` (one per neuron) or
        ``(n, 1)`` (one number per neuron, for all ``k`` elements). A parameter may be called ``n`` or ``cls``;
        one called ``dtype`` is set with :meth:`from_overrides`.
        """
        return cls.from_overrides(n, overrides, dtype)

    @classmethod
    def from_overrides(cls, n: int, overrides: Mapping[str, Any], dtype=None) -> "NeuronModel":
        """:meth:`create` with the overrides given as a mapping (any parameter name)."""
        specs = {p.name: p for p in cls.PARAMETERS}
        unknown = sorted(set(overrides) - set(specs))
        if unknown:
            raise TypeError(
                f"{cls.NAME}: unknown parameter(s) {', '.join(unknown)}; "
                f"parameters are: {', '.join(specs) or '(none)'}"
            )
        dtype = dtype or jnp.result_type(float)
        params = {}
        for name, spec in specs.items():
            value = overrides.get(name, spec.default)
            params[name] = _broadcast_param(cls.NAME, name, value, n, spec.shape, dtype)
        return cls(params=params, size=int(n))

    @property
    def n(self) -> int:
        """Number of neurons in the population."""
        for value in self.params.values():
            return int(value.shape[0])
        if self.size is None:
            raise ValueError(f"{self.NAME}: a model with no parameters needs its size: build it "
                             "with create(n)")
        return self.size

    @classmethod
    def state_names(cls) -> tuple[str, ...]:
        return tuple(s.name for s in cls.STATES)

    @classmethod
    def learnable_names(cls) -> tuple[str, ...]:
        return tuple(p.name for p in cls.PARAMETERS if p.learnable)

    # ------------------------------------------------- single-neuron contract
    def init(self, p: Mapping[str, Any]) -> State:
        raise NotImplementedError

    def dynamics(self, p: Mapping[str, Any], s: State) -> State:
        raise NotImplementedError

    def spike_condition(self, p: Mapping[str, Any], s: State):
        raise NotImplementedError

    def reset(self, p: Mapping[str, Any], s: State) -> State:
        return dict(s)

    def receive(self, p: Mapping[str, Any], s: State, w: Mapping[str, Any]) -> State:
        raise NotImplementedError

    def observe(self, p: Mapping[str, Any], s: State) -> dict[str, Any]:
        return {}

    def refractory_period(self, p: Mapping[str, Any]):
        return jnp.zeros(())

    def flow(self, p: Mapping[str, Any], s: State, dt) -> State:
        raise NotImplementedError(f"{self.NAME}: no closed-form flow (EXACT_STATES is empty)")

    def flow_clamped(self, p: Mapping[str, Any], s: State, dt) -> State:
        return self.flow(p, s, dt)

    def spike_rates(self, p: Mapping[str, Any]) -> tuple:
        return ()

    # ------------------------------------------------ population (vmapped)
    def initial_state(self) -> State:
        """Initial state of every neuron: leaves of shape ``(n, *shape)``."""
        return jax.vmap(self.init, axis_size=self.n)(self.params)

    def vector_field(self, state: State) -> State:
        """Time derivative of the population state between events."""
        return jax.vmap(self.dynamics)(self.params, state)

    def spike_conditions(self, state: State) -> jax.Array:
        """Shape ``(n,)``: neuron ``j`` spikes where entry ``j`` crosses zero upwards."""
        return jax.vmap(self.spike_condition)(self.params, state)

    def apply_reset(self, state: State, spiked: jax.Array) -> State:
        """Reset the neurons where the boolean mask ``spiked`` (shape ``(n,)``) is set."""
        after = jax.vmap(self.reset)(self.params, state)
        return {k: _select(spiked, after[k], v) for k, v in state.items()}

    def apply_input(self, state: State, weights: Mapping[str, jax.Array]) -> State:
        """Deliver summed input weights (one ``(n, *shape)`` array per channel)."""
        return jax.vmap(self.receive)(self.params, state, dict(weights))

    def observables(self, state: State) -> dict[str, jax.Array]:
        return jax.vmap(self.observe)(self.params, state)

    def refractory_periods(self) -> jax.Array:
        return jax.vmap(self.refractory_period, axis_size=self.n)(self.params)

    def propagate(self, state: State, dt, refractory: jax.Array | None = None) -> State:
        """Advance the ``EXACT_STATES`` by ``dt`` (a scalar or one per neuron) in closed form.

        ``state`` may hold just those states. Neurons where ``refractory`` is set
        use ``flow_clamped``. Other states are returned unchanged.
        """
        dtype = jnp.result_type(*jax.tree_util.tree_leaves(state))
        dt = jnp.broadcast_to(jnp.asarray(dt, dtype), (self.n,))
        new = jax.vmap(self.flow)(self.params, state, dt)
        if refractory is not None and self.REFRACTORY and set(self.CLAMPED) & set(self.EXACT_STATES):
            held = jax.vmap(self.flow_clamped)(self.params, state, dt)
            new = {k: _select(refractory, held[k], v) for k, v in new.items()}
        return new

    def spike_rates_all(self) -> tuple:
        """``spike_rates`` of every neuron: a tuple of ``(n,)`` arrays."""
        return jax.vmap(self.spike_rates, axis_size=self.n)(self.params)


def _select(mask, new, old):
    mask = jnp.reshape(mask, mask.shape + (1,) * (jnp.ndim(old) - jnp.ndim(mask)))
    return jnp.where(mask, new, old)


def _broadcast_param(model, name, value, n, shape, dtype):
    arr = jnp.asarray(value, dtype=dtype)
    target = (n, *shape)
    if arr.shape == target:
        return arr
    if arr.ndim == 0 or arr.shape == tuple(shape) or (shape and arr.shape == (n, 1)):
        return jnp.broadcast_to(arr, target)
    # (for a vector parameter, (n,) would mean one number per neuron, but with n == k
    # it reads as the (k,) form: refused, with (n, 1) as the unambiguous spelling)
    per_neuron = f", {(n, 1)} (one number per neuron)" if shape else ""
    raise ValueError(
        f"{model}: parameter '{name}' has shape {tuple(np.shape(value))}; "
        f"expected a scalar, {tuple(shape) or '()'} or {target}{per_neuron}"
    )
