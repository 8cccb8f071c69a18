"""IR -> readable Python source implementing the model contract.

The emitted module imports only ``jax``, ``jax.numpy`` and this package's
runtime and contract. It contains no user text except through :func:`repr`
(the docstring and file name) and validated identifiers: names that clash with
Python keywords or with the generated code's own names are renamed.
"""

from __future__ import annotations

import builtins
import keyword

import sympy as sp
from sympy.logic.boolalg import BooleanFunction
from sympy.printing.str import StrPrinter

from ..checker.functions import vsum
from ..checker.ir import ModelIR
from ..checker.simplify import DT, dt_name
from ..version import __version__

# names the generated code itself uses; user names equal to these get a '_' appended
_RESERVED = {"jax", "jnp", "rt", "self", "p", "s", "w", "dt", "NeuronModel", "StateSpec", "ParamSpec",
             "ChannelSpec"} | set(dir(builtins))


def py_name(name: str) -> str:
    """A user identifier as a safe Python identifier."""
    if not name.isidentifier() or name.startswith("_"):  # the checker rejects these
        raise ValueError(f"not a valid model identifier: {name!r}")
    if keyword.iskeyword(name) or keyword.issoftkeyword(name) or name in _RESERVED:
        return "_" + name  # users cannot write names starting with '_', so this never collides
    return name


class guard(sp.Function):  # noqa: N801 - printed name
    """``guard(taken, x)``: ``x`` inside an ``if`` branch, cut off from the gradient where the
    branch is not taken (:func:`_guard_branches`); printed as ``rt.guard``. It stands for the
    number ``x``, so SymPy may compare it, take its minimum, and so on."""

    nargs = 2
    is_commutative = True

    def _eval_is_extended_real(self):
        return self.args[1].is_extended_real

    def _eval_is_real(self):
        return self.args[1].is_real

    def _eval_is_finite(self):
        return self.args[1].is_finite


class taken(BooleanFunction):  # noqa: N801 - printed name
    """``taken(c_i, c_1, ..., c_{i-1})``: where branch ``i`` of an ``if`` chain is taken, i.e.
    ``c_i and not c_1 and ... and not c_{i-1}`` with ``not`` on the *value* of each condition,
    as the ``jnp.where`` chain decides: a comparison with NaN is false, so a later branch is
    taken. (SymPy's ``Not(x > 0)`` is ``x <= 0``, which is false for NaN too.) Never
    simplified; printed as ``rt.taken``."""

    @classmethod
    def eval(cls, *args):
        return None


def _risky(value) -> bool:
    """Whether a branch may be undefined, infinite or have an infinite slope somewhere: any
    function (sqrt, log, exp, ...) or a power other than a whole positive one (1 / x)."""
    for node in sp.preorder_traversal(value):
        if isinstance(node, sp.Function) and not isinstance(node, (sp.Min, sp.Max, sp.Abs)):
            return True
        if isinstance(node, sp.Pow) and not (node.exp.is_Integer and node.exp > 0):
            return True
    return False


def _leaves(value) -> set:
    """What a branch's guard wraps: its names, and each ``sum()`` as a whole. A sum is one
    number that every element of a vector branch reads, so it is guarded by the branch's own
    mask; the names inside it are summed over all elements, which that mask does not
    describe."""
    if isinstance(value, vsum):
        return {value} if value.free_symbols else set()
    if isinstance(value, sp.Symbol):
        return {value}
    return set().union(*(_leaves(a) for a in value.args)) if value.args else set()


def _guard_branches(expr):
    """``expr`` with the names in risky ``if`` branches read through :class:`guard`.

    ``jnp.where(c, sqrt(v), 0)`` has the right value for ``v < 0``, but its gradient
    is NaN: reverse mode sends the branch not taken a zero cotangent and multiplies it
    by the infinite slope of ``sqrt`` there. Reading ``v`` in that branch as
    ``where(c, v, stop_gradient(v))`` stops the NaN at the ``where`` (the standard
    "double where"), whatever the branch computes. Branch ``i`` is taken where its
    condition holds and no earlier one does (:class:`taken`).
    """
    if not isinstance(expr, sp.Basic) or not expr.args:
        return expr
    args = [_guard_branches(a) for a in expr.args]
    if not isinstance(expr, sp.Piecewise):
        return expr.func(*args) if any(a is not b for a, b in zip(args, expr.args)) else expr
    pieces, earlier = [], []
    for value, cond in args:
        if _risky(value) and value.free_symbols:
            mask = taken(cond, *earlier) if earlier else cond
            value = value.xreplace({x: guard(mask, x) for x in _leaves(value)})
        pieces.append((value, cond))
        earlier.append(cond)
    return sp.Piecewise(*pieces, evaluate=False)


