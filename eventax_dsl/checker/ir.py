"""The checked model: a SymPy intermediate representation.

Everything here is resolved and validated: every symbol is a state, a
parameter or a weight channel, aliases and constants are inlined, numbers are
in canonical units (ms, mV, nA), and each expression is simplified. The code
generator reads only this.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import sympy as sp


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
    reset: dict[str, sp.Expr]  # state -> value right after a spike
    receive: dict[str, sp.Expr]  # state -> value right after input
    observables: dict[str, sp.Expr]
    linear_blocks: list[tuple[str, ...]]
    rewrites: list[str] = field(default_factory=list)  # notes on singularities removed

    def symbol(self, name: str) -> sp.Symbol:
        """The SymPy symbol that stands for ``name`` in this IR's expressions."""
        return sp.Symbol(name, real=True)

    @property
    def state_names(self) -> tuple[str, ...]:
        return tuple(s.name for s in self.states)
