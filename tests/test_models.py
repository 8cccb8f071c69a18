"""Tests of the model library ``models/*.neuron``.

1. every model compiles, without warnings, and loads;
2. the generated code agrees with an independent evaluation of the SymPy IR
   (``sympy.lambdify`` to numpy) at random states and parameters: vector field,
   spike condition, reset, input rule and observables;
3. model-specific closed forms: the LIF trajectory, the QIF phase <-> voltage
   equivalence, the Hodgkin-Huxley rates at their removable singularities, the
   Izhikevich resting point, the EGRU and dendritic shapes and gating, and
   that the defaults make every spiking model fire for a few coincident inputs
   of weight 0.5 (and not for one).
"""

from __future__ import annotations

from pathlib import Path

import jax

jax.config.update("jax_enable_x64", True)

import jax.numpy as jnp  # noqa: E402
import numpy as np  # noqa: E402
import pytest  # noqa: E402
import sympy as sp  # noqa: E402

import eventax_dsl  # noqa: E402
from eventax_dsl import compile_source  # noqa: E402

MODELS_DIR = Path(__file__).resolve().parent.parent / "models"
MODEL_FILES = sorted(MODELS_DIR.glob("*.neuron"))
NAMES = [p.stem for p in MODEL_FILES]
EXPECTED = {"lif", "li", "qif", "eif", "izhikevich", "adex", "alif", "hh", "egru", "dendritic"}
RTOL = 1e-10


# ------------------------------------------------------------------ helpers
_COMPILED: dict[str, object] = {}


def compiled(name):
    if name not in _COMPILED:
        path = MODELS_DIR / f"{name}.neuron"
        _COMPILED[name] = compile_source(path.read_bytes(), str(path))
    return _COMPILED[name]


def model(name):
    return eventax_dsl.load(MODELS_DIR / f"{name}.neuron")


def _np_sigmoid(x):
    return 1.0 / (1.0 + np.exp(-x))


def _np_exprel(x):
    x = np.asarray(x, dtype=float)
    safe = np.where(x == 0, 1.0, x)
    return np.where(x == 0, 1.0, np.expm1(safe) / safe)


NUMPY_FUNCS = {"sigmoid": _np_sigmoid, "exprel": _np_exprel,
               "vsum": lambda x, n: np.sum(np.broadcast_to(x, (n,)))}  # sum of n elements


def lambdified(ir, expr, names):
    """``expr`` as a numpy function of the named symbols (states, parameters, channels)."""
    return sp.lambdify([ir.symbol(n) for n in names], expr, modules=[NUMPY_FUNCS, "numpy"])


# plausible ranges for states (anything finite would do; these keep exp() tame)
STATE_RANGES = {
    ("hh", "v"): (-80.0, 40.0), ("eif", "v"): (-75.0, -42.0), ("adex", "v"): (-75.0, -42.0),
    ("izhikevich", "v"): (-80.0, 30.0), ("izhikevich", "u"): (-20.0, 10.0),
    ("qif", "phi"): (0.02, 0.98),
}


def random_population(name, rng, n=4):
    """A population with random parameters and a random state (leaves of shape (n, ...))."""
    Model = model(name)
    params = {}
    for spec in Model.PARAMETERS:
        shape = (n, *spec.shape)
        default = np.broadcast_to(np.asarray(spec.default, float), spec.shape)
        scale = rng.uniform(0.7, 1.3, shape)
        params[spec.name] = np.where(default == 0, rng.uniform(-0.5, 0.5, shape), default * scale)
    pop = Model.create(n, **params)
    init = {k: np.asarray(v) for k, v in pop.initial_state().items()}
    state = {}
    for spec in Model.STATES:
        lo_hi = STATE_RANGES.get((name, spec.name))
        shape = (n, *spec.shape)
        if lo_hi is not None:
            state[spec.name] = rng.uniform(*lo_hi, shape)
        else:
            state[spec.name] = init[spec.name] + rng.normal(0.0, 0.5, shape) * np.maximum(1, np.abs(init[spec.name]))
    return pop, {k: np.asarray(v) for k, v in pop.params.items()}, state


def per_neuron(d, j):
    return {k: v[j] for k, v in d.items()}


