"""Exact integration, compiler side: linear blocks, closed forms and generated propagators.

The closed forms are checked three independent ways: symbolically (they solve
the ODE and start at the initial value), numerically against SymPy's own matrix
exponential of the augmented system (exact rational arithmetic, Jordan form at
coincident rates), and in value and gradient at and near coincident time
constants against high-precision references and central finite differences.
"""

from __future__ import annotations

import json
import textwrap
from pathlib import Path

import jax

jax.config.update("jax_enable_x64", True)

import jax.numpy as jnp  # noqa: E402
import mpmath as mp  # noqa: E402
import numpy as np  # noqa: E402
import pytest  # noqa: E402
import sympy as sp  # noqa: E402

import eventax_dsl  # noqa: E402
from eventax_dsl import compile_source  # noqa: E402
from eventax_dsl.checker.functions import exprel  # noqa: E402
from eventax_dsl.checker.simplify import DT, exp_divdiff, solve_block  # noqa: E402
from eventax_dsl.cli import compile_main  # noqa: E402
from eventax_dsl.compiler import class_from_source  # noqa: E402
from eventax_dsl.runtime import exp_divdiff as rt_exp_divdiff  # noqa: E402
from eventax_dsl.sim.exact import numeric  # noqa: E402

MODELS = Path(__file__).resolve().parents[1] / "models"


def build(src: str):
    src = textwrap.dedent(src)
    if "neuron " not in src:
        src = "neuron Test\n" + src
    compiled = compile_source(src, "test.neuron")
    return compiled, class_from_source(compiled.source, "exact_test")


# LIF with a constant drive, an alpha synapse (j -> i -> v: three rates on one path)
# and a state that never changes between events
CHAIN = """
neuron Chain
parameters:
    tau_m = 10 ms
    tau_s = 5 ms
    tau_r = 3 ms
    bias = 0.4
    drive = 0.2
state:
    v = 0
    i = 0
    j = 0
    c = 1
equations:
    v' = (-v + i + bias) / tau_m
    i' = (-i + j) / tau_s
    j' = -j / tau_r + drive / tau_r
spike when v >= 1 + c
reset:
    v = 0
on input(w):
    j += w
"""


# ------------------------------------------------------------ library verdicts
@pytest.mark.parametrize("name, exact, spike", [
    ("lif", ("v", "i"), True), ("li", ("v", "i"), False), ("alif", ("v", "i", "a"), True),
    ("qif", ("i",), False), ("eif", ("i_syn",), False), ("adex", ("i_syn",), False),
    ("izhikevich", ("I",), False), ("hh", ("i_syn",), False), ("egru", ("a_u", "a_r", "a_z"), False),
    ("dendritic", ("isyn",), False),
])
def test_library_exact_states(name, exact, spike):
    """The states with linear constant-coefficient equations, read off the model files:
    every synaptic current, LIF/LI/ALIF completely, the EGRU pre-activations."""
    Model = eventax_dsl.load(MODELS / f"{name}.neuron")
    assert Model.EXACT_STATES == exact
    assert Model.EXACT_SPIKE == spike


# ---------------------------------------------------------- symbolic solution
def _solves_the_ode(ir, block):
    """x(0) = x0 and d/dt x = A x + b, with the special functions written out; checked at
    random rational parameters and states, at several times, to 25 digits."""
    rng = np.random.default_rng(0)
    names = {str(x) for v in block.solution.values() for x in v.free_symbols} - {str(DT)}
    names |= {str(x) for k in block.states for x in ir.dynamics.get(k, sp.Integer(0)).free_symbols}
    values = {ir.symbol(n): sp.Rational(int(rng.integers(1, 40)), int(rng.integers(3, 11))) for n in names}
    sol = {k: v.rewrite(sp.exp) for k, v in block.solution.items()}
    sol = {k: v.replace(lambda e: isinstance(e, exprel), lambda e: (sp.exp(e.args[0]) - 1) / e.args[0])
           for k, v in sol.items()}
    at = {ir.symbol(k): v for k, v in sol.items()}
    for k, v in sol.items():
        rhs = ir.dynamics.get(k, sp.Integer(0)).xreplace(at)
        residual = (sp.diff(v, DT) - rhs).xreplace(values)
        for t in (sp.Rational(1, 7), sp.Rational(3, 2), sp.Integer(11)):
            assert abs(sp.N(residual.xreplace({DT: t}), 30)) < 1e-25, (k, t)
        start = v.xreplace(values).xreplace({DT: sp.Rational(1, 10**12)})
        assert abs(sp.N(start - values[ir.symbol(k)], 30)) < 1e-9, k


