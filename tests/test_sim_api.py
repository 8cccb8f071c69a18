"""Networks as PyTrees: jit == eager, vmap == loop, no retracing, dtypes, filters."""

from pathlib import Path

import jax

jax.config.update("jax_enable_x64", True)

import equinox as eqx  # noqa: E402
import jax.numpy as jnp  # noqa: E402
import jax.random as jr  # noqa: E402
import numpy as np  # noqa: E402
import pytest  # noqa: E402
from models_handwritten import LI, LIF, QIF  # noqa: E402

import eventax_dsl  # noqa: E402
from eventax_dsl.sim import FeedForward, Network, SimOptions, event_budget, simulate, trainable  # noqa: E402

MODELS = Path(__file__).resolve().parent.parent / "models"
LIB_LIF, LIB_LI = (eventax_dsl.load(MODELS / f"{m}.neuron") for m in ("lif", "li"))

T_MAX = 40.0


def _net(dtype=jnp.float64, key=0):
    return FeedForward([QIF, LIF], [6, 3], in_size=4, key=jr.key(key), dtype=dtype)


def _inputs(n, dtype=jnp.float64):
    x = jr.uniform(jr.key(7), (n, 4), dtype, 0.0, 10.0)
    return x.at[0, 2].set(jnp.inf)  # an absent input spike


@eqx.filter_jit
@eqx.debug.assert_max_traces(max_traces=1)
def _ttfs_one(net, x):
    return net.ttfs(x, T_MAX)


def test_vmap_equals_loop_and_no_retrace():
    net, xs = _net(), _inputs(3)
    batched = jax.jit(jax.vmap(lambda x: net.ttfs(x, T_MAX)))(xs)
    looped = jnp.stack([_ttfs_one(net, x) for x in xs])
    assert np.isfinite(np.asarray(batched)).sum() >= 3
    np.testing.assert_allclose(np.asarray(batched), np.asarray(looped), rtol=1e-10)
    # New weights, new parameters, new inputs: same trace.
    other = eqx.tree_at(lambda n: n.weights[0]["w"], net, net.weights[0]["w"] * 1.1)
    other = eqx.tree_at(lambda n: n.populations[1].params["tau_mem"], other,
                        other.populations[1].params["tau_mem"] + 1.0)
    _ttfs_one(other, xs[1] + 0.5)


def test_jit_equals_eager():
    net, x = _net(), _inputs(1)[0]
    eager = net.ttfs(x, T_MAX)
    np.testing.assert_allclose(np.asarray(eager), np.asarray(_ttfs_one(net, x)), rtol=1e-12)


def test_scan_loop_equals_checkpointed_loop():
    net, x = _net(), _inputs(1)[0]
    scan = jax.jit(lambda n: n.ttfs(x, T_MAX, loop="scan"))(net)
    np.testing.assert_allclose(np.asarray(scan), np.asarray(_ttfs_one(net, x)), rtol=1e-10)


def test_solver_by_name():
    """``solver="dopri8"`` runs Dopri8: fewer steps than Tsit5 at the same tolerance,
    the same spike times to within both errors; an unknown name is refused."""
    import diffrax as dfx  # noqa: PLC0415

    assert isinstance(SimOptions(solver="dopri8").get_solver(), dfx.Dopri8)
    assert isinstance(SimOptions().get_solver(), dfx.Tsit5)
    with pytest.raises(ValueError, match="unknown solver 'rk4'; by name: tsit5, dopri5, dopri8"):
        SimOptions(solver="rk4")
    net, x = _net(), _inputs(1)[0]
    run = jax.jit(lambda n, s: n.simulate(x, T_MAX, solver=s), static_argnums=1)
    tsit5, dopri8 = run(net, "tsit5"), run(net, "dopri8")
    assert int(tsit5.n_spikes) >= 3 and int(dopri8.n_spikes) == int(tsit5.n_spikes)
    assert 0 < int(dopri8.n_steps) < int(tsit5.n_steps)
    n = int(tsit5.n_spikes)
    np.testing.assert_allclose(np.asarray(dopri8.spike_times[:n]),
                               np.asarray(tsit5.spike_times[:n]), rtol=1e-6)


