"""The compiler pipeline: units, simplification, singularities, linear blocks, loading."""

import importlib.util
import math
import sys
import textwrap
from fractions import Fraction
from pathlib import Path

import jax
import jax.numpy as jnp
import numpy as np
import pytest
import sympy as sp

import eventax_dsl
from eventax_dsl.checker import units as U
from eventax_dsl.checker.functions import exprel
from eventax_dsl.checker.simplify import linear_blocks, remove_singularities, simplify_safe
from eventax_dsl.cli import compile_main
from eventax_dsl.runtime import exprel as rt_exprel

jax.config.update("jax_enable_x64", True)


def model(body: str, name: str = "M") -> str:
    return f"neuron {name}\n" + textwrap.dedent(body)


LIF = model(
    """
    parameters:
        tau_mem = 20 ms
        tau_syn = 5 ms
        v_th = 1.0
        bias = 0.0 learnable
    state:
        v = 0.0
        i = 0.0
    equations:
        v' = (-v + i + bias) / tau_mem
        i' = -i / tau_syn
    spike when v >= v_th
    reset:
        v -= v_th
    on input(w):
        i += w
    """
)


# ------------------------------------------------------------------ units
@pytest.mark.parametrize(
    "text, scale, dim",
    [
        ("ms", 1, (1, 0, 0)),
        ("s", 1000, (1, 0, 0)),
        ("mV", 1, (0, 1, 0)),
        ("V", 1000, (0, 1, 0)),
        ("nS", Fraction(1, 1000), (0, -1, 1)),  # canonical conductance is uS
        ("pF", Fraction(1, 1000), (1, -1, 1)),  # canonical capacitance is nF
        ("nS/mV", Fraction(1, 1000), (0, -2, 1)),
        ("ms^-1", 1, (-1, 0, 0)),
        ("Hz", Fraction(1, 1000), (-1, 0, 0)),
        ("MOhm", 1, (0, 1, -1)),
        # the other prefixes and base units (canonical: ms, mV, nA; so MOhm, uS, nF, pC)
        ("GOhm", 1000, (0, 1, -1)),
        ("kOhm", Fraction(1, 1000), (0, 1, -1)),
        ("fF", Fraction(1, 10**6), (1, -1, 1)),
        ("\u03bcS", 1, (0, -1, 1)),  # Greek mu
        ("\u00b5S", 1, (0, -1, 1)),  # micro sign
        ("C", 10**12, (1, 0, 1)),  # 1 A s = 1e9 nA * 1e3 ms
        ("nC/ms", 1000, (0, 0, 1)),  # 1e-6 A
    ],
)
def test_unit_scales_are_exact(text, scale, dim):
    got_scale, got_dim = U.parse_unit(text)
    assert got_scale == scale
    assert got_dim == tuple(Fraction(d) for d in dim)


def test_units_convert_defaults_to_canonical():
    src = model(
        """
        parameters:
            tau = 0.02 s
            g = 5 nS
            c = 200 pF
        state:
            v = -70 mV
        equations:
            v' = -g * v / c + 0 * v / tau
        """
    )
    ir = eventax_dsl.compile_source(src).ir
    defaults = {p.name: p.default for p in ir.params}
    assert defaults["tau"] == pytest.approx(20.0, rel=1e-15)
    assert defaults["g"] == pytest.approx(0.005, rel=1e-15)
    assert defaults["c"] == pytest.approx(0.2, rel=1e-15)
    assert {p.name: p.unit for p in ir.params} == {"tau": "ms", "g": "uS", "c": "nF"}


