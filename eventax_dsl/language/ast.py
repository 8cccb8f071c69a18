"""The typed syntax tree of a ``.neuron`` file.

Every node is a frozen dataclass carrying the :class:`Span` of the text it
came from, so later stages can point at the exact source of a problem.
The tree says only what was written; names are resolved by the checker.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Union

from .diagnostics import Span

# ----------------------------------------------------------------- expressions


@dataclass(frozen=True)
class Number:
    value: float
    text: str
    span: Span


@dataclass(frozen=True)
class Quantity:
    """A number with a unit: ``20 ms``, ``0.5 nS/mV``."""

    value: float
    text: str
    unit: str
    unit_span: Span
    span: Span


@dataclass(frozen=True)
class Name:
    id: str
    span: Span


@dataclass(frozen=True)
class RefractoryFlag:
    """The keyword ``refractory`` inside a spike condition guard."""

    span: Span


@dataclass(frozen=True)
class Call:
    func: str
    func_span: Span
    args: tuple["Expr", ...]
    span: Span


@dataclass(frozen=True)
class Neg:
    op: str  # '-' or '+'
    operand: "Expr"
    span: Span


@dataclass(frozen=True)
class Binary:
    op: str  # + - * / ^
    left: "Expr"
    right: "Expr"
    span: Span
    op_span: Span


@dataclass(frozen=True)
class Compare:
    op: str  # >= <= > < == !=
    left: "Expr"
    right: "Expr"
    span: Span


@dataclass(frozen=True)
class BoolOp:
    op: str  # 'and' / 'or'
    left: "Expr"
    right: "Expr"
    span: Span


@dataclass(frozen=True)
class Not:
    operand: "Expr"
    span: Span


@dataclass(frozen=True)
class Piecewise:
    """``if cond then a else b``."""

    cond: "Expr"
    then: "Expr"
    otherwise: "Expr"
    span: Span


@dataclass(frozen=True)
class VectorLiteral:
    elements: tuple["Expr", ...]
    unit: str | None
    unit_span: Span | None
    span: Span


Expr = Union[Number, Quantity, Name, RefractoryFlag, Call, Neg, Binary, Compare,
             BoolOp, Not, Piecewise, VectorLiteral]


def children(e: Expr) -> tuple[Expr, ...]:
    """The direct sub-expressions of ``e``."""
    if isinstance(e, Call):
        return e.args
    if isinstance(e, (Neg, Not)):
        return (e.operand,)
    if isinstance(e, (Binary, Compare, BoolOp)):
        return (e.left, e.right)
    if isinstance(e, Piecewise):
        return (e.cond, e.then, e.otherwise)
    if isinstance(e, VectorLiteral):
        return e.elements
    return ()


def walk(e: Expr):
    """All nodes of an expression, parents before children (iterative)."""
    stack = [e]
    while stack:
        node = stack.pop()
        yield node
        stack.extend(reversed(children(node)))


# ---------------------------------------------------------------- declarations


@dataclass(frozen=True)
class Size:
    """A vector length: an integer or the name of a constant."""

    value: int | str
    span: Span


@dataclass(frozen=True)
class Constant:
    name: str
    name_span: Span
    value: Expr
    span: Span


@dataclass(frozen=True)
class Parameter:
    name: str
    name_span: Span
    size: Size | None
    default: Expr | None
    learnable: bool
    span: Span


@dataclass(frozen=True)
class StateVar:
    name: str
    name_span: Span
    size: Size | None
    init: Expr | None
    span: Span


@dataclass(frozen=True)
class ODE:
    name: str
    name_span: Span
    expr: Expr
    span: Span


@dataclass(frozen=True)
class Alias:
    name: str
    name_span: Span
    expr: Expr
    span: Span


@dataclass(frozen=True)
class Spike:
    condition: Expr
    span: Span


@dataclass(frozen=True)
class Refractory:
    duration: Expr
    clamped: tuple[tuple[str, Span], ...]
    span: Span
    keep_input: Span | None = None  # ``keep input``: the input rule still applies while refractory


@dataclass(frozen=True)
class Assignment:
    target: str
    target_span: Span
    op: str  # '=', '+=', '-='
    expr: Expr
    span: Span


@dataclass(frozen=True)
class Reset:
    assignments: tuple[Assignment, ...]
    span: Span


@dataclass(frozen=True)
class Channel:
    name: str
    size: Size | None
    span: Span


@dataclass(frozen=True)
class Input:
    channels: tuple[Channel, ...]
    assignments: tuple[Assignment, ...]
    span: Span


@dataclass(frozen=True)
class Observable:
    name: str
    name_span: Span
    expr: Expr | None
    span: Span


@dataclass(frozen=True)
class Model:
    """A whole ``.neuron`` file."""

    name: str
    name_span: Span
    language: int
    doc: str
    constants: tuple[Constant, ...]
    parameters: tuple[Parameter, ...]
    states: tuple[StateVar, ...]
    equations: tuple[ODE | Alias, ...]
    spike: Spike | None
    refractory: Refractory | None
    reset: Reset | None
    input: Input | None
    observables: tuple[Observable, ...] | None


def expressions(model: Model):
    """Every expression written in a model, section by section."""
    yield from (d.value for d in model.constants)
    yield from (d.default for d in model.parameters if d.default is not None)
    yield from (d.init for d in model.states if d.init is not None)
    yield from (d.expr for d in model.equations)
    if model.spike:
        yield model.spike.condition
    if model.refractory:
        yield model.refractory.duration
    for block in (model.reset, model.input):
        if block:
            yield from (a.expr for a in block.assignments)
    yield from (o.expr for o in model.observables or () if o.expr is not None)
