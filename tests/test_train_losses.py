"""Losses and quadrature read-outs: hand formulas, closed forms, finite differences.

- TTFS loss against the formula written out in NumPy (silent outputs included);
- the Hermite-refined maximum against functions with a known maximum;
- the quadrature integrals of one LI neuron after one input spike against the
  closed form integrated by SymPy (float64, solver at 1e-12, agreement ~1e-9);
- gradients (of the pure losses, and of the voltage losses through the
  simulation) against central finite differences in float64.
"""

import dataclasses

import jax

jax.config.update("jax_enable_x64", True)

import equinox as eqx  # noqa: E402
import jax.numpy as jnp  # noqa: E402
import jax.random as jr  # noqa: E402
import numpy as np  # noqa: E402
import pytest  # noqa: E402
import sympy as sp  # noqa: E402

from eventax_dsl.sim import Network, SimOptions  # noqa: E402
from eventax_dsl.sim.exact import closed_form_network  # noqa: E402
from eventax_dsl.train.quadrature import QUADRATURE_STATES, SPIKE_CONDITION  # noqa: E402
from eventax_dsl.train import (  # noqa: E402
    Readout,
    attach_quadrature,
    cross_entropy,
    load_model,
    max_over_time,
    revive_term,
    ttfs_loss,
    ttfs_predict,
    ttfs_terms,
    window_exp_integral,
    window_integral,
    with_quadrature,
)

T_MAX = 50.0


def _fd_check(f, x, h=1e-6, rel=1e-6, key=0):
    """Directional derivative of scalar ``f`` at ``x`` (float64 array) vs central differences."""
    d = jr.normal(jr.key(key), x.shape, x.dtype)
    g = jax.jit(jax.grad(f))(x)
    assert np.all(np.isfinite(np.asarray(g)))
    ad = float(jnp.sum(g * d))
    f = jax.jit(f)
    fd = (float(f(x + h * d)) - float(f(x - h * d))) / (2 * h)
    assert abs(ad - fd) <= rel * max(abs(fd), 1e-3), (ad, fd)


# ---------------------------------------------------------------- TTFS loss
def _ttfs_reference(t, y, t_max, tau0, tau1, alpha):
    t = np.where(np.isfinite(t), t, t_max)
    out = []
    for ti, yi in zip(t, y):
        ce = -np.log(np.exp(-ti[yi] / tau0) / np.sum(np.exp(-ti / tau0)))
        out.append(ce + alpha * (np.exp(ti[yi] / tau1) - 1.0))
    return np.mean(out)


def test_ttfs_loss_matches_formula_and_handles_silent_outputs():
    t = np.array([[3.0, 5.0, np.inf], [np.inf, np.inf, np.inf], [12.0, 7.5, 9.0]])
    y = np.array([0, 2, 1])
    for tau0, tau1, alpha in [(0.5, 6.4, 3e-3), (2.0, 10.0, 0.1)]:
        got = float(ttfs_loss(jnp.asarray(t), jnp.asarray(y), t_max=T_MAX, tau0=tau0, tau1=tau1,
                              alpha=alpha))
        np.testing.assert_allclose(got, _ttfs_reference(t, y, T_MAX, tau0, tau1, alpha), rtol=1e-13)
    # the gradient is finite, and exactly zero for the silent (inf) entries
    g = jax.grad(lambda s: ttfs_loss(s, jnp.asarray(y), t_max=T_MAX))(jnp.asarray(t))
    assert np.all(np.isfinite(np.asarray(g)))
    assert np.all(np.asarray(g)[~np.isfinite(t)] == 0.0)
    assert np.all(np.asarray(g)[np.isfinite(t)] != 0.0)
    np.testing.assert_array_equal(np.asarray(ttfs_predict(jnp.asarray(t))), [0, -1, 1])
    # exact ties happen (two outputs crossing in one step): the lower index wins
    tied = jnp.array([[4.0, 4.0, 9.0], [9.0, 4.0, 4.0], [np.inf, 2.0, 2.0]])
    np.testing.assert_array_equal(np.asarray(ttfs_predict(tied)), [0, 1, 1])


def test_silent_target_term_acts_only_where_the_target_never_spiked():
    t = np.array([[3.0, 5.0, np.inf], [np.inf, np.inf, np.inf], [12.0, np.inf, 9.0]])
    c = np.array([[0.1, -0.8, -1.3], [-0.9, -0.6, -0.4], [-0.5, -2.2, -0.2]])
    y = np.array([0, 2, 1])  # target spiked, silent (c = -0.4), silent (c = -2.2)
    beta = 0.7
    base = _ttfs_reference(t, y, T_MAX, 0.5, 6.4, 3e-3)
    got = ttfs_loss(jnp.asarray(t), jnp.asarray(y), t_max=T_MAX, c_mean=jnp.asarray(c),
                    silent_push=beta)
    np.testing.assert_allclose(float(got), base + beta * (0.4 + 2.2) / 3, rtol=1e-13)
    gc = np.asarray(jax.grad(lambda m: ttfs_loss(jnp.asarray(t), jnp.asarray(y), t_max=T_MAX,
                                                 c_mean=m, silent_push=beta))(jnp.asarray(c)))
    want = np.zeros_like(c)  # only the silent targets, each -beta / batch
    want[1, 2] = want[2, 1] = -beta / 3
    np.testing.assert_allclose(gc, want, rtol=1e-12, atol=0)
    with pytest.raises(ValueError, match="needs c_mean"):
        ttfs_loss(jnp.asarray(t), jnp.asarray(y), t_max=T_MAX, silent_push=beta)
    with pytest.raises(ValueError, match="ttfs and max losses only"):
        Readout(kind="exp-integral", silent_push=1.0)


