"""Exact integration, simulator side (float64): spike times, agreement, gradients.

- A LIF spike time is the root of the closed form (checked against the analytic
  root of ``w (u - u^2) = 1``, ``u = exp(-t/10)``).
- A threshold crossing that goes up and back down between two events is found
  by every exact path (closed-form network, Diffrax exact solver with a numeric
  population beside it, ALIF's bounded steps), and one that stays just below
  threshold is not.
- The exact path and the numeric path (at tight tolerance) give the same spikes
  and read-out traces; gradients match central finite differences, including at
  and near ``tau_syn = tau_mem``.
"""

from __future__ import annotations

import math
from pathlib import Path

import jax

jax.config.update("jax_enable_x64", True)

import diffrax as dfx  # noqa: E402
import equinox as eqx  # noqa: E402
import jax.numpy as jnp  # noqa: E402
import jax.random as jr  # noqa: E402
import jax.tree_util as jtu  # noqa: E402
import numpy as np  # noqa: E402
import pytest  # noqa: E402

import eventax_dsl  # noqa: E402
from eventax_dsl.sim import FeedForward, Network, SimOptions, simulate, trainable  # noqa: E402
from eventax_dsl.sim import exact  # noqa: E402

MODELS = Path(__file__).resolve().parents[1] / "models"
LIF = eventax_dsl.load(MODELS / "lif.neuron")
LI = eventax_dsl.load(MODELS / "li.neuron")
QIF = eventax_dsl.load(MODELS / "qif.neuron")
ALIF = eventax_dsl.load(MODELS / "alif.neuron")
TIGHT = dict(rtol=1e-12, atol=1e-12)


def _const(value):
    return lambda key, shape, dtype: jnp.full(shape, value, dtype)


def _lif_first_crossing(w):
    """LIF (tau_mem 10, tau_syn 5) from rest after one input of weight w at t = 0:
    v = w (u - u^2), u = exp(-t/10); first v = 1 at u = (1 + sqrt(1 - 4/w)) / 2."""
    return -10.0 * math.log((1 + math.sqrt(1 - 4 / w)) / 2)


# ------------------------------------------------------------ choice of path
def test_path_choice():
    lif, li, qif = LIF.create(2), LI.create(1), QIF.create(1)
    auto, num = SimOptions(), SimOptions(integrator="numeric")
    assert exact.closed_form_network((lif, li), auto)
    assert not exact.closed_form_network((lif, li), num)
    assert not exact.closed_form_network((exact.numeric(lif), li), auto)
    assert not exact.closed_form_network((lif, qif), auto)
    assert not exact.closed_form_network((ALIF.create(1),), auto)  # three condition states
    solver, controller = exact.solver_and_controller((lif, qif), auto, jnp.float64)
    assert isinstance(solver, exact.ExactSolver) and isinstance(solver.inner, dfx.Tsit5)
    assert solver.keys == (("v", "i"), ("i",))
    assert controller.two_modes == (0,) and controller.searched == ()
    solver, controller = exact.solver_and_controller((ALIF.create(1),), auto, jnp.float64)
    assert solver.inner is None and controller.searched == (0,) and controller.bounded == (0,)
    solver, _ = exact.solver_and_controller((lif, qif), num, jnp.float64)
    assert isinstance(solver, dfx.Tsit5)
    solver, _ = exact.solver_and_controller((exact.numeric(lif), exact.numeric(qif)), auto, jnp.float64)
    assert isinstance(solver, dfx.Tsit5)
    with pytest.raises(ValueError, match="integrator must be"):
        SimOptions(integrator="closed").get_integrator()
    # The controller's error norm skips the exact states (they have no error) and is,
    # by default, the maximum over the numeric ones (the worst neuron), else the RMS.
    err = ({"v": jnp.array([1e6, 1e6]), "i": jnp.array([1e6, 1e6])},
           {"phi": jnp.array([3.0, 0.0]), "i": jnp.array([1e6, 1e6])})
    for options, expect in ((auto, 3.0), (SimOptions(error_norm="rms"), math.sqrt(4.5))):
        pid = exact.solver_and_controller((lif, qif), options, jnp.float64)[1].inner
        assert float(pid.norm(err)) == pytest.approx(expect)
    assert SimOptions().get_controller(jnp.float64).norm(jnp.array([3.0, -4.0])) == 4.0
    with pytest.raises(ValueError, match="error_norm must be"):
        SimOptions(error_norm="l2")


