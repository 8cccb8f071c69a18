"""Event semantics: simultaneous crossings, AMOS, refractoriness, budget and NaN errors."""

from pathlib import Path

import jax

jax.config.update("jax_enable_x64", True)

import equinox as eqx  # noqa: E402
import jax.numpy as jnp  # noqa: E402
import jax.random as jr  # noqa: E402
import numpy as np  # noqa: E402
import pytest  # noqa: E402
from models_handwritten import LIF, LIFRef  # noqa: E402

import eventax_dsl  # noqa: E402
from eventax_dsl.contract import ChannelSpec, NeuronModel, ParamSpec, StateSpec  # noqa: E402
from eventax_dsl.sim import (BudgetExhausted, FeedForward, Network, SimulationError,  # noqa: E402
                             simulate, state_at, status_error)
from eventax_dsl.sim.loop import NAN_BASE, SPIKE_BUFFER  # noqa: E402

NO_INPUT = jnp.array([jnp.inf])
MODELS = Path(__file__).resolve().parent.parent / "models"


class PIF(NeuronModel):
    """Perfect integrate-and-fire, ``v' = bias``: piecewise linear, so every Runge-Kutta
    step and its dense interpolation are exact and spike times are ``v_th / bias``."""

    NAME = "PIF"
    STATES = (StateSpec("v"),)
    PARAMETERS = (
        ParamSpec("bias", 0.5, learnable=True),
        ParamSpec("v_th", 1.0),
        ParamSpec("v_reset", 0.0),
    )
    CHANNELS = (ChannelSpec("w"),)
    OBSERVABLES = ("v",)

    def init(self, p):
        return {"v": jnp.zeros_like(p["bias"])}

    def dynamics(self, p, s):
        return {"v": p["bias"] * jnp.ones_like(s["v"])}

    def spike_condition(self, p, s):
        return s["v"] - p["v_th"]

    def reset(self, p, s):
        return {"v": p["v_reset"] * jnp.ones_like(s["v"])}

    def receive(self, p, s, w):
        return {"v": s["v"] + w["w"]}

    def observe(self, p, s):
        return {"v": s["v"]}


class SqrtInput(PIF):
    """Broken on purpose: negative input weights make ``v`` NaN."""

    NAME = "SqrtInput"

    def receive(self, p, s, w):
        return {"v": s["v"] + jnp.sqrt(w["w"])}


class Rotor(NeuronModel):
    """No reset: ``theta' = omega``, a spike at each upward zero crossing of
    ``sin(theta)`` (like Hodgkin-Huxley, the condition comes back down by itself)."""

    NAME = "Rotor"
    STATES = (StateSpec("theta"),)
    PARAMETERS = (ParamSpec("omega", 1.0), ParamSpec("theta0", -1.0))
    CHANNELS = (ChannelSpec("w"),)

    def init(self, p):
        return {"theta": p["theta0"]}

    def dynamics(self, p, s):
        return {"theta": p["omega"] * jnp.ones_like(s["theta"])}

    def spike_condition(self, p, s):
        return jnp.sin(s["theta"])

    def receive(self, p, s, w):
        return {"theta": s["theta"] + w["w"]}


class GuardedLIF(LIF):
    """Refractory and guarded but nothing clamped: the membrane keeps integrating."""

    NAME = "GuardedLIF"
    PARAMETERS = LIF.PARAMETERS + (ParamSpec("t_ref", 5.0),)
    REFRACTORY = True
    GUARDED = True
    CLAMPED = ()

    def refractory_period(self, p):
        return p["t_ref"]


def _net(model, n=1, in_size=1, w=0.0, **params):
    net = FeedForward(model, [n], in_size=in_size, key=jr.key(0), dtype=jnp.float64, **params)
    return eqx.tree_at(lambda m: m.weights[0]["w"], net, jnp.full((in_size, n), w))


def _spikes(net, x, t_end, **options):
    times, ids, count = jax.jit(lambda n, x: n.spikes(x, t_end, **options))(net, x)
    n = int(count)
    return np.asarray(times[:n]), np.asarray(ids[:n])