@pytest.mark.parametrize("name", ["lif", "alif", "egru", "dendritic"])
def test_library_closed_forms_solve_their_odes(name):
    ir = compile_source((MODELS / f"{name}.neuron").read_bytes(), name).ir
    for block in ir.blocks:
        assert block.exact, block.reason
        _solves_the_ode(ir, block)


def test_chain_closed_form_solves_its_ode():
    compiled, _ = build(CHAIN)
    block, const = compiled.ir.blocks
    assert block.states == ("v", "i", "j") and block.exact
    assert block.solution["v"].has(exp_divdiff)  # the path v <- i <- j has three rates
    _solves_the_ode(compiled.ir, block)
    assert const.states == ("c",) and const.solution == {"c": compiled.ir.symbol("c")}
    # the condition v >= 1 + c: c is constant between events and adds no mode
    assert compiled.ir.exact_spike and len(compiled.ir.spike_rates) == 3


def test_non_affine_spike_condition_keeps_its_states_numeric():
    """Exact crossing detection needs an affine condition; v^2 >= 1 is left to the numeric
    solver's step control (and said so), the block it does not read stays exact."""
    src = """
    state:
        v = 0
        i = 0
        a = 0
    equations:
        v' = (-v + i) / (10 ms)
        i' = -i / (5 ms)
        a' = -a / (50 ms)
    spike when v^2 >= 1
    reset:
        v = 0
        a += 1
    on input(w):
        i += w
    """
    compiled, Model = build(src)
    assert Model.EXACT_STATES == ("a",) and not Model.EXACT_SPIKE
    vi, a = compiled.ir.blocks
    assert not vi.exact and "not affinely" in vi.reason and a.exact


# --------------------------------------------- propagators vs SymPy expm
def _sympy_flow(ir, block, params: dict, state: dict, times):
    """exp(T t) (x0, 1) for the augmented matrix T = [[A, b], [0, 0]], in exact arithmetic."""
    k = len(block.states)
    subs = {ir.symbol(n): sp.Rational(str(v)) for n, v in params.items()}
    T = sp.zeros(k + 1, k + 1)
    T[:k, :k] = block.matrix.xreplace(subs)
    T[:k, k] = sp.Matrix(block.offset).xreplace(subs)
    x0 = sp.Matrix([sp.Rational(str(state[n])) for n in block.states] + [1])
    t = sp.Symbol("t", positive=True)
    x = (T * t).exp() * x0
    return [{n: float(sp.N(x[i].subs(t, sp.Rational(str(tv))), 30)) for i, n in enumerate(block.states)}
            for tv in times]


def _jax_flow(Model, params: dict, state: dict, t):
    pop = Model.create(1, **params)
    s = {k: jnp.asarray([v], jnp.float64) for k, v in state.items()}
    out = pop.propagate(s, t)
    return {k: float(v[0]) for k, v in out.items()}


@pytest.mark.parametrize("tau_s", [5.0, 10.0, 10.0 * (1 + 1e-6), 10.0 * (1 - 1e-6)])
def test_lif_flow_matches_sympy_matrix_exponential(tau_s):
    """Distinct, coincident and nearly coincident time constants (tau_mem = 10)."""
    src = (MODELS / "lif.neuron").read_bytes()
    compiled = compile_source(src, "lif")
    Model = class_from_source(compiled.source, "lif_exact")
    params = dict(tau_mem=10.0, tau_syn=tau_s, bias=0.3)
    state = dict(v=0.2, i=1.7)
    times = (0.0, 0.37, 7.0, 80.0)
    for t, ref in zip(times, _sympy_flow(compiled.ir, compiled.ir.blocks[0], params, state, times)):
        got = _jax_flow(Model, params, state, t)
        for k in ("v", "i"):
            assert got[k] == pytest.approx(ref[k], rel=1e-13, abs=1e-15), (k, t)