def test_loss_terms_name_the_parts_and_sum_to_the_loss():
    # TTFS: cross-entropy, early-spike regulariser and silent-target term, per sample
    t = np.array([[3.0, 5.0, np.inf], [np.inf, np.inf, np.inf], [12.0, np.inf, 9.0]])
    c = np.array([[0.1, -0.8, -1.3], [-0.9, -0.6, -0.4], [-0.5, -2.2, -0.2]])
    y = np.array([0, 2, 1])
    kw = dict(t_max=T_MAX, tau0=0.5, tau1=6.4, alpha=3e-3, c_mean=jnp.asarray(c), silent_push=0.7)
    terms = ttfs_terms(jnp.asarray(t), jnp.asarray(y), **kw)
    assert list(terms) == ["cross_entropy", "early_spike", "silent_push"]
    tf = np.where(np.isfinite(t), t, T_MAX)
    t_y = tf[np.arange(3), y]
    ce = -(-t_y / 0.5) + np.log(np.sum(np.exp(-tf / 0.5), axis=1))
    np.testing.assert_allclose(np.asarray(terms["cross_entropy"]), ce, rtol=1e-13)
    np.testing.assert_allclose(np.asarray(terms["early_spike"]), 3e-3 * np.expm1(t_y / 6.4),
                               rtol=1e-13)
    np.testing.assert_allclose(np.asarray(terms["silent_push"]), [0.0, 0.7 * 0.4, 0.7 * 2.2],
                               rtol=1e-13)
    per = ttfs_loss(jnp.asarray(t), jnp.asarray(y), **kw, reduce=False)
    np.testing.assert_allclose(np.asarray(sum(terms.values())), np.asarray(per), rtol=1e-14)
    # the max read-out with its silent-target term: logits (scaled) and sag rows
    scores = jnp.asarray(np.stack([[[0.2, 0.9, 0.1], [0.0, 0.3, 0.8]],
                                   [[0.5, 0.4, 0.3], [0.6, 0.0, 0.0]]]))  # (B=2, 2, n_out=3)
    labels = jnp.asarray([2, 0])
    r = Readout(kind="max", silent_push=0.5, logit_scale=3.0)
    terms = r.loss_terms(scores, labels)
    assert list(terms) == ["cross_entropy", "silent_push"]
    np.testing.assert_allclose(np.asarray(terms["cross_entropy"]),
                               np.asarray(cross_entropy(3.0 * scores[:, 0], labels, reduce=False)),
                               rtol=1e-14)
    np.testing.assert_allclose(np.asarray(terms["silent_push"]), [0.5 * 0.8, 0.5 * 0.6],
                               rtol=1e-14)
    np.testing.assert_allclose(float(r.loss(scores, labels)),
                               float(np.mean(np.asarray(sum(terms.values())))), rtol=1e-14)
    # the integrals: the cross-entropy alone
    assert list(Readout(kind="exp-integral").loss_terms(scores[:, 0], labels)) == ["cross_entropy"]


def test_silent_target_push_through_simulation_closed_form_and_finite_differences():
    """2 inputs -> 3 LIF outputs, float64: output 0 spikes, outputs 1 and 2 stay below threshold.

    With a silent output as the label, the read-out's mean spike condition equals the
    closed-form mean of the summed PSPs minus the threshold, and the gradient of the
    loss (spike-time terms + silent-target term) matches central finite differences.
    """
    LIF = load_model("lif")
    tm, ts = 10.0, 5.0
    pop = LIF.create(3, tau_mem=tm, tau_syn=ts)
    net = Network.create([pop], 2, [("input", 0)], key=jr.key(0))
    w = jnp.array([[6.0, 0.8, 0.5], [5.0, 0.9, 0.4]])  # 0 spikes; 1 and 2 peak below 1
    net = eqx.tree_at(lambda n: n.weights[0]["w"], net, w)
    readout = Readout(kind="ttfs", t_end=T_MAX, silent_push=1.0)
    net = attach_quadrature(net, readout.quadrature, readout.tau)
    assert readout.quadrature == SPIKE_CONDITION
    x = jnp.array([2.0, 6.0])
    opts = SimOptions(rtol=1e-12, atol=1e-12)
    scores = jax.jit(lambda n: readout.forward(n, x, jnp.asarray(0.0), opts))(net)
    t_first, c_mean = np.asarray(scores)
    assert np.isfinite(t_first[0]) and not np.isfinite(t_first[1:]).any()

    def psp_integral(wk, tk):  # int_{tk}^{T} of w ts/(ts-tm) (e^{-s/ts} - e^{-s/tm}), s = t - tk
        d = T_MAX - tk
        return wk * ts / (ts - tm) * (ts * (1 - np.exp(-d / ts)) - tm * (1 - np.exp(-d / tm)))

    for j in (1, 2):  # c = v - v_th, v_th = 1
        want = sum(psp_integral(float(w[k, j]), float(x[k])) for k in range(2)) / T_MAX - 1.0
        np.testing.assert_allclose(c_mean[j], want, rtol=1e-10)

    y = jnp.array([1])
    params, static = eqx.partition(net, eqx.is_inexact_array)

    def loss(p):
        return readout.loss(readout.forward(eqx.combine(p, static), x, jnp.asarray(0.0), opts)[None], y)

    value_and_grad = jax.jit(jax.value_and_grad(loss))
    _, grads = value_and_grad(params)
    gw = np.asarray(grads.weights[0]["w"])
    assert np.all(gw[:, 1] < 0), gw  # raising the silent target's input weights lowers the loss
    h = 1e-5
    d = jr.normal(jr.key(3), w.shape, w.dtype)
    select = lambda p: p.weights[0]["w"]
    plus = eqx.tree_at(select, params, select(params) + h * d)
    minus = eqx.tree_at(select, params, select(params) - h * d)
    fd = (float(value_and_grad(plus)[0]) - float(value_and_grad(minus)[0])) / (2 * h)
    ad = float(jnp.sum(grads.weights[0]["w"] * d))
    assert abs(ad - fd) <= 1e-6 * max(abs(fd), 1e-3), (ad, fd)
    # the spiking output's first spike time gets the usual exact gradient as well
    assert np.all(gw[:, 0] != 0)


def test_revive_term_counts_only_dead_neurons():
    c = jnp.array([[-0.3, 0.0, -1.2], [-0.7, -0.1, -0.4]])
    dead = jnp.array([1.0, 0.0, 1.0])
    np.testing.assert_allclose(float(revive_term(c, dead)), (0.3 + 1.2 + 0.7 + 0.4) / 2, rtol=1e-14)
    g = np.asarray(jax.grad(lambda m: revive_term(m, dead))(c))
    np.testing.assert_array_equal(g, -np.array([[1.0, 0.0, 1.0]] * 2) / 2)