class JaxPrinter(StrPrinter):
    """Prints checked SymPy expressions as ``jax.numpy`` code."""

    printmethod = "_jaxcode"  # not StrPrinter's '_sympystr', which shows sums as 'sum(x)'

    _FUNCS = {"exp": "jnp.exp", "log": "jnp.log", "tanh": "jnp.tanh", "sinh": "jnp.sinh",
              "cosh": "jnp.cosh", "sin": "jnp.sin", "cos": "jnp.cos", "tan": "jnp.tan",
              "atan": "jnp.arctan", "Abs": "jnp.abs", "sigmoid": "rt.sigmoid",
              "exprel": "rt.exprel", "exp_divdiff": "rt.exp_divdiff"}

    def _print_Symbol(self, expr):
        if expr.name.startswith("_t"):  # a CSE temporary (users cannot write a leading '_')
            return expr.name
        if expr == DT:  # the time step of a closed form: the argument 'dt' of flow()
            return "dt"
        return py_name(expr.name)

    def _print_Dummy(self, expr):  # pragma: no cover - not produced
        raise TypeError("unexpected dummy symbol")

    def _print_Float(self, expr):
        return repr(float(expr))

    def _print_Rational(self, expr):
        f = float(expr)
        if sp.Rational(repr(f)) == expr:  # a decimal number: print it as written
            return repr(f)
        return f"({expr.p}/{expr.q})"

    def _print_Integer(self, expr):
        # JAX's default 32-bit mode cannot take a Python int of 2**31 or more
        return str(int(expr)) if abs(expr) < 2**31 else repr(float(expr))

    def _print_Pi(self, expr):
        return "jnp.pi"

    def _print_Exp1(self, expr):
        return "jnp.e"

    def _print_BooleanTrue(self, expr):
        return "True"

    def _print_BooleanFalse(self, expr):
        return "False"

    def _print_Function(self, expr):
        name = type(expr).__name__
        if name in self._FUNCS:
            return f"{self._FUNCS[name]}({', '.join(self._print(a) for a in expr.args)})"
        raise TypeError(f"no JAX translation for function {name}")  # pragma: no cover

    def _print_exp(self, expr):
        return f"jnp.exp({self._print(expr.args[0])})"

    def _print_cot(self, expr):
        return f"(1 / jnp.tan({self._print(expr.args[0])}))"

    def _print_taken(self, expr):
        return f"rt.taken({', '.join(self._print(a) for a in expr.args)})"

    def _print_ITE(self, expr):  # an 'if' inside a condition: a boolean choice
        return "jnp.where({}, {}, {})".format(*(self._print(a) for a in expr.args))

    def _print_guard(self, expr):
        return f"rt.guard({self._print(expr.args[0])}, {self._print(expr.args[1])})"

    def _print_vsum(self, expr):
        return f"rt.vsum({self._print(expr.args[0])}, {int(expr.args[1])})"

    def _print_Pow(self, expr, rational=False):
        base, e = expr.args
        if base == sp.E:
            return f"jnp.exp({self._print(e)})"
        if e == sp.Rational(1, 2):
            return f"jnp.sqrt({self._print(base)})"
        if e == -sp.Rational(1, 2):
            return f"(1 / jnp.sqrt({self._print(base)}))"
        return super()._print_Pow(expr, rational)

    def _print_Min(self, expr):
        return self._fold("jnp.minimum", expr.args)

    def _print_Max(self, expr):
        return self._fold("jnp.maximum", expr.args)

    def _fold(self, fn, args):
        out = self._print(args[0])
        for a in args[1:]:
            out = f"{fn}({out}, {self._print(a)})"
        return out

    def _print_Piecewise(self, expr):
        *pieces, (last, cond) = expr.args
        out = self._print(last) if cond == sp.true else "jnp.nan"
        if cond != sp.true:
            pieces.append((last, cond))
        for value, c in reversed(pieces):
            out = f"jnp.where({self._print(c)}, {self._print(value)}, {out})"
        return out

    def _print_Relational(self, expr):
        ops = {">=": ">=", "<=": "<=", ">": ">", "<": "<", "==": "==", "!=": "!="}
        return f"({self._print(expr.lhs)} {ops[expr.rel_op]} {self._print(expr.rhs)})"

    def _print_And(self, expr):
        return self._fold("jnp.logical_and", expr.args)

    def _print_Or(self, expr):
        return self._fold("jnp.logical_or", expr.args)

    def _print_Not(self, expr):
        return f"jnp.logical_not({self._print(expr.args[0])})"


