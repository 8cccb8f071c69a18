"""Simulator against closed-form solutions (float64, exactness measured), and what the
options of the solves between events (``carry_step``, ``adjoint_checkpoints``) change."""

import jax

jax.config.update("jax_enable_x64", True)

import equinox as eqx  # noqa: E402
import jax.numpy as jnp  # noqa: E402
import jax.random as jr  # noqa: E402
import numpy as np  # noqa: E402
import pytest  # noqa: E402
from models_handwritten import LIF, QIF  # noqa: E402

from eventax_dsl.sim import FeedForward, simulate  # noqa: E402
from eventax_dsl.sim.loop import MIN_FIRST_STEP, _next_first_step  # noqa: E402

TAU_M, TAU_S = 10.0, 5.0


def _single(model, **params):
    net = FeedForward(model, [1], in_size=1, key=jr.key(0), dtype=jnp.float64, **params)
    return eqx.tree_at(lambda n: n.weights[0]["w"], net, jnp.full((1, 1), 1.5))


def _with_bias(net, bias):
    return eqx.tree_at(lambda n: n.populations[0].params["bias"], net, jnp.reshape(bias, (1,)))


def _lif_first_spike(bias, stepping="solve"):
    net = _with_bias(_single(LIF, tau_mem=TAU_M), bias)
    return net.ttfs(jnp.array([jnp.inf]), 100.0, stepping=stepping)[0]


@pytest.mark.parametrize("stepping", ["solve", "single"])
def test_lif_bias_first_spike_and_derivative(stepping):
    theta = 1.0
    value_and_grad = jax.jit(jax.value_and_grad(lambda b: _lif_first_spike(b, stepping)))
    for current in (1.5, 2.0, 3.7):
        t, grad = value_and_grad(current)
        exact = TAU_M * np.log(current / (current - theta))
        assert abs(float(t) - exact) / exact <= 1e-6
        exact_grad = -TAU_M * theta / (current * (current - theta))
        assert abs(float(grad) - exact_grad) / abs(exact_grad) <= 1e-6