def test_silent_and_dead_terms_do_not_depend_on_the_models_voltage_unit():
    """The same LIF network written in two voltage units: threshold 1 and weights w,
    or threshold 40 and weights 40 w (every voltage 40 times larger, the same spikes).
    The silent target's mean spike condition and the dead hidden neuron's condition
    are read in units of the distance from rest to threshold (``condition_scale``),
    so both read-outs give the same scores, dead-neuron values and loss; the raw
    conditions differ by the factor 40."""
    from eventax_dsl.train.engine import batch_loss  # noqa: PLC0415
    from eventax_dsl.train.readout import condition_scale  # noqa: PLC0415

    LIF = load_model("lif")
    w_in = jnp.array([[6.0, 0.5], [5.0, 0.4]])  # hidden 0 fires, hidden 1 stays below
    w_out = jnp.array([[7.0, 0.6, 0.5], [0.3, 0.2, 0.1]])  # output 0 fires, 1 and 2 do not
    readout = Readout(kind="ttfs", t_end=T_MAX, silent_push=1.0, revive=1.0)
    x = jnp.array([[2.0, 6.0]])
    opts = SimOptions(rtol=1e-12, atol=1e-12)
    got = []
    for k in (1.0, 40.0):
        hid, out = LIF.create(2, v_th=k), LIF.create(3, v_th=k)
        net = Network.create([hid, out], 2, [("input", 0), (0, 1)], key=jr.key(0))
        net = eqx.tree_at(lambda n: (n.weights[0]["w"], n.weights[1]["w"]), net,
                          (k * w_in, k * w_out))
        net = attach_quadrature(net, readout.quadrature, readout.tau)
        np.testing.assert_allclose(np.asarray(condition_scale(net.populations[0])), [k, k])
        scores, (c_end, spiked) = jax.jit(
            lambda n: readout.forward(n, x[0], jnp.asarray(0.0), opts, hidden=True))(net)
        params, static = eqx.partition(net, eqx.is_inexact_array)
        loss, _ = batch_loss(params, static, x, jnp.array([1]), jnp.zeros(1), readout, opts)
        raw_units = dataclasses.replace(readout, condition_units="raw")
        _, (c_raw, _) = jax.jit(
            lambda n: raw_units.forward(n, x[0], jnp.asarray(0.0), opts, hidden=True))(net)
        # in model units: the resting distance (k) times the scaled condition
        np.testing.assert_allclose(np.asarray(c_raw), k * np.asarray(c_end), rtol=1e-12)
        got.append((np.asarray(scores), np.asarray(c_end), np.asarray(spiked), float(loss),
                    float(c_raw[1])))
    (s1, c1, sp1, l1, r1), (s40, c40, sp40, l40, r40) = got
    assert list(sp1) == list(sp40) == [True, False]
    assert np.isfinite(s1[0, 0]) and not np.isfinite(s1[0, 1:]).any()  # target 1 silent
    assert s1[1, 1] < 0 and c1[1] < 0  # below threshold
    np.testing.assert_allclose(s40, s1, rtol=1e-9)
    np.testing.assert_allclose(c40, c1, rtol=1e-9)
    np.testing.assert_allclose(l40, l1, rtol=1e-9)
    assert r1 < 0 and abs(r40 / r1 - 40.0) < 1e-6  # the raw conditions differ


@pytest.mark.parametrize("kind", ["ttfs", "integral"])
def test_revive_term_through_simulation_closed_form_and_finite_differences(kind):
    """2 inputs -> 2 hidden LIF -> 2 outputs (LIF for ttfs, LI for the integral loss),
    float64. Hidden neuron 0 fires and drives both outputs; hidden neuron 1 stays below
    threshold. The simulation stops at the second output spike (ttfs) or at T (integral),
    where hidden 1's spike condition equals the closed-form sum of its PSPs minus the
    threshold; dead_mask marks it (only it), and the gradient of the training loss with
    the dead-neuron term, which for ttfs also moves with the stopping time, matches
    central finite differences. With a second sample in which it spikes, the term
    vanishes, on the per-sample-clipped path too."""
    from eventax_dsl.train.engine import batch_loss, clipped_mean_grad, dead_mask  # noqa: PLC0415

    LIF = load_model("lif")
    tm, ts = 10.0, 5.0
    hid = LIF.create(2, tau_mem=tm, tau_syn=ts)
    out = load_model("lif" if kind == "ttfs" else "li").create(2, tau_mem=tm, tau_syn=ts)
    net = Network.create([hid, out], 2, [("input", 0), (0, 1)], key=jr.key(0))
    w_in = jnp.array([[6.0, 0.5], [5.0, 0.4]])
    w_out = jnp.array([[7.0, 6.0], [0.3, 0.2]])
    net = eqx.tree_at(lambda n: (n.weights[0]["w"], n.weights[1]["w"]), net, (w_in, w_out))
    readout = Readout(kind=kind, t_end=T_MAX, revive=0.5)
    if readout.voltage:
        net = attach_quadrature(net, readout.quadrature, readout.tau, readout.integrals)
    x = jnp.array([2.0, 6.0])
    opts = SimOptions(rtol=1e-12, atol=1e-12)
    forward = jax.jit(lambda n, xi: readout.forward(n, xi, jnp.asarray(0.0), opts, hidden=True))
    scores, (c_end, spiked) = forward(net, x)
    scores = np.asarray(scores)
    assert np.isfinite(scores).all() and list(np.asarray(spiked)) == [True, False]
    t_stop = float(scores.max()) if kind == "ttfs" else T_MAX

    def psp(wk, tk):
        s = t_stop - tk
        return wk * ts / (ts - tm) * (np.exp(-s / ts) - np.exp(-s / tm))

    want = sum(psp(float(w_in[k, 1]), float(x[k])) for k in range(2)) - 1.0
    np.testing.assert_allclose(float(c_end[1]), want, rtol=1e-10)

    params, static = eqx.partition(net, eqx.is_inexact_array)
    # every batch below has two samples, so that each function compiles once; here the
    # same sample twice (the loss is the batch mean, the dead mask the batch's)
    xb, yb, tb = jnp.stack([x, x]), jnp.array([1, 1]), jnp.zeros((2,))
    np.testing.assert_array_equal(np.asarray(dead_mask(spiked[None])), [0.0, 1.0])
    off = dataclasses.replace(readout, revive=0.0)
    loss_off = jax.jit(lambda p, xs, ys, ts: batch_loss(p, static, xs, ys, ts, off, opts)[0])
    value_and_grad = jax.jit(jax.value_and_grad(
        lambda p, xs, ys, ts: batch_loss(p, static, xs, ys, ts, readout, opts)[0]))
    value, grads = value_and_grad(params, xb, yb, tb)
    without = float(loss_off(params, xb, yb, tb))
    np.testing.assert_allclose(float(value), without + 0.5 * -float(c_end[1]), rtol=1e-12)
    gw = np.asarray(grads.weights[0]["w"])
    assert np.all(gw[:, 1] < 0), gw  # raising the dead neuron's input weights lowers the loss
    h = 1e-5
    for i, select in enumerate([lambda p: p.weights[0]["w"], lambda p: p.weights[1]["w"]]):
        d = jr.normal(jr.key(4 + i), select(params).shape, jnp.float64)
        plus = eqx.tree_at(select, params, select(params) + h * d)
        minus = eqx.tree_at(select, params, select(params) - h * d)
        fd = (float(value_and_grad(plus, xb, yb, tb)[0])
              - float(value_and_grad(minus, xb, yb, tb)[0])) / (2 * h)
        ad = float(jnp.sum(select(grads) * d))
        assert abs(ad - fd) <= 1e-6 * max(abs(fd), 1e-3), (i, ad, fd)

    # A batch of two samples; hidden neuron 1 spikes in the second only (a strong input 1):
    # no neuron is dead in the batch, so the term vanishes for *both* samples -- also on
    # the per-sample-clipped path, where each sample is differentiated on its own but the
    # mask is the batch's (psum over the vmapped axis; a per-sample mask would charge
    # sample 0 for neuron 1 and change the gradient).
    x2 = jnp.array([[2.0, jnp.inf], [jnp.inf, 1.0]])
    w_hot = eqx.tree_at(lambda p: p.weights[0]["w"], params, w_in.at[1, 1].set(6.0))
    spiked2 = [np.asarray(forward(eqx.combine(w_hot, static), xi)[1][1]).tolist() for xi in x2]
    assert spiked2 == [[True, False], [True, True]]
    y2, t2 = jnp.array([1, 0]), jnp.zeros((2,))
    with_term, g_plain = value_and_grad(w_hot, x2, y2, t2)
    np.testing.assert_allclose(float(with_term), float(loss_off(w_hot, x2, y2, t2)), rtol=1e-12)
    loss_c, _, g_c = jax.jit(lambda p: clipped_mean_grad(p, static, x2, y2, t2, readout, opts, 1e9))(w_hot)
    np.testing.assert_allclose(float(loss_c), float(with_term), rtol=1e-12)
    for a, b in zip(jax.tree_util.tree_leaves(g_c), jax.tree_util.tree_leaves(g_plain)):
        np.testing.assert_allclose(a, b, rtol=1e-10, atol=1e-14)
    if kind != "ttfs":
        return
    # one sample at a time (lanes=1, no vmap across the batch): the mask is still the
    # batch's, from a forward pass of both samples before the reverse passes
    loss_1, _, g_1 = jax.jit(lambda p: clipped_mean_grad(p, static, x2, y2, t2, readout, opts, 1e9,
                                                         lanes=1))(w_hot)
    plain_1, g_p1 = jax.jit(jax.value_and_grad(
        lambda p: batch_loss(p, static, x2, y2, t2, readout, opts, lanes=1)[0]))(w_hot)
    for loss_l, g_l in ((loss_1, g_1), (plain_1, g_p1)):
        np.testing.assert_allclose(float(loss_l), float(with_term), rtol=1e-12)
        for a, b in zip(jax.tree_util.tree_leaves(g_l), jax.tree_util.tree_leaves(g_plain)):
            np.testing.assert_allclose(a, b, rtol=1e-10, atol=1e-14)