_PRINTER = JaxPrinter()


def pycode(expr) -> str:
    return _PRINTER.doprint(expr)


def _body(exprs: dict[str, sp.Expr], ir: ModelIR, args: dict[str, str], wrap,
          as_tuple: bool = False) -> list[str]:
    """Lines computing ``exprs`` with common subexpressions shared.

    ``args`` maps each symbol kind to the dict it is read from ('p', 's', 'w').
    ``wrap(key, code)`` turns the final expression into what is returned: a dict
    keyed like ``exprs``, or with ``as_tuple`` a tuple of the values.
    """
    keys = list(exprs)
    values = [_guard_branches(exprs[k]) for k in keys]
    temps, reduced = sp.cse(values, symbols=sp.numbered_symbols("_t", real=True),
                            optimizations=None, order="none")
    used = set()
    for v in values:
        used |= {str(x) for x in v.free_symbols}
    for _, v in temps:
        used |= {str(x) for x in v.free_symbols}
    lines = []
    for source, names in args.items():
        for name in names:
            if name in used:
                lines.append(f"{py_name(name)} = {source}[{name!r}]")
    for t, v in temps:
        lines.append(f"{t.name} = {pycode(v)}")
    if as_tuple:
        lines.append("return (" + "".join(f"{wrap(k, pycode(v))}, " for k, v in zip(keys, reduced)).rstrip()
                     + ")")
        return lines
    entries = [f"{k!r}: {wrap(k, pycode(v))}" for k, v in zip(keys, reduced)]
    lines.append("return {" + ", ".join(entries) + "}" if len(entries) < 3 else
                 "return {\n" + "".join(f"    {e},\n" for e in entries) + "}")
    return lines


