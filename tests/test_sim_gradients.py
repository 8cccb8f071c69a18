"""Gradients against central finite differences (float64) and NaN-freedom.

Finite differences of an adaptive solver are noisy at the level of its
tolerance divided by the step ``h`` (step sizes change discretely with the
parameters), so these tests run the solver at ``rtol = atol = 1e-12``.
Each check is a directional derivative ``grad . d`` for a random direction ``d``
in the space of one group of trainable leaves.
"""

from pathlib import Path

import jax

jax.config.update("jax_enable_x64", True)

import equinox as eqx  # noqa: E402
import jax.numpy as jnp  # noqa: E402
import jax.random as jr  # noqa: E402
import jax.tree_util as jtu  # noqa: E402
import numpy as np  # noqa: E402
import pytest  # noqa: E402
from models_handwritten import LI, LIF, LIFRef, QIF  # noqa: E402

from eventax_dsl.contract import ChannelSpec, NeuronModel, ParamSpec, StateSpec  # noqa: E402
from eventax_dsl.sim import FeedForward, Network, simulate, trainable  # noqa: E402

TIGHT = dict(rtol=1e-12, atol=1e-12)
H = 1e-5
REL = 1e-5


def _check_directional(value_and_grad, params, static, groups, key):
    """``grad . d`` vs ``(L(p + h d) - L(p - h d)) / 2h`` for one direction per group.

    ``value_and_grad(params, static) -> ((loss, aux), grads)`` is jitted once and
    also used for the finite differences (one compilation per test).
    """
    (value, _), grads = value_and_grad(params, static)
    loss = lambda p: float(value_and_grad(p, static)[0][0])
    assert np.isfinite(float(value))
    for leaf in jtu.tree_leaves(grads):
        assert np.all(np.isfinite(np.asarray(leaf))), "NaN/Inf in gradient"
    for name, select in groups.items():
        key, sub = jr.split(key)
        leaves = select(params)
        keys = jr.split(sub, len(leaves))
        direction = [jr.normal(k, x.shape, x.dtype) * jnp.maximum(jnp.abs(x), 1.0)
                     for k, x in zip(keys, leaves)]
        plus = eqx.tree_at(select, params, [x + H * d for x, d in zip(leaves, direction)])
        minus = eqx.tree_at(select, params, [x - H * d for x, d in zip(leaves, direction)])
        fd = (loss(plus) - loss(minus)) / (2 * H)
        ad = sum(float(jnp.sum(g * d)) for g, d in zip(select(grads), direction))
        assert abs(ad - fd) <= REL * max(abs(fd), 1e-3), f"{name}: autodiff {ad} vs FD {fd}"


def _ff_net():
    net = FeedForward(
        [LIF, LIF], [4, 2], in_size=3, key=jr.key(3), dtype=jnp.float64,
        overrides=[{"bias": jnp.array([0.2, 0.1, 0.0, 0.3])}, {"tau_mem": 8.0}],
    )
    w0 = jnp.array([[3.0, 2.5, 1.0, 4.0], [2.0, 3.5, 3.0, 1.0], [1.5, 1.0, 3.0, 2.0]])
    w1 = jnp.array([[1.5, 1.0], [1.0, 2.0], [2.0, 1.5], [0.5, 1.0]])
    net = eqx.tree_at(lambda n: n.weights[0]["w"], net, w0)
    return eqx.tree_at(lambda n: n.weights[1]["w"], net, w1)


X_FF = jnp.array([[1.0, 6.0], [3.0, jnp.inf], [2.0, 9.0]])
T_MAX = 60.0
COEF = jnp.array([1.0, -0.7])


def _ff_loss(p, s, **options):
    t = eqx.combine(p, s).ttfs(X_FF, T_MAX, **options)
    # Replace silent outputs *before* any arithmetic: no inf/NaN reaches the gradient.
    t_safe = jnp.where(jnp.isfinite(t), t, T_MAX)
    return jnp.sum(COEF * t_safe), t


# One compilation shared by the tests below (same structure, different values).
_ff_value_and_grad = jax.jit(jax.value_and_grad(lambda p, s: _ff_loss(p, s, **TIGHT), has_aux=True))


def test_ttfs_gradients_match_finite_differences():
    net = _ff_net()
    params, static = eqx.partition(net, trainable(net))
    (_, t), _ = _ff_value_and_grad(params, static)
    assert np.all(np.isfinite(np.asarray(t)))
    groups = {
        "input weights": lambda p: [p.weights[0]["w"]],
        "hidden weights": lambda p: [p.weights[1]["w"]],
        "bias": lambda p: [p.populations[0].params["bias"], p.populations[1].params["bias"]],
        "tau_mem": lambda p: [p.populations[0].params["tau_mem"], p.populations[1].params["tau_mem"]],
        "tau_syn": lambda p: [p.populations[0].params["tau_syn"], p.populations[1].params["tau_syn"]],
    }
    _check_directional(_ff_value_and_grad, params, static, groups, jr.key(0))