@pytest.mark.parametrize("carry_step", [True, False])
def test_lif_regular_firing_period(carry_step):
    net = _with_bias(_single(LIF, tau_mem=TAU_M), 2.0)
    times, ids, count = jax.jit(
        lambda n: n.spikes(jnp.array([jnp.inf]), 50.0, carry_step=carry_step))(net)
    period = TAU_M * np.log(2.0)
    n = int(count)
    assert n == int(50.0 // period)
    np.testing.assert_allclose(np.asarray(times[:n]), period * np.arange(1, n + 1), rtol=1e-7)
    assert np.all(np.asarray(ids[:n]) == 0) and np.all(np.asarray(ids[n:]) == -1)
    assert np.all(np.isinf(np.asarray(times[n:])))


def test_lif_psp_trajectory():
    w, t0 = 1.5, 2.0
    net = _single(LIF, tau_mem=TAU_M, tau_syn=TAU_S, v_th=100.0)
    times = jnp.linspace(0.0, 40.0, 41)
    v = jax.jit(lambda n: n.state_at(jnp.array([t0]), times)["v"][:, 0])(net)
    s = np.maximum(np.asarray(times) - t0, 0.0)
    exact = w * TAU_S / (TAU_S - TAU_M) * (np.exp(-s / TAU_S) - np.exp(-s / TAU_M))
    np.testing.assert_allclose(np.asarray(v), exact, rtol=1e-6, atol=1e-9)


@pytest.mark.parametrize("carry_step", [True, False])
def test_qif_period(carry_step):
    # Constant drive I > 0: inter-spike interval pi * tau / sqrt(I); from phi0 = 0 the
    # first spike is after one full period.
    current = 2.0
    net = _single(QIF, tau_mem=TAU_M, bias=current, phi0=0.0)
    times, _, count = jax.jit(
        lambda n: n.spikes(jnp.array([jnp.inf]), 100.0, carry_step=carry_step,
                           stepping="solve"))(net)
    period = np.pi * TAU_M / np.sqrt(current)
    n = int(count)
    assert n == int(100.0 // period)
    np.testing.assert_allclose(np.asarray(times[:n]), period * np.arange(1, n + 1), rtol=1e-7)


def test_carried_first_step_saves_solver_steps_between_many_events():
    """A QIF neuron under 46 input spikes (no closed form: against a run at
    rtol = atol = 1e-12). Starting each solve with the previous solve's mean step
    (``carry_step``, the default) instead of Diffrax's initial-step heuristic takes
    fewer solver steps, at the same accuracy (one solve per event: with single
    steps there is no new solve to start)."""
    net = _single(QIF, tau_mem=TAU_M, bias=0.5, phi0=0.0)
    net = eqx.tree_at(lambda n: n.weights[0]["w"], net, jnp.full((1, 1), 0.3))
    x = jnp.arange(1.0, 60.0, 1.3)[None, :]
    ref = simulate(net, x, 60.0, rtol=1e-12, atol=1e-12, root_tol=1e-13, stepping="solve")
    assert int(ref.n_spikes) == 2
    steps = {}
    for carry in (True, False):
        res = jax.jit(lambda n, carry=carry: simulate(n, x, 60.0, carry_step=carry,
                                                      stepping="solve"))(net)
        assert int(res.n_spikes) == 2 and int(res.n_events) == int(ref.n_events)
        np.testing.assert_allclose(np.asarray(res.spike_times[:2]),
                                   np.asarray(ref.spike_times[:2]), rtol=1e-7)
        steps[carry] = int(res.n_steps)
    assert 0 < steps[True] < 0.8 * steps[False]


def test_carried_first_step_rules():
    stats = lambda acc, rej: {"num_accepted_steps": jnp.asarray(acc),  # noqa: E731
                              "num_rejected_steps": jnp.asarray(rej)}
    f = lambda dt0, span, acc, rej: float(_next_first_step(  # noqa: E731
        jnp.asarray(dt0), jnp.asarray(span), stats(acc, rej)))
    assert f(0.3, 2.0, 4, 0) == pytest.approx(0.5)     # several steps: their mean
    assert f(0.3, 0.1, 1, 0) == pytest.approx(0.3)     # interval shorter than a step: keep
    assert f(0.3, 0.5, 1, 0) == pytest.approx(0.5)     # one step, longer than the last
    assert f(0.3, 0.05, 1, 2) == pytest.approx(0.05)   # first try rejected: what worked
    assert f(0.3, 0.0, 0, 0) == pytest.approx(0.3)     # zero-length interval
    assert f(1e-9, 0.0, 0, 0) == pytest.approx(MIN_FIRST_STEP)


def test_large_groups_of_simultaneous_inputs_sum_exactly():
    """20 input spikes at one time (more than the loop gathers per iteration,
    ``INPUT_CHUNK``), then 3 more: the voltage is the superposition of the PSPs of
    the summed weights; a masked input projection delivers only what it connects."""
    from eventax_dsl.sim import Network  # noqa: PLC0415
    from eventax_dsl.sim.loop import INPUT_CHUNK  # noqa: PLC0415

    n_in = 40
    assert INPUT_CHUNK < 20
    mask = np.ones((n_in, 2))
    mask[:20, 1] = 0.0  # neuron 1 does not see the big group
    pop = LIF.create(2, tau_mem=TAU_M, tau_syn=TAU_S, v_th=100.0)
    net = Network.create([pop], n_in, [("input", 0, jnp.asarray(mask))], key=jr.key(3),
                         weight_init=lambda k, s, d: jr.uniform(k, s, d, 0.1, 1.0))
    w = np.asarray(net.weights[0]["w"])
    t_in = np.full(n_in, np.inf)
    t_in[:20], t_in[20:23] = 1.0, 4.0
    times = jnp.linspace(0.0, 30.0, 31)
    v = np.asarray(jax.jit(lambda n: n.state_at(jnp.asarray(t_in), times)["v"])(net))

    def psp(s):
        s = np.maximum(s, 0.0)
        return TAU_S / (TAU_S - TAU_M) * (np.exp(-s / TAU_S) - np.exp(-s / TAU_M))

    t = np.asarray(times)[:, None]
    exact = (psp(t - 1.0) * (w[:20] * mask[:20]).sum(0)
             + psp(t - 4.0) * (w[20:23] * mask[20:23]).sum(0))
    np.testing.assert_allclose(v, exact, rtol=1e-7, atol=1e-10)  # Tsit5 at rtol 1e-8
    assert np.abs(exact[:, 0]).max() > 1.0  # the big group really arrived


def test_adjoint_checkpoints_change_the_cost_not_the_gradient():
    """``adjoint_checkpoints`` only sets how much of each solve the reverse pass keeps
    and recomputes: the same gradient for 8 (the default) and 4096 checkpoints (Diffrax's
    default here, one per solver step), up to the order of floating-point operations."""
    x = jnp.arange(1.0, 60.0, 1.3)[None, :]

    def first_spike(w, checkpoints):
        net = _single(QIF, tau_mem=TAU_M, bias=0.5, phi0=0.0)
        net = eqx.tree_at(lambda n: n.weights[0]["w"], net, jnp.reshape(w, (1, 1)))
        return net.ttfs(x, 60.0, adjoint_checkpoints=checkpoints, stepping="solve")[0]

    grads = [float(jax.jit(jax.grad(first_spike), static_argnums=1)(0.3, c))
             for c in (None, 4096)]
    assert np.isfinite(grads[0]) and grads[0] < 0  # more input, earlier spike
    np.testing.assert_allclose(grads[1:], grads[0], rtol=1e-12)  # summation order only
    with pytest.raises(ValueError, match="adjoint_checkpoints must be a positive int"):
        simulate(_single(QIF), x, 60.0, adjoint_checkpoints=0)
