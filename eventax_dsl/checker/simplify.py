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
from dataclasses import dataclass

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


# ------------------------------------------------------------------------------
# Closed-form solutions of the linear blocks
# ------------------------------------------------------------------------------
#
# A linear block is a set of states x with x' = A x + b, where A and b hold only
# parameters (``linear_blocks`` above finds them; every block is *closed*: its
# derivatives read no state outside it). Over a time dt without events,
#
#     x(dt) = exp(A dt) x(0) + (integral_0^dt exp(A s) ds) b,
#
# which is the top-right part of exp(T dt) for the augmented matrix
# T = [[A, b], [0, 0]] acting on (x, 1). If the states can be ordered so that each
# derivative reads only states later in the order (the dependency graph has no
# loop; true for every synaptic current feeding a membrane), T is upper
# triangular, and the entries of exp(T dt) are given exactly by the Opitz formula
# (N. J. Higham, "Functions of Matrices", SIAM 2008, Thm. 4.11):
#
#     exp(T dt)[i, j] = sum over paths i = s0 -> s1 -> ... -> sk = j of
#                       T[s0, s1] T[s1, s2] ... T[s(k-1), sk] * f[r_s0, ..., r_sk]
#
# where r_i = T[i, i] are the rates and f[...] is the divided difference of
# r -> exp(r dt). f[a] = exp(a dt); f[a, b] = (exp(a dt) - exp(b dt)) / (a - b) is
# 0/0 when a = b (tau_mem = tau_syn): it is kept as the opaque function
# ``exp_divdiff(dt, a, b)``, which the runtime evaluates in a form that is smooth
# and finite in value and gradient on both sides of a = b (see
# eventax_dsl.runtime.exp_divdiff). A path is a chain of "reads": v reads i, i
# reads the constant 1 (the offset b).

#: the time step of a closed-form solution (a leading '_' keeps it apart from user names)
DT = sp.Symbol("_dt", real=True)


def dt_name(ir) -> str:
    """How closed forms show the time step: ``dt``, or ``Δt`` where the model has a ``dt``."""
    names = {x.name for x in (*ir.states, *ir.params)} | set(ir.aliases)
    return "Δt" if "dt" in names else "dt"
#: blocks with more states than this are integrated numerically (path enumeration)
MAX_EXACT_BLOCK = 8


class exp_divdiff(sp.Function):  # noqa: N801 - printed name
    """``exp_divdiff(t, r0, ..., rk)``: divided difference of ``r -> exp(r t)`` at ``r0..rk``.

    ``exp_divdiff(t, a) = exp(a t)``; ``exp_divdiff(t, a, b) = (exp(a t) - exp(b t)) / (a - b)``,
    equal to ``t exp(a t)`` when ``a = b``; higher orders recursively. Symmetric in the rates.
    """

    def _eval_rewrite_as_exp(self, t, *rates, **kwargs):
        return _divdiff_distinct(t, list(rates))

    def _eval_evalf(self, prec):
        t, *rates = self.args
        if not all(a.is_number for a in self.args):
            return None
        # the textbook recursion is 0/0 at coincident rates; the matrix exponential of
        # the bidiagonal matrix t*(diag(rates) + superdiagonal ones) is not (Opitz)
        k = len(rates)
        m = sp.zeros(k, k)
        for i, r in enumerate(rates):
            m[i, i] = r * t
            if i + 1 < k:
                m[i, i + 1] = t
        return (m.exp())[0, k - 1].evalf(prec)


def _divdiff_distinct(t, rates):
    """The textbook recursion (valid for distinct rates)."""
    if len(rates) == 1:
        return sp.exp(rates[0] * t)
    first, last = rates[:-1], rates[1:]
    return (_divdiff_distinct(t, first) - _divdiff_distinct(t, last)) / (rates[0] - rates[-1])


def divided_difference(rates) -> sp.Expr:
    """``f[r0..rk]`` of ``r -> exp(r DT)``: explicit where the rates are equal, else ``exp_divdiff``."""
    rates = sorted(rates, key=sp.default_sort_key)
    k = len(rates) - 1
    if all(r == rates[0] or sp.cancel(r - rates[0]) == 0 for r in rates[1:]):
        return DT**k / sp.factorial(k) * sp.exp(rates[0] * DT)  # f[a, ..., a] = dt^k/k! exp(a dt)
    if k == 1 and 0 in rates:  # f[0, a] = (exp(a dt) - 1)/a = dt exprel(a dt): overflows only with exp(a dt)
        other = rates[1] if rates[0] == 0 else rates[0]
        return DT * exprel(other * DT)
    return exp_divdiff(DT, *rates)


