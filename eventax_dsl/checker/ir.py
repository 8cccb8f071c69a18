"""The checked model: a SymPy intermediate representation.

Everything here is resolved and validated: every symbol is a state, a
parameter or a weight channel, aliases and constants are inlined, numbers are
in canonical units (ms, mV, nA), and each expression is simplified. The code
generator reads only this.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import sympy as sp

from .functions import vsum
from .simplify import _affine as affine
from .simplify import condition_states, solve_block


@dataclass(frozen=True)
class StateIR:
    name: str
    shape: tuple[int, ...]
    unit: str
    init: sp.Expr  # in parameters only


@dataclass(frozen=True)
class ParamIR:
    name: str
    shape: tuple[int, ...]
    default: float | tuple[float, ...]
    learnable: bool
    unit: str


@dataclass(frozen=True)
class ChannelIR:
    name: str
    shape: tuple[int, ...]


@dataclass(frozen=True)
class LinearBlockIR:
    """A closed linear block ``x' = A x + b`` and how it is integrated.

    ``matrix`` (A) and ``offset`` (b) hold parameters only. If ``exact``,
    ``solution[s]`` is the closed form of ``s`` after a time
    :data:`~eventax_dsl.checker.simplify.DT` without events, in terms of the
    block's values at the start (the state symbols) -- see
    :func:`~eventax_dsl.checker.simplify.solve_block`; ``clamped_solution`` is
    the same while the model's ``CLAMPED`` states of this block are held
    (refractory), or None. ``reason`` says why it is exact or numeric.
    """

    states: tuple[str, ...]
    matrix: sp.ImmutableMatrix
    offset: tuple[sp.Expr, ...]
    exact: bool
    reason: str
    solution: dict[str, sp.Expr]
    clamped_solution: dict[str, sp.Expr] | None
    rates: dict[str, sp.Expr]  # state -> its diagonal entry of A (1/ms)


@dataclass
class ModelIR:
    name: str
    doc: str
    filename: str
    source_sha256: str
    states: list[StateIR]
    params: list[ParamIR]
    channels: list[ChannelIR]
    aliases: dict[str, sp.Expr]  # as written (for --explain), constants inlined
    dynamics: dict[str, sp.Expr]  # state -> ds/dt, aliases inlined; absent: 0
    spike: sp.Expr | None  # spike at upward zero crossing; None: non-spiking
    guarded: bool
    refractory: sp.Expr | None
    clamped: tuple[str, ...]
    keep_input: bool  # the input rule still applies while refractory (CLAMPED states held)
    reset: dict[str, sp.Expr]  # state -> value right after a spike
    receive: dict[str, sp.Expr]  # state -> value right after input
    observables: dict[str, sp.Expr]
    linear_blocks: list[tuple[str, ...]]
    rewrites: list[str] = field(default_factory=list)  # notes on singularities removed
    observable_shapes: dict[str, tuple[int, ...]] = field(default_factory=dict)  # () for scalars
    #: one per entry of ``linear_blocks``: matrices, closed forms and the verdict
    #: (derived from the fields above when not given)
    blocks: list[LinearBlockIR] | None = None

    def __post_init__(self):
        if self.blocks is None:
            self.blocks = analyse_blocks(self)

    def symbol(self, name: str) -> sp.Symbol:
        """The SymPy symbol that stands for ``name`` in this IR's expressions."""
        return sp.Symbol(name, real=True)

    @property
    def state_names(self) -> tuple[str, ...]:
        return tuple(s.name for s in self.states)

    @property
    def exact_states(self) -> tuple[str, ...]:
        """States advanced in closed form (in declaration order)."""
        exact = {s for b in self.blocks if b.exact for s in b.states}
        return tuple(s for s in self.state_names if s in exact)

    @property
    def spike_states(self) -> list[str]:
        """States the spike condition depends on, directly or through their equations."""
        return condition_states(self.spike, self.dynamics, list(self.state_names))

    @property
    def exact_spike(self) -> bool:
        """The spike condition is affine in exactly integrated scalar states only.

        Then, between events, it is a constant plus the exponential modes of those
        states, which is what the simulator's exact crossing search relies on
        (:mod:`eventax_dsl.sim.exact`).
        """
        return self.spike is not None and set(self.spike_states) <= set(self.exact_states) \
            and _guardable(self)

    @property
    def spike_rates(self) -> list[sp.Expr]:
        """For an exact spike condition: the rate (diagonal of A) of each state it depends
        on that changes between events (a state without an equation only adds a constant)."""
        if not self.exact_spike:
            return []
        rates = {s: r for b in self.blocks for s, r in b.rates.items()}
        return [rates[s] for s in self.spike_states if self.dynamics.get(s, sp.Integer(0)) != 0]


def _guardable(ir: "ModelIR") -> bool:
    """Is the spike condition affine in scalar states (no sum(), no piecewise parts)?"""
    shapes = {s.name: s.shape for s in ir.states}
    deps = [s for s in ir.spike_states if s in shapes]
    direct = [ir.symbol(s) for s in deps if ir.symbol(s) in ir.spike.free_symbols]
    return (not ir.spike.has(vsum) and not any(shapes[s] for s in deps)
            and affine(ir.spike, direct))


def analyse_blocks(ir: "ModelIR") -> list[LinearBlockIR]:
    """Matrices and closed forms of ``ir.linear_blocks`` (see :func:`~.simplify.solve_block`).

    A spiking model whose condition reads only exactly solvable states, but not
    affinely (``v^2 >= 1``, a sum over a vector), keeps those states numeric: the
    step-size control of the numeric solver is then what catches its crossings.
    """
    vectors = frozenset(x.name for x in (*ir.states, *ir.params) if x.shape)
    out = []
    for block in ir.linear_blocks:
        sol = solve_block(tuple(block), ir.dynamics, tuple(ir.clamped) if ir.refractory is not None else (),
                          vectors)
        out.append(LinearBlockIR(tuple(block), sol.matrix, sol.offset, sol.exact, sol.reason,
                                 sol.solution, sol.clamped_solution, sol.rates))
    if ir.spike is not None:
        deps = set(condition_states(ir.spike, ir.dynamics, list(ir.state_names)))
        exact = {s for b in out if b.exact for s in b.states}
        if deps and deps <= exact and not _guardable(ir):
            reason = ("numeric: the spike condition reads it, but not affinely in scalar states "
                      "(exact crossing detection needs that)")
            out = [LinearBlockIR(b.states, b.matrix, b.offset, False, reason, {}, None, b.rates)
                   if deps & set(b.states) else b for b in out]
    return out