# ------------------------------------------------------ spike times are exact
# Neuron 0: a maximum of v = w/4 at t = 10 ln 2 ~ 6.9 ms, above threshold for only
# ~0.03 ms (w = 4 (1 + 1e-6)); neuron 1: just below it (w = 4 (1 - 1e-6)); neuron 2: a
# clear crossing (w = 6), at a time known in closed form.
BRIEF = 4 * (1 + 1e-6)
BELOW = 4 * (1 - 1e-6)
CLEAR = 6.0


def _brief_net(Model, extra=()):
    pops = [Model.create(3)] + [p for p in extra]
    w = jnp.array([[BRIEF, BELOW, CLEAR]])
    net = Network.create(pops, 1, [("input", 0)], key=jr.key(0), weight_init=_const(0.0))
    return eqx.tree_at(lambda n: n.weights[0]["w"], net, w)


@pytest.mark.parametrize("case", ["closed form", "exact solver beside a numeric population",
                                  pytest.param("bounded steps", marks=pytest.mark.slow)])
def test_spike_times_are_roots_of_the_closed_form(case):
    """Every exact path finds the clear crossing at its closed-form time, the brief one
    that rises above threshold and falls back between events, and not the one below."""
    if case == "closed form":
        net = _brief_net(LIF)
    elif case == "exact solver beside a numeric population":
        net = _brief_net(LIF, [QIF.create(1)])  # an idle QIF: the Tsit5 steps are long
    else:
        net = _brief_net(ALIF)  # a = 0 throughout: the same voltage as LIF
    assert exact.closed_form_network(net.populations, SimOptions()) == (case == "closed form")
    res = simulate(net, jnp.array([0.0]), 30.0)
    assert int(res.n_spikes) == 2
    assert res.spike_ids[:2].tolist() == [2, 0]
    assert float(res.spike_times[0]) == pytest.approx(_lif_first_crossing(CLEAR), abs=1e-12)
    assert float(res.spike_times[1]) == pytest.approx(_lif_first_crossing(BRIEF), abs=1e-9)


# ------------------------------------------------- agreement with numeric path
X = jnp.array([[0.5, 7.0, jnp.inf], [1.0, 2.5, 9.0], [3.0, jnp.inf, jnp.inf], [0.0, 4.0, 12.0]])
OBS = jnp.linspace(0.5, 30.0, 12)


def _lif_li_net(tau_syn_rel=0.0):
    net = FeedForward([LIF, LI], [5, 2], in_size=4, key=jr.key(3),
                      overrides=[{"bias": jnp.array([0.2, 0.0, 0.1, -0.1, 0.3]),
                                  "tau_syn": 10.0 * (1 + tau_syn_rel)}, {"tau_mem": 12.0}],
                      tau_mem=10.0)
    w0 = 0.5 * jnp.array([[2.0, 1.5, 3.0, 0.8, 2.2], [1.0, 2.5, 0.5, 2.0, 1.0],
                          [2.2, 0.4, 1.8, 1.5, 0.9], [0.7, 1.9, 1.2, 2.4, 1.6]])
    w1 = jnp.array([[1.0, -0.5], [0.3, 0.8], [-0.2, 1.1], [0.9, 0.2], [0.5, 0.5]])
    net = eqx.tree_at(lambda n: n.weights[0]["w"], net, w0)
    return eqx.tree_at(lambda n: n.weights[1]["w"], net, w1)