def test_spike_condition_quadrature_of_a_qif_neuron_matches_the_trapezoid_rule():
    """QIF in phase form: the voltage is infinite after a reset, the spike condition
    ``phi - 1`` is not. Its integral (numeric quadrature state, solver at 1e-12) equals
    the trapezoid rule on a fine grid of the simulated phase, piece by piece across the
    input's kink and the spike's reset."""
    QIF = load_model("qif")
    net = Network.create([QIF.create(1)], 1, [("input", 0)], key=jr.key(0))
    net = eqx.tree_at(lambda n: n.weights[0]["w"], net, jnp.array([[3.0]]))
    net = attach_quadrature(net, SPIKE_CONDITION, T_MAX)
    times = jnp.linspace(0.0, T_MAX, 2001)
    obs = jax.jit(lambda n: n.state_at(jnp.array([5.0]), times, rtol=1e-12, atol=1e-12))(net)
    t_spike = float(net.spikes(jnp.array([5.0]), T_MAX, rtol=1e-12, atol=1e-12)[0][0])
    assert 5.0 < t_spike < T_MAX  # the neuron spikes once and is reset to phi = 0
    phi = np.asarray(obs["phi"])[:, 0]
    tt = np.asarray(times)
    # each smooth piece: [0, 5] (kink at the input), [5, spike], [spike, T] (after the reset)
    total = 0.0
    for a, b in [(0.0, 5.0), (5.0, t_spike), (t_spike, T_MAX)]:
        inside = (tt > a) & (tt < b)
        seg_t = np.concatenate([[a], tt[inside], [b]])
        f = lambda tq: np.interp(tq, tt[inside], phi[inside] - 1.0)  # noqa: E731
        seg_f = np.concatenate([[f(a)], phi[inside] - 1.0, [f(b)]])
        total += np.trapezoid(seg_f, seg_t)
    np.testing.assert_allclose(float(obs["q_int"][-1, 0]), total, rtol=2e-5)
    with pytest.raises(ValueError, match="does not spike"):
        with_quadrature(load_model("li"), SPIKE_CONDITION)


def test_ttfs_and_cross_entropy_gradients_vs_finite_differences():
    t = jr.uniform(jr.key(1), (4, 3), jnp.float64, 2.0, 20.0)
    y = jnp.array([0, 1, 2, 1])
    _fd_check(lambda s: ttfs_loss(s, y, t_max=T_MAX, tau0=2.0, tau1=6.4, alpha=0.01), t)
    _fd_check(lambda z: cross_entropy(z, y), jr.normal(jr.key(2), (4, 3), jnp.float64))
    _fd_check(lambda z: cross_entropy(z, y, smoothing=0.1), jr.normal(jr.key(3), (4, 3), jnp.float64))
    _fd_check(lambda s: ttfs_loss(s, y, t_max=T_MAX, tau0=2.0, smoothing=0.2), t)