def test_vector_defaults_take_their_elements_units():
    src = model(
        """
        parameters:
            tau[2] = [0.01 s, 20 ms]
            k[2] = [1, 2] mV
            a[2] = [1 ms, 2 ms] ms
        state:
            v[2] = 0 mV
        equations:
            v' = (k - v) / tau + 0 * v * a / (tau * tau * tau)
        """
    )
    ir = eventax_dsl.compile_source(src).ir
    assert {p.name: p.default for p in ir.params} == {"tau": (10.0, 20.0), "k": (1.0, 2.0),
                                                      "a": (1.0, 2.0)}
    assert {p.name: p.unit for p in ir.params} == {"tau": "ms", "k": "mV", "a": "ms^2"}
    # mixed units are an error at the element (they were taken as the first one's)
    bad = src.replace("[0.01 s, 20 ms]", "[0.01 s, 20 mV]")
    with pytest.raises(eventax_dsl.CompileError) as info:
        eventax_dsl.compile_source(bad)
    [d] = info.value.diagnostics
    assert d.code == "E021" and "the default of parameter 'tau' mixes ms and mV" in d.message
    assert bad.splitlines()[d.span.line - 1][d.span.column - 1:d.span.end_column - 1] == "20 mV"


def test_vector_initial_values_may_use_parameters():
    # a scalar initial value could use parameters, a vector literal could not ("a default
    # value cannot refer to the parameter 'v0'")
    src = model(
        """
        parameters:
            v0 = 1 mV
            tau = 10 ms
        state:
            m[3] = [v0, 2 * v0, 0.5 mV]
            k[2] = [tau, 1 s]
        equations:
            m' = -m / tau
            k' = -k / tau
        """
    )
    M = eventax_dsl.compile_source(src)
    assert {s.name: s.unit for s in M.ir.states} == {"m": "mV", "k": "ms"}
    cls = eventax_dsl.compiler.class_from_source(M.source, "vec_init")
    state = cls.create(2, v0=jnp.array([1.0, 3.0])).initial_state()
    np.testing.assert_allclose(np.asarray(state["m"]), [[1.0, 2.0, 0.5], [3.0, 6.0, 0.5]])
    np.testing.assert_allclose(np.asarray(state["k"]), [[10.0, 1000.0], [10.0, 1000.0]])
    bad = model(
        """
        parameters:
            v0 = 1 mV
            g[2] = [1, 2]
        state:
            v = 0 mV
            m[2] = INIT
        equations:
            v' = -v * sum(g) / (1 ms)
            m' = -m / (1 ms)
        """
    )
    for init, code, message in [
        ("[v0, v]", "E035", "an initial value cannot refer to the state 'v'"),
        ("[v0, g]", "E034", "an element of the initial value of state 'm' is a vector"),
        ("[v0, 1 ms]", "E021", "the initial value of state 'm' mixes mV and ms"),
    ]:
        with pytest.raises(eventax_dsl.CompileError) as info:
            eventax_dsl.compile_source(bad.replace("INIT", init))
        [d] = info.value.diagnostics
        assert d.code == code and message in d.message, (init, d)
    eventax_dsl.compile_source(bad.replace("INIT", "[v0, 1 mV]"))


# ---------------------------------------------------------- simplification
def test_simplify_never_splits_an_exponential():
    v, vt, dt, tau = sp.symbols("v v_T Delta_T tau", real=True)
    expr = (-v + dt * sp.exp((v - vt) / dt)) / tau
    out = simplify_safe(expr)
    # the argument stays (v - v_T)/Delta_T: no exp(v/Delta_T) that overflows first
    assert {str(a.args[0]) for a in out.atoms(sp.exp)} == {str((v - vt) / dt)}
    assert sp.simplify(out - expr) == 0


def test_simplify_cancels_within_budget():
    x, a = sp.symbols("x a", real=True)
    out = simplify_safe((x**2 - a**2) / (x - a))
    assert sp.count_ops(out) < sp.count_ops((x**2 - a**2) / (x - a))
    assert sp.simplify(out - (x + a)) == 0