@pytest.mark.parametrize("taus", [(10.0, 5.0, 3.0), (4.0, 4.0, 4.0), (4.0, 4.0 * (1 + 1e-6), 4.0),
                                  (6.0, 3.0, 6.0 * (1 - 1e-7))])
def test_chain_flow_matches_sympy_matrix_exponential(taus):
    """Three rates on one path (the runtime's matrix-exponential branch), some coinciding."""
    compiled, Model = build(CHAIN)
    tau_m, tau_s, tau_r = taus
    params = dict(tau_m=tau_m, tau_s=tau_s, tau_r=tau_r, bias=0.4, drive=0.2)
    state = dict(v=0.1, i=-0.3, j=2.0, c=1.5)
    times = (0.5, 12.0)
    for t, ref in zip(times, _sympy_flow(compiled.ir, compiled.ir.blocks[0], params, state, times)):
        got = _jax_flow(Model, params, state, t)
        for k in ("v", "i", "j"):
            assert got[k] == pytest.approx(ref[k], rel=1e-12, abs=1e-14), (k, t)
        assert got["c"] == 1.5  # no equation: constant between events


def test_vector_block_is_solved_elementwise():
    src = """
    constants:
        N = 3
    parameters:
        tau[N] = [2, 5, 9] ms
        g = 0.5
    state:
        d[N] = 0
        u[N] = 0
    equations:
        d' = -d / tau
        u' = (-u + g * d) / (4 ms)
    on input(w[N]):
        d += w
    """
    compiled, Model = build(src)
    assert Model.EXACT_STATES == ("d", "u")
    pop = Model.create(1)
    d0, u0 = np.array([1.0, -2.0, 0.5]), np.array([0.3, 0.0, 1.0])
    out = pop.propagate({"d": jnp.asarray(d0[None]), "u": jnp.asarray(u0[None])}, 3.0)
    for k in range(3):
        tau = [2.0, 5.0, 9.0][k]
        A = sp.Matrix([[-sp.Rational(1, 1) / sp.Rational(str(tau)), 0],
                       [sp.Rational(1, 2) / 4, -sp.Rational(1, 4)]])
        x = (A * 3).exp() * sp.Matrix([sp.Rational(str(d0[k])), sp.Rational(str(u0[k]))])
        assert float(out["d"][0, k]) == pytest.approx(float(x[0]), rel=1e-13)
        assert float(out["u"][0, k]) == pytest.approx(float(x[1]), rel=1e-13, abs=1e-15)


# ------------------------------------------ coincident rates: value, gradient
def _mp_divdiff(t, rates):
    mp.mp.dps = 60
    rates = [mp.mpf(r) for r in rates]

    def dd(rs):
        if len(rs) == 1:
            return mp.e ** (rs[0] * t)
        return (dd(rs[:-1]) - dd(rs[1:])) / (rs[0] - rs[-1])

    return float(dd(rates))


@pytest.mark.parametrize("rates", [(-0.1, -0.2), (-0.1, -0.1 * (1 + 1e-6)), (-0.1, -0.1 * (1 - 1e-9)),
                                   (-0.1, -0.3, -0.2), (-0.1, -0.1 * (1 + 1e-4), -0.3),
                                   (-1.0, -0.01)])
def test_exp_divdiff_runtime_matches_high_precision(rates):
    for t in (0.5, 7.0, 100.0):
        assert float(rt_exp_divdiff(t, *rates)) == pytest.approx(_mp_divdiff(mp.mpf(t), rates), rel=1e-12)


def test_exp_divdiff_exactly_coincident_value_and_gradient():
    t, a = 7.0, -0.1
    assert float(rt_exp_divdiff(t, a, a)) == pytest.approx(t * np.exp(a * t), rel=1e-15)
    # d/da f[a, b] at b = a is f[a, a, a] = t^2/2 exp(a t), from either argument
    for g in (jax.grad(lambda x: rt_exp_divdiff(t, x, a)), jax.grad(lambda x: rt_exp_divdiff(t, a, x))):
        assert float(g(a)) == pytest.approx(t * t / 2 * np.exp(a * t), rel=1e-14)
    # and it is continuous across the coincidence
    g = jax.grad(lambda x: rt_exp_divdiff(t, x, a))
    assert float(g(a * (1 + 1e-7))) == pytest.approx(float(g(a)), rel=1e-6)
    assert float(g(a * (1 - 1e-7))) == pytest.approx(float(g(a)), rel=1e-6)
    # no overflow for widely separated rates over a long time
    assert np.isfinite(float(rt_exp_divdiff(1000.0, -1.0, -0.01)))
    assert np.isfinite(float(jax.grad(lambda x: rt_exp_divdiff(1000.0, x, -0.01))(-1.0)))