def test_several_crossings_in_one_step():
    # One fixed step of size 50 covers every crossing; neurons 1 and 2 cross at
    # exactly the same time (t = 4).
    net = _net(PIF, n=3, bias=jnp.array([0.3, 0.5, 0.25]))
    times, ids = _spikes(net, NO_INPUT, 4.5, dt=50.0)
    np.testing.assert_allclose(times, [2.0, 1 / 0.3, 4.0, 4.0], rtol=1e-10)
    assert list(ids[:2]) == [1, 0] and sorted(ids[2:]) == [1, 2]
    assert np.all(np.diff(times) >= 0)


def test_several_crossings_adaptive_lif():
    bias = jnp.array([1.5, 2.0, 3.0, 3.0])
    net = _net(LIF, n=4, bias=bias)
    times, ids = _spikes(net, NO_INPUT, 12.0)
    first = 10.0 * np.log(np.asarray(bias) / (np.asarray(bias) - 1.0))
    expect = sorted([(first[0], 0), (first[1], 1), (first[2], 2), (first[3], 3),
                     (2 * first[2], 2), (2 * first[3], 3)])
    np.testing.assert_allclose(times, [e[0] for e in expect], rtol=1e-7)
    # Neurons 2 and 3 are identical: both spike, each once per period.
    assert sorted(ids.tolist()) == sorted(e[1] for e in expect)


def test_reset_never_retriggers_at_once():
    # v_reset == v_th: after its spike the neuron sits on its threshold; it must not
    # fire again and again at the same instant.
    net = _net(PIF, bias=0.5, v_reset=1.0)
    times, ids = _spikes(net, NO_INPUT, 10.0)
    np.testing.assert_allclose(times, [2.0], rtol=1e-10)


def test_no_reset_model_counts_each_crossing_once():
    # sin(theta) crosses zero upwards at theta = 2 pi k; without a reset the neuron
    # is re-armed by an event when the condition comes back down. (theta is linear,
    # so the adaptive solver would take huge steps and step over whole oscillations
    # of the condition: crossings are only seen at step ends, hence dtmax.)
    omega = 0.7
    net = _net(Rotor, n=2, omega=omega, theta0=jnp.array([-1.0, -2.0]))
    times, ids = _spikes(net, NO_INPUT, 40.0, dtmax=0.5)
    expect = sorted([((1.0 + 2 * np.pi * k) / omega, 0) for k in range(5)]
                    + [((2.0 + 2 * np.pi * k) / omega, 1) for k in range(5)])
    expect = [e for e in expect if e[0] < 40.0]
    np.testing.assert_allclose(times, [e[0] for e in expect], rtol=1e-9)
    assert ids.tolist() == [e[1] for e in expect]


def test_amos():
    net = _net(LIF, bias=2.0)
    times, _ = _spikes(net, NO_INPUT, 50.0)
    assert len(times) == 7
    times, _ = _spikes(net, NO_INPUT, 50.0, amos=True)
    np.testing.assert_allclose(times, [10.0 * np.log(2.0)], rtol=1e-7)


def test_amos_holds_a_spent_neuron():
    # Izhikevich's upswing is stopped only by the reset. With amos the neuron is reset
    # at its one spike and then held: the later input, which drives it across
    # threshold again and again without amos, is dropped instead of pushing v to a
    # finite-time blow-up that no reset stops (which used to exhaust the solver).
    net = _net(eventax_dsl.load(MODELS / "izhikevich.neuron"), in_size=6, w=200.0)
    x = jnp.arange(1.0, 7.0)
    free, _ = _spikes(net, x, 20.0, max_spikes=400)
    assert len(free) > 20
    times, _ = _spikes(net, x, 20.0, amos=True)
    np.testing.assert_allclose(times, free[:1], rtol=1e-9)
    probe = jnp.array([times[0] + 1e-3, 3.5, 10.0, 20.0])
    obs = jax.jit(lambda n: state_at(n, x, probe, amos=True))(net)
    np.testing.assert_array_equal(obs["v"][:, 0], -65.0)  # the reset value c, held
    np.testing.assert_array_equal(obs["u"][:, 0], obs["u"][0, 0])
    assert -14.0 + 8.0 < float(obs["u"][0, 0]) < 50.0  # u at the spike plus d