def test_closed_form_network_agrees_with_numeric():
    net = _lif_li_net()
    assert exact.closed_form_network(net.populations, SimOptions())
    params, static = eqx.partition(net, trainable(net))
    (_, (_, a)), _ = _value_and_grad(params, static)  # the exact path (shares the gradient program)
    b = jax.jit(lambda n: simulate(n, X, OBS[-1], obs_times=OBS, integrator="numeric", **TIGHT))(net)
    assert int(a.n_spikes) >= 5 and int(a.n_spikes) == int(b.n_spikes)
    np.testing.assert_array_equal(a.spike_ids, b.spike_ids)
    np.testing.assert_allclose(a.spike_times, b.spike_times, atol=1e-9)
    np.testing.assert_allclose(a.observed["v"], b.observed["v"], atol=1e-9)


@pytest.mark.slow
def test_mixed_network_agrees_with_numeric():
    """QIF (phi numeric, i exact) -> LIF: the Diffrax exact solver with Tsit5 inside."""
    net = FeedForward([QIF, LIF], [4, 2], in_size=4, key=jr.key(1),
                      weight_init=lambda k, s, d: 0.5 + jr.uniform(k, s, d))
    run = jax.jit(lambda n, o: simulate(n, X, 30.0, options=o), static_argnums=1)
    a = run(net, SimOptions(**TIGHT))
    b = run(net, SimOptions(integrator="numeric", **TIGHT))
    assert int(a.n_spikes) >= 3 and int(a.n_spikes) == int(b.n_spikes)
    np.testing.assert_array_equal(a.spike_ids, b.spike_ids)
    np.testing.assert_allclose(a.spike_times, b.spike_times, atol=1e-8)
    # the exact part is exact: the synaptic current after the last input decays in closed form
    for k in ("phi", "i"):
        np.testing.assert_allclose(a.state[0][k], b.state[0][k], atol=1e-8)


# ------------------------------------------------------------------ gradients
H = 1e-6  # the loss has large third derivatives here: O(H^2) truncation must stay < REL
REL = 1e-5


def _check_directional(value_and_grad, params, static, groups, key):
    """``grad . d`` against ``(L(p + h d) - L(p - h d)) / 2h`` for a random direction per group."""
    (value, _), grads = value_and_grad(params, static)
    assert np.isfinite(float(value))
    for leaf in jtu.tree_leaves(grads):
        assert np.all(np.isfinite(np.asarray(leaf))), "NaN/Inf in gradient"
    loss = lambda p: float(value_and_grad(p, static)[0][0])  # noqa: E731
    for name, select in groups.items():
        key, sub = jr.split(key)
        leaves = select(params)
        keys = jr.split(sub, len(leaves))
        direction = [jr.normal(k, x.shape, x.dtype) * jnp.maximum(jnp.abs(x), 1.0) for k, x in zip(keys, leaves)]
        plus = eqx.tree_at(select, params, [x + H * d for x, d in zip(leaves, direction)])
        minus = eqx.tree_at(select, params, [x - H * d for x, d in zip(leaves, direction)])
        fd = (loss(plus) - loss(minus)) / (2 * H)
        ad = sum(float(jnp.sum(g * d)) for g, d in zip(select(grads), direction))
        assert abs(ad - fd) <= REL * max(abs(fd), 1e-3), f"{name}: autodiff {ad} vs FD {fd}"


def _loss(p, s):
    """A read-out loss and a spike-time loss of the same network (closed-form path)."""
    res = simulate(eqx.combine(p, s), X, OBS[-1], obs_times=OBS)
    first = res.first_spike[0]
    t = jnp.where(jnp.isfinite(first), first, OBS[-1])
    v = res.observed["v"]
    return jnp.sum(v * jnp.arange(1.0, 13.0)[:, None] * jnp.array([1.0, -0.6])) + jnp.sum(t * 0.1), (first, res)


_value_and_grad = jax.jit(jax.value_and_grad(_loss, has_aux=True))