@pytest.mark.parametrize("rel", [0.0, 1e-6, -1e-6, 1e-3])
def test_lif_flow_gradient_near_coincident_time_constants(rel):
    """d v(t)/d(tau_syn, tau_mem, bias) against central finite differences at tau_syn = tau_mem (1 + rel)."""
    LIF = eventax_dsl.load(MODELS / "lif.neuron")
    s = {"v": jnp.asarray([0.2]), "i": jnp.asarray([1.7])}

    def v_at(p):
        pop = LIF.create(1, tau_mem=p[0], tau_syn=p[1], bias=p[2])
        return pop.propagate(s, 6.0)["v"][0]

    p0 = jnp.asarray([10.0, 10.0 * (1 + rel), 0.3])
    grad = np.asarray(jax.grad(v_at)(p0))
    assert np.all(np.isfinite(grad))
    h = 1e-5
    for k in range(3):
        e = jnp.zeros(3).at[k].set(h * max(1.0, abs(float(p0[k]))))
        fd = (float(v_at(p0 + e)) - float(v_at(p0 - e))) / (2 * float(e[k]))
        assert grad[k] == pytest.approx(fd, rel=1e-7, abs=1e-10), k


# ----------------------------------------------------------------- verdicts
def test_loops_and_sums_fall_back_to_numeric_with_a_reason():
    loop = """
    state:
        x = 1
        y = 0
    equations:
        x' = -y / (1 ms)
        y' = x / (1 ms)
    """
    compiled, Model = build(loop)
    (block,) = compiled.ir.blocks
    assert not block.exact and "loop" in block.reason
    assert Model.EXACT_STATES == ()
    summed = """
    constants:
        N = 2
    parameters:
        tau[N] = [2, 3] ms
    state:
        d[N] = 0
        v = 0
    equations:
        d' = -d / tau
        v' = (-v + sum(d)) / (5 ms)
    """
    compiled, Model = build(summed)
    (block,) = compiled.ir.blocks
    assert not block.exact and "sum()" in block.reason
    assert Model.EXACT_STATES == ()


def test_refractory_clamp_gives_a_held_closed_form():
    src = """
    parameters:
        tau_m = 10 ms
        tau_s = 5 ms
    state:
        v = 0
        i = 0
    equations:
        v' = (-v + i) / tau_m
        i' = -i / tau_s
    spike when v >= 1 and not refractory
    refractory 2 ms clamp i
    reset:
        v = 0
    on input(w):
        i += w
    """
    compiled, Model = build(src)
    (block,) = compiled.ir.blocks
    assert block.clamped_solution is not None
    pop = Model.create(2)
    s = {"v": jnp.asarray([0.5, 0.5]), "i": jnp.asarray([2.0, 2.0])}
    out = pop.propagate(s, 3.0, refractory=jnp.asarray([False, True]))
    assert float(out["i"][1]) == 2.0  # held
    # v relaxes towards the held current: v = i + (v0 - i) exp(-t/tau_m)
    assert float(out["v"][1]) == pytest.approx(2.0 + (0.5 - 2.0) * np.exp(-0.3), rel=1e-14)
    assert float(out["i"][0]) == pytest.approx(2.0 * np.exp(-0.6), rel=1e-14)


def test_numeric_override():
    LIF = eventax_dsl.load(MODELS / "lif.neuron")
    N = numeric(LIF)
    assert N.EXACT_STATES == () and not N.EXACT_SPIKE and issubclass(N, LIF)
    assert numeric(LIF) is N and numeric(N) is N
    pop = numeric(LIF.create(3, bias=0.5))
    assert type(pop) is N and float(pop.params["bias"][0]) == 0.5
    with pytest.raises(TypeError, match="NeuronModel"):
        numeric(42)