def test_label_smoothing_is_cross_entropy_to_smoothed_targets_with_finite_optimum():
    z = np.asarray(jr.normal(jr.key(4), (5, 4), jnp.float64)) * 3.0
    y = np.array([0, 3, 1, 1, 2])
    eps, K = 0.15, 4
    logp = z - np.log(np.sum(np.exp(z), axis=1, keepdims=True))
    q = np.full((5, K), eps / K)
    q[np.arange(5), y] += 1.0 - eps
    np.testing.assert_allclose(np.asarray(cross_entropy(z, y, smoothing=eps, reduce=False)),
                               -np.sum(q * logp, axis=1), rtol=1e-13)
    np.testing.assert_allclose(float(cross_entropy(z, y, smoothing=0.0)),
                               np.mean(-logp[np.arange(5), y]), rtol=1e-13)
    # two classes: the loss of a gap g = z_label - z_other is stationary at
    # g* = log((1 - eps/2) / (eps/2)); plain cross-entropy still pushes there
    eps = 0.1
    g_star = np.log((1 - eps / 2) / (eps / 2))
    grad = jax.grad(lambda g, e: cross_entropy(jnp.stack([g, 0.0]), 0, smoothing=e))
    assert abs(float(grad(g_star, eps))) < 1e-12
    assert float(grad(g_star - 1.0, eps)) < 0 < float(grad(g_star + 1.0, eps))
    assert float(grad(g_star + 1.0, 0.0)) < 0
    # the TTFS loss smooths its cross-entropy term only
    t = jnp.array([[3.0, 5.0, 9.0]])
    plain = ttfs_loss(t, jnp.array([1]), t_max=T_MAX, tau0=2.0, alpha=0.0)
    smooth = ttfs_loss(t, jnp.array([1]), t_max=T_MAX, tau0=2.0, alpha=0.0, smoothing=0.3)
    np.testing.assert_allclose(float(plain), float(cross_entropy(-t / 2.0, jnp.array([1]))))
    np.testing.assert_allclose(float(smooth), float(cross_entropy(-t / 2.0, jnp.array([1]), smoothing=0.3)))
    # a voltage read-out's logit scale multiplies the logits before the smoothed softmax;
    # predictions are unchanged
    logits = jnp.asarray(z)
    r = Readout(kind="integral", label_smoothing=0.05, logit_scale=7.0)
    np.testing.assert_allclose(float(r.loss(logits, y)),
                               float(cross_entropy(7.0 * logits, y, smoothing=0.05)), rtol=1e-13)
    np.testing.assert_array_equal(np.asarray(r.predict(logits)), np.argmax(z, axis=1))
    with pytest.raises(ValueError, match="logit_scale must be > 0"):
        Readout(kind="max", logit_scale=0.0)
    with pytest.raises(ValueError, match="the ttfs loss scales its logits"):
        Readout(kind="ttfs", logit_scale=2.0)
    for bad in (-0.1, 1.0):
        with pytest.raises(ValueError, match="label smoothing must be in"):
            cross_entropy(z, y, smoothing=bad)
        with pytest.raises(ValueError, match="label_smoothing must be in"):
            Readout(kind="max", label_smoothing=bad)


# ------------------------------------------------------- maximum over time
def test_hermite_max_is_accurate_and_plain_grid_within_its_bound():
    # V(t) = exp(-(t - c)^2 / (2 s^2)) * a: maximum a at t = c, between grid points
    a = jnp.array([1.0, 0.7])
    c = jnp.array([13.3, 21.7])
    s = 4.0
    times = jnp.linspace(0.0, 40.0, 21)  # spacing 2
    tt = times[:, None]
    v = a * jnp.exp(-((tt - c) ** 2) / (2 * s * s))
    dv = -v * (tt - c) / (s * s)
    plain = np.asarray(max_over_time(v))
    refined = np.asarray(max_over_time(v, times, dv))
    dt = 2.0
    bound = np.asarray(a) / s**2 * dt**2 / 8  # max|V''| = a / s^2
    assert np.all(np.asarray(a) - plain <= bound) and np.all(np.asarray(a) - plain > 1e-4)
    # Hermite error bound max|V| dt^4 / 384, with max|V| = 3 a / s^4 (at t = c)
    hermite_bound = 3 * np.asarray(a) / s**4 * dt**4 / 384
    assert np.all(np.abs(refined - np.asarray(a)) <= hermite_bound)
    assert np.all(np.abs(refined - np.asarray(a)) < 0.05 * (np.asarray(a) - plain))
    # batched: leading axes are broadcast
    both = max_over_time(jnp.stack([v, 2 * v]), times, jnp.stack([dv, 2 * dv]))
    np.testing.assert_allclose(np.asarray(both), np.stack([refined, 2 * refined]), rtol=1e-12)


def test_hermite_max_does_not_bulge_over_an_input_kink():
    # an input spike at t_k = 9.95, between grid points 9 and 10, bends the slope of a piecewise
    # linear trace: the cubic through the end slopes bulges by up to 4/27 h |V'| above it
    from eventax_dsl.train.losses import flat_max_sag  # noqa: PLC0415

    times = jnp.linspace(0.0, 20.0, 21)
    t_k = 9.95
    cases = {  # (slope before, slope after): true maximum V(t_k) (or V(0) for the flat trace)
        "flat, then falling": (0.0, -0.1),
        "rising, then falling": (0.1, -0.1),
    }
    for name, (before, after) in cases.items():
        tt = np.asarray(times)
        v = np.where(tt < t_k, before * tt, before * t_k + after * (tt - t_k))
        dv = np.where(tt < t_k, before, after)
        true = before * t_k
        got = max_over_time(jnp.asarray(v)[:, None], times, jnp.asarray(dv)[:, None])
        assert float(got[0]) == pytest.approx(true, abs=1e-12), name
    # the flat trace's maximum is its first sample, so the silent-target term sees it
    v = jnp.asarray(np.where(np.asarray(times) < t_k, 0.0, -0.1 * (np.asarray(times) - t_k)))[:, None]
    dv = jnp.where(times < t_k, 0.0, -0.1)[:, None]
    m = max_over_time(v, times, dv)
    assert float(flat_max_sag(v, m)[0]) > 0.0


def test_hermite_max_gradient_vs_finite_differences():
    times = jnp.linspace(0.0, 10.0, 6)
    v = jr.normal(jr.key(3), (6, 2), jnp.float64)
    dv = jr.normal(jr.key(4), (6, 2), jnp.float64)
    f = lambda x: jnp.sum(max_over_time(x[0], times, x[1]) * jnp.array([1.0, -0.5]))  # noqa: E731
    _fd_check(f, jnp.stack([v, dv]), rel=1e-5)