def test_no_nan_gradient_when_an_output_is_silent():
    net = _ff_net()
    # Output neuron 1 cannot spike: its input weights are negative.
    net = eqx.tree_at(lambda n: n.weights[1]["w"], net, net.weights[1]["w"].at[:, 1].set(-1.0))
    params, static = eqx.partition(net, trainable(net))
    (_, t), grads = _ff_value_and_grad(params, static)
    assert np.isfinite(float(t[0])) and np.isinf(float(t[1]))
    for leaf in jtu.tree_leaves(grads):
        assert np.all(np.isfinite(np.asarray(leaf)))
    assert float(jnp.sum(jnp.abs(grads.weights[1]["w"][:, 0]))) > 0
    assert float(jnp.sum(jnp.abs(grads.weights[1]["w"][:, 1]))) == 0


def test_heterogeneous_refractory_state_gradients():
    """QIF -> refractory LIF (recurrent) -> LI read-out, loss on the read-out trace."""
    pops = [
        QIF.create(3, bias=jnp.array([-0.5, 0.2, -1.0]), tau_syn=4.0),
        LIFRef.create(2, t_ref=1.5, bias=0.3),
        LI.create(2, tau_mem=12.0),
    ]
    conns = [("input", 0), (0, 1), (1, 1), (1, 2)]
    net = Network.create(pops, 2, conns, key=jr.key(5),
                         weight_init=lambda k, s, d: 2.0 + jr.uniform(k, s, d))
    net = eqx.tree_at(lambda n: n.weights[2]["w"], net, jnp.array([[0.0, 0.5], [-0.3, 0.0]]))
    x = jnp.array([[0.5, 4.0], [1.5, jnp.inf]])
    times = jnp.linspace(2.0, 30.0, 8)
    params, static = eqx.partition(net, trainable(net))

    def loss(p, s):
        res = simulate(eqx.combine(p, s), x, times[-1], obs_times=times, **TIGHT)
        return jnp.sum(res.observed["v"] * jnp.arange(1.0, 9.0)[:, None]), res.first_spike

    value_and_grad = jax.jit(jax.value_and_grad(loss, has_aux=True))
    (_, first), _ = value_and_grad(params, static)
    # QIF and refractory LIF neurons spike (so events and refractoriness are exercised).
    assert np.isfinite(np.asarray(first[0])).sum() >= 2
    assert np.isfinite(np.asarray(first[1])).sum() >= 1
    groups = {
        "weights": lambda p: [w["w"] for w in p.weights],
        "qif bias": lambda p: [p.populations[0].params["bias"]],
        "time constants": lambda p: [p.populations[i].params[k] for i in range(3)
                                     for k in ("tau_mem", "tau_syn")],
    }
    _check_directional(value_and_grad, params, static, groups, jr.key(1))


class Quadratic(NeuronModel):
    """``v' = v^2 - 1/4 + bias + i``: rest at ``v = -1/2``, threshold (saddle) at ``+1/2``;
    above it ``v`` reaches infinity in finite time, so only the reset at ``v_peak``
    stops the upswing (like Izhikevich, EIF and AdEx)."""

    NAME = "Quadratic"
    STATES = (StateSpec("v"), StateSpec("i"))
    PARAMETERS = (ParamSpec("bias", 0.0, learnable=True), ParamSpec("tau_syn", 2.0),
                  ParamSpec("v_peak", 10.0), ParamSpec("v_reset", -1.0))
    CHANNELS = (ChannelSpec("w"),)

    def init(self, p):
        return {"v": -0.5 * jnp.ones_like(p["bias"]), "i": jnp.zeros_like(p["bias"])}

    def dynamics(self, p, s):
        return {"v": s["v"] ** 2 - 0.25 + p["bias"] + s["i"], "i": -s["i"] / p["tau_syn"]}

    def spike_condition(self, p, s):
        return s["v"] - p["v_peak"]

    def reset(self, p, s):
        return {**s, "v": jnp.broadcast_to(p["v_reset"], jnp.shape(s["v"])).astype(s["v"].dtype)}

    def receive(self, p, s, w):
        return {**s, "i": s["i"] + w["w"]}