# ------------------------------------------------------------ --explain / --json
def test_explain_reports_exact_and_numeric(capsys):
    assert compile_main(["--explain", str(MODELS / "lif.neuron"), str(MODELS / "qif.neuron"),
                         str(MODELS / "alif.neuron")]) == 0
    out = capsys.readouterr().out
    lif, qif, alif = out.split("\nneuron ")
    assert "  (v, i): exact: closed form" in lif
    assert "      i(dt) = i*exp(-dt/tau_syn)" in lif
    assert "spike times: root finding on the closed form of v, i; no ODE solver between events" in lif
    assert "integrated numerically: phi" in qif and "  (i): exact: closed form" in qif
    assert "spike times: root finding on the numeric solution (the condition reads phi" in qif
    assert "depends on 3 changing states: steps are bounded" in alif


def test_json_reports_integration(capsys):
    assert compile_main(["--json", "--explain", str(MODELS / "egru.neuron")]) == 0
    (entry,) = json.loads(capsys.readouterr().out)
    info = entry["model"]["integration"]
    assert info["exact_states"] == ["a_u", "a_r", "a_z"] and info["numeric_states"] == ["c"]
    assert [b["exact"] for b in info["blocks"]] == [True, True, True]
    assert info["blocks"][0]["closed_form"]["a_u"].startswith("a_u*exp(-dt/tau_syn)")
    assert info["spike_times"].startswith("root finding on the numeric solution")


def test_explain_tells_rate_zero_chains_blocks_and_notes_as_they_are(capsys):
    from eventax_dsl.explain import explain, explain_json  # noqa: PLC0415
    # perfect integrators: sim/exact.py bounds no step, and --explain said it did
    chain = compile_source("neuron Chain\nstate:\n    v = 0\n    i = 0\n    j = 0\n"
                           "equations:\n    v' = i\n    i' = j\n    j' = 1\n"
                           "spike when v >= 1\nreset:\n    v = 0\n").ir
    text = explain(chain)
    assert "3 changing states, all with rate 0: steps are not bounded" in text
    assert "SimOptions(dtmax=...)" in text and "are bounded by" not in text
    # an oscillating block is linear but numeric: the header no longer calls it exactly solvable
    osc = compile_source("neuron Osc\nstate:\n    x = 1\n    y = 0\nequations:\n"
                         "    x' = -x / 20 ms - y / 10 ms\n    y' = x / 10 ms - y / 20 ms\n").ir
    text = explain(osc)
    assert "linear blocks (constant coefficients; verdicts below): (x, y)" in text
    assert "exactly solvable" not in text and "  (x, y): numeric" in text
    # a singular rate met twice (equation and observable): one note; --json has the notes
    rate = compile_source("neuron Rate\nstate:\n    v = -65\nequations:\n"
                          "    alpha = 0.1 * (v + 40) / (1 - exp(-(v + 40) / 10))\n"
                          "    v' = -(v + 65) / 10 + alpha\nobserve:\n    alpha\n").ir
    assert explain(rate).count("\nnote: ") == len(rate.rewrites) == 1
    hh = compile_source((MODELS / "hh.neuron").read_bytes(), "hh.neuron").ir
    report = explain_json(hh)
    assert report["notes"] == hh.rewrites and len(hh.rewrites) == 2
    assert report["aliases"] == {k: sp.sstr(v, full_prec=False) for k, v in hh.aliases.items()}
    assert report["aliases"] and json.loads(json.dumps(report)) == report


def test_solve_block_offsets_and_rates():
    v, i = sp.symbols("v i", real=True)
    tau, b = sp.symbols("tau b", real=True)
    sol = solve_block(("v", "i"), {"v": (-v + i + b) / tau, "i": -i / tau})
    assert sol.exact and sol.rates == {"v": -1 / tau, "i": -1 / tau}
    assert sol.offset == (b / tau, 0)
    # equal rates: f[a, a] = dt exp(a dt) is written out, no exp_divdiff needed
    assert not sol.solution["v"].has(exp_divdiff)
    assert sp.simplify(sol.solution["v"].coeff(i) - DT / tau * sp.exp(-DT / tau)) == 0
