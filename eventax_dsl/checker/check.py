"""AST -> SymPy IR: name resolution, shapes, units and rule checks, in one pass.

:func:`check` collects every problem before giving up, one diagnostic per root
cause: an undefined name is reported once (where first used), and an
expression that already produced an error is not checked for units, so one
typo never cascades into a page of errors.
"""

from __future__ import annotations

import functools
import hashlib
import math
import sys
from dataclasses import dataclass
from fractions import Fraction

import sympy as sp

from ..language import ast
from ..language.diagnostics import CompileError, Diagnostic, Span, did_you_mean
from ..language.parser import EXPRESSION_KEYWORDS
from . import units as U
from .functions import BUILTINS, CONSTANTS, vsum
from .ir import ChannelIR, ModelIR, ParamIR, StateIR
from .simplify import Budget, linear_blocks, simplify_safe

MAX_VECTOR = 4096
#: Largest expression (SymPy nodes, counted as a tree) an alias may stand for once the
#: aliases it uses are inlined; the library's largest is 56. Aliases of aliases can
#: double the size at each level (a_k = sin(a_j) + cos(a_j)), and simplification and
#: code generation take time that grows with it (10 000 nodes: a few seconds).
MAX_ALIAS_NODES = 10_000
#: Deepest nesting an alias may reach once the aliases it uses are inlined (a chain
#: a1 = sin(a0), a2 = sin(a1), ...). SymPy differentiates and simplifies recursively, about
#: seven Python frames per level, so a chain of about 140 would exhaust the interpreter's
#: recursion limit; the library's deepest alias is 5 levels.
MAX_ALIAS_DEPTH = 100

# kinds of names
STATE, PARAM, CONST, ALIAS, CHANNEL = "state", "parameter", "constant", "alias", "weight channel"


@dataclass
class Info:
    kind: str
    span: Span
    shape: tuple[int, ...] = ()
    dim: U.Dim | None = U.DIMENSIONLESS
    value: object = None  # constants: sympy number; aliases: expression
    failed: bool = False  # its declaration had an error (already reported): uses are not checked


class _Failed(Exception):
    """Raised inside an expression once it produced a diagnostic."""


@dataclass
class Typed:
    expr: sp.Basic
    dim: U.Dim | None  # None: a bare number, which adapts in sums and comparisons
    shape: tuple[int, ...]
    boolean: bool = False


def sym(name: str) -> sp.Symbol:
    return sp.Symbol(name, real=True)