@pytest.mark.parametrize(
    "rate",
    [
        lambda v: 0.01 * (v + 55) / (1 - sp.exp(-(v + 55) / 10)),  # HH alpha_n
        lambda v: 0.1 * (v + 40) / (1 - sp.exp(-(v + 40) / 10)),  # HH alpha_m
        lambda v: (v + 40) / (sp.exp((v + 40) / 10) - 1),
    ],
)
def test_removable_singularity_rewritten_with_exprel(rate):
    v = sp.Symbol("v", real=True)
    expr = rate(v)
    out = remove_singularities(expr)
    assert out.has(exprel)
    # same function away from the singularity
    for x in (-80.0, -20.0, 10.0):
        ref = float(expr.subs(v, x))
        got = float(out.subs(v, x).rewrite(sp.exp))
        assert got == pytest.approx(ref, rel=1e-12)


def test_exprel_runtime_value_and_gradient_are_finite_at_zero():
    xs = jnp.array([-1e-2, -1e-4, 0.0, 1e-4, 1e-2, 3.0])
    vals = jax.vmap(rt_exprel)(xs)
    ref = np.array([1.0 if x == 0 else math.expm1(x) / x for x in np.asarray(xs)])
    np.testing.assert_allclose(vals, ref, rtol=1e-12)
    grads = jax.vmap(jax.grad(rt_exprel))(xs)
    fd = np.array([(math.expm1(x + 1e-6) / (x + 1e-6) - math.expm1(x - 1e-6) / (x - 1e-6)) / 2e-6
                   if abs(x) > 1e-3 else 0.5 + x / 3 for x in np.asarray(xs)])
    np.testing.assert_allclose(grads, fd, rtol=1e-6)
    assert np.all(np.isfinite(grads))


@pytest.mark.parametrize("dtype, rtol", [(jnp.float64, 5e-15), (jnp.float32, 2e-6)])
def test_exprel_derivative_is_accurate_near_zero(dtype, rtol):
    # d/dx exprel = (x e^x - e^x + 1) / x^2, here to 40 digits. Its closed form cancels
    # for small |x|: 4.5e-4 relative error at |x| = 1e-3 in float32 and 6.6e-11 in float64
    # with the old 3-term series below 1e-3. HH rates meet such x within a fraction of a
    # mV of their singular voltages, LIF's exact flow when tau_syn is close to tau_mem.
    mpmath = pytest.importorskip("mpmath")
    mpmath.mp.dps = 40
    xs = np.concatenate([np.linspace(-0.7, 0.7, 141), [0.000999, 0.001001, -0.001001, 0.4999, 0.5001]])
    xs = np.asarray(jnp.asarray(xs, dtype), np.float64)  # the arguments as the dtype holds them
    exact = [float((x * mpmath.exp(x) - mpmath.exp(x) + 1) / x**2) if x else 0.5
             for x in map(mpmath.mpf, xs)]
    grads = jax.vmap(jax.grad(rt_exprel))(jnp.asarray(xs, dtype))
    np.testing.assert_allclose(np.asarray(grads, np.float64), exact, rtol=rtol)


def test_hh_rate_compiles_to_finite_value_and_gradient_at_singular_voltage():
    src = model(
        """
        state:
            v = -65 mV
            n = 0.3
        equations:
            alpha_n = 0.01 * (v / (1 mV) + 55) / (1 - exp(-(v / (1 mV) + 55) / 10))
            n' = alpha_n * (1 - n) / (1 ms)
            v' = 0 mV / (1 ms)
        """
    )
    compiled = eventax_dsl.compile_source(src)
    assert "rt.exprel" in compiled.source
    from eventax_dsl.compiler import class_from_source

    M = class_from_source(compiled.source, "hh_rate")
    pop = M.create(1)

    def dn(v):
        s = {"v": jnp.array([v]), "n": jnp.array([0.0])}
        return pop.vector_field(s)["n"][0]

    assert float(dn(-55.0)) == pytest.approx(0.1, rel=1e-12)  # limit: 0.01 * 10
    g = float(jax.grad(dn)(-55.0))
    assert math.isfinite(g) and g == pytest.approx(0.005, rel=1e-9)  # d/dv 0.1*exprel(-x)^-1 = 0.01/2