def generate(ir: ModelIR, module_doc: bool = True) -> str:
    """Python source of a module defining one ``NeuronModel`` subclass for ``ir``."""
    cls = py_name(ir.name) if ir.name else "Model"
    params = [p.name for p in ir.params]
    states = [s.name for s in ir.states]
    channels = [c.name for c in ir.channels]
    shape = {s.name: s.shape for s in ir.states}
    src = {"p": params, "s": states}
    out: list[str] = []
    emit = out.append
    if module_doc:
        emit(f'"""Neuron model {ir.name}, generated by eventax-compile {__version__}. Do not edit.')
        emit("")
        emit("Recompile the source instead; this module implements eventax_dsl.contract.NeuronModel.")
        emit('"""')
        emit(f"# source: {ir.filename!r}")
        emit(f"# sha256: {ir.source_sha256}")
        emit("")
        emit("import jax.numpy as jnp")
        emit("")
        emit("from eventax_dsl import runtime as rt")
        emit("from eventax_dsl.contract import ChannelSpec, NeuronModel, ParamSpec, StateSpec")
        emit("")
        emit("")
    emit(f"class {cls}(NeuronModel):")
    emit(_docstring(_class_doc(ir), "    "))
    emit("")
    emit(f"    NAME = {ir.name!r}")
    emit(f"    SOURCE_FILE = {ir.filename!r}")
    emit(f"    SOURCE_SHA256 = {ir.source_sha256!r}")
    emit(f"    COMPILER_VERSION = {__version__!r}")
    emit("    STATES = (")
    for s in ir.states:
        emit(f"        StateSpec({s.name!r}, {s.shape!r}, {s.unit!r}),")
    emit("    )")
    emit("    PARAMETERS = (")
    for p in ir.params:
        emit(f"        ParamSpec({p.name!r}, {p.default!r}, {p.shape!r}, {p.learnable!r}, {p.unit!r}),")
    emit("    )")
    emit(f"    CHANNELS = ({''.join(f'ChannelSpec({c.name!r}, {c.shape!r}), ' for c in ir.channels)})")
    emit(f"    OBSERVABLES = {tuple(ir.observables)!r}")
    emit(f"    SPIKING = {ir.spike is not None!r}")
    emit(f"    REFRACTORY = {ir.refractory is not None!r}")
    emit(f"    GUARDED = {ir.guarded!r}")
    emit(f"    CLAMPED = {tuple(ir.clamped)!r}")
    emit(f"    KEEP_INPUT = {ir.keep_input!r}")
    emit(f"    LINEAR_BLOCKS = {tuple(ir.linear_blocks)!r}")
    emit(f"    EXACT_STATES = {ir.exact_states!r}")
    emit(f"    EXACT_SPIKE = {ir.exact_spike!r}")

    def method(signature, doc, lines):
        emit("")
        emit(f"    def {signature}:")
        emit(f'        """{doc}"""')
        for line in lines:
            for sub in line.split("\n"):
                emit("        " + sub)

    exprs_by_key: dict[str, sp.Expr] = {}
    vectors = {x.name for x in (*ir.states, *ir.params, *ir.channels) if x.shape}

    def needs_fill(expr, vector: bool) -> bool:
        # a value has its target's shape and float dtype only where an array reaches it
        # (not only a condition: 'if v > 0 then 1 else 0' is an integer), and for a vector
        # target a vector does (not only through sum(): 'x - x' cancels to a scalar)
        names, vector_names = _value_names(expr) if expr is not None else (set(), set())
        return not names or (vector and not vector_names & vectors)

    def state_wrap(k, code):
        if needs_fill(exprs_by_key.get(k), bool(shape[k])):
            return f"rt.fill_like({code}, s[{k!r}])"
        return code

    # init: fill to the state's shape, in the parameters' float dtype
    init = {s.name: s.init for s in ir.states}
    init_lines = _body({k: v for k, v in init.items() if not isinstance(v, sp.NDimArray)}, ir,
                       {"p": params}, lambda k, c: f"rt.fill({c}, {shape[k]!r}, _dtype)")
    vec_inits = {k: v for k, v in init.items() if isinstance(v, sp.NDimArray)}
    ret = init_lines.pop()
    init_lines = ["_dtype = rt.float_dtype(p)"] + init_lines
    if vec_inits:
        init_lines.append("_out = " + ret[len("return "):])
        for k, v in vec_inits.items():
            elements = list(v)
            if all(sp.sympify(x).is_number for x in elements):
                init_lines.append(f"_out[{k!r}] = jnp.asarray({[float(x) for x in elements]!r}, _dtype)")
                continue
            # elements that use parameters ('m[2] = [v0, 2 * v0]'): one expression each
            lines = _body({i: sp.sympify(x) for i, x in enumerate(elements)}, ir, {"p": params},
                          lambda i, c: f"rt.fill({c}, (), _dtype)", as_tuple=True)
            values = lines.pop()[len("return "):]
            init_lines += lines + [f"_out[{k!r}] = jnp.stack({values})"]
        init_lines.append("return _out")
    else:
        init_lines.append(ret)
    method("init(self, p)", "Initial state of one neuron.", init_lines)

    dyn = {s: ir.dynamics.get(s, sp.Integer(0)) for s in states}
    exprs_by_key.clear()
    exprs_by_key.update(dyn)
    doc = "Time derivatives between events (per ms):\n\n" + "".join(
        f"        {s}' = {sp.sstr(ir.dynamics[s])}\n" for s in states if s in ir.dynamics) + "        "
    method("dynamics(self, p, s)", doc, _body(dyn, ir, src, state_wrap))

    if ir.spike is not None:
        lines = _body({"c": ir.spike}, ir, src, lambda k, c: c)
        lines[-1] = lines[-1].replace("return {'c': ", "return ").rstrip("}")
        method("spike_condition(self, p, s)",
               f"Spike where this crosses zero upwards: {sp.sstr(ir.spike)}.", lines)
        new = {k: ir.reset.get(k) for k in states if k in ir.reset}
        exprs_by_key.clear()
        exprs_by_key.update(new)
        if new:
            lines = _body(new, ir, src, state_wrap)
            lines[-1] = _merge_into_state(lines[-1])
            method("reset(self, p, s)", "State right after a spike (all right-hand sides read the "
                                        "pre-reset values).", lines)
    else:
        method("spike_condition(self, p, s)", "This model never spikes.",
               [f"return -jnp.ones((), rt.float_dtype(p))"])

    if ir.refractory is not None:
        lines = _body({"t": ir.refractory}, ir, {"p": params}, lambda k, c: c)
        lines[-1] = lines[-1].replace("return {'t': ", "return rt.fill(").rstrip("}") + ", (), rt.float_dtype(p))"
        method("refractory_period(self, p)", "Refractory period in ms.", lines)

    recv = {k: ir.receive[k] for k in states if k in ir.receive}
    exprs_by_key.clear()
    exprs_by_key.update(recv)
    if recv:
        lines = _body(recv, ir, {**src, "w": channels}, state_wrap)
        lines[-1] = _merge_into_state(lines[-1])
    else:
        lines = ["return dict(s)"]
    method("receive(self, p, s, w)", "State right after input of summed weights w arrives.", lines)

    obs = dict(ir.observables)

    def observable_wrap(k, code):
        want = ir.observable_shapes.get(k, ())
        if needs_fill(obs[k], bool(want)):
            return f"rt.fill({code}, {want!r}, rt.float_dtype(p))"
        return code

    lines = _body(obs, ir, src, observable_wrap) if obs else ["return {}"]
    method("observe(self, p, s)", "Named read-outs of the state.", lines)

    # exact integration: closed forms of the linear blocks (see checker.simplify.solve_block)
    exact = [b for b in ir.blocks if b.exact]
    for name, attr, when in (("flow", "solution", "Closed-form solution"),
                             ("flow_clamped", "clamped_solution", "Closed-form solution while refractory "
                                                                  f"({', '.join(ir.clamped)} held)")):
        sols = {}
        for b in exact:
            sol = getattr(b, attr) or b.solution
            sols.update({k: sol[k] for k in states if k in sol})
        if not sols or (attr == "clamped_solution" and not any(b.clamped_solution for b in exact)):
            continue
        exprs_by_key.clear()
        exprs_by_key.update(sols)
        lines = _body(sols, ir, src, state_wrap)
        lines[-1] = _merge_into_state(lines[-1])
        step = dt_name(ir)  # the argument dt, shown as Δt where the model has a 'dt' of its own
        show = sp.Symbol(step)
        doc = (f"{when} of the linear states after {step} ms without events (others unchanged):\n\n"
               + "".join(f"        {k}({step}) = {sp.sstr(v.xreplace({DT: show}))}\n" for k, v in sols.items())
               + "\n        with the states on the right at time 0, exprel(x) = (exp(x) - 1)/x and\n"
                 "        exp_divdiff(dt, r1, r2) = (exp(r1 dt) - exp(r2 dt))/(r1 - r2), finite at r1 = r2.\n"
                 "        ")
        method(f"{name}(self, p, s, dt)", doc, lines)
    if ir.exact_spike and ir.spike_rates:
        rates = {f"r{j}": r for j, r in enumerate(ir.spike_rates)}
        lines = _body(rates, ir, {"p": params}, lambda k, c: f"rt.fill({c}, (), rt.float_dtype(p))",
                      as_tuple=True)
        method("spike_rates(self, p)", "Rates (1/ms) of the exactly solved states the spike condition "
                                       "depends on, one per state.", lines)
    return "\n".join(out) + "\n"