@pytest.mark.parametrize("integrator", ["auto", "numeric"])
def test_amos_hold_in_closed_form_and_numeric_paths(integrator):
    # LIF with bias 2 spikes at 10 ln 2; after it, v stays at v_reset = 0 and i at its
    # value then (0: no input yet), and an input at t = 12 reaches nothing.
    # Without amos the same input moves v. Both integration paths: the closed-form
    # network and the numeric solver.
    net = _net(eventax_dsl.load(MODELS / "lif.neuron"), w=5.0, bias=2.0)
    x = jnp.array([12.0])
    probe = jnp.array([8.0, 12.0, 13.0, 30.0])
    run = lambda amos: jax.jit(lambda n: state_at(n, x, probe, amos=amos,
                                                  integrator=integrator))(net)
    held, free = run(True), run(False)
    np.testing.assert_array_equal(held["v"][:, 0], 0.0)
    np.testing.assert_array_equal(held["i"][:, 0], 0.0)
    assert float(free["i"][2, 0]) > 1.0 and float(free["v"][3, 0]) > 0.1


def test_input_jump_spikes_immediately():
    # An input that lifts v over threshold makes the neuron spike at the input time.
    net = _net(PIF, bias=0.0, w=2.0)
    times, _ = _spikes(net, jnp.array([[1.0, 3.0]]), 5.0)
    np.testing.assert_allclose(times, [1.0, 3.0])


def test_refractory_clamps_and_drops_input():
    t_ref, period0 = 2.0, 10.0 * np.log(2.0)
    net = _net(LIFRef, in_size=1, w=1000.0, bias=2.0, t_ref=t_ref)
    # A huge input inside the first refractory window must be ignored.
    x = jnp.array([period0 + 0.5 * t_ref])
    times, _ = _spikes(net, x, 30.0)
    expect = period0 + (period0 + t_ref) * np.arange(3)
    np.testing.assert_allclose(times, expect[expect < 30.0], rtol=1e-7)
    # The same input after the window is delivered (and makes it fire early).
    x = jnp.array([period0 + 1.5 * t_ref])
    times2, _ = _spikes(net, x, 30.0, max_spikes=50)
    assert times2[1] < expect[1] - 1.0


_KEEP_INPUT_LIF = """neuron KeepLIF
parameters:
    tau_mem = 10 ms
    tau_syn = 5 ms
    bias    = 2.0
    t_ref   = 2 ms
state:
    v = 0.0
    i = 0.0
equations:
    v' = (-v + i + bias) / tau_mem
    i' = -i / tau_syn
spike when v >= 1 and not refractory
refractory t_ref clamp v{keep}
reset:
    v = 0
on input(w):
    i += w
    v += 0.5 * w
"""


def _keep_input_lif(keep: bool):
    from eventax_dsl.compiler import class_from_source  # noqa: PLC0415

    text = _KEEP_INPUT_LIF.format(keep=" keep input" if keep else "")
    return class_from_source(eventax_dsl.compile_source(text).source, f"keep_input_lif_{keep}")