# ----------------------------------------------------------- linear blocks
def test_linear_blocks():
    v, i, w = sp.symbols("v i w", real=True)
    tau, vt = sp.symbols("tau v_T", real=True)
    assert linear_blocks({"v": (-v + i) / tau, "i": -i / tau}, ["v", "i"], ["tau"]) == [("v", "i")]
    # EIF: v is nonlinear, its synaptic current is still an exact block
    eif = {"v": (-v + sp.exp(v - vt) + i) / tau, "i": -i / tau}
    assert linear_blocks(eif, ["v", "i"], ["tau", "v_T"]) == [("i",)]
    # two independent blocks
    assert linear_blocks({"v": -v / tau, "w": -w / tau}, ["v", "w"], ["tau"]) == [("v",), ("w",)]
    # a state driven by a nonlinear one cannot be advanced exactly on its own
    assert linear_blocks({"v": -v**2, "w": v - w}, ["v", "w"], []) == []


# ------------------------------------------------- generated model behaviour
def test_generated_model_implements_the_contract():
    compiled = eventax_dsl.compile_source(LIF, "lif.neuron")
    assert compiled.warnings == ()
    from eventax_dsl.compiler import class_from_source

    M = class_from_source(compiled.source, "lif")
    assert M.state_names() == ("v", "i")
    assert M.learnable_names() == ("bias",)
    assert M.LINEAR_BLOCKS == (("v", "i"),)
    pop = M.create(3, bias=jnp.array([0.0, 0.5, 2.0]))
    s = pop.initial_state()
    ds = pop.vector_field({"v": jnp.array([0.5, 0.5, 0.5]), "i": jnp.array([1.0, 0.0, 2.0])})
    np.testing.assert_allclose(ds["v"], (-0.5 + np.array([1.0, 0.0, 2.0]) + np.array([0, 0.5, 2])) / 20)
    np.testing.assert_allclose(ds["i"], -np.array([1.0, 0.0, 2.0]) / 5)
    s = pop.apply_input(s, {"w": jnp.array([0.1, 0.2, 0.3])})
    np.testing.assert_allclose(s["i"], [0.1, 0.2, 0.3])
    s = {"v": jnp.array([1.2, 0.3, 1.0]), "i": s["i"]}
    after = pop.apply_reset(s, jnp.array([True, False, True]))
    np.testing.assert_allclose(after["v"], [0.2, 0.3, 0.0])  # subtractive reset
    np.testing.assert_allclose(pop.spike_conditions(s), [0.2, -0.7, 0.0])


def test_vector_states_and_sum():
    src = model(
        """
        constants:
            N = 4
        parameters:
            tau_d[N] = [1, 2, 3, 4] ms learnable
            g[N] = 0.5
        state:
            d[N] = 0
            v = 0
        equations:
            d' = -d / tau_d
            v' = (-v + sum(g * d)) / (10 ms)
        on input(w[N]):
            d += w
        """
    )
    compiled = eventax_dsl.compile_source(src)
    from eventax_dsl.compiler import class_from_source

    M = class_from_source(compiled.source, "vec")
    pop = M.create(2)
    s = pop.initial_state()
    assert s["d"].shape == (2, 4) and s["v"].shape == (2,)
    s = pop.apply_input(s, {"w": jnp.arange(8.0).reshape(2, 4)})
    ds = pop.vector_field(s)
    np.testing.assert_allclose(ds["d"], -np.arange(8.0).reshape(2, 4) / np.array([1, 2, 3, 4]))
    np.testing.assert_allclose(ds["v"], 0.5 * np.arange(8.0).reshape(2, 4).sum(1) / 10)
    assert compiled.ir.linear_blocks == [("d", "v")]