@dataclass(frozen=True)
class BlockSolution:
    """The exact-integration verdict for one linear block (see :class:`~.ir.LinearBlockIR`)."""

    matrix: sp.ImmutableMatrix
    offset: tuple
    exact: bool
    reason: str
    solution: dict
    clamped_solution: dict | None
    rates: dict


def solve_block(block: tuple[str, ...], dynamics: dict[str, sp.Expr], clamped: tuple[str, ...] = (),
                vectors: frozenset = frozenset()) -> BlockSolution:
    """A: x' = A x + b for ``block`` and, when it is triangular, its closed form over ``DT``.

    ``solution[s]`` is ``s(dt)`` in terms of the block's values at 0 (the state symbols
    themselves) and ``DT``. ``clamped_solution`` is the same with the ``clamped`` states of
    the block held fixed (their rows of A and b zeroed: a refractory neuron), or None if
    no state of the block is clamped. ``vectors``: names of vector-valued quantities
    (only reported; vector states are solved elementwise).
    """
    syms = [sp.Symbol(s, real=True) for s in block]
    f = [dynamics.get(s, sp.Integer(0)) for s in block]
    zero = {x: 0 for x in syms}
    a = sp.ImmutableMatrix([[sp.diff(fi, x) for x in syms] for fi in f])
    b = tuple(fi.xreplace(zero) for fi in f)
    rates = {s: a[i, i] for i, s in enumerate(block)}
    none = dict(matrix=a, offset=b, solution={}, clamped_solution=None, rates=rates)
    if any(fi.has(vsum) for fi in f):
        return BlockSolution(exact=False, reason="numeric: couples vector elements through sum() "
                             "(no elementwise closed form)", **none)
    if len(block) > MAX_EXACT_BLOCK:
        return BlockSolution(exact=False, reason=f"numeric: more than {MAX_EXACT_BLOCK} coupled states",
                             **none)
    solution = _triangular_solution(block, a, b)
    if solution is None:
        return BlockSolution(exact=False, reason="numeric: the states read each other in a loop "
                             "(no triangular form, e.g. an oscillation)", **none)
    held = [i for i, s in enumerate(block) if s in clamped]
    clamped_solution = None
    if held:
        a2 = sp.Matrix(a)
        b2 = list(b)
        for i in held:
            a2[i, :] = sp.zeros(1, len(block))
            b2[i] = sp.Integer(0)
        clamped_solution = _triangular_solution(block, sp.ImmutableMatrix(a2), tuple(b2))
    kinds = []
    if any(s in vectors for s in block):
        kinds.append("elementwise over vector elements")
    reason = "exact: closed form (triangular; exponentials and divided differences" + \
             (", " + ", ".join(kinds) if kinds else "") + ")"
    return BlockSolution(matrix=a, offset=b, exact=True, reason=reason, solution=solution,
                         clamped_solution=clamped_solution, rates=rates)


def _triangular_solution(block, a, b):
    """Opitz formula on the augmented matrix, or None if the reads form a loop."""
    k = len(block)
    one = k  # index of the constant node
    reads = {i: [j for j in range(k) if j != i and a[i, j] != 0] + ([one] if b[i] != 0 else [])
             for i in range(k)}
    reads[one] = []
    rate = [a[i, i] for i in range(k)] + [sp.Integer(0)]

    def entry(i, j):
        return b[i] if j == one else a[i, j]

    # loop detection (depth-first, three colours)
    colour = {}

    def acyclic(i):
        colour[i] = 1
        for j in reads[i]:
            if colour.get(j) == 1 or (colour.get(j) is None and not acyclic(j)):
                return False
        colour[i] = 2
        return True

    if not all(colour.get(i) == 2 or acyclic(i) for i in range(k + 1)):
        return None

    def paths(i):
        """Every path starting at i: (end node, product of entries, rates along it)."""
        out = [(i, sp.Integer(1), [rate[i]])]
        for j in reads[i]:
            for end, prod, rs in paths(j):
                out.append((end, entry(i, j) * prod, [rate[i]] + rs))
        return out

    syms = [sp.Symbol(s, real=True) for s in block] + [sp.Integer(1)]
    solution = {}
    for i, s in enumerate(block):
        total = sp.Integer(0)
        for end, prod, rs in paths(i):
            total += prod * divided_difference(rs) * syms[end]
        solution[s] = total
    return solution


def condition_states(spike: sp.Expr | None, dynamics: dict[str, sp.Expr], states: list[str]) -> list[str]:
    """The states the spike condition depends on, directly or through their equations."""
    if spike is None:
        return []
    names = set(states)
    todo = [str(x) for x in spike.free_symbols if str(x) in names]
    seen = []
    while todo:
        s = todo.pop()
        if s in seen:
            continue
        seen.append(s)
        todo.extend(str(x) for x in dynamics.get(s, sp.Integer(0)).free_symbols
                    if str(x) in names and str(x) not in seen)
    return [s for s in states if s in seen]