@pytest.mark.parametrize("integrator", ["auto", "numeric"])
def test_keep_input_while_refractory_matches_the_closed_form(integrator):
    # Bias 2 fires the neuron at t0 = 10 ln 2; an input of weight w arrives 1 ms into
    # its 2 ms refractory period. With 'keep input' the synaptic current takes it
    # (i = w e^{-(t - ts)/5}) while v, clamped, ignores its 'v += 0.5 w'. From t1 = t0 + 2,
    # v(u) = b (1 - e^{-u/10}) + I1 (e^{-u/10} - e^{-u/5}) with I1 = w e^{-1/5}
    # (tau_syn = tau_mem / 2), and the second spike is where that reaches 1.
    # Without 'keep input' the input is lost: i stays 0.
    w, b = 1.5, 2.0
    t0 = 10.0 * np.log(2.0)
    ts, t1 = t0 + 1.0, t0 + 2.0
    probe = jnp.array([t0 + 0.5, t0 + 1.5, t1 + 0.5, t1 + 1.5])
    x = jnp.array([ts])
    i1 = w * np.exp(-1.0 / 5.0)

    def v_after(u, i1=i1):
        return b * (1 - np.exp(-u / 10)) + i1 * (np.exp(-u / 10) - np.exp(-u / 5))

    net = _net(_keep_input_lif(True), w=w)
    obs = jax.jit(lambda n: state_at(n, x, probe, integrator=integrator))(net)
    np.testing.assert_allclose(obs["v"][:2, 0], 0.0, atol=1e-12)
    after = np.asarray(probe[1:]) - ts
    np.testing.assert_allclose(obs["i"][:, 0], [0.0, *(w * np.exp(-after / 5))], rtol=1e-7, atol=1e-12)
    np.testing.assert_allclose(obs["v"][2:, 0], v_after(np.array([0.5, 1.5])), rtol=1e-6)

    lo, hi = 0.0, 10.0  # the second spike: bisection on the closed form
    for _ in range(80):
        mid = 0.5 * (lo + hi)
        lo, hi = (mid, hi) if v_after(mid) < 1.0 else (lo, mid)
    times, _ = _spikes(net, x, t1 + hi + 0.1, integrator=integrator)
    np.testing.assert_allclose(times, [t0, t1 + hi], rtol=1e-7)

    # d v(t1 + 1.5) / dw against the closed form's derivative
    def v_late(n):
        return state_at(n, x, probe[3:], integrator=integrator)["v"][0, 0]

    grads = jax.grad(v_late)(net)
    u = 1.5
    np.testing.assert_allclose(float(grads.weights[0]["w"][0, 0]),
                               np.exp(-1 / 5) * (np.exp(-u / 10) - np.exp(-u / 5)), rtol=1e-6)

    dropped = _net(_keep_input_lif(False), w=w)
    obs = jax.jit(lambda n: state_at(n, x, probe, integrator=integrator))(dropped)
    np.testing.assert_array_equal(obs["i"][:, 0], 0.0)
    np.testing.assert_allclose(obs["v"][2:, 0], v_after(np.array([0.5, 1.5]), 0.0), rtol=1e-6)


def test_keep_input_is_compiled_and_explained():
    keep, drop = _keep_input_lif(True), _keep_input_lif(False)
    assert keep.KEEP_INPUT and not drop.KEEP_INPUT and keep.CLAMPED == drop.CLAMPED == ("v",)
    from eventax_dsl.explain import explain  # noqa: PLC0415

    ir = eventax_dsl.compile_source(_KEEP_INPUT_LIF.format(keep=" keep input")).ir
    assert "refractory: t_ref ms, clamping v, input applied except to clamped states" in explain(ir)


class GuardedNoReset(GuardedLIF):
    """Guarded, and never reset: the condition stays >= 0 after the first crossing."""

    NAME = "GuardedNoReset"

    def reset(self, p, s):
        return dict(s)


@pytest.mark.parametrize("model", [GuardedLIF, GuardedNoReset])
def test_guarded_condition_fires_when_refractoriness_ends(model):
    # Without clamping, v crosses again during the refractory period (ignored) and
    # the neuron fires as soon as it ends; so does one that is never reset (it stayed
    # disarmed until its condition fell below 0, so it spiked once)
    net = _net(model, bias=5.0, t_ref=5.0)
    times, _ = _spikes(net, NO_INPUT, 20.0)
    first = 10.0 * np.log(5.0 / 4.0)
    np.testing.assert_allclose(times, first + 5.0 * np.arange(4), rtol=1e-7)


@pytest.mark.parametrize("model", [GuardedLIF, GuardedNoReset])
def test_guarded_neuron_with_no_refractory_period_spikes_once_per_crossing(model):
    # t_ref = 0: nothing holds the neuron, so the guard must disarm it at its spike. A
    # neuron that is reset fires tonically, one that is not stays above threshold and
    # spikes once (it fired again and again at one instant without the disarming).
    net = _net(model, bias=5.0, t_ref=0.0)
    times, _ = _spikes(net, NO_INPUT, 20.0, max_spikes=50)
    first = 10.0 * np.log(5.0 / 4.0)
    expected = first * np.arange(1, 9) if model is GuardedLIF else [first]
    np.testing.assert_allclose(times, expected, rtol=1e-7)