class Checker:
    def __init__(self, model: ast.Model, source: str | None, filename: str):
        self.m = model
        self.source = source
        self.filename = filename
        self.diags: list[Diagnostic] = []
        self.warnings: list[Diagnostic] = []
        self.names: dict[str, Info] = {}
        self.reported_undefined: set[str] = set()
        self.used: set[str] = set()
        self.alias_typed: dict[str, Typed] = {}
        self.rewrites: list[str] = []
        self.observable_shapes: dict[str, tuple[int, ...]] = {}
        # units are checked only in models that use them: a model written in bare
        # numbers (tau = 20, v' = -v / tau) has no units to mismatch
        self.units_on = _uses_units(model)

    # ---------------------------------------------------------------- utils
    def error(self, code, message, span, hint=None):
        self.diags.append(Diagnostic(code, message, span, hint))

    def declare(self, name, kind, span, **kw) -> bool:
        if name.startswith("_"):
            self.error("E011", f"invalid name '{name}': names may not start with '_'", span,
                       "names are letters, digits and '_', starting with a letter")
            self.names.setdefault(name, Info(kind, span, failed=True))
            return False
        if name in EXPRESSION_KEYWORDS:
            self.error("E011", f"invalid name '{name}': it is a keyword of the language", span,
                       "it could never be used in an expression; choose another name")
            self.names.setdefault(name, Info(kind, span, failed=True))
            return False
        if name in CONSTANTS:
            self.error("E010", f"'{name}' is a built-in constant and cannot be redefined", span)
            return False
        if name in self.names:
            prev = self.names[name]
            self.error("E010", f"'{name}' is already defined as {_a(prev.kind)}", span,
                       f"first defined at line {prev.span.line}")
            return False
        self.names[name] = Info(kind, span, **kw)
        return True

    def size(self, size: ast.Size | None) -> tuple[int, ...] | None:
        if size is None:
            return ()
        value = size.value
        if isinstance(value, str):
            info = self.names.get(value)
            if info is None or info.kind != CONST:
                self.error("E028", f"vector length '{value}' is not a constant", size.span,
                           did_you_mean(value, [n for n, i in self.names.items() if i.kind == CONST])
                           or "declare it under 'constants:'")
                return None
            if info.failed:
                return None
            value = info.value
            if info.dim is not None and info.dim != U.DIMENSIONLESS:
                self.error("E028", f"vector length '{size.value}' has unit "
                                   f"{U.format_dim(info.dim)}; a length is a plain number",
                           size.span)
                return None
            if not (value.is_Integer or (value.is_Float and float(value).is_integer())):
                self.error("E028", f"vector length '{size.value}' = {value} is not an integer", size.span)
                return None
            value = int(value)
        if not 1 <= value <= MAX_VECTOR:
            self.error("E028", f"vector length {value} is not between 1 and {MAX_VECTOR}", size.span)
            return None
        return (value,)

    # ------------------------------------------------------- expressions
    def expr(self, e: ast.Expr, allowed: set[str], ctx: str) -> Typed:
        """Type an expression; raises _Failed after reporting a problem."""
        if isinstance(e, ast.Number):
            # exact rationals: a Float inside exp() would be split off by SymPy
            # (exp(-(v + 55.0)/10) -> 0.0041*exp(-v/10)), hiding removable singularities
            return Typed(sp.Rational(_exact(e.text)), None, ())
        if isinstance(e, ast.Quantity):
            scale, dim = self.unit(e.unit, e.unit_span)
            value = _to_float(_exact(e.text) * scale)
            if not math.isfinite(value):
                self.error("E029", f"the quantity {e.text} {e.unit} is too large for a float", e.span)
                raise _Failed
            return Typed(sp.Rational(_exact(e.text) * scale), dim, ())
        if isinstance(e, ast.Name):
            return self.name(e, allowed, ctx)
        if isinstance(e, ast.RefractoryFlag):
            self.error("E026", "'refractory' may only appear as 'and not refractory' in the spike condition",
                       e.span)
            raise _Failed
        if isinstance(e, ast.Neg):
            t = self.expr(e.operand, allowed, ctx)
            self.numeric(t, e.operand.span)
            return Typed(-t.expr if e.op == "-" else t.expr, t.dim, t.shape)
        if isinstance(e, ast.Binary):
            return self.binary(e, allowed, ctx)
        if isinstance(e, ast.Call):
            return self.call(e, allowed, ctx)
        if isinstance(e, ast.Compare):
            a, b = self.both(e.left, e.right, allowed, ctx)
            self.numeric(a, e.left.span)
            self.numeric(b, e.right.span)
            self.same_dim(a, b, e.span, f"both sides of '{e.op}'")
            shape = self.broadcast(a, b, e.span)
            rel = {">=": sp.Ge, "<=": sp.Le, ">": sp.Gt, "<": sp.Lt, "==": sp.Eq, "!=": sp.Ne}[e.op]
            return Typed(rel(a.expr, b.expr, evaluate=False), U.DIMENSIONLESS, shape, True)
        if isinstance(e, ast.BoolOp):
            a, b = self.both(e.left, e.right, allowed, ctx)
            for t, sub in ((a, e.left), (b, e.right)):
                self.boolean(t, sub.span)
            op = sp.And if e.op == "and" else sp.Or
            return Typed(op(a.expr, b.expr), U.DIMENSIONLESS, self.broadcast(a, b, e.span), True)
        if isinstance(e, ast.Not):
            t = self.expr(e.operand, allowed, ctx)
            self.boolean(t, e.operand.span)
            return Typed(sp.Not(t.expr), U.DIMENSIONLESS, t.shape, True)
        if isinstance(e, ast.Piecewise):
            c = self.expr(e.cond, allowed, ctx)
            self.boolean(c, e.cond.span)
            a, b = self.both(e.then, e.otherwise, allowed, ctx)
            self.numeric(a, e.then.span)
            self.numeric(b, e.otherwise.span)
            dim = self.same_dim(a, b, e.span, "both branches of 'if'")
            shape = self.broadcast(Typed(None, None, self.broadcast(a, c, e.span)), b, e.span)
            return Typed(_piecewise(a.expr, c.expr, b.expr), dim, shape)
        if isinstance(e, ast.VectorLiteral):
            self.error("E002", "a vector literal [...] may only be a parameter default or initial value",
                       e.span)
            raise _Failed
        raise AssertionError(type(e))  # pragma: no cover

    def both(self, left, right, allowed, ctx):
        """Type two operands, reporting problems in both before failing."""
        results, failed = [], False
        for sub in (left, right):
            try:
                results.append(self.expr(sub, allowed, ctx))
            except _Failed:
                failed = True
        if failed:
            raise _Failed
        return results

    def name(self, e: ast.Name, allowed, ctx) -> Typed:
        if e.id in CONSTANTS:
            return Typed(CONSTANTS[e.id], self.dimensionless(), ())
        info = self.names.get(e.id)
        if info is None:
            if e.id not in self.reported_undefined:
                self.reported_undefined.add(e.id)
                hint = did_you_mean(e.id, [n for n, i in self.names.items() if i.kind in allowed])
                if e.id in BUILTINS:
                    hint = f"'{e.id}' is a function: call it as {e.id}(...)"
                self.error("E012", f"undefined name '{e.id}'", e.span, hint)
            raise _Failed
        if info.kind not in allowed:
            if info.kind == CHANNEL:
                self.error("E031", f"weight channel '{e.id}' can only be used in the 'on input' rule", e.span)
            else:
                self.error("E035" if STATE not in allowed else "E012",
                           f"{ctx} cannot refer to the {info.kind} '{e.id}'", e.span,
                           _allowed_hint(allowed))
            raise _Failed
        self.used.add(e.id)
        if info.failed:
            raise _Failed  # its declaration already produced an error
        dim = info.dim if self.units_on else None
        if info.kind == CONST:
            return Typed(info.value, dim, ())
        if info.kind == ALIAS:
            t = self.alias_typed.get(e.id)
            if t is None:
                raise _Failed  # the alias itself had an error, already reported
            return t
        return Typed(sym(e.id), dim, info.shape)

    def binary(self, e: ast.Binary, allowed, ctx) -> Typed:
        a, b = self.both(e.left, e.right, allowed, ctx)
        self.numeric(a, e.left.span)
        self.numeric(b, e.right.span)
        shape = self.broadcast(a, b, e.span)
        if e.op in "+-":
            dim = self.same_dim(a, b, e.span, f"the operands of '{e.op}'")
            return Typed(self.finite(a.expr + b.expr if e.op == "+" else a.expr - b.expr, e.span), dim, shape)
        if e.op == "*":
            return Typed(self.finite(a.expr * b.expr, e.span), _mul(a.dim, b.dim, U.mul), shape)
        if e.op == "/":
            return Typed(self.finite(a.expr / b.expr, e.span), _mul(a.dim, b.dim, U.div), shape)
        # power
        if b.dim not in (None, U.DIMENSIONLESS):
            self.error("E021", f"an exponent must be dimensionless, not {U.format_dim(b.dim)}", e.right.span)
            raise _Failed
        dim = a.dim
        if a.dim not in (None, U.DIMENSIONLESS):
            exponent = sp.nsimplify(b.expr) if b.expr.is_number and b.expr.is_real else None
            if exponent is None or not exponent.is_Rational:
                self.error("E021", "a quantity with a unit can only be raised to a constant rational power",
                           e.right.span)
                raise _Failed
            dim = U.power(a.dim, Fraction(int(exponent.p), int(exponent.q)))
        if a.expr.is_number and b.expr.is_number and _huge_power(a.expr, b.expr):
            self.error("E029", "the value of this power is out of the range of a float", e.span)
            raise _Failed
        return Typed(self.finite(a.expr ** b.expr, e.span), dim, shape)

    def call(self, e: ast.Call, allowed, ctx) -> Typed:
        fn = BUILTINS.get(e.func)
        if fn is None:
            hint = did_you_mean(e.func, BUILTINS)
            if e.func in self.names:
                hint = f"'{e.func}' is {_a(self.names[e.func].kind)}, not a function"
            self.error("E019", f"unknown function '{e.func}'", e.func_span,
                       hint or f"functions are: {', '.join(sorted(BUILTINS))}")
            raise _Failed
        n = len(e.args)
        if n < fn.min_args or (fn.max_args is not None and n > fn.max_args):
            want = (f"{fn.min_args}" if fn.max_args == fn.min_args else
                    f"at least {fn.min_args}" if fn.max_args is None else f"{fn.min_args} to {fn.max_args}")
            self.error("E020", f"{e.func}() takes {want} argument{'s' if want != '1' else ''}, got {n}", e.span)
            raise _Failed
        args, failed = [], False
        for a in e.args:
            try:
                t = self.expr(a, allowed, ctx)
                self.numeric(t, a.span)
                args.append(t)
            except _Failed:
                failed = True
        if failed:
            raise _Failed
        shape = ()
        for t, a in zip(args, e.args):
            shape = self.broadcast(Typed(None, None, shape), t, a.span)
        exprs = [t.expr for t in args]
        if fn.units == "dimensionless":
            for t, a in zip(args, e.args):
                if t.dim not in (None, U.DIMENSIONLESS):
                    self.error("E021", f"the argument of {e.func}() must be dimensionless, "
                                       f"not {U.format_dim(t.dim)}", a.span,
                               "divide by a quantity of the same unit")
                    raise _Failed
            return Typed(self.finite(fn.build(*exprs), e.span), self.dimensionless(), shape)
        if fn.units == "sqrt":
            dim = None if args[0].dim is None else U.power(args[0].dim, Fraction(1, 2))
            return Typed(self.finite(fn.build(*exprs), e.span), dim, shape)
        if fn.units == "vector-sum":
            if args[0].shape == ():
                self.error("E023", "sum() needs a vector argument", e.args[0].span)
                raise _Failed
            return Typed(self.finite(vsum(exprs[0], args[0].shape[0]), e.span), args[0].dim, ())
        dim = args[0].dim
        for t, a in zip(args[1:], e.args[1:]):
            dim = self.same_dim(Typed(None, dim, ()), t, a.span, f"the arguments of {e.func}()")
        return Typed(fn.build(*exprs), dim, shape)

    def unit(self, text: str, span: Span):
        try:
            return U.parse_unit(text)
        except U.UnitError as exc:
            self.error("E022", f"unknown unit '{exc}' in '{text}'", span,
                       "units: s ms us V mV A nA pA S mS uS nS F uF nF pF Ohm kOhm MOhm Hz; "
                       "write 'x / tau' with spaces to divide by a name")
            raise _Failed from None

    def finite(self, expr, span):
        """``expr``, or E029 if arithmetic on numbers made it infinite, NaN, complex or too large."""
        if _bad_number(expr):
            self.error("E029", "this evaluates to a number that is not a finite real float"
                               + (f" ({_short(expr)})" if expr.is_number else ""), span)
            raise _Failed
        return expr

    def unit_name(self, dim) -> str:
        return U.format_dim(dim) if self.units_on else ""

    def numeric(self, t: Typed, span):
        if t.boolean:
            self.error("E030", "a condition is used where a number is expected", span)
            raise _Failed

    def boolean(self, t: Typed, span):
        if not t.boolean:
            self.error("E030", "a number is used where a condition is expected", span,
                       "compare it, e.g. 'x > 0'")
            raise _Failed

    def dimensionless(self) -> U.Dim | None:
        """The unit of a pure number: none at all (``None``) in a model without units."""
        return U.DIMENSIONLESS if self.units_on else None

    def same_dim(self, a: Typed, b: Typed, span, what):
        if a.dim is None:
            return b.dim
        if b.dim is None or a.dim == b.dim:
            return a.dim
        self.error("E021", f"unit mismatch: {what} have units {U.format_dim(a.dim)} and {U.format_dim(b.dim)}",
                   span)
        raise _Failed

    def broadcast(self, a: Typed, b: Typed, span):
        if a.shape == b.shape or not b.shape:
            return a.shape
        if not a.shape:
            return b.shape
        self.error("E023", f"vector lengths differ: {a.shape[0]} and {b.shape[0]}", span)
        raise _Failed

    # --------------------------------------------------------- the model
    def run(self) -> ModelIR:
        m = self.m
        if m.name.startswith("_"):
            self.error("E011", f"invalid model name '{m.name}': names may not start with '_'", m.name_span,
                       "names are letters, digits and '_', starting with a letter")
        # constants, in order (each may use earlier ones)
        for c in m.constants:
            try:
                t = self.expr(c.value, {CONST}, "a constant")
                self.numeric(t, c.value.span)
                if t.shape or not t.expr.is_number:
                    self.error("E035", f"constant '{c.name}' is not a number", c.value.span)
                    raise _Failed
                if not _real_finite(t.expr):
                    self.error("E029", f"constant '{c.name}' is not a finite real number", c.value.span)
                    raise _Failed
                self.declare(c.name, CONST, c.name_span, dim=t.dim or U.DIMENSIONLESS, value=t.expr)
            except _Failed:
                self.names.setdefault(c.name, Info(CONST, c.name_span, value=sp.Integer(1), failed=True))
        params = self.parameters()
        states = self.states_decl()
        channels = self.channels()
        self.aliases_check()
        dynamics = self.odes()
        spike, guarded = self.spike()
        refractory, clamped = self.refractory(guarded)
        reset = self.rule(m.reset.assignments if m.reset else (), "reset", {STATE, PARAM, ALIAS, CONST})
        receive = self.rule(m.input.assignments if m.input else (), "on input",
                            {STATE, PARAM, ALIAS, CONST, CHANNEL})
        self.affine_in_weights(receive, channels)
        observables = self.observe()
        if not m.states and not self.diags:
            self.error("E033", f"neuron '{m.name}' declares no state", m.name_span,
                       "add a 'state:' section with at least one variable")
        if self.diags:
            raise CompileError(self.diags, self.source, self.filename, self.warnings)
        for p in m.parameters:
            if p.name not in self.used:
                self.warnings.append(Diagnostic("W001", f"parameter '{p.name}' is never used", p.name_span))
        keep = m.refractory.keep_input if m.refractory else None
        if keep is not None and not set(receive) - set(clamped):
            why = ("the input rule changes only clamped states" if receive
                   else "the model has no input rule")
            self.warnings.append(Diagnostic("W003", f"'keep input' has no effect: {why}", keep))
        state_names = [s.name for s in states]
        for s in m.states:
            if s.name in dynamics or s.name in reset or s.name in receive:
                continue
            self.warnings.append(Diagnostic("W002", f"state '{s.name}' never changes (no equation, "
                                                    "reset or input rule)", s.name_span))
        digest = hashlib.sha256((self.source or "").encode("utf-8", "surrogatepass")).hexdigest()
        budget = Budget()

        def simplify(expr):
            return simplify_safe(expr, self.rewrites, budget)

        dyn = {k: simplify(v) for k, v in dynamics.items()}
        return ModelIR(
            name=m.name, doc=m.doc, filename=self.filename, source_sha256=digest,
            states=states, params=params, channels=channels,
            aliases={k: v.expr for k, v in self.alias_typed.items()},
            dynamics=dyn,
            spike=None if spike is None else simplify(spike),
            guarded=guarded, refractory=refractory, clamped=clamped,
            keep_input=keep is not None,
            reset={k: simplify(v) for k, v in reset.items()},
            receive={k: simplify(v) for k, v in receive.items()},
            observables={k: simplify(v) for k, v in observables.items()},
            observable_shapes=self.observable_shapes,
            linear_blocks=linear_blocks(dyn, state_names, [p.name for p in params]),
            rewrites=list(dict.fromkeys(self.rewrites)),  # once each, however often it was met
        )

    def parameters(self) -> list[ParamIR]:
        out = []
        for p in self.m.parameters:
            shape = self.size(p.size)
            if p.default is None:
                self.error("E015", f"parameter '{p.name}' has no default value", p.span,
                           f"write '{p.name} = <value>'")
                self.declare(p.name, PARAM, p.name_span, shape=shape or (), dim=None, failed=True)
                continue
            try:
                value, dim = self.constant_value(p.default, shape, f"parameter '{p.name}'")
            except _Failed:
                self.declare(p.name, PARAM, p.name_span, shape=shape or (), dim=None, failed=True)
                continue
            if self.declare(p.name, PARAM, p.name_span, shape=shape or (), dim=dim,
                            failed=shape is None) and shape is not None:
                out.append(ParamIR(p.name, shape, value, p.learnable, self.unit_name(dim)))
        return out

    def constant_value(self, e: ast.Expr, shape, what, initial=False):
        """A parameter default: a constant number or vector literal, in canonical units.

        With ``initial`` (a state's vector initial value) the elements may also use
        parameters; such an element stays a SymPy expression, a constant one is a float."""
        kind = "initial value" if initial else "default"
        if isinstance(e, ast.VectorLiteral):
            scale, dim = (1.0, U.DIMENSIONLESS) if e.unit is None else self.unit(e.unit, e.unit_span)
            values, element_dim = [], None  # the elements' common unit (bare numbers adapt)
            allowed = {PARAM, CONST} if initial else {CONST}
            for el in e.elements:
                t = self.expr(el, allowed, f"an {kind}" if initial else "a default value")
                self.numeric(t, el.span)
                if t.shape:
                    self.error("E034", f"an element of the {kind} of {what} is a vector",
                               el.span, "each element of [...] must be a scalar")
                    raise _Failed
                if not t.expr.is_number:
                    if not initial:
                        self.error("E035", f"the default of {what} must be a constant", el.span)
                        raise _Failed
                    values.append(t.expr * sp.nsimplify(scale, rational=True))
                else:
                    if not _real_finite(t.expr):
                        self.error("E029", f"the {kind} of {what} is not a finite real number",
                                   el.span)
                        raise _Failed
                    value = _to_float(sp.nsimplify(t.expr, rational=True) * sp.Rational(scale))
                    if not math.isfinite(value):
                        self.error("E029", f"the {kind} of {what} is too large for a float", el.span)
                        raise _Failed
                    values.append(value)
                if t.dim is not None and element_dim is not None and t.dim != element_dim:
                    self.error("E021", f"unit mismatch: the {kind} of {what} mixes "
                                       f"{U.format_dim(element_dim)} and {U.format_dim(t.dim)}", el.span)
                    raise _Failed
                element_dim = element_dim or t.dim
            if element_dim is not None:  # '[1 s, 2 ms]' is in ms, '[1 ms, 2 ms] ms' in ms^2
                dim = element_dim if e.unit is None else U.mul(element_dim, dim)
            if not shape:
                self.error("E034", f"{what} is a scalar but its {kind} is a vector", e.span,
                           "declare its length, e.g. name[N] = [...]")
                raise _Failed
            if shape and len(values) != shape[0]:
                self.error("E023", f"{what} has length {shape[0]} but {len(values)} values are given", e.span)
                raise _Failed
            return tuple(values), dim
        t = self.expr(e, {CONST}, "a default value")
        self.numeric(t, e.span)
        if not t.expr.is_number:
            self.error("E035", f"the default of {what} must be a constant", e.span)
            raise _Failed
        if not _real_finite(t.expr):
            self.error("E029", f"the default of {what} is not a finite real number", e.span)
            raise _Failed
        return complex(sp.N(t.expr)).real, (t.dim or U.DIMENSIONLESS)

    def states_decl(self) -> list[StateIR]:
        out = []
        for s in self.m.states:
            shape = self.size(s.size)
            if s.init is None:
                self.error("E014", f"state '{s.name}' has no initial value", s.span,
                           f"write '{s.name} = <value>'")
                self.declare(s.name, STATE, s.name_span, shape=shape or (), dim=None, failed=True)
                continue
            try:
                if isinstance(s.init, ast.VectorLiteral):
                    values, dim = self.constant_value(s.init, shape, f"state '{s.name}'",
                                                      initial=True)
                    init, tshape = sp.ImmutableDenseNDimArray(values), shape
                else:
                    t = self.expr(s.init, {PARAM, CONST}, "an initial value")
                    self.numeric(t, s.init.span)
                    init, dim, tshape = t.expr, t.dim or U.DIMENSIONLESS, t.shape
                    if shape is not None:
                        if tshape and tshape != shape:
                            self.error("E023", f"state '{s.name}' has length {shape[0] if shape else 1} but "
                                               f"its initial value has length {tshape[0]}", s.init.span)
                            raise _Failed
                        if tshape and not shape:
                            self.error("E034", f"state '{s.name}' is a scalar but its initial value is a "
                                               "vector", s.init.span)
                            raise _Failed
            except _Failed:
                self.declare(s.name, STATE, s.name_span, shape=shape or (), dim=None, failed=True)
                continue
            if self.declare(s.name, STATE, s.name_span, shape=shape or (), dim=dim,
                            failed=shape is None) and shape is not None:
                out.append(StateIR(s.name, shape, self.unit_name(dim), init))
        return out

    def channels(self) -> list[ChannelIR]:
        out = []
        if self.m.input is None:
            return out
        for c in self.m.input.channels:
            shape = self.size(c.size)
            if self.declare(c.name, CHANNEL, c.span, shape=shape or (), dim=None,
                            failed=shape is None) and shape is not None:
                out.append(ChannelIR(c.name, shape))
        return out

    def aliases_check(self):
        # only aliases that were declared without error take part (a second 'x = ...', or an
        # alias named like a parameter or 'e', is an E010 and must not overwrite the first)
        aliases = [e for e in self.m.equations
                   if isinstance(e, ast.Alias) and self.declare(e.name, ALIAS, e.name_span)]
        # dependency order; a cycle is one error at the alias that closes it
        deps = {a.name: {n.id for n in ast.walk(a.expr) if isinstance(n, ast.Name)} for a in aliases}
        by_name = {a.name: a for a in aliases}
        order, state, in_cycle = [], {}, set()
        for a in aliases:
            stack = [(a.name, iter(sorted(deps[a.name] & by_name.keys())))]
            if a.name in state:
                continue
            state[a.name] = "active"
            path = [a.name]
            while stack:
                node, it = stack[-1]
                nxt = next(it, None)
                if nxt is None:
                    stack.pop()
                    path.pop()
                    state[node] = "done"
                    order.append(node)
                    continue
                if state.get(nxt) == "active":
                    cycle = path[path.index(nxt):] + [nxt]
                    if not in_cycle & set(cycle):
                        self.error("E017", f"aliases depend on each other in a cycle: {' -> '.join(cycle)}",
                                   by_name[nxt].name_span, "one of them must not use the other")
                    in_cycle.update(cycle)
                elif nxt not in state:
                    state[nxt] = "active"
                    path.append(nxt)
                    stack.append((nxt, iter(sorted(deps[nxt] & by_name.keys()))))
        for name in order:
            if name in in_cycle:
                continue
            a = by_name[name]
            try:
                t = self.expr(a.expr, {STATE, PARAM, CONST, ALIAS}, "an alias")
                self.numeric(t, a.expr.span)
                if _tree_size(t.expr, MAX_ALIAS_NODES) > MAX_ALIAS_NODES:
                    self.error("E005", f"'{name}' stands for an expression of more than "
                                       f"{MAX_ALIAS_NODES} terms once the aliases it uses are "
                                       "inlined", a.expr.span,
                               "aliases that each use an earlier one twice double in size; "
                               "restructure them")
                    raise _Failed
                depth = _tree_depth(t.expr, MAX_ALIAS_DEPTH)
                if depth > MAX_ALIAS_DEPTH:
                    self.error("E005", f"'{name}' stands for an expression nested more than "
                                       f"{MAX_ALIAS_DEPTH} levels deep once the aliases it uses "
                                       "are inlined", a.expr.span,
                               "a long chain of aliases, each applying a function to the one "
                               "before, nests that deep; shorten the chain")
                    raise _Failed
                self.alias_typed[name] = t
                self.names[name].shape, self.names[name].dim = t.shape, t.dim
            except _Failed:
                pass

    def odes(self) -> dict[str, sp.Expr]:
        out = {}
        for e in self.m.equations:
            if not isinstance(e, ast.ODE):
                continue
            info = self.names.get(e.name)
            if info is None or info.kind != STATE:
                what = f"the {info.kind} '{e.name}'" if info else f"'{e.name}', which is not declared"
                self.error("E013", f"differential equation for {what}", e.name_span,
                           did_you_mean(e.name, [n for n, i in self.names.items() if i.kind == STATE])
                           or "declare it under 'state:'")
                continue
            if e.name in out:
                self.error("E010", f"a second equation for {e.name}'", e.name_span)
                continue
            try:
                t = self.expr(e.expr, {STATE, PARAM, CONST, ALIAS}, "an equation")
                self.numeric(t, e.expr.span)
                self.fits(t, info, e.expr.span, f"{e.name}'")
                if (self.units_on and info.dim is not None and t.dim is not None
                        and t.dim != U.div(info.dim, U.TIME)):
                    self.error("E021", f"unit mismatch: {e.name}' has unit {U.format_dim(U.div(info.dim, U.TIME))} "
                                       f"but the right-hand side has {U.format_dim(t.dim)}", e.expr.span)
                    continue
                out[e.name] = t.expr
            except _Failed:
                out[e.name] = sp.Integer(0)
        return out

    def fits(self, t: Typed, info: Info, span, what):
        if t.shape and info.shape != t.shape:
            if not info.shape:
                self.error("E034", f"{what} is a scalar but the value is a vector", span)
            else:
                self.error("E023", f"{what} has length {info.shape[0]} but the value has length {t.shape[0]}",
                           span)
            raise _Failed

    def spike(self):
        sp_stmt = self.m.spike
        if sp_stmt is None:
            return None, False
        cond, guarded = sp_stmt.condition, False
        if isinstance(cond, ast.BoolOp) and cond.op == "and":
            parts = [cond.left, cond.right]
            flags = [p for p in parts if isinstance(p, ast.Not) and isinstance(p.operand, ast.RefractoryFlag)]
            if len(flags) == 1:
                guarded = True
                cond = next(p for p in parts if p is not flags[0])
            else:
                self.error("E026", "the only guard a spike condition may have is 'and not refractory'",
                           cond.span, "a spike is the upward crossing of one inequality, e.g. 'v >= v_th'")
                return None, False
        if isinstance(cond, (ast.BoolOp, ast.Not)):  # 'or', 'not', or more 'and' terms
            self.error("E026", "the only guard a spike condition may have is 'and not refractory'",
                       cond.span, "a spike is the upward crossing of one inequality, e.g. 'v >= v_th'")
            return None, False
        if not isinstance(cond, ast.Compare) or cond.op in ("==", "!="):
            self.error("E018", "the spike condition must be an inequality such as 'v >= v_th'", cond.span,
                       "spikes are found by root-finding the crossing of lhs - rhs")
            return None, False
        try:
            t = self.expr(cond, {STATE, PARAM, CONST, ALIAS}, "the spike condition")
        except _Failed:
            return None, guarded
        if t.shape:
            self.error("E034", "the spike condition must be a scalar (sum() combines a vector)",
                       cond.span)
            return None, guarded
        lhs, rhs = t.expr.lhs, t.expr.rhs
        value = lhs - rhs if cond.op in (">=", ">") else rhs - lhs
        states = {sym(n) for n, info in self.names.items() if info.kind == STATE}
        if not value.free_symbols & states:
            self.error("E036", "the spike condition does not depend on any state, so it can never "
                               "be crossed", cond.span,
                       "compare a state (or an alias of states) with a threshold, e.g. 'v >= v_th'")
            return None, guarded
        if guarded and self.m.refractory is None:
            self.error("E027", "'not refractory' is used but no refractory period is declared",
                       sp_stmt.condition.span, "add e.g. 'refractory 2 ms'")
        return value, guarded

    def refractory(self, guarded):
        r = self.m.refractory
        if r is None:
            return None, ()
        clamped = []
        for name, span in r.clamped:
            info = self.names.get(name)
            if info is None or info.kind != STATE:
                self.error("E016", f"only states can be clamped; '{name}' is "
                                   f"{_a(info.kind) if info else 'not declared'}", span,
                           did_you_mean(name, [n for n, i in self.names.items() if i.kind == STATE]))
            elif name in clamped:
                self.error("E025", f"state '{name}' is clamped twice", span,
                           "name each clamped state once")
            else:
                clamped.append(name)
        if self.m.spike is None:
            self.error("E027", "a refractory period needs a spike condition", r.span)
        try:
            t = self.expr(r.duration, {PARAM, CONST}, "the refractory period")
            self.numeric(t, r.duration.span)
            if t.dim not in (None, U.TIME, U.DIMENSIONLESS):
                self.error("E021", f"the refractory period has unit {U.format_dim(t.dim)}, expected a time",
                           r.duration.span)
                raise _Failed
            if t.shape:
                self.error("E034", "the refractory period must be a scalar", r.duration.span)
                raise _Failed
            if t.expr.is_number and _real_finite(t.expr) and t.expr < 0:
                self.error("E037", f"the refractory period is negative ({_short(t.expr)} ms)",
                           r.duration.span, "use 0 ms for none, or leave out the refractory "
                                            "statement")
                raise _Failed
            return t.expr, tuple(clamped)
        except _Failed:
            return None, tuple(clamped)

    def rule(self, assignments, where, allowed) -> dict[str, sp.Expr]:
        out: dict[str, sp.Expr] = {}
        spans: dict[str, Span] = {}
        for a in assignments:
            info = self.names.get(a.target)
            if info is None or info.kind != STATE:
                what = f"the {info.kind} '{a.target}'" if info else f"'{a.target}', which is not declared"
                self.error("E016", f"'{where}' assigns to {what}; only states can change", a.target_span,
                           did_you_mean(a.target, [n for n, i in self.names.items() if i.kind == STATE]))
                continue
            if a.target in spans:
                self.error("E025", f"'{a.target}' is assigned twice in '{where}'", a.target_span,
                           f"first assigned at line {spans[a.target].line}; combine the two")
                continue
            spans[a.target] = a.target_span
            try:
                t = self.expr(a.expr, allowed, f"the '{where}' rule")
                self.numeric(t, a.expr.span)
                self.fits(t, info, a.expr.span, f"'{a.target}'")
                if self.units_on and info.dim is not None and t.dim is not None and t.dim != info.dim:
                    self.error("E021", f"unit mismatch: '{a.target}' has unit {U.format_dim(info.dim)} but the "
                                       f"value has {U.format_dim(t.dim)}", a.expr.span)
                    continue
            except _Failed:
                continue
            old = sym(a.target)
            out[a.target] = {"=": t.expr, "+=": old + t.expr, "-=": old - t.expr}[a.op]
        return out

    def affine_in_weights(self, receive, channels):
        ws = [sym(c.name) for c in channels]
        if not self.m.input:
            return
        spans = {a.target: a.expr.span for a in self.m.input.assignments}
        for target, expr in receive.items():
            # SymPy differentiates 'if w > 0 then w else 0' branch by branch, blind to the
            # condition: a weight in a condition is a kink the derivatives cannot see
            tested = sorted({str(w) for pw in expr.atoms(sp.Piecewise) for _, cond in pw.args
                             for w in cond.free_symbols & set(ws)})
            if tested:
                self.error("E024", f"the input rule for '{target}' is not affine in the weight "
                                   f"'{tested[0]}' (a condition tests it)", spans[target],
                           "simultaneous spikes are summed before the rule is applied, "
                           "so the rule must be of the form a + b*w")
                continue
            for i, wi in enumerate(ws):
                for wj in ws[i:]:
                    if sp.simplify(sp.diff(expr, wi, wj)) != 0:
                        self.error("E024", f"the input rule for '{target}' is not affine in the weights "
                                           f"({wi} and {wj} interact)" if wi != wj else
                                           f"the input rule for '{target}' is not affine in the weight '{wi}'",
                                   spans[target], "simultaneous spikes are summed before the rule is applied, "
                                                  "so the rule must be of the form a + b*w")
                        break
                else:
                    continue
                break

    def observe(self) -> dict[str, sp.Expr]:
        """The read-outs (name -> expression); their shapes go to ``self.observable_shapes``."""
        out, shapes = {}, self.observable_shapes
        if self.m.observables is None:
            for s in self.m.states:
                if s.name in self.names:
                    out[s.name], shapes[s.name] = sym(s.name), self.names[s.name].shape
            return out
        seen = {}
        for o in self.m.observables:
            if o.name in seen:
                self.error("E010", f"observable '{o.name}' is given twice", o.name_span)
                continue
            seen[o.name] = o
            if o.expr is None:
                info = self.names.get(o.name)
                if o.name in CONSTANTS:  # 'pi': defined, but a number, not a read-out
                    allowed = {STATE, PARAM, ALIAS}
                    self.error("E012", f"an observable cannot refer to the constant '{o.name}'",
                               o.name_span, _allowed_hint(allowed))
                    continue
                if info is None:
                    self.error("E012", f"undefined name '{o.name}'", o.name_span,
                               did_you_mean(o.name, self.names))
                    continue
                try:
                    t = self.name(ast.Name(o.name, o.name_span), {STATE, PARAM, ALIAS}, "an observable")
                except _Failed:
                    continue
                out[o.name], shapes[o.name] = t.expr, t.shape
                continue
            if o.name.startswith("_"):
                self.error("E011", f"invalid name '{o.name}': names may not start with '_'", o.name_span)
                continue
            if o.name in self.names or o.name in CONSTANTS:
                self.error("E010", f"observable '{o.name}' would hide the {self.names[o.name].kind if o.name in self.names else 'constant'} of that name",
                           o.name_span, "give the read-out another name")
                continue
            try:
                t = self.expr(o.expr, {STATE, PARAM, ALIAS, CONST}, "an observable")
                self.numeric(t, o.expr.span)
                out[o.name], shapes[o.name] = t.expr, t.shape
            except _Failed:
                continue
        return out