def test_amos_gradients_of_a_blow_up_model():
    # With amos every hidden neuron spikes once and then keeps receiving input (inputs
    # at 6-9 after the first spikes near 2-4); unheld, that input would drive it to
    # v = inf with no reset to stop it. Held, the output spike times are smooth in the
    # parameters and their gradients match finite differences.
    net = FeedForward(Quadratic, [3, 2], in_size=3, key=jr.key(0), dtype=jnp.float64)
    w0 = jnp.array([[1.5, 0.9, 1.2], [0.8, 1.4, 0.6], [1.1, 0.7, 1.6]])
    net = eqx.tree_at(lambda n: n.weights[0]["w"], net, w0)
    net = eqx.tree_at(lambda n: n.weights[1]["w"], net, jnp.array([[0.9, 0.4], [0.5, 0.8],
                                                                 [0.6, 0.7]]))
    x = jnp.array([[1.0, 6.0], [1.5, 8.0], [2.0, 9.0]])
    params, static = eqx.partition(net, trainable(net))

    def loss(p, s):
        res = simulate(eqx.combine(p, s), x, 20.0, amos=True, **TIGHT)
        first = res.first_spike
        return jnp.sum(jnp.array([1.0, -0.6]) * first[1]), first

    value_and_grad = jax.jit(jax.value_and_grad(loss, has_aux=True))
    (_, first), _ = value_and_grad(params, static)
    hidden, out = np.asarray(first[0]), np.asarray(first[1])
    assert np.all(hidden < 6.0) and np.all(np.isfinite(out)), (hidden, out)
    groups = {
        "input weights": lambda p: [p.weights[0]["w"]],
        "hidden weights": lambda p: [p.weights[1]["w"]],
        "bias": lambda p: [p.populations[0].params["bias"], p.populations[1].params["bias"]],
    }
    _check_directional(value_and_grad, params, static, groups, jr.key(3))


@pytest.mark.slow
def test_fixed_step_gradients():
    net = _ff_net()
    params, static = eqx.partition(net, trainable(net))
    value_and_grad = jax.jit(
        jax.value_and_grad(lambda p, s: _ff_loss(p, s, dt=0.05), has_aux=True)
    )
    groups = {"all": lambda p: jtu.tree_leaves(p)}
    _check_directional(value_and_grad, params, static, groups, jr.key(2))


@pytest.mark.parametrize("options", [{}, {"integrator": "numeric"},
                                     {"integrator": "numeric", "stepping": "solve"}],
                         ids=["closed-form", "single-step", "solve"])
def test_input_time_gradient_when_the_input_ties_with_another_time(options):
    # An input at the same time as an observation, or at t = 0, takes all of the
    # gradient of its time (jnp.minimum / maximum gave half to the constant, and a step
    # of length 0 dropped it). LIF PSP (tau_m 10, tau_s 5, w 1, no spike):
    # v(s) = exp(-s/10) - exp(-s/5), so dv(5)/dt_in = -v'(5 - t_in).
    net = FeedForward(LIF, [1], in_size=1, key=jr.key(0), dtype=jnp.float64, v_th=100.0)
    net = eqx.tree_at(lambda m: m.weights[0]["w"], net, jnp.ones((1, 1)))

    @jax.jit
    @jax.grad
    def dv_end(t, obs):
        return net.state_at(jnp.array([t]), obs, **options)["v"][-1, 0]

    # at t = 0 (the observation at 1 ms is on the way); at an observation time
    for t_in, obs in ((0.0, [1.0, 5.0]), (2.0, [2.0, 5.0])):
        s = 5.0 - t_in
        exact = -(-np.exp(-s / 10) / 10 + np.exp(-s / 5) / 5)
        np.testing.assert_allclose(float(dv_end(t_in, jnp.array(obs))), exact, rtol=1e-6)



def test_identical_neurons_share_their_spike_time_gradient_in_sum():
    """Two identical hidden neurons cross at the same time and spike in one event
    (docs/simulator.md, "one known limitation"): the gradient through their spike times goes
    to the one that triggered it. Its sum over the two is still exact: moving both neurons'
    parameters together keeps them identical, and that derivative matches finite differences."""
    net = _ff_net()
    w0 = net.weights[0]["w"]
    net = eqx.tree_at(lambda n: n.weights[0]["w"], net, w0.at[:, 1].set(w0[:, 0]))
    bias = net.populations[0].params["bias"]
    net = eqx.tree_at(lambda n: n.populations[0].params["bias"], net, bias.at[1].set(bias[0]))
    params, static = eqx.partition(net, trainable(net))
    (_, t), grads = _ff_value_and_grad(params, static)
    times, ids, _ = net.spikes(X_FF, T_MAX, **TIGHT)
    ids, times = np.asarray(ids), np.asarray(times)
    assert np.array_equal(times[ids == 0], times[ids == 1]) and np.any(ids == 0)
    assert np.all(np.isfinite(np.asarray(t)))
    d = jnp.zeros_like(w0).at[:, 0].set(jnp.array([1.0, -0.5, 0.7])).at[:, 1].set(
        jnp.array([1.0, -0.5, 0.7]))  # the same change to both columns

    def loss(p):
        return float(_ff_value_and_grad(p, static)[0][0])

    at = lambda p: p.weights[0]["w"]
    w = at(params)
    fd = (loss(eqx.tree_at(at, params, w + H * d))
          - loss(eqx.tree_at(at, params, w - H * d))) / (2 * H)
    ad = float(jnp.sum(at(grads) * d))
    assert abs(fd) > 1e-3
    assert abs(ad - fd) <= REL * abs(fd), (ad, fd)