class Counter(PIF):
    """Counts its input events in ``n``: an input rule with a constant part."""

    NAME = "Counter"
    STATES = (StateSpec("v"), StateSpec("n"))
    OBSERVABLES = ("v", "n")

    def init(self, p):
        return {"v": jnp.zeros_like(p["bias"]), "n": jnp.zeros_like(p["bias"])}

    def dynamics(self, p, s):
        return {"v": p["bias"] * jnp.ones_like(s["v"]), "n": jnp.zeros_like(s["n"])}

    def reset(self, p, s):
        return {"v": p["v_reset"] * jnp.ones_like(s["v"]), "n": s["n"]}

    def receive(self, p, s, w):
        return {"v": s["v"] + w["w"], "n": s["n"] + 1.0}

    def observe(self, p, s):
        return dict(s)


def test_only_connected_neurons_receive_a_spike():
    # The input rule runs only where a synapse from a spiking source exists, so its
    # constant part (n += 1) does not fire on neurons the mask leaves unconnected.
    pop = Counter.create(3, bias=jnp.array([0.5, 0.0, 0.0]))  # neuron 0 spikes at t = 2, 4
    mask = jnp.array([[0, 1, 0], [0, 0, 0], [0, 0, 0]])  # recurrent, 0 -> 1 only
    net = Network.create([pop], 1, [("input", 0), (0, 0, mask)], key=jr.key(0),
                         weight_init=lambda k, s, d: jnp.full(s, 0.1, d))
    res = jax.jit(lambda n: simulate(n, NO_INPUT, 5.0))(net)
    np.testing.assert_array_equal(np.asarray(res.state[0]["n"]), [0.0, 2.0, 0.0])
    np.testing.assert_allclose(np.asarray(res.state[0]["v"]), [0.5, 0.2, 0.0], rtol=1e-12)


@pytest.mark.parametrize("n_in", [4, 40])
def test_everything_at_t_end_happens(n_in):
    # The simulation covers [0, t_end] closed. A group of inputs at t_end is delivered
    # whole (40 inputs take several chunks: only the first one was), and a neuron they
    # push past threshold spikes then (it was left above threshold, unspiked).
    net = _net(PIF, in_size=n_in, w=0.01, bias=0.0)
    res = jax.jit(lambda n, x: simulate(n, x, 5.0))(net, jnp.full((n_in,), 5.0))
    assert float(res.state[0]["v"][0]) == pytest.approx(0.01 * n_in, rel=1e-12)
    assert int(res.n_spikes) == 0
    net = _net(PIF, in_size=n_in, w=2.0 / n_in + 0.01, bias=0.0)
    times, _ = _spikes(net, jnp.full((n_in,), 5.0), 5.0)
    np.testing.assert_array_equal(times, [5.0])


def test_budget_error_names_option():
    net = _net(LIF, bias=2.0)
    with pytest.raises(Exception, match=r"event budget of 3 .*max_events"):
        _spikes(net, NO_INPUT, 1000.0, max_events=3, max_spikes=1000)
    with pytest.raises(Exception, match=r"more than max_spikes=2 spikes"):
        _spikes(net, NO_INPUT, 100.0, max_spikes=2)


def test_nan_error_names_model_and_variable():
    net = _net(SqrtInput, w=-1.0)
    with pytest.raises(Exception, match=r"NaN or Inf in SqrtInput .*'v'"):
        _spikes(net, jnp.array([1.0]), 5.0)


class SqrtDrain(PIF):
    """Broken on purpose: ``v`` drains at a constant rate and feeds ``sqrt(v)`` into its own
    rate, which is NaN once ``v`` reaches 0 (at t = 0.5 / bias; it never spikes)."""

    NAME = "SqrtDrain"

    def init(self, p):
        return {"v": 0.5 * jnp.ones_like(p["bias"])}

    def dynamics(self, p, s):
        return {"v": -p["bias"] + 0.0 * jnp.sqrt(s["v"])}