# ------------------------------------------------------------- 1. compile
def test_library_is_complete():
    assert EXPECTED <= set(NAMES), f"missing models: {sorted(EXPECTED - set(NAMES))}"


@pytest.mark.parametrize("name", NAMES)
def test_compiles_without_warnings_and_loads(name):
    c = compiled(name)
    assert c.warnings == (), [w.message for w in c.warnings]
    assert c.ir.doc and "Source" in c.ir.doc  # every model documents where it comes from
    Model = model(name)
    assert issubclass(Model, eventax_dsl.NeuronModel)
    assert Model is model(name)  # cached by content
    pop = Model.create(3)
    state = pop.initial_state()
    field = pop.vector_field(state)
    assert set(field) == set(Model.state_names())
    for k, v in field.items():
        assert v.shape == state[k].shape and v.dtype == jnp.float64
        assert np.all(np.isfinite(v)), (name, k)


# ------------------------------------------- 2. generated code == the IR
@pytest.mark.parametrize("name", NAMES)
def test_generated_code_matches_ir(name):
    ir = compiled(name).ir
    Model = model(name)
    rng = np.random.default_rng(sum(map(ord, name)))
    pop, params, state = random_population(name, rng)
    names = [s.name for s in ir.states] + [p.name for p in ir.params]
    channels = [c.name for c in ir.channels]
    weights = {c.name: rng.normal(0.0, 1.0, (pop.n, *c.shape)) for c in ir.channels}

    field = {k: np.asarray(v) for k, v in pop.vector_field(state).items()}
    after_reset = {k: np.asarray(v) for k, v in pop.apply_reset(state, jnp.ones(pop.n, bool)).items()}
    after_input = {k: np.asarray(v) for k, v in pop.apply_input(state, weights).items()}
    observed = {k: np.asarray(v) for k, v in pop.observables(state).items()}
    cond = np.asarray(pop.spike_conditions(state)) if Model.SPIKING else None

    assert Model.SPIKING == (ir.spike is not None)
    assert tuple(Model.OBSERVABLES) == tuple(ir.observables)
    fns = {
        "dynamics": {s: lambdified(ir, ir.dynamics.get(s, sp.Integer(0)), names) for s in ir.state_names},
        "reset": {s: lambdified(ir, e, names) for s, e in ir.reset.items()},
        "receive": {s: lambdified(ir, e, names + channels) for s, e in ir.receive.items()},
        "observe": {o: lambdified(ir, e, names) for o, e in ir.observables.items()},
    }
    spike_fn = lambdified(ir, ir.spike, names) if ir.spike is not None else None
    for j in range(pop.n):
        s, p, w = per_neuron(state, j), per_neuron(params, j), per_neuron(weights, j)
        args = [s[n] if n in s else p[n] for n in names]
        for k, f in fns["dynamics"].items():
            want = np.broadcast_to(f(*args), s[k].shape)
            np.testing.assert_allclose(field[k][j], want, rtol=RTOL, atol=1e-12, err_msg=f"{name}: {k}'")
        for k in ir.state_names:
            want = fns["reset"][k](*args) if k in fns["reset"] else s[k]
            np.testing.assert_allclose(after_reset[k][j], np.broadcast_to(want, s[k].shape), rtol=RTOL,
                                       atol=1e-12, err_msg=f"{name}: reset {k}")
            want = fns["receive"][k](*args, *[w[c] for c in channels]) if k in fns["receive"] else s[k]
            np.testing.assert_allclose(after_input[k][j], np.broadcast_to(want, s[k].shape), rtol=RTOL,
                                       atol=1e-12, err_msg=f"{name}: input {k}")
        for k, f in fns["observe"].items():
            np.testing.assert_allclose(observed[k][j], np.broadcast_to(f(*args), observed[k][j].shape),
                                       rtol=RTOL, atol=1e-12, err_msg=f"{name}: observable {k}")
        if spike_fn is not None:
            np.testing.assert_allclose(cond[j], spike_fn(*args), rtol=RTOL, atol=1e-12,
                                       err_msg=f"{name}: spike condition")