def test_max_loss_silent_target_term_lifts_only_a_flat_target():
    """Output 0 rises inside the window; output 1 never rises above V(t0) = 0, so its max
    logit is the constant 0 and the cross-entropy gives it no gradient. With silent_push
    the loss of a sample whose target is output 1 gains beta * (V(t0) - mean V), and its
    gradient raises output 1 at every grid time; for target 0 nothing changes."""
    from eventax_dsl.train.losses import flat_max_sag  # noqa: PLC0415

    times = jnp.linspace(0.0, 10.0, 6)
    v = jnp.stack([jnp.array([0.0, 0.5, 1.2, 0.8, 0.3, 0.1]),
                   jnp.array([0.0, -0.2, -0.6, -0.9, -0.7, -0.4])], axis=1)
    dv = jnp.gradient(v, times, axis=0).at[0].set(jnp.array([0.3, -0.1]))
    obs = {"v": v, "v_dot": dv}
    plain, push = Readout(kind="max", t_end=10.0, grid=6), Readout(kind="max", t_end=10.0,
                                                                    grid=6, silent_push=2.0)
    z = plain.logits(obs, jnp.asarray(0.0))
    assert float(z[1]) == 0.0 and float(z[0]) > 1.2
    sag = np.asarray(flat_max_sag(v, z))
    np.testing.assert_allclose(sag, [0.0, 0.0 - float(jnp.mean(v[:, 1]))], rtol=1e-12)
    scores = push.voltage_scores(obs, jnp.asarray(0.0))
    assert scores.shape == (2, 2) and np.array_equal(np.asarray(push.predict(scores[None])), [0])
    for label, extra in ((1, 2.0 * sag[1]), (0, 0.0)):
        y = jnp.array([label])
        base = float(plain.loss(z[None], y))
        np.testing.assert_allclose(float(push.loss(scores[None], y)), base + extra, rtol=1e-12)

    def loss(vv, readout, label):
        o = {"v": vv, "v_dot": dv}
        return readout.loss(readout.voltage_scores(o, jnp.asarray(0.0))[None], jnp.array([label]))

    g_plain = np.asarray(jax.grad(loss)(v, plain, 1))
    g_push = np.asarray(jax.grad(loss)(v, push, 1))
    # the flat target's voltage gets nothing after t0 (V(t0) is the initial state, a
    # constant in a simulation) ... until the term raises it at every grid time
    assert np.all(g_plain[1:, 1] == 0.0)
    np.testing.assert_allclose(g_push[1:, 1], -2.0 / 6, rtol=1e-12)
    np.testing.assert_allclose(g_push[0, 1] - g_plain[0, 1], 2.0 * (1 - 1 / 6), rtol=1e-12)
    np.testing.assert_allclose(g_push[:, 0], g_plain[:, 0], rtol=1e-12)
    np.testing.assert_allclose(np.asarray(jax.grad(loss)(v, push, 0)),
                               np.asarray(jax.grad(loss)(v, plain, 0)), rtol=1e-12)
    with pytest.raises(ValueError, match="ttfs and max losses only"):
        Readout(kind="integral", silent_push=1.0)


# ------------------------------------------- quadrature vs SymPy closed form
W, T_IN, TAU_M, TAU_S, T_END, TAU_W = 1.5, 3.0, 10.0, 5.0, 40.0, 25.0


def _closed_forms(t0):
    """Integral, exp-weighted integral over [t0, T] and the maximum of v, from SymPy."""
    t = sp.symbols("t", real=True)
    w, ts, tm, tsy, T, tw = (sp.Rational(str(x)) for x in (W, T_IN, TAU_M, TAU_S, T_END, TAU_W))
    v = w * tsy / (tsy - tm) * (sp.exp(-(t - ts) / tsy) - sp.exp(-(t - ts) / tm))
    i = w * sp.exp(-(t - ts) / tsy)
    # it solves the LI equations: tau_m v' = -v + i, tau_s i' = -i, v(ts) = 0, i(ts) = w
    assert sp.simplify(tm * sp.diff(v, t) + v - i) == 0 and v.subs(t, ts) == 0
    lo = sp.Max(sp.Rational(str(t0)), ts)  # v = 0 before the input spike
    integral = sp.integrate(v, (t, lo, T)) / (T - t0)
    weighted = sp.integrate(v * sp.exp(-(t - t0) / tw), (t, lo, T)) / (T - t0)
    t_peak = ts + tm * tsy / (tm - tsy) * sp.log(tm / tsy)
    return float(integral), float(weighted), float(v.subs(t, t_peak))


@pytest.fixture(scope="module")
def li_observed():
    LI = load_model("li")
    pop = LI.create(1, tau_mem=TAU_M, tau_syn=TAU_S)
    net = Network.create([pop], 1, [("input", 0)], key=jr.key(0))
    net = eqx.tree_at(lambda n: n.weights[0]["w"], net, jnp.array([[W]]))
    net = attach_quadrature(net, "v", TAU_W)
    times = jnp.linspace(0.0, T_END, 41)  # includes t0 = 0, 12 and T
    obs = jax.jit(lambda n: n.state_at(jnp.array([T_IN]), times, rtol=1e-12, atol=1e-12))(net)
    return times, {k: np.asarray(v)[:, 0] for k, v in obs.items()}


@pytest.mark.parametrize("t0", [0.0, 12.0])
def test_quadrature_integrals_match_closed_form(li_observed, t0):
    times, obs = li_observed
    k0, k1 = int(np.argmin(np.abs(np.asarray(times) - t0))), len(times) - 1
    integral, weighted, _ = _closed_forms(t0)
    q, qe = obs["q_int"][:, None], obs["q_exp"][:, None]  # (time, one neuron)
    got_int = window_integral(q[k0], q[k1], t0, T_END)
    got_exp = window_exp_integral(qe[k0], qe[k1], t0, T_END, TAU_W)
    np.testing.assert_allclose(float(got_int[0]), integral, rtol=1e-9)
    np.testing.assert_allclose(float(got_exp[0]), weighted, rtol=1e-9)
    np.testing.assert_allclose(obs["q_w"], np.exp(-np.asarray(times) / TAU_W), rtol=1e-10)


def test_quadrature_derivative_and_hermite_max_of_li_voltage(li_observed):
    times, obs = li_observed
    tt = np.asarray(times)
    after = tt > T_IN
    s = tt[after] - T_IN
    v = W * TAU_S / (TAU_S - TAU_M) * (np.exp(-s / TAU_S) - np.exp(-s / TAU_M))
    dv = W * TAU_S / (TAU_S - TAU_M) * (-np.exp(-s / TAU_S) / TAU_S + np.exp(-s / TAU_M) / TAU_M)
    np.testing.assert_allclose(obs["v"][after], v, rtol=1e-9, atol=1e-12)
    np.testing.assert_allclose(obs["v_dot"][after], dv, rtol=1e-8, atol=1e-12)
    _, _, peak = _closed_forms(0.0)
    plain = float(max_over_time(obs["v"][:, None])[0])
    refined = float(max_over_time(obs["v"][:, None], times, obs["v_dot"][:, None])[0])
    # the grid (spacing 1 ms) misses the peak by ~1e-4; Hermite recovers it to ~1e-6
    assert 1e-6 < peak - plain and abs(refined - peak) < 1e-2 * (peak - plain)


