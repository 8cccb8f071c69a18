"""Transmission delays (``Network.with_delays``): axonal and synaptic, feed-forward
and recurrent, and exact gradients with respect to them (float64)."""

import jax

jax.config.update("jax_enable_x64", True)

import equinox as eqx  # noqa: E402
import jax.numpy as jnp  # noqa: E402
import jax.random as jr  # noqa: E402
import numpy as np  # noqa: E402
import pytest  # noqa: E402
from models_handwritten import LI, LIF, QIF  # noqa: E402

from eventax_dsl.sim import FeedForward, Network, event_budget, trainable  # noqa: E402
from eventax_dsl.sim.options import SimOptions  # noqa: E402

X = jnp.array([1.0])
TIGHT = dict(rtol=1e-12, atol=1e-12)


def _chain(hidden=LIF):
    """input -> 2 hidden -> 2 LIF outputs; hidden neuron 1 spikes twice."""
    net = FeedForward([hidden, LIF], [2, 2], in_size=1, key=jr.key(0))
    net = eqx.tree_at(lambda n: n.weights[0]["w"], net, jnp.array([[6.0, 7.0]]))
    return eqx.tree_at(lambda n: n.weights[1]["w"], net, jnp.array([[6.0, 2.0], [3.0, 6.0]]))


@jax.jit
def _spikes(net):
    times, ids, count = net.spikes(X, 60.0, **TIGHT)
    return times, ids, count


def _by_neuron(net):
    times, ids, count = (np.asarray(a) for a in _spikes(net))
    return {i: times[:count][ids[:count] == i] for i in range(net.n_neurons)}


def test_zero_delay_is_no_delay_and_a_delay_shifts_the_downstream_spikes():
    net = _chain()
    plain = _by_neuron(net)
    assert len(plain[1]) == 2 and all(len(plain[k]) >= 1 for k in (2, 3))
    for k, t in _by_neuron(net.with_delays({1: 0.0})).items():
        np.testing.assert_array_equal(t, plain[k])
    # the outputs hear only the delayed projection: every output spike moves by d,
    # the hidden spikes stay where they were
    for delays in (2.5, jnp.full((2,), 2.5), jnp.full((2, 2), 2.5)):
        shifted = _by_neuron(net.with_delays({1: delays}))
        for k in (0, 1):  # (to the root tolerance: the solver's steps end elsewhere)
            np.testing.assert_allclose(shifted[k], plain[k], rtol=0, atol=1e-10)
        for k in (2, 3):
            np.testing.assert_allclose(shifted[k], plain[k] + 2.5, rtol=0, atol=1e-10)
    # a negative delay acts as 0
    for k, t in _by_neuron(net.with_delays({1: -1.0})).items():
        np.testing.assert_allclose(t, plain[k], rtol=0, atol=1e-10)


def test_synaptic_delays_and_masks():
    # output 0 hears only hidden 0 (mask), after 1 ms; output 1 hears only hidden 1,
    # after 4 ms: each output spikes as it would alone with its input moved by the delay
    mask = jnp.array([[1.0, 0.0], [0.0, 1.0]])
    net = Network.create([LIF.create(2), LIF.create(2)], 1, [("input", 0), (0, 1, mask)],
                         key=jr.key(0))
    net = eqx.tree_at(lambda n: n.weights[0]["w"], net, jnp.array([[6.0, 7.0]]))
    net = eqx.tree_at(lambda n: n.weights[1]["w"], net, jnp.full((2, 2), 6.0))
    plain = _by_neuron(net)
    d = jnp.array([[1.0, 50.0], [50.0, 4.0]])  # the masked synapses' delays never matter
    delayed = _by_neuron(net.with_delays({1: d}))
    np.testing.assert_allclose(delayed[2], plain[2] + 1.0, rtol=0, atol=1e-10)
    np.testing.assert_allclose(delayed[3][:len(plain[3])], plain[3] + 4.0, rtol=0, atol=1e-10)


def test_recurrent_chain_with_delays():
    # 0 -> 1 -> 2 through a delayed recurrent projection: spike k of the chain moves by k*d
    pop = LIF.create(3, bias=0.0)
    mask = jnp.array([[0, 1, 0], [0, 0, 1], [0, 0, 0]])
    net = Network.create([pop], 1, [("input", 0), (0, 0, mask)], key=jr.key(1),
                         weight_init=lambda k, s, d: jnp.full(s, 6.0, d))
    net = eqx.tree_at(lambda n: n.weights[0]["w"], net, jnp.array([[6.0, 0.0, 0.0]]))
    plain = _by_neuron(net)
    delayed = _by_neuron(net.with_delays({1: 1.5}))
    for k in range(3):
        assert len(plain[k]) == 1
        np.testing.assert_allclose(delayed[k], plain[k] + 1.5 * k, rtol=0, atol=1e-10)