# ------------------------------------------------- 3. model-specific checks
def _rk4(pop, state, dt, steps):
    f = pop.vector_field

    def step(s, _):
        k1 = f(s)
        k2 = f({k: s[k] + dt / 2 * k1[k] for k in s})
        k3 = f({k: s[k] + dt / 2 * k2[k] for k in s})
        k4 = f({k: s[k] + dt * k3[k] for k in s})
        return {k: s[k] + dt / 6 * (k1[k] + 2 * k2[k] + 2 * k3[k] + k4[k]) for k in s}, None

    return jax.jit(lambda s: jax.lax.scan(step, s, None, length=steps)[0])(state)


def test_lif_exact_trajectory():
    LIF = model("lif")
    tau_m = np.array([10.0, 20.0, 7.0, 15.0])
    tau_s = np.array([5.0, 3.0, 2.0, 12.0])
    bias = np.array([0.0, 0.3, -0.2, 0.8])
    v0, i0 = np.array([0.0, 0.5, -0.3, 0.9]), np.array([1.0, -0.4, 2.0, 0.1])
    pop = LIF.create(4, tau_mem=tau_m, tau_syn=tau_s, bias=bias, v_th=1e9)
    t = 10.0
    end = _rk4(pop, {"v": jnp.asarray(v0), "i": jnp.asarray(i0)}, 0.01, 1000)
    v_exact = (bias + (v0 - bias) * np.exp(-t / tau_m)
               + i0 * tau_s / (tau_s - tau_m) * (np.exp(-t / tau_s) - np.exp(-t / tau_m)))
    np.testing.assert_allclose(end["i"], i0 * np.exp(-t / tau_s), rtol=1e-9)
    np.testing.assert_allclose(end["v"], v_exact, rtol=1e-9, atol=1e-11)
    assert compiled("lif").ir.linear_blocks == [("v", "i")]


def test_qif_phase_form_is_the_voltage_form():
    ir = compiled("qif").ir
    phi, i, bias, tau = (ir.symbol(n) for n in ("phi", "i", "bias", "tau_mem"))
    # symbolically: V = -pi cot(pi phi) gives V' = dV/dphi * phi' = (V^2 - V + I) / tau
    V = -sp.pi * sp.cot(sp.pi * phi)
    dV = sp.diff(V, phi) * ir.dynamics["phi"]
    assert sp.simplify((dV - (V**2 - V + bias + i) / tau).rewrite(sp.sin)) == 0
    assert sp.simplify(ir.observables["v"] - V) == 0

    # numerically, with the generated code
    QIF = model("qif")
    rng = np.random.default_rng(0)
    n = 50
    pars = dict(tau_mem=rng.uniform(5, 20, n), bias=rng.uniform(-1, 1, n))
    pop = QIF.create(n, **pars)
    state = {"phi": jnp.asarray(rng.uniform(0.01, 0.99, n)), "i": jnp.asarray(rng.normal(0, 1, n))}
    dphi = np.asarray(pop.vector_field(state)["phi"])
    volt = np.asarray(pop.observables(state)["v"])
    x = np.pi * np.asarray(state["phi"])
    np.testing.assert_allclose(volt, -np.pi / np.tan(x), rtol=1e-12)
    drive = pars["bias"] + np.asarray(state["i"])
    np.testing.assert_allclose(np.pi**2 / np.sin(x) ** 2 * dphi, (volt**2 - volt + drive) / pars["tau_mem"],
                               rtol=1e-9, atol=1e-12)
    # smooth at the spike and the reset: phi' = 1/tau_mem at phi = 0 and 1, whatever the input
    for edge in (0.0, 1.0):
        s = {"phi": jnp.full(n, edge), "i": state["i"]}
        np.testing.assert_allclose(pop.vector_field(s)["phi"], 1 / pars["tau_mem"], rtol=1e-12)
    # the rest phi = 1/2 is V = 0, a fixed point without input
    rest = QIF.create(1).initial_state()
    assert float(rest["phi"][0]) == 0.5
    assert abs(float(QIF.create(1).observables(rest)["v"][0])) < 1e-15
    assert abs(float(QIF.create(1).vector_field(rest)["phi"][0])) < 1e-15