@pytest.mark.parametrize("stepping", ["single", "solve"])
def test_nan_in_the_vector_field_is_a_nan_error_not_a_budget_error(stepping):
    # One solver step per iteration stood still at the NaN (every step rejected, the
    # proposed step NaN) until the event budget ran out: a BudgetExhausted that said to
    # raise max_events, which could not help (and the trainer's calibration reads a
    # budget error as "too much input")
    net = _net(SqrtDrain, bias=0.1)
    res = jax.jit(lambda n: simulate(n, NO_INPUT, 30.0, check=False, stepping=stepping))(net)
    err = status_error(res.status, res.messages)
    assert type(err) is SimulationError, err
    if stepping == "single":
        assert "NaN or Inf in SqrtDrain" in str(err) and "'v'" in str(err)
        assert int(res.n_events) < 200 and float(res.t) == pytest.approx(5.0, abs=1e-4)
    else:  # Diffrax rejects every step into the NaN: the state never holds it
        assert "ODE solver failed" in str(err) and "SqrtDrain" in str(err) and "NaN/Inf" in str(err)


def test_unchecked_simulation_reports_the_failure_of_each_sample():
    # check=False: nothing raised; the status of each sample, and on the host the same
    # message as the in-graph check, naming the first failing sample
    net = _net(LIF, bias=0.0)
    drive = jnp.array([[jnp.inf], [1.0], [2.0]])  # one weight-5 input spike per sample...
    net = eqx.tree_at(lambda n: n.weights[0]["w"], net, jnp.full((1, 1), 5.0))
    run = jax.jit(jax.vmap(lambda n, x, t: simulate(n, x, t, check=False, max_spikes=1),
                           in_axes=(None, 0, 0)))
    res = run(net, drive, jnp.array([100.0, 100.0, 1.5]))  # ...the last ends before its input
    assert res.status.tolist() == [0, 0, 0] and status_error(res.status, res.messages) is None
    net = eqx.tree_at(lambda n: n.populations[0].params["bias"], net, jnp.array([2.0]))
    res = run(net, drive, jnp.array([1.5, 100.0, 100.0]))  # tonic firing: buffer of 1 overflows
    assert res.status.tolist() == [0, SPIKE_BUFFER, SPIKE_BUFFER]
    err = status_error(res.status, res.messages)
    assert isinstance(err, BudgetExhausted) and (err.index, err.count) == (1, 2)
    # the in-graph check's message (test_budget_error_names_option)
    assert str(err).startswith("eventax_dsl.sim: more than max_spikes=1 spikes occurred")
    # a NaN is a SimulationError that is not a budget error
    bad = _net(SqrtInput, w=-1.0)
    res = jax.jit(lambda n: simulate(n, jnp.array([1.0]), 5.0, check=False))(bad)
    err = status_error(res.status, res.messages)
    assert type(err) is SimulationError and err.status >= NAN_BASE and "'v'" in str(err)


def test_recurrent_network_and_masks():
    pop = LIF.create(3, bias=0.0)
    mask = jnp.array([[0, 1, 0], [0, 0, 1], [0, 0, 0]])  # chain 0 -> 1 -> 2
    net = Network.create(
        [pop], in_size=1, connections=[("input", 0), (0, 0, mask)], key=jr.key(1),
        weight_init=lambda k, s, d: jnp.full(s, 5.0, d),
    )
    assert np.all(np.asarray(net.masks[1]).diagonal() == 0)
    # Input drives only neuron 0 (input weights to 1 and 2 are zero).
    net = eqx.tree_at(lambda n: n.weights[0]["w"], net, jnp.array([[5.0, 0.0, 0.0]]))
    times, ids = _spikes(net, jnp.array([1.0]), 60.0)
    assert ids[:3].tolist() == [0, 1, 2] and np.all(np.diff(times[:3]) > 0)
    # Default recurrent connectivity has no self-connections.
    full = Network.create([pop], in_size=1, connections=[(-1, 0), (0, 0)], key=jr.key(1))
    assert np.all(np.asarray(full.masks[1]) == 1 - np.eye(3))