def test_functions_in_a_model_without_units():
    # bare numbers have no units to check: functions of them are as good as any number
    # (these were E021 "v' has unit 1/ms but the right-hand side has 1")
    src = model(
        """
        parameters:
            tau = 10
        state:
            v = 0
            u = 1
        equations:
            v' = (tanh(v) - v) / tau + exp(-v) + sigmoid(u) * sin(v) + log(u) + cos(pi * v)
            u' = -u / tau + arctan(v)
        spike when v >= 1
        reset:
            v = exp(-u) / 10
        on input(w):
            u += w * cosh(v)
        """
    )
    from eventax_dsl.compiler import class_from_source

    pop = class_from_source(eventax_dsl.compile_source(src).source, "bare").create(1)
    v, u = 0.3, 1.7
    ds = pop.vector_field({"v": jnp.array([v]), "u": jnp.array([u])})
    want_v = ((np.tanh(v) - v) / 10 + np.exp(-v) + np.sin(v) / (1 + np.exp(-u)) + np.log(u)
              + np.cos(np.pi * v))
    np.testing.assert_allclose(ds["v"], [want_v], rtol=1e-6)
    np.testing.assert_allclose(ds["u"], [-u / 10 + np.arctan(v)], rtol=1e-6)
    s = pop.apply_input({"v": jnp.array([v]), "u": jnp.array([u])}, {"w": jnp.array([0.5])})
    np.testing.assert_allclose(s["u"], [u + 0.5 * np.cosh(v)], rtol=1e-6)
    after = pop.apply_reset(s, jnp.array([True]))
    np.testing.assert_allclose(after["v"], np.exp(-s["u"]) / 10, rtol=1e-6)


def test_load_caches_by_content_and_written_module_matches(tmp_path):
    path = tmp_path / "lif.neuron"
    path.write_text(LIF)
    A = eventax_dsl.load(path)
    assert eventax_dsl.load(path) is A
    out = tmp_path / "lif_model.py"
    assert compile_main([str(path), "-o", str(out)]) == 0
    spec = importlib.util.spec_from_file_location("lif_model", out)
    mod = importlib.util.module_from_spec(spec)
    sys.modules["lif_model"] = mod
    spec.loader.exec_module(mod)
    B = mod.M
    assert B.SOURCE_SHA256 == A.SOURCE_SHA256
    a, b = A.create(4, bias=0.3), B.create(4, bias=0.3)
    s = {"v": jnp.linspace(0, 1, 4), "i": jnp.linspace(1, 2, 4)}
    for k in ("v", "i"):
        np.testing.assert_array_equal(a.vector_field(s)[k], b.vector_field(s)[k])
    # editing the file gives a new class
    path.write_text(LIF.replace("tau_mem = 20 ms", "tau_mem = 10 ms"))
    C = eventax_dsl.load(path)
    assert C is not A
    assert dict((p.name, p.default) for p in C.PARAMETERS)["tau_mem"] == 10.0


def test_create_rejects_unknown_or_misshaped_overrides():
    from eventax_dsl.compiler import class_from_source

    M = class_from_source(eventax_dsl.compile_source(LIF).source, "lif2")
    with pytest.raises(TypeError, match="unknown parameter.*tau_men"):
        M.create(3, tau_men=1.0)
    with pytest.raises(ValueError, match="tau_mem.*shape"):
        M.create(3, tau_mem=jnp.ones(4))
    pop = M.create(3, tau_mem=jnp.array([1.0, 2.0, 3.0]))
    np.testing.assert_array_equal(pop.params["tau_mem"], [1.0, 2.0, 3.0])


def test_a_byte_order_mark_is_dropped_from_text_as_from_bytes():
    # open(path).read() keeps a UTF-8 byte-order mark; it was E003 "unexpected character"
    # at 1:1 for text, while the same file as bytes compiled
    src = (Path(__file__).resolve().parents[1] / "models" / "lif.neuron").read_text()
    plain = eventax_dsl.compile_source(src).source
    assert eventax_dsl.compile_source("\ufeff" + src).source == plain
    assert eventax_dsl.compile_source(("\ufeff" + src).encode()).source == plain
    spans = []
    for text in (src, "\ufeff" + src):
        with pytest.raises(eventax_dsl.CompileError) as err:
            eventax_dsl.compile_source(text.replace("neuron LIF", "neuron LIF $", 1))
        spans.append(err.value.render())
    assert spans[0] == spans[1] and "E003" in spans[0]