@pytest.mark.parametrize("n_in", [3, 21])
def test_inputs_at_the_same_time_each_get_their_own_time_gradient(n_in):
    """Inputs that arrive together are summed and applied once; the event's time carries
    the derivative of the first of them only. Each input time must get its own: the
    gradient must match central differences, which move one input at a time. With 21
    inputs the group spans two of the loop's input chunks (INPUT_CHUNK = 16)."""
    net = FeedForward(LI, [2], in_size=n_in, key=jr.key(0), dtype=jnp.float64)
    w = jr.uniform(jr.key(1), (n_in, 2), jnp.float64, 0.2, 3.0)
    net = eqx.tree_at(lambda n: n.weights[0]["w"], net, w)
    x = jnp.full((n_in,), 2.0).at[-1].set(5.0)  # all but the last at t = 2
    obs = jnp.linspace(0.5, 30.0, 13)

    @jax.jit
    def value_and_grad(x):
        return jax.value_and_grad(lambda x: jnp.sum(net.state_at(x, obs)["v"] ** 2))(x)

    _, g = value_and_grad(x)
    eps = 1e-6
    for k in sorted({0, 1, n_in - 2, n_in - 1}):
        fd = (value_and_grad(x.at[k].add(eps))[0] - value_and_grad(x.at[k].add(-eps))[0]) / (2 * eps)
        assert abs(float(g[k]) - float(fd)) <= REL * abs(float(fd)), (k, float(g[k]), float(fd))


def test_tied_inputs_to_a_nonlinear_model_get_their_own_time_gradient():
    # QIF (nonlinear in its phase; the input goes to the synaptic current, which the
    # dynamics use linearly): first spike time of one neuron driven by two inputs at the
    # same time, weights 4 and 8
    net = FeedForward(QIF, [1], in_size=2, key=jr.key(0), dtype=jnp.float64)
    net = eqx.tree_at(lambda n: n.weights[0]["w"], net, jnp.array([[4.0], [8.0]]))

    @jax.jit
    def value_and_grad(x):
        return jax.value_and_grad(lambda x: net.ttfs(x, T_MAX, **TIGHT)[0])(x)

    x = jnp.array([3.0, 3.0])
    t, g = value_and_grad(x)
    assert np.isfinite(float(t))
    fd = [(value_and_grad(x.at[k].add(H))[0] - value_and_grad(x.at[k].add(-H))[0]) / (2 * H)
          for k in range(2)]
    np.testing.assert_allclose(g, fd, rtol=1e-5)


@pytest.mark.slow
def test_a_neuron_at_rest_takes_one_long_step_whose_sensitivity_dtmax_bounds():
    # docs/simulator.md, "Gradients": a neuron exactly at rest (library QIF, bias 0) until
    # its one input at 11.5 ms makes the error estimate 0, so the controller steps over the
    # whole wait at once. The gradient is still exactly that of the computed solution (the
    # finite difference of the same program agrees), but that solution's sensitivity to
    # the bias is 1e-4 off the ODE's; dtmax bounds the step and the error.
    import eventax_dsl  # noqa: PLC0415

    qif = eventax_dsl.load(Path(__file__).resolve().parents[1] / "models" / "qif.neuron")
    net = Network.create([qif.create(1, tau_syn=5.0, bias=0.0)], in_size=1,
                         connections=[("input", 0)], key=jr.key(0), output=0)
    net = eqx.tree_at(lambda n: n.weights[0]["w"], net, jnp.full((1, 1), 3.0))
    x = jnp.array([11.5])

    def first_spike(bias, **options):
        n = eqx.tree_at(lambda n: n.populations[0].params["bias"], net, jnp.full((1,), bias))
        return n.ttfs(x, 60.0, **options)[0]

    def grad_and_fd(h=1e-6, **options):
        g = jax.grad(first_spike)(0.0, **options)
        return float(g), float((first_spike(h, **options) - first_spike(-h, **options)) / (2 * h))

    exact = grad_and_fd(**TIGHT, dtmax=0.5)[1]  # the ODE's derivative, to about 1e-9
    g, fd = grad_and_fd()  # the default float64 options
    assert abs(g - fd) <= 1e-6 * abs(fd)  # exact for the program that ran ...
    assert 3e-5 * abs(exact) < abs(g - exact) < 1e-3 * abs(exact)  # ... whose step is long
    g_bounded, _ = grad_and_fd(dtmax=2.0)
    assert abs(g_bounded - exact) <= 1e-5 * abs(exact)