GROUPS = {
    "input weights": lambda p: [p.weights[0]["w"]],
    "read-out weights": lambda p: [p.weights[1]["w"]],
    "bias": lambda p: [p.populations[0].params["bias"], p.populations[1].params["bias"]],
    "tau_mem": lambda p: [p.populations[0].params["tau_mem"], p.populations[1].params["tau_mem"]],
    "tau_syn": lambda p: [p.populations[0].params["tau_syn"], p.populations[1].params["tau_syn"]],
}


@pytest.mark.parametrize("rel", [0.0, 1e-6, -1e-6, -0.5])
def test_gradients_match_finite_differences_near_coincident_time_constants(rel):
    """tau_syn = tau_mem (1 + rel) in the hidden layer: exactly equal, within 1e-6, and apart."""
    net = _lif_li_net(rel)
    params, static = eqx.partition(net, trainable(net))
    (_, (first, _)), _ = _value_and_grad(params, static)
    assert np.isfinite(np.asarray(first)).sum() >= 3  # spikes, so spike-time gradients are exercised
    _check_directional(_value_and_grad, params, static, GROUPS, jr.key(7))


@pytest.mark.slow
def test_mixed_network_gradients_match_finite_differences():
    net = FeedForward([QIF, LIF], [3, 2], in_size=4, key=jr.key(1),
                      weight_init=lambda k, s, d: 1.5 + jr.uniform(k, s, d))
    params, static = eqx.partition(net, trainable(net))

    def loss(p, s):
        t = eqx.combine(p, s).ttfs(X, 40.0, **TIGHT)
        return jnp.sum(jnp.where(jnp.isfinite(t), t, 40.0) * jnp.array([1.0, -0.7])), t

    value_and_grad = jax.jit(jax.value_and_grad(loss, has_aux=True))
    (_, t), _ = value_and_grad(params, static)
    assert np.all(np.isfinite(np.asarray(t)))
    groups = {
        "weights": lambda p: [w["w"] for w in p.weights],
        "time constants": lambda p: [p.populations[i].params[k] for i in range(2) for k in ("tau_mem", "tau_syn")],
        "bias": lambda p: [p.populations[i].params["bias"] for i in range(2)],
    }
    _check_directional(value_and_grad, params, static, groups, jr.key(2))


@jax.jit
def _simulate_observed(net, x, obs):
    return simulate(net, x, 20.0, obs_times=obs)


@pytest.mark.parametrize("k", [0, 4])
def test_a_grazing_peak_just_after_a_step_start_is_not_rejected_forever(k):
    # The hidden LIF's PSP peaks (at t_pk) right at threshold (w = w0 (1 + k eps)), and
    # an observation 5e-7 ms before the peak starts a step there. The exact controller
    # rejects steps that contain the peak and asks for one ending at it; one step per
    # iteration used to lengthen that to its 1e-6 ms floor, which contains the peak
    # again: rejected until the event budget ran out.
    tm, ts, t_in = 10.0, 5.0, 1.0
    s_pk = math.log(tm / ts) * tm * ts / (tm - ts)
    w0 = 1.0 / (ts / (ts - tm) * (math.exp(-s_pk / ts) - math.exp(-s_pk / tm)))
    net = Network.create([LIF.create(1), QIF.create(1)], 1, [("input", 0), (0, 1)],
                         key=jr.key(0), output=1)
    net = eqx.tree_at(lambda m: m.weights[0]["w"], net,
                      jnp.full((1, 1), w0 * (1 + k * np.finfo(np.float64).eps)))
    t_pk = t_in + s_pk
    res = _simulate_observed(net, jnp.array([t_in]), jnp.array([t_pk - 5e-7, 20.0]))
    assert not exact.closed_form_network(net.populations, SimOptions())  # the mixed path
    hidden = np.asarray(res.spike_times)[np.asarray(res.spike_ids) == 0]
    assert hidden.shape == (1,) and abs(hidden[0] - t_pk) < 1e-6, hidden