def _to_float(x) -> float:
    """A (possibly huge) exact number as a float: inf where it overflows."""
    try:
        return float(x)
    except OverflowError:
        return math.inf


def _real_finite(x) -> bool:
    """Whether the SymPy number ``x`` is real and finite as a float."""
    try:
        value = complex(sp.N(x))
    except (TypeError, ValueError, OverflowError, ArithmeticError):
        return False
    return value.imag == 0 and math.isfinite(value.real)


def _bad_number(expr) -> bool:
    """Whether ``expr`` contains an infinite, NaN, complex or out-of-range number (one whose
    float overflows, or is 0 or subnormal though the number is not 0)."""
    if expr.has(sp.zoo, sp.oo, sp.nan, sp.I):
        return True
    for n in expr.atoms(sp.Number):
        f = _to_float(n)
        if not math.isfinite(f) or (n != 0 and abs(f) < sys.float_info.min):
            return True
    if any(p.is_number and p.is_real is False for p in expr.atoms(sp.Pow)):
        return True
    # a function of numbers, kept exact by SymPy (exp(1000)), must be a float too
    return any(f.is_number and not _finite_real(f) for f in expr.atoms(sp.Function))


@functools.lru_cache(maxsize=4096)
def _finite_real(f) -> bool:
    """Whether the number ``f`` is a finite real float. Cached: every check of an enclosing
    expression meets the same atoms again, and evaluating one can be slow."""
    value = _complex(f)
    return math.isfinite(value.real) and value.imag == 0