def test_float32():
    x64 = _inputs(1)[0]
    with pytest.raises(ValueError, match="precision follows jax_enable_x64"):
        _net(jnp.float32).ttfs(x64, T_MAX)
    net64 = _net()
    with jax.enable_x64(False):
        net32 = jax.tree_util.tree_map(lambda a: a.astype(jnp.float32), net64)
        x = x64.astype(jnp.float32)
        assert net32.weights[0]["w"].dtype == jnp.float32
        t32 = jax.jit(lambda n: n.ttfs(x, T_MAX))(net32)
    assert t32.dtype == jnp.float32
    t64 = _ttfs_one(net64, x64)
    finite = np.isfinite(np.asarray(t64))
    assert finite.any() and np.array_equal(finite, np.isfinite(np.asarray(t32)))
    np.testing.assert_allclose(np.asarray(t32)[finite], np.asarray(t64)[finite], rtol=1e-4)


def test_feedforward_layers_overrides_and_trainable():
    net = FeedForward(
        [QIF, LI], [5, 2], in_size=3, key=jr.key(0),
        overrides=[{"bias": jnp.linspace(-1.0, 1.0, 5)}, {"tau_mem": 20.0}], tau_syn=3.0,
    )
    assert [type(p) for p in net.populations] == [QIF, LI]
    assert net.weights[0]["w"].shape == (3, 5) and net.weights[1]["w"].shape == (5, 2)
    np.testing.assert_allclose(net.populations[0].params["bias"], np.linspace(-1, 1, 5))
    assert np.all(np.asarray(net.populations[1].params["tau_mem"]) == 20.0)
    assert np.all(np.asarray(net.populations[0].params["tau_syn"]) == 3.0)
    assert net.sizes == (5, 2) and net.offsets == (0, 5)

    params, _ = eqx.partition(net, trainable(net))
    assert params.weights[0]["w"] is not None and params.weights[1]["w"] is not None
    assert set(k for k, v in params.populations[0].params.items() if v is not None) == {
        "tau_mem", "tau_syn", "bias"}  # not phi0
    assert params.masks == (None, None)

    with pytest.raises(TypeError, match="no layer's model has parameter"):
        FeedForward(LIF, [2], in_size=1, key=jr.key(0), not_a_parameter=1.0)
    with pytest.raises(ValueError, match="does not spike; use state_at"):
        net.ttfs(jnp.zeros(3), 10.0)
    with pytest.raises(ValueError, match="input_times has shape"):
        net.state_at(jnp.zeros(4), jnp.array([1.0]))


def test_state_at_readout_and_budget_sizing():
    net = FeedForward([LIF, LI], [4, 2], in_size=2, key=jr.key(1), dtype=jnp.float64)
    times = jnp.array([0.0, 5.0, 10.0, 20.0])
    run = jax.jit(lambda n, ts: n.state_at(jnp.array([1.0, 2.0]), ts))
    out = run(net, times)
    assert out["v"].shape == (4, 2)
    assert np.all(np.asarray(out["v"][0]) == 0.0) and np.all(np.isfinite(np.asarray(out["v"])))
    assert np.all(np.asarray(out["v"][1:]) != 0.0)
    # Times in any order: results come back in the caller's order.
    perm = jnp.array([2, 0, 3, 1])
    np.testing.assert_allclose(np.asarray(run(net, times[perm])["v"]), np.asarray(out["v"][perm]))
    # Budget: inputs + observations + 2 * (spikes_per_neuron * spiking neurons) + 2.
    solve = SimOptions(stepping="solve")
    assert event_budget(net, solve, n_inputs=2, n_obs=4) == 2 + 4 + 2 * 10 * 4 + 2
    assert event_budget(net, SimOptions(amos=True, stepping="solve"), 2, 0) == 2 + 2 * 4 + 2
    # One solver step per iteration (the default): plus max_solver_steps, unless the
    # network is solved entirely in closed form (the library's LIF and LI).
    single = SimOptions(stepping="single", max_solver_steps=100)
    assert event_budget(net, single, 2, 4) == event_budget(net, solve, 2, 4) + 100
    closed = FeedForward([LIB_LIF, LIB_LI], [4, 2], in_size=2, key=jr.key(1), dtype=jnp.float64)
    assert event_budget(closed, single, 2, 4) == event_budget(closed, solve, 2, 4)