@pytest.mark.parametrize("v_sing, gate", [(-55.0, "n"), (-40.0, "m")])
def test_hh_rates_finite_at_removable_singularities(v_sing, gate):
    HH = model("hh")
    pop = HH.create(1)
    p = {k: v[0] for k, v in pop.params.items()}
    s0 = {k: v[0] for k, v in pop.initial_state().items()}
    assert any("exprel" in note for note in compiled("hh").ir.rewrites)

    @jax.jit
    def rate(v):
        # with the gate at 0, x' = alpha_x(v)
        return pop.dynamics(p, {**s0, "v": v, gate: jnp.zeros(())})[gate]

    limit = {"n": 0.1, "m": 1.0}[gate]  # 0.01 * 10 and 0.1 * 10 per ms
    v = jnp.asarray(v_sing)
    a = rate(v)
    g = jax.grad(rate)(v)
    assert np.isfinite(a) and np.isfinite(g)
    np.testing.assert_allclose(a, limit, rtol=1e-12)
    # the derivative of x/(1 - e^-x)-type rates at the singularity: slope/2 (0.01/2, 0.1/2 per mV)
    np.testing.assert_allclose(g, limit / 10 / 2, rtol=1e-9)
    h = 1e-4
    np.testing.assert_allclose(g, (rate(v + h) - rate(v - h)) / (2 * h), rtol=1e-6)
    for dv in (1e-12, -1e-9, 1e-6, 1e-3):
        np.testing.assert_allclose(rate(v + dv), limit, rtol=1e-3)
    # the whole vector field and its Jacobian are finite there
    full = pop.dynamics(p, {**s0, "v": v})
    jac = jax.jit(jax.jacfwd(lambda vv: pop.dynamics(p, {**s0, "v": vv})))(v)
    assert all(np.isfinite(x) for x in full.values()) and all(np.isfinite(x) for x in jac.values())


def test_hh_rests_and_fires():
    HH = model("hh")
    pop = HH.create(1)
    rest = pop.initial_state()
    field = pop.vector_field(rest)
    assert abs(float(field["v"][0])) < 1e-2  # mV/ms: the gates start at their -65 mV steady states
    for k in ("m", "h", "n"):
        assert abs(float(field[k][0])) < 1e-4


def test_izhikevich_resting_point():
    Izh = model("izhikevich")
    pop = Izh.create(1)
    rest = pop.initial_state()
    assert float(rest["v"][0]) == -70.0 and float(rest["u"][0]) == -14.0
    field = pop.vector_field(rest)
    for k, v in field.items():
        assert abs(float(v[0])) < 1e-12, (k, v)
    p = {k: v[0] for k, v in pop.params.items()}

    def f(x):
        d = pop.dynamics(p, {"v": x[0], "u": x[1], "I": jnp.zeros(())})
        return jnp.stack([d["v"], d["u"]])

    eig_rest = np.linalg.eigvals(np.asarray(jax.jacfwd(f)(jnp.array([-70.0, -14.0]))))
    assert np.all(eig_rest.real < 0)  # stable
    np.testing.assert_allclose(f(jnp.array([-50.0, -10.0])), 0.0, atol=1e-12)  # the other fixed point
    eig_saddle = np.linalg.eigvals(np.asarray(jax.jacfwd(f)(jnp.array([-50.0, -10.0]))))
    assert (eig_saddle.real > 0).sum() == 1  # a saddle: the threshold
    # reset v = c, u += d
    after = pop.apply_reset({"v": jnp.array([30.0]), "u": jnp.array([-10.0]), "I": jnp.array([1.0])},
                            jnp.array([True]))
    assert float(after["v"][0]) == -65.0 and float(after["u"][0]) == -2.0 and float(after["I"][0]) == 1.0