def _huge_power(base, exponent) -> bool:
    """Whether ``base ** exponent`` (numbers) is far outside float range: SymPy must not compute it
    exactly (``10^10^10`` would take forever)."""
    b, x = abs(_complex(base)), abs(_complex(exponent))
    if not (math.isfinite(b) and math.isfinite(x)):
        return True
    return b not in (0.0, 1.0) and x * abs(math.log2(b)) > 4096


def _complex(x) -> complex:
    try:
        return complex(sp.N(x))
    except (TypeError, ValueError, OverflowError, ArithmeticError):
        return complex(math.nan)


def _short(expr) -> str:
    text = sp.sstr(expr)
    return text if len(text) <= 40 else text[:37] + "..."


def _uses_units(model: ast.Model) -> bool:
    """Whether any number in the model carries a unit."""
    return any(isinstance(n, ast.Quantity) or (isinstance(n, ast.VectorLiteral) and n.unit)
               for e in ast.expressions(model) for n in ast.walk(e))


def _piecewise(then, cond, otherwise):
    """``if cond then then else otherwise``; comparisons of numbers are decided first (SymPy's
    Piecewise fails with 'Invalid NaN comparison' on an unevaluated ``1 > 1``)."""
    cond = cond.replace(lambda x: x.is_Relational and not x.free_symbols, lambda x: x.func(*x.args))
    try:
        return sp.Piecewise((then, cond), (otherwise, True))
    except (TypeError, ValueError):
        return sp.Piecewise((then, cond), (otherwise, True), evaluate=False)