def test_with_quadrature_validation_and_caching():
    LI = load_model("li")
    assert with_quadrature(LI, "v", 50.0) is with_quadrature(LI, "v", 50) is not LI
    with pytest.raises(ValueError, match="has no observable 'u'"):
        with_quadrature(LI, "u")
    with pytest.raises(ValueError, match="already has quadrature"):
        with_quadrature(with_quadrature(LI), "v")
    with pytest.raises(ValueError, match="tau must be > 0"):
        with_quadrature(LI, "v", 0.0)
    with pytest.raises(ValueError, match="unknown integral.*'max'"):
        with_quadrature(LI, "v", 50.0, ("int", "max"))
    assert with_quadrature(LI, "v", 50.0, ("int",)) is not with_quadrature(LI, "v", 50.0)


def test_quadrature_is_closed_form_for_linear_models_and_matches_numeric():
    """LI's quadrature states are solved in closed form (two small solves on the model's
    own flow, since LI's generator is invertible), also at tau_syn == tau_mem, and agree
    with the numeric path at tight tolerance; QIF (not linear) keeps them numeric."""
    from eventax_dsl.train.quadrature import _invertible_generator  # noqa: PLC0415

    LI, QIF = load_model("li"), load_model("qif")
    assert _invertible_generator(LI, 30.0)
    assert set(QUADRATURE_STATES) <= set(with_quadrature(LI, "v", 30.0).EXACT_STATES)
    assert not set(QUADRATURE_STATES) & set(with_quadrature(QIF, "v", 30.0).EXACT_STATES)
    pop = LI.create(3, tau_mem=10.0, tau_syn=jnp.array([10.0, 10.0 * (1 + 1e-7), 3.0]),
                    bias=jnp.array([0.1, 0.1, -0.2]))
    net = Network.create([pop], 2, [("input", 0)], key=jr.key(0))
    w = jnp.array([[0.7, 0.7, -1.1], [-0.4, -0.4, 0.9]])  # neurons 0 and 1 alike
    net = attach_quadrature(eqx.tree_at(lambda n: n.weights[0]["w"], net, w), "v", 30.0)
    assert closed_form_network(net.populations, SimOptions())
    x = jnp.array([[2.0, 9.0], [5.0, jnp.inf]])
    times = jnp.array([0.0, 7.0, 20.0, 40.0])
    exact = net.state_at(x, times)
    numeric = net.state_at(x, times, integrator="numeric", rtol=1e-12, atol=1e-12)
    for k in QUADRATURE_STATES:
        np.testing.assert_allclose(exact[k], numeric[k], rtol=1e-10, atol=1e-12, err_msg=k)
    # the coincident and the 1e-7-apart neurons see the same input: nearly equal integrals
    np.testing.assert_allclose(exact["q_exp"][:, 0], exact["q_exp"][:, 1], rtol=1e-5)


_REFRACTORY_LIF = """language 1
neuron RLIF
parameters:
    tau_mem = 10 ms
    tau_syn = 5 ms
    t_ref = 3 ms
state:
    v = 0.0
    i = 0.0
equations:
    v' = (-v + i) / tau_mem
    i' = -i / tau_syn
spike when v >= 1 and not refractory
refractory t_ref clamp v
reset:
    v = 0
on input(w):
    i += w
observe:
    v
"""


def test_closed_form_quadrature_while_refractory_matches_numeric():
    """The clamped flow of the quadrature states (V held while refractory) agrees with
    the numeric path, which integrates q' = V with v's derivative clamped to 0."""
    from eventax_dsl import compile_source  # noqa: PLC0415
    from eventax_dsl.compiler import class_from_source  # noqa: PLC0415

    RLIF = class_from_source(compile_source(_REFRACTORY_LIF).source, "rlif_quadrature_test")
    assert set(QUADRATURE_STATES) <= set(with_quadrature(RLIF, "v", 20.0).EXACT_STATES)
    net = Network.create([RLIF.create(2)], 1, [("input", 0)], key=jr.key(0))
    net = eqx.tree_at(lambda n: n.weights[0]["w"], net, jnp.array([[3.0, 0.8]]))
    net = attach_quadrature(net, "v", 20.0)
    x = jnp.array([[1.0, 2.0, 9.0]])
    times = jnp.array([0.0, 5.0, 12.0, 30.0])
    t_spikes = np.asarray(net.spikes(x, 30.0)[0])
    # neuron 0 spikes twice; the first refractory window lies inside [0, 30]
    assert np.isfinite(t_spikes[:2]).all() and t_spikes[0] + 3.0 < 30.0
    exact = net.state_at(x, times)
    numeric = net.state_at(x, times, integrator="numeric", rtol=1e-12, atol=1e-12)
    for k in ("q_int", "q_exp", "v"):
        np.testing.assert_allclose(exact[k], numeric[k], rtol=1e-10, atol=1e-11, err_msg=k)


@pytest.mark.parametrize("model", ["li", "rlif", "qif"])
def test_quadrature_subsets_add_only_their_states_and_match_the_full_wrapper(model):
    """A loss asks only for the integrals it reads; each subset gives the same values as
    the full wrapper: LI by solves, RLIF also by the matrix exponential while clamped,
    QIF numerically (under error control, so to the solver tolerance)."""
    from eventax_dsl import compile_source  # noqa: PLC0415
    from eventax_dsl.compiler import class_from_source  # noqa: PLC0415

    if model == "rlif":
        M = class_from_source(compile_source(_REFRACTORY_LIF).source, "rlif_quadrature_test")
        w = jnp.array([[3.0, 0.8]])
    else:
        M = load_model(model)
        w = jnp.array([[0.9, -0.5]]) if model == "li" else jnp.array([[1.2, 0.6]])
    net = Network.create([M.create(2)], 1, [("input", 0)], key=jr.key(0))
    net = eqx.tree_at(lambda n: n.weights[0]["w"], net, w)
    x = jnp.array([[1.0, 2.0, 9.0]])
    times = jnp.array([0.0, 5.0, 12.0, 30.0])
    # the QIF voltage is infinite after a reset: integrate its (bounded) spike condition
    obs = SPIKE_CONDITION if model == "qif" else "v"
    full = attach_quadrature(net, obs, 20.0).state_at(x, times, rtol=1e-12, atol=1e-12)
    if model == "rlif":  # the clamped flow is used: neuron 0 is refractory inside [0, 30]
        assert np.isfinite(np.asarray(net.spikes(x, 30.0)[0])[:2]).all()
    tol = dict(rtol=1e-9, atol=1e-10) if model == "qif" else dict(rtol=1e-12, atol=1e-13)
    subsets = [(("int",), ("q_int",)), (("exp",), ("q_w", "q_exp"))]
    if model == "li":  # no integral at all: the same for every model (one compile fewer each)
        subsets.append(((), ()))
    for integrals, states in subsets:
        wrapped = attach_quadrature(net, obs, 20.0, integrals)
        cls = type(wrapped.populations[0])
        assert cls.QUAD_STATES == states and cls.state_names() == M.state_names() + states
        assert set(states) <= set(cls.EXACT_STATES) or model == "qif"
        got = wrapped.state_at(x, times, rtol=1e-12, atol=1e-12)
        assert set(got) == set(M.OBSERVABLES) | set(states) | {f"{obs}_dot"}
        for k in (*states, "v", f"{obs}_dot"):
            np.testing.assert_allclose(got[k], full[k], **tol, err_msg=f"{integrals}: {k}")