def _loss(params, static):
    net = eqx.combine(params, static)
    t = net.ttfs(X, 60.0, **TIGHT)
    return jnp.sum(jnp.where(jnp.isfinite(t), t, 60.0) ** 2)


@pytest.mark.parametrize("hidden, delays", [
    (LIF, jnp.array([[1.0, 4.0], [0.5, 3.0]])),  # synaptic, closed-form LIF
    pytest.param(QIF, jnp.array([0.7, 2.0]), marks=pytest.mark.slow),  # axonal, Diffrax
])
def test_gradients_with_respect_to_delays_match_finite_differences(hidden, delays):
    net = _chain(hidden).with_delays({1: delays})
    params, static = eqx.partition(net, trainable(net))
    assert params.delays[1] is not None  # delays are trained
    value_and_grad = jax.jit(jax.value_and_grad(_loss))
    value, grads = value_and_grad(params, static)
    assert np.isfinite(float(value))

    def loss(p, s):  # the same compiled program (no second compilation)
        return value_and_grad(p, s)[0]

    eps = 1e-5
    for index in np.ndindex(delays.shape):
        def at(h):
            return loss(eqx.tree_at(lambda p: p.delays[1], params, delays.at[index].add(h)),
                        static)
        fd = (at(eps) - at(-eps)) / (2 * eps)
        np.testing.assert_allclose(grads.delays[1][index], fd, rtol=1e-5, atol=1e-8)
    # and the weights of the delayed projection
    w = params.weights[1]["w"]
    direction = jr.normal(jr.key(3), w.shape)
    def along(h):
        return loss(eqx.tree_at(lambda p: p.weights[1]["w"], params, w + h * direction), static)
    fd = (along(eps) - along(-eps)) / (2 * eps)
    np.testing.assert_allclose(jnp.sum(grads.weights[1]["w"] * direction), fd, rtol=1e-5)


def test_delay_validation_and_budget():
    net = _chain()
    with pytest.raises(ValueError, match=r"external input has no delays"):
        net.with_delays({0: 1.0})
    with pytest.raises(ValueError, match=r"delay shape \(3,\), expected \(2,\) \(axonal\) or "
                                         r"\(2, 2\) \(synaptic\)"):
        net.with_delays({1: jnp.ones(3)})
    with pytest.raises(ValueError, match="no projection 5"):
        net.with_delays({5: 1.0})
    assert net.with_delays({1: 1.0}).with_delays({1: None}).delays is None
    # each spike is delivered once per axonal projection, once per target if synaptic
    opts = SimOptions()
    base = event_budget(net, opts, 1, 0)
    spikes = 4 * 10  # default: 10 per spiking neuron
    assert event_budget(net.with_delays({1: 1.0}), opts, 1, 0) == base + spikes
    assert event_budget(net.with_delays({1: jnp.ones((2, 2))}), opts, 1, 0) == base + 2 * spikes


def test_tied_synaptic_delays_each_get_their_own_gradient():
    # One hidden spike reaches both read-outs after the same synaptic delay. The arrivals
    # are summed into one event whose time (a jnp.min over the arrival table) gave each
    # delay the *mean* of the two derivatives, so delays initialised equal stayed equal
    # for ever. Each must get its own, as when the delays differ a little.
    net = FeedForward([LIF, LI], [1, 2], in_size=1, key=jr.key(0), dtype=jnp.float64)
    net = eqx.tree_at(lambda n: n.weights[0]["w"], net, jnp.array([[6.0]]))
    net = eqx.tree_at(lambda n: n.weights[1]["w"], net, jnp.array([[1.0, 2.0]]))
    obs = jnp.linspace(1.0, 30.0, 30)
    weight = jnp.array([1.0, 3.0])

    @jax.jit
    def value_and_grad(d):
        return jax.value_and_grad(
            lambda d: jnp.sum(net.with_delays({1: d}).state_at(X, obs)["v"] ** 2 * weight))(d)

    eps = 1e-6
    for delays in (jnp.array([[1.0, 1.0]]), jnp.array([[1.0, 1.0005]])):
        _, g = value_and_grad(delays)
        fd = [(value_and_grad(delays.at[0, k].add(eps))[0]
               - value_and_grad(delays.at[0, k].add(-eps))[0]) / (2 * eps) for k in range(2)]
        np.testing.assert_allclose(g[0], fd, rtol=1e-5)
    assert abs(float(g[0, 1]) / float(g[0, 0])) > 5  # far from the mean of the two