def test_egru_shapes_and_gating():
    EGRU = model("egru")
    assert [c.name for c in EGRU.CHANNELS] == ["w_u", "w_r", "w_z"]
    assert all(s.shape == () for s in EGRU.STATES)
    assert set(EGRU.state_names()) == {"c", "a_u", "a_r", "a_z"}
    pop = EGRU.create(3, b_u=0.5, b_r=-1.0, b_z=0.2)
    rest = pop.initial_state()
    np.testing.assert_allclose(rest["a_u"], 0.5)
    np.testing.assert_allclose(rest["a_r"], -1.0)
    a_r = jnp.array([-2.0, 0.0, 3.0])
    state = {**rest, "a_r": a_r}
    w = {"w_u": jnp.array([0.1, 0.2, 0.3]), "w_r": jnp.array([1.0, -1.0, 0.5]), "w_z": jnp.array([2.0, 1.0, -1.0])}
    after = pop.apply_input(state, w)
    # the candidate input is gated by the receiving unit's reset gate *before* the event
    np.testing.assert_allclose(after["a_z"] - state["a_z"], w["w_z"] / (1 + np.exp(-a_r)), rtol=1e-12)
    np.testing.assert_allclose(after["a_r"], a_r + w["w_r"], rtol=1e-12)
    # c relaxes towards z = tanh(a_z) at rate u / tau_mem; subtractive reset
    c = jnp.array([0.0, 0.1, -0.3])
    field = pop.vector_field({**state, "c": c})
    u = 1 / (1 + np.exp(-0.5))
    np.testing.assert_allclose(field["c"], u * (np.tanh(state["a_z"]) - c) / 5.0, rtol=1e-12)
    after = pop.apply_reset({**state, "c": jnp.full(3, 0.15)}, jnp.ones(3, bool))
    np.testing.assert_allclose(after["c"], 0.0, atol=1e-15)
    np.testing.assert_allclose(pop.spike_conditions({**state, "c": jnp.full(3, 0.15)}), 0.0, atol=1e-15)


def test_dendritic_shapes():
    D = model("dendritic")
    shapes = {s.name: s.shape for s in D.STATES}
    assert shapes == {"v": (), "vd": (7,), "n": (7,), "isyn": (7,)}
    specs = {p.name: p for p in D.PARAMETERS}
    for name in ("tau_d", "tau_syn"):  # one learnable time constant per compartment / synapse
        assert specs[name].shape == (7,) and specs[name].learnable
    assert specs["tau_soma"].learnable and specs["tau_soma"].shape == ()
    assert [(c.name, c.shape) for c in D.CHANNELS] == [("w", (7,))]
    assert D.REFRACTORY and D.GUARDED and D.CLAMPED == ("v",) and D.KEEP_INPUT

    tau_d = np.linspace(5, 20, 7)
    pop = D.create(2, tau_d=tau_d, tau_syn=np.array([np.linspace(2, 8, 7), np.linspace(3, 9, 7)]))
    assert pop.params["tau_d"].shape == (2, 7) and pop.params["tau_syn"].shape == (2, 7)
    state = pop.initial_state()
    assert {k: v.shape for k, v in state.items()} == {"v": (2,), "vd": (2, 7), "n": (2, 7), "isyn": (2, 7)}
    w = jnp.asarray(np.arange(14.0).reshape(2, 7) / 10)
    after = pop.apply_input(state, {"w": w})
    np.testing.assert_allclose(after["isyn"], w)  # synapse k sits on dendrite k
    field = pop.vector_field(after)
    assert {k: v.shape for k, v in field.items()} == {k: v.shape for k, v in state.items()}
    np.testing.assert_allclose(field["isyn"], -w / pop.params["tau_syn"], rtol=1e-12)
    # each dendrite integrates with its own time constant: at rest, vd_k' ~ isyn_k / tau_d_k
    np.testing.assert_allclose(field["vd"][0] * tau_d, w[0], atol=0.05)
    obs = pop.observables(after)
    assert obs["vd"].shape == (2, 7) and obs["v"].shape == (2,)


def _dcaap_peak(pop, weight, steps=2000, dt=0.02):
    """Peak of dendrite 0's voltage after an input of ``weight`` on it alone."""
    w = jnp.zeros((pop.n, 7)).at[:, 0].set(weight)
    s = pop.apply_input(pop.initial_state(), {"w": w})
    f = pop.vector_field

    def step(carry, _):
        s, peak = carry
        k1 = f(s)
        k2 = f({k: s[k] + dt / 2 * k1[k] for k in s})
        k3 = f({k: s[k] + dt / 2 * k2[k] for k in s})
        k4 = f({k: s[k] + dt * k3[k] for k in s})
        s = {k: s[k] + dt / 6 * (k1[k] + 2 * k2[k] + 2 * k3[k] + k4[k]) for k in s}
        return (s, jnp.maximum(peak, s["vd"][:, 0])), None

    return jax.lax.scan(step, (s, s["vd"][:, 0]), None, length=steps)[0][1]


