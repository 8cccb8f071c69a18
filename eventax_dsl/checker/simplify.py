"""Safe simplification, removable singularities and linear blocks.

``simplify_safe`` only accepts a rewrite that is shorter *and* evaluates no new
exponential: SymPy happily turns ``exp(v - v_T)`` into ``exp(v)*exp(-v_T)``,
which overflows in float32 for ``v`` near 89 even though the original is fine.

``remove_singularities`` rewrites quotients such as the Hodgkin-Huxley rate
``a*(v + 40)/(1 - exp(-(v + 40)/10))``, which is 0/0 at ``v = -40``, into
``a*10/exprel(-(v + 40)/10)``: the same function, finite in value and gradient
everywhere.

``linear_blocks`` finds the states whose dynamics are linear with constant
coefficients (given the parameters): those can be integrated exactly.
"""

from __future__ import annotations

import time

import sympy as sp

from .functions import exprel, vsum

#: expressions with more operations than this are not given to sympy.simplify
SIMPLIFY_MAX_OPS = 60
#: wall-clock budget for all simplifications of one model (seconds)
SIMPLIFY_BUDGET = 0.2


class Budget:
    """Wall-clock budget shared by all simplifications of one model."""

    def __init__(self):
        self.start = None

    def left(self) -> bool:
        if self.start is None:
            self.start = time.perf_counter()
        return time.perf_counter() - self.start < SIMPLIFY_BUDGET


def _exp_args(expr) -> set:
    return {a.args[0] for a in expr.atoms(sp.exp)} | {a.args[0] for a in expr.atoms(sp.Pow)
                                                      if a.base == sp.E}


def simplify_safe(expr: sp.Expr, notes: list[str] | None = None, budget: Budget | None = None) -> sp.Expr:
    """Simplify within a budget, never introducing an exponential that overflows sooner."""
    expr = remove_singularities(expr, notes)
    if budget is not None and not budget.left():
        return expr
    if sp.count_ops(expr) > SIMPLIFY_MAX_OPS or expr.has(sp.Piecewise):
        return expr
    try:
        candidate = sp.cancel(expr) if not expr.has(vsum) else expr
        candidate = sp.factor_terms(candidate)
    except (sp.PolynomialError, TypeError, ValueError, RecursionError, ArithmeticError):
        return expr  # e.g. OverflowError converting 1e-308 to a rational: keep it as written
    if sp.count_ops(candidate) < sp.count_ops(expr) and _exp_args(candidate) <= _exp_args(expr):
        return candidate
    return expr


def remove_singularities(expr: sp.Expr, notes: list[str] | None = None) -> sp.Expr:
    """Rewrite ``g/(exp(g) - 1)``-type quotients (0/0 at g = 0) with :class:`exprel`."""

    def fix(term):
        try:
            return _fix(term)
        except (sp.PolynomialError, TypeError, ValueError, RecursionError, ArithmeticError):
            return term  # SymPy could not decide: leave the term as written

    def _fix(term):
        if not term.is_Mul:
            return term
        num, den = sp.fraction(term)
        den = sp.expand(den, power_exp=False, mul=True) if den.has(sp.exp) else den
        if den == 1 or not den.is_Add or len(den.args) != 2:
            return term
        consts = [a for a in den.args if not a.has(sp.exp)]
        exps = [a for a in den.args if a.has(sp.exp)]
        if len(consts) != 1 or len(exps) != 1:
            return term
        c = consts[0]
        coeff, e = exps[0].as_independent(sp.exp)
        if not isinstance(e, sp.exp) or sp.simplify(coeff + c) != 0:
            return term
        g = e.args[0]
        # den = coeff*(exp(g) - 1) = coeff*g*exprel(g); removable if num vanishes with g
        rest = sp.cancel(sp.nsimplify(num, rational=True) / sp.nsimplify(g, rational=True))
        if sp.denom(rest).free_symbols & g.free_symbols:
            return term
        if notes is not None:
            notes.append(f"removable singularity at {g} = 0 in {term}: rewritten with exprel")
        return rest / (coeff * exprel(g))

    return expr.replace(lambda x: x.is_Mul and x.has(sp.exp), fix)


def linear_blocks(dynamics: dict[str, sp.Expr], states: list[str], params: list[str]) -> list[tuple[str, ...]]:
    """The states whose dynamics are affine in themselves with constant coefficients.

    Starting from all states, repeatedly drop a state whose derivative is not
    affine in the remaining set, or depends on a dropped state. What is left
    is split into connected blocks (states that feed each other).
    """
    syms = {s: sp.Symbol(s, real=True) for s in states}
    funcs = {s: dynamics.get(s, sp.Integer(0)) for s in states}
    state_set = set(states)
    # the states each derivative uses (only those matter for affinity: near-linear time in #states)
    used = {s: {str(x) for x in funcs[s].free_symbols} & state_set for s in states}
    keep = set(states)
    changed = True
    while changed:
        changed = False
        for s in sorted(keep):
            if used[s] - keep or not _affine(funcs[s], [syms[k] for k in sorted(used[s])]):
                keep.discard(s)
                changed = True
    # connected components among kept states (edge: one's derivative uses the other)
    graph = {s: used[s] & keep for s in keep}
    users = {s: set() for s in keep}
    for s, deps in graph.items():
        for d in deps:
            users[d].add(s)
    blocks, seen = [], set()
    for s in states:
        if s not in keep or s in seen:
            continue
        comp, stack = set(), [s]
        while stack:
            x = stack.pop()
            if x in comp:
                continue
            comp.add(x)
            stack.extend(graph[x] | users[x])
        seen |= comp
        blocks.append(tuple(x for x in states if x in comp))
    return blocks


def _affine(f: sp.Expr, xs: list[sp.Symbol]) -> bool:
    if f.has(sp.Piecewise) or f.has(sp.Min) or f.has(sp.Max) or f.has(sp.Abs):
        if f.free_symbols & set(xs):
            return False
    for x in xs:
        d = sp.diff(f, x)
        if d.free_symbols & set(xs):
            return False
    return True
