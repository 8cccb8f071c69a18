"""``SimOptions(stepping="single")``: one solver step per loop iteration.

The same exactness checks as the default (one solve per event): spike times
against closed forms (the LIF first spike and its derivative: in
``test_sim_closed_form.py``), a PSP trajectory, gradients against central finite
differences, and ``vmap`` against a loop over samples (float64).
"""

import jax

jax.config.update("jax_enable_x64", True)

import equinox as eqx  # noqa: E402
import jax.numpy as jnp  # noqa: E402
import jax.random as jr  # noqa: E402
import numpy as np  # noqa: E402
import pytest  # noqa: E402
from models_handwritten import LIF, QIF  # noqa: E402
from test_sim_closed_form import TAU_M, TAU_S, _single, _with_bias  # noqa: E402
from test_sim_gradients import TIGHT, _check_directional, _ff_loss, _ff_net  # noqa: E402

from eventax_dsl.sim import FeedForward, SimOptions, simulate, trainable  # noqa: E402

SINGLE = dict(stepping="single")
SOLVE = dict(stepping="solve")


@pytest.mark.parametrize("model, params, period", [
    (LIF, dict(tau_mem=TAU_M), TAU_M * np.log(2.0)),
    (QIF, dict(tau_mem=TAU_M, phi0=0.0), np.pi * TAU_M / np.sqrt(2.0)),
])
def test_regular_firing_period(model, params, period):
    net = _with_bias(_single(model, **params), 2.0)
    times, ids, count = jax.jit(lambda n: n.spikes(jnp.array([jnp.inf]), 60.0, **SINGLE))(net)
    n = int(count)
    assert n == int(60.0 // period)
    np.testing.assert_allclose(np.asarray(times[:n]), period * np.arange(1, n + 1), rtol=1e-7)
    assert np.all(np.asarray(ids[:n]) == 0) and np.all(np.isinf(np.asarray(times[n:])))


def test_lif_psp_trajectory():
    w, t0 = 1.5, 2.0
    net = _single(LIF, tau_mem=TAU_M, tau_syn=TAU_S, v_th=100.0)
    times = jnp.linspace(0.0, 40.0, 41)
    v = jax.jit(lambda n: n.state_at(jnp.array([t0]), times, **SINGLE)["v"][:, 0])(net)
    s = np.maximum(np.asarray(times) - t0, 0.0)
    exact = w * TAU_S / (TAU_S - TAU_M) * (np.exp(-s / TAU_S) - np.exp(-s / TAU_M))
    np.testing.assert_allclose(np.asarray(v), exact, rtol=1e-6, atol=1e-9)


def test_gradients_match_finite_differences():
    net = _ff_net()
    params, static = eqx.partition(net, trainable(net))
    value_and_grad = jax.jit(jax.value_and_grad(
        lambda p, s: _ff_loss(p, s, **TIGHT, **SINGLE), has_aux=True))
    (_, t), _ = value_and_grad(params, static)
    assert np.all(np.isfinite(np.asarray(t)))
    # the same spikes as one solve per event
    (_, t_solve), _ = jax.jit(jax.value_and_grad(
        lambda p, s: _ff_loss(p, s, **TIGHT, **SOLVE), has_aux=True))(params, static)
    np.testing.assert_allclose(np.asarray(t), np.asarray(t_solve), rtol=1e-9)
    groups = {
        "input weights": lambda p: [p.weights[0]["w"]],
        "hidden weights": lambda p: [p.weights[1]["w"]],
        "bias": lambda p: [p.populations[0].params["bias"], p.populations[1].params["bias"]],
        "tau_mem": lambda p: [p.populations[0].params["tau_mem"], p.populations[1].params["tau_mem"]],
    }
    _check_directional(value_and_grad, params, static, groups, jr.key(1))


def test_vmap_matches_a_loop_and_one_solve_per_event():
    net = FeedForward(QIF, [8, 3], in_size=3, key=jr.key(5), dtype=jnp.float64)
    net = eqx.tree_at(lambda n: n.weights[0]["w"], net, 2.0 + jnp.abs(net.weights[0]["w"]))
    xs = jr.uniform(jr.key(6), (6, 3), jnp.float64, 0.0, 20.0)
    run = lambda x, stepping: simulate(net, x, 60.0, options=SimOptions(stepping=stepping, **TIGHT))
    batch = jax.jit(jax.vmap(lambda x: run(x, "single")))(xs)
    solve = jax.jit(jax.vmap(lambda x: run(x, "solve")))(xs)
    one = jax.jit(lambda x: run(x, "single"))
    assert int(jnp.sum(batch.n_spikes)) > 10
    for i in range(xs.shape[0]):
        r = one(xs[i])
        assert int(r.n_spikes) == int(batch.n_spikes[i]) == int(solve.n_spikes[i])
        n = int(r.n_spikes)
        np.testing.assert_allclose(np.asarray(batch.spike_times[i, :n]),
                                   np.asarray(r.spike_times[:n]), rtol=1e-9)
        np.testing.assert_allclose(np.asarray(solve.spike_times[i, :n]),
                                   np.asarray(r.spike_times[:n]), rtol=1e-9)
        np.testing.assert_array_equal(np.asarray(batch.spike_ids[i, :n]), np.asarray(r.spike_ids[:n]))
    # one loop iteration per solver step (or event), so many more iterations than events
    assert int(jnp.min(batch.n_events)) > int(jnp.max(solve.n_events))


def test_budget_error_names_max_solver_steps():
    """With one solver step per iteration the budget also counts the steps, so
    running out must say which option bounds them."""
    net = _with_bias(_single(QIF, tau_mem=TAU_M, phi0=0.0), 2.0)
    with pytest.raises(Exception, match=r"event budget of .*max_solver_steps=\.\.\. \(currently 20\)"):
        jax.block_until_ready(net.spikes(jnp.array([jnp.inf]), 60.0, max_solver_steps=20, **SINGLE))
    # the same network with the default bound runs to the end
    _, _, count = net.spikes(jnp.array([jnp.inf]), 60.0, **SINGLE)
    assert int(count) == int(60.0 // (np.pi * TAU_M / np.sqrt(2.0)))


def test_bad_stepping_is_rejected():
    with pytest.raises(ValueError, match="stepping must be one of single, solve, got 'fused'"):
        SimOptions(stepping="fused")