def _value_names(expr) -> tuple[set[str], set[str]]:
    """The names whose values reach the value of ``expr``, and those that reach it elementwise.

    A name read only in a condition of an ``if``-``then``-``else`` decides which
    value is taken but is not part of it; a name under ``sum()`` reaches the value
    as a scalar.
    """
    if isinstance(expr, sp.Symbol):
        return {expr.name}, {expr.name}
    if isinstance(expr, sp.Piecewise):
        parts = [value for value, _ in expr.args]
    elif isinstance(expr, vsum):
        names, _ = _value_names(expr.args[0])
        return names, set()
    else:
        parts = expr.args
    names, elementwise = set(), set()
    for part in parts:
        a, b = _value_names(part)
        names |= a
        elementwise |= b
    return names, elementwise


def _docstring(text: str, indent: str) -> str:
    """A docstring for ``text``: triple-quoted when that reads back exactly, else via ``repr``."""
    clean = ('"""' not in text and "\\" not in text and not text.endswith('"')
             and all(ch.isprintable() or ch == "\n" for ch in text))
    if clean:
        body = ("\n" + indent).join(text.splitlines()).replace(indent + "\n", "\n")
        return f'{indent}"""{body}\n{indent}"""'
    return f"{indent}__doc__ = {text!r}"


def _merge_into_state(ret: str) -> str:
    """``return {...}`` -> ``return {**s, ...}`` (states not assigned keep their value)."""
    if ret.startswith("return {\n"):
        return ret.replace("return {\n", "return {\n    **s,\n", 1)
    return ret.replace("return {", "return {**s, ", 1)


def _class_doc(ir: ModelIR) -> str:
    lines = [ir.doc or f"Neuron model {ir.name}.", "", "Equations (canonical units: ms, mV, nA):", ""]
    for s in ir.states:
        if s.name in ir.dynamics:
            lines.append(f"    {s.name}' = {sp.sstr(ir.dynamics[s.name])}")
    if ir.spike is not None:
        lines.append(f"    spike when {sp.sstr(ir.spike)} crosses 0 upwards")
    for k, v in ir.reset.items():
        lines.append(f"    reset: {k} = {sp.sstr(v)}")
    for k, v in ir.receive.items():
        lines.append(f"    on input: {k} = {sp.sstr(v)}")
    return "\n".join(lines)