def test_bad_input_and_observation_times_are_refused_by_name():
    """Not a budget error that says to raise max_events, which cannot help. An
    observation time after ``t_end`` was never reached and kept its NaN, with status OK."""
    net = FeedForward([LIB_LIF, LIB_LI], [3, 2], in_size=2, key=jr.key(3), dtype=jnp.float64)
    x = jnp.array([0.5, 1.0])
    for bad in (-3.0, jnp.nan):
        with pytest.raises(Exception, match="input_times must be >= 0") as err:
            simulate(net, x.at[1].set(bad), 10.0)
        assert "max_events" not in str(err.value)
    for bad in (-2.0, jnp.nan, jnp.inf, 20.0):
        with pytest.raises(Exception, match="observation times must be finite, >= 0 and at most t_end") as err:
            simulate(net, x, 10.0, obs_times=jnp.array([5.0, bad]))
        assert "max_events" not in str(err.value)
    edge = simulate(net, x, 10.0, obs_times=jnp.array([10.0, 5.0]))  # t_end itself is fine
    assert np.all(np.isfinite(np.asarray(edge.observed["v"])))


def test_network_validation():
    pop = LIF.create(2)
    with pytest.raises(ValueError, match="weight shape"):
        Network(populations=(pop,), weights=({"w": jnp.zeros((3, 2))},), masks=(None,),
                projections=((-1, 0),), in_size=1, output=0)
    # an output index out of range is an error, not wrapped round to another population
    two = [LIF.create(2), LI.create(1)]
    for bad in (2, 5, -3):
        with pytest.raises(ValueError, match="out of range"):
            Network.create(two, 1, [("input", 0), (0, 1)], key=jr.key(0), output=bad)
    assert Network.create(two, 1, [("input", 0), (0, 1)], key=jr.key(0), output=-1).output == 1


def test_an_empty_layer_simulates_on_every_path():
    # a zero-size layer used to index row 0 of its empty parameters on the closed-form path
    for options in ({}, {"integrator": "numeric"}):
        net = FeedForward(LIB_LIF, [0, 2], in_size=2, key=jr.key(0))
        np.testing.assert_array_equal(net.ttfs(jnp.array([1.0, 2.0]), 30.0, **options), [np.inf, np.inf])
        net = FeedForward(LIB_LIF, [3, 0], in_size=2, key=jr.key(0))
        assert net.ttfs(jnp.array([1.0, 2.0]), 30.0, **options).shape == (0,)
        net = FeedForward(LIB_LIF, [0], in_size=2, key=jr.key(0))  # no neuron at all
        assert net.ttfs(jnp.array([1.0, 2.0]), 30.0, **options).shape == (0,)


def test_vector_parameter_overrides_read_one_way_for_every_population_size():
    D = eventax_dsl.load(MODELS / "dendritic.neuron")
    k = dict((p.name, p.shape) for p in D.PARAMETERS)["tau_syn"][0]
    for n in (k - 2, k):
        pop = D.create(n, tau_syn=jnp.arange(1.0, k + 1))  # (k,): the same vector for all
        np.testing.assert_array_equal(pop.params["tau_syn"], np.tile(np.arange(1.0, k + 1), (n, 1)))
        pop = D.create(n, tau_syn=jnp.arange(1.0, n + 1)[:, None])  # (n, 1): one number per neuron
        np.testing.assert_array_equal(pop.params["tau_syn"], np.repeat(np.arange(1.0, n + 1)[:, None], k, 1))
    with pytest.raises(ValueError, match=r"\(5, 1\) \(one number per neuron\)"):
        D.create(5, tau_syn=jnp.arange(1.0, 6.0))  # (n,) would flip meaning at n == k