# -------------------------------- voltage losses through the simulation, FD
def test_voltage_loss_gradients_through_simulation_vs_finite_differences():
    """max (Hermite), integral and exp-integral losses of a 2-input -> 3 LI net, float64."""
    LI = load_model("li")
    pop = LI.create(3, tau_mem=jnp.array([8.0, 10.0, 14.0]), tau_syn=jnp.array([4.0, 5.0, 3.0]))
    net = Network.create([pop], 2, [("input", 0)], key=jr.key(5),
                         weight_init=lambda k, s, d: jr.normal(k, s, d))
    net = attach_quadrature(net, "v", T_MAX)
    x = jnp.array([[2.0, 9.0], [5.0, jnp.inf]])  # two inputs, up to two spikes each
    y = jnp.array([1])
    readout = Readout(kind="max", t_end=T_MAX, grid=26)
    t0 = jnp.asarray(4.0)  # a window that starts after the first input
    times = readout.obs_times(t0)  # t0, ..., T: also the ends of the integrals

    def loss(params):
        n = eqx.combine(params, static)
        obs = n.state_at(x, times, rtol=1e-12, atol=1e-12)  # one simulation for all three
        logits = [
            readout.logits(obs, t0),
            window_integral(obs["q_int"][0], obs["q_int"][-1], t0, T_MAX),
            window_exp_integral(obs["q_exp"][0], obs["q_exp"][-1], t0, T_MAX, T_MAX),
        ]
        return sum(cross_entropy(z[None], y) for z in logits)

    params, static = eqx.partition(net, eqx.is_inexact_array)
    value_and_grad = jax.jit(jax.value_and_grad(loss))
    value, grads = value_and_grad(params)
    assert np.isfinite(float(value))
    h = 1e-5
    for name, select in {"weights": lambda p: p.weights[0]["w"],
                         "tau_mem": lambda p: p.populations[0].params["tau_mem"],
                         "tau_syn": lambda p: p.populations[0].params["tau_syn"]}.items():
        base = select(params)
        d = jr.normal(jr.key(6), base.shape, base.dtype) * jnp.maximum(jnp.abs(base), 1.0)
        plus = eqx.tree_at(select, params, base + h * d)
        minus = eqx.tree_at(select, params, base - h * d)
        fd = (float(value_and_grad(plus)[0]) - float(value_and_grad(minus)[0])) / (2 * h)
        ad = float(jnp.sum(select(grads) * d))
        assert abs(ad - fd) <= 1e-5 * max(abs(fd), 1e-3), f"{name}: autodiff {ad} vs FD {fd}"


def test_per_sample_clipping_is_exact_below_the_bound_and_bounds_each_sample():
    """clipped_mean_grad: with a loose bound it equals the plain batch-mean gradient;
    with a tight one it equals the mean of the per-sample gradients scaled to norm c."""
    from eventax_dsl.train.engine import batch_loss, clipped_mean_grad  # noqa: PLC0415

    LI = load_model("li")
    pop = LI.create(3, tau_mem=jnp.array([8.0, 10.0, 14.0]), tau_syn=jnp.array([4.0, 5.0, 3.0]))
    net = Network.create([pop], 2, [("input", 0)], key=jr.key(5),
                         weight_init=lambda k, s, d: jr.normal(k, s, d))
    net = attach_quadrature(net, "v", T_MAX)
    params, static = eqx.partition(net, eqx.is_inexact_array)
    x = jnp.array([[[2.0], [9.0]], [[5.0], [jnp.inf]], [[1.0], [3.0]]])
    y = jnp.array([1, 0, 2])
    t0 = jnp.zeros((3,))
    readout = Readout(kind="integral", t_end=T_MAX)
    opts = SimOptions()
    # each sample on its own; the plain batch-mean gradient is their mean (this loss has no
    # batch-wide term), and the clipped one scales each to norm c first
    single = eqx.filter_jit(eqx.filter_value_and_grad(
        lambda p, xi, yi, ti: batch_loss(p, static, xi, yi, ti, readout, opts)[0]))
    values, singles = zip(*[single(params, x[i:i + 1], y[i:i + 1], t0[i:i + 1]) for i in range(3)])
    plain = jax.tree_util.tree_map(lambda *gs: sum(gs) / 3, *singles)
    clipped = eqx.filter_jit(clipped_mean_grad)  # the bound as an array: one compile for both
    loss_c, _, loose = clipped(params, static, x, y, t0, readout, opts, jnp.asarray(1e9))
    np.testing.assert_allclose(float(loss_c), sum(float(v) for v in values) / 3, rtol=1e-12)
    for a, b in zip(jax.tree_util.tree_leaves(loose), jax.tree_util.tree_leaves(plain)):
        np.testing.assert_allclose(a, b, rtol=1e-10, atol=1e-14)
    norms = [float(jnp.sqrt(sum(jnp.sum(g ** 2) for g in jax.tree_util.tree_leaves(s))))
             for s in singles]
    c = 0.5 * min(norms)
    _, _, tight = clipped(params, static, x, y, t0, readout, opts, jnp.asarray(c))
    expect = jax.tree_util.tree_map(lambda *gs: sum(g * c / n for g, n in zip(gs, norms)) / 3, *singles)
    for a, b in zip(jax.tree_util.tree_leaves(tight), jax.tree_util.tree_leaves(expect)):
        np.testing.assert_allclose(a, b, rtol=1e-10, atol=1e-14)
    # in chunks of two samples, one after another (the last chunk holds one): the same
    _, _, chunked = clipped(params, static, x, y, t0, readout, opts, jnp.asarray(c), lanes=2)
    for a, b in zip(jax.tree_util.tree_leaves(chunked), jax.tree_util.tree_leaves(expect)):
        np.testing.assert_allclose(a, b, rtol=1e-10, atol=1e-14)