def test_dendritic_spike_attenuates_for_strong_input():
    D = model("dendritic")
    weights = jnp.array([0.5, 1.0, 6.0, 10.0])
    active = D.create(4, v_th=1e9)
    passive = D.create(4, v_th=1e9, g_ca=0.0)
    run = jax.jit(_dcaap_peak, static_argnums=(2, 3))
    extra = np.asarray(run(active, weights, 2000, 0.02) - run(passive, weights, 2000, 0.02))
    assert extra[0] < 0.2  # sub-threshold: no dCaAP
    assert extra[1] > 1.5  # threshold-level input: a full dCaAP
    assert extra[1] > extra[2] > extra[3]  # stronger input, smaller dCaAP (Gidon et al. 2020)
    assert extra[3] < 0.5 * extra[1]


# weights of one input event per channel that the defaults should / should not turn into a spike
def _event_weights(Model, total):
    return {c.name: jnp.full((1, *c.shape), total) for c in Model.CHANNELS}


@pytest.mark.parametrize("name", [n for n in NAMES if n != "li"])
def test_defaults_fire_for_a_few_inputs(name):
    """Ten coincident inputs of weight 0.5 make a resting neuron fire within 50 ms; one does not."""
    Model = model(name)
    pop = Model.create(1)
    dt, steps = 0.02, 2500

    @jax.jit
    def first_crossing(total):
        s = pop.apply_input(pop.initial_state(), _event_weights(Model, total))
        f = pop.vector_field

        def step(carry, _):
            s, fired = carry
            k1 = f(s)
            k2 = f({k: s[k] + dt / 2 * k1[k] for k in s})
            k3 = f({k: s[k] + dt / 2 * k2[k] for k in s})
            k4 = f({k: s[k] + dt * k3[k] for k in s})
            s = {k: s[k] + dt / 6 * (k1[k] + 2 * k2[k] + 2 * k3[k] + k4[k]) for k in s}
            fired = fired | (pop.spike_conditions(s)[0] >= 0)
            s = pop.apply_reset(s, jnp.reshape(fired, (1,)))  # park a fired neuron away from trouble
            return (s, fired), None

        return jax.lax.scan(step, (s, jnp.asarray(False)), None, length=steps)[0][1]

    assert bool(first_crossing(10 * 0.5)), f"{name} does not fire for 10 inputs of weight 0.5"
    assert not bool(first_crossing(0.5)), f"{name} fires for a single input of weight 0.5"


def test_li_never_spikes():
    LI = model("li")
    assert not LI.SPIKING and LI.OBSERVABLES == ("v",)
    assert compiled("li").ir.spike is None and compiled("li").ir.reset == {}


def test_alif_subtractive_reset_and_adaptive_threshold():
    ALIF = model("alif")
    pop = ALIF.create(2, beta=0.2, v_th=1.0)
    s = {"v": jnp.array([1.2, 1.6]), "i": jnp.array([0.5, 0.5]), "a": jnp.array([1.0, 3.0])}
    np.testing.assert_allclose(pop.spike_conditions(s), [0.0, 0.0], atol=1e-15)
    after = pop.apply_reset(s, jnp.ones(2, bool))
    np.testing.assert_allclose(after["v"], [0.2, 0.6], atol=1e-15)  # v -= v_th, gradients flow
    np.testing.assert_allclose(after["a"], [2.0, 4.0])
    assert np.all(np.asarray(pop.spike_conditions(after)) < 0)  # no immediate re-firing
    grad = jax.grad(lambda v: pop.apply_reset({**s, "v": v}, jnp.ones(2, bool))["v"].sum())(s["v"])
    np.testing.assert_allclose(grad, 1.0)


# ------------------------------- singularities written with decimal constants
def test_removable_singularity_with_float_constants():
    src = ('language 1\nneuron HHRate\nstate:\n    v = -65.0\n    n = 0.3\nequations:\n'
           '    v\' = -v / 10 ms\n'
           '    n\' = 0.01 * (v + 55.0) / (1 - exp(-(v + 55.0) / 10)) * (1 - n) / 1 ms\n')
    c = compile_source(src)
    assert c.ir.rewrites, "the singularity at v = -55 was not removed"