def _a(kind: str) -> str:
    """'an alias', 'a parameter'."""
    return ("an " if kind[0] in "aeiou" else "a ") + kind


def _allowed_hint(allowed):
    kinds = sorted(k + ("es" if k.endswith("s") else "s") for k in allowed)
    return "it may use " + (", ".join(kinds[:-1]) + " and " + kinds[-1] if len(kinds) > 1 else kinds[0])


def _exact(text: str) -> Fraction:
    from decimal import Decimal

    return Fraction(Decimal(text))


def _tree_fold(expr, limit: int, combine) -> int:
    """``1 + combine(values of the arguments)`` at every node of ``expr``, leaves 1, without
    recursion (a deep expression must not exhaust Python's stack); values are capped at
    ``limit + 1`` so that counting stops once it passes ``limit``."""
    values: dict = {}
    stack = [(expr, False)]
    while stack:
        e, expanded = stack.pop()
        if e in values:
            continue
        if expanded or not e.args:
            values[e] = min(1 + combine([values[a] for a in e.args]), limit + 1)
        else:
            stack.append((e, True))
            stack.extend((a, False) for a in e.args if a not in values)
    return values[expr]


def _tree_size(expr, limit: int) -> int:
    """The number of nodes of ``expr`` written out as a tree (SymPy shares repeated
    subexpressions, so this can be exponential in the number of distinct ones)."""
    return _tree_fold(expr, limit, sum)


def _tree_depth(expr, limit: int) -> int:
    """The nesting depth of ``expr`` (a leaf is 1)."""
    return _tree_fold(expr, limit, lambda xs: max(xs, default=0))


def _mul(a, b, op):
    if a is None and b is None:
        return None
    return op(a if a is not None else U.DIMENSIONLESS, b if b is not None else U.DIMENSIONLESS)


def check(model: ast.Model, source: str | None = None, filename: str = "<input>") -> ModelIR:
    """Validate a parsed model and lower it to the SymPy IR.

    Raises :class:`CompileError` with every error found; warnings are in
    ``CompileError.warnings`` or, on success, returned by :func:`check_with_warnings`.
    """
    return check_with_warnings(model, source, filename)[0]


def check_with_warnings(model, source=None, filename="<input>"):
    c = Checker(model, source, filename)
    ir = c.run()
    return ir, c.warnings

