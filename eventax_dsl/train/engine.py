"""The jitted pieces of training: one optimisation step and one evaluation batch.

Both are module-level ``equinox.filter_jit`` functions whose configuration
(the :class:`~eventax_dsl.train.readout.Readout`, the optimiser, the
:class:`~eventax_dsl.sim.SimOptions`) is passed as *static*, hashable
arguments. So a run compiles each of them once, and a second run with the same
configuration in the same process (a resumed run, a test) reuses the compiled
programs. Batches have a fixed shape (the trainer drops or pads partial ones).

- :func:`train_step` -- loss, accuracy, gradient (reverse mode through the
  event-driven simulation), global-norm clipping and an AdamW update;
- the same step in pieces, for one program per device
  (:meth:`~eventax_dsl.sim.parallel.DataParallel.run`): :func:`grad_step` on
  each device's share, or, when the loss has the dead-neuron term (whose mask
  is the *whole* batch's), :func:`forward_pass` on each share, the mask from
  all shares, then :func:`backward_pass`; and :func:`update_step` with the
  mean gradient;
- :func:`eval_step` -- a full simulation of every sample with spikes recorded:
  scores, loss, correct predictions, spike counts per neuron, time of the first
  spike, and the spikes and output trace of the plot sample.

The network is split with ``eqx.partition(net, trainable(net))`` into
``params`` (what the optimiser updates) and ``static`` (the rest).

Every function simulates the samples of a batch independently; ``lanes`` (static)
says how many run side by side (:func:`per_sample`).
"""

from __future__ import annotations

import functools

import equinox as eqx
import jax
import jax.numpy as jnp
import jax.tree_util as jtu
import optax

from ..sim import simulate
from .losses import revive_term

__all__ = ["EvalOutput", "backward_pass", "dead_mask", "eval_step", "forward_pass", "grad_step",
           "learning_rate", "make_optimizer", "per_sample", "train_step", "update_step"]


def per_sample(fn, args: tuple, lanes: int | None = None):
    """``fn(*sample)`` for every sample of a batch (the leading axis of each leaf of
    ``args``), the outputs stacked along a new leading axis.

    ``lanes=None`` (or at least the batch size): one ``jax.vmap`` over the batch.
    Its samples run in lockstep, so an event loop runs as many iterations as the
    batch's busiest sample, and every sample pays for them. ``lanes=k``: chunks of
    ``k`` samples, each chunk one ``vmap``, one chunk after another
    (``jax.lax.map``; ``k = 1``: every sample on its own). Fewer lanes waste less on
    uneven samples but vectorise less: on a CPU, where one sample of a large network
    already fills the vector units, one lane is the faster (MNIST 784-200-10); for
    small networks (Yin-Yang 5-50-3) and on accelerators, the whole batch is.
    The results are the same either way, up to the order of floating-point sums. A
    batch that is not a multiple of ``lanes`` is padded with copies of its first
    sample, whose outputs are dropped (so every chunk has one shape).
    """
    size = jtu.tree_leaves(args)[0].shape[0]
    if lanes is None or lanes >= size:
        return jax.vmap(fn)(*args)
    pad = -size % lanes
    if pad:
        args = jtu.tree_map(lambda a: jnp.concatenate([a, jnp.repeat(a[:1], pad, axis=0)]), args)
    if lanes == 1:
        out = jax.lax.map(lambda a: fn(*a), args)
    else:  # chunks of `lanes` (not lax.map's batch_size, whose reshape fails on empty leaves)
        chunks = jtu.tree_map(lambda a: a.reshape((a.shape[0] // lanes, lanes) + a.shape[1:]), args)
        out = jax.lax.map(lambda a: jax.vmap(fn)(*a), chunks)
        out = jtu.tree_map(lambda a: a.reshape((a.shape[0] * lanes,) + a.shape[2:]), out)
    return jtu.tree_map(lambda a: a[:size], out) if pad else out


# ---------------------------------------------------------------- optimiser
def _decay_mask(params):
    """Weight decay applies to the weights only, never to time constants or biases."""
    mask = jtu.tree_map(lambda _: False, params)
    return eqx.tree_at(lambda m: m.weights, mask, jtu.tree_map(lambda _: True, params.weights))


def learning_rate(lr: float, schedule: str = "constant", decay_steps: int = 0,
                  final: float = 0.01):
    """The learning rate as AdamW takes it: ``lr`` itself, or a function of the step.

    ``schedule="cosine"``: ``lr * (final + (1 - final) * (1 + cos(pi * k / decay_steps)) / 2)``
    at step ``k``, and ``final * lr`` from ``decay_steps`` on.
    """
    if schedule == "constant":
        return lr
    if schedule == "cosine":
        if decay_steps < 1:
            raise ValueError(f"a cosine schedule needs decay_steps >= 1, got {decay_steps}")
        return optax.cosine_decay_schedule(lr, decay_steps, alpha=final)
    raise ValueError(f"unknown learning-rate schedule {schedule!r}")


@functools.lru_cache(maxsize=None)
def make_optimizer(lr: float, weight_decay: float, clip: float, schedule: str = "constant",
                   decay_steps: int = 0, final: float = 0.01) -> optax.GradientTransformation:
    """Global-norm clipping to ``clip``, then AdamW (decay on weights only) at the
    rate :func:`learning_rate` gives.

    Cached: equal arguments give the *same* object, which keeps the jit cache of
    :func:`train_step` (where it is a static argument) valid across runs.
    """
    return optax.chain(
        optax.clip_by_global_norm(clip),
        optax.adamw(learning_rate(lr, schedule, decay_steps, final), weight_decay=weight_decay,
                    mask=_decay_mask),
    )


# --------------------------------------------------------------------- train
def batch_loss(params, static, x, y, t0, readout, options, axis_name=None, dead=None,
               lanes=None):
    """Mean loss of a batch (``x``: ``(B, in_size[, k])``) and its ``stats``.

    ``stats``: a dict of batch means, ``"acc"`` (the accuracy) and each term of the
    loss by name (:meth:`~eventax_dsl.train.readout.Readout.loss_terms`, and
    ``"revive"``), which sum to the loss.

    With ``readout.revives`` the loss has ``readout.revive`` times the dead-neuron
    term :func:`~eventax_dsl.train.losses.revive_term` over the hidden neurons that
    spiked in none of the batch's samples (:func:`dead_mask`), found in the same
    forward pass. ``axis_name``: when this is called per sample under
    ``jax.vmap(..., axis_name=axis_name)`` (:func:`clipped_mean_grad`), "the batch"
    is the whole vmapped batch, not the one sample. ``dead``: the mask given
    instead. ``lanes``: see :func:`per_sample`.
    """
    net = eqx.combine(params, static)
    if not readout.revives:
        scores = per_sample(lambda xi, ti: readout.forward(net, xi, ti, options), (x, t0), lanes)
        loss, stats = _reduce(readout.loss_terms(scores, y))
    else:
        scores, (c_end, spiked) = per_sample(
            lambda xi, ti: readout.forward(net, xi, ti, options, hidden=True), (x, t0), lanes)
        if dead is None:
            dead = dead_mask(spiked, axis_name)
        loss, stats = _reduce(_revived_terms(readout, scores, c_end, y, dead))
    stats["acc"] = jnp.mean(readout.predict(scores) == y)
    return loss, stats


def _revived_terms(readout, scores, c_end, y, dead):
    """The loss terms with the dead-neuron term, per sample (:func:`batch_loss`,
    :func:`backward_pass`)."""
    terms = readout.loss_terms(scores, y)
    terms["revive"] = readout.revive * revive_term(c_end, dead, reduce=False)
    return terms


def _reduce(terms: dict):
    """``(loss, means)``: each per-sample term's batch mean, and their sum."""
    means = _mean_stats(terms)
    return sum(means.values()), means


def _mean_stats(stats: dict) -> dict:
    """Per-sample ``stats`` (:func:`batch_loss` under ``vmap``) to batch means."""
    return {name: jnp.mean(v) for name, v in stats.items()}


def dead_mask(spiked, axis_name=None):
    """``(n_hidden,)``: 1.0 for each hidden neuron that spiked in none of the samples,
    else 0.0, as a constant (no gradient flows through it).

    ``spiked``: ``(B, n_hidden)`` bool, whether each neuron spiked in each sample
    (:meth:`~eventax_dsl.train.readout.Readout.forward` with ``hidden=True``). Under
    ``jax.vmap(..., axis_name=axis_name)`` the count is also summed over the vmapped
    axis, so every sample sees the mask of the whole batch.
    """
    count = jnp.sum(spiked.astype(jnp.int32), axis=0)
    if axis_name is not None:
        count = jax.lax.psum(count, axis_name)
    return jax.lax.stop_gradient((count == 0).astype(jnp.result_type(float)))


def clipped_mean_grad(params, static, x, y, t0, readout, options, sample_clip: float, dead=None,
                      lanes=None):
    """Batch-mean loss, stats (:func:`batch_loss`) and gradient, each sample's gradient
    clipped first.

    Why: an exact spike-time gradient is ``-(dc/dtheta) / (dc/dt)``, which diverges
    as a spike approaches a grazing threshold crossing (``dc/dt -> 0``), where the spike
    is about to disappear. Measured on Yin-Yang LIF TTFS (batch 256, at the best
    epoch of a run): per-sample gradient norms had median 14 and maximum 300, and five
    samples held 61 % of the squared norm, so a handful of near-grazing spikes set the
    direction of every step, and the run drifted into silence. Clipping each sample's
    gradient to ``sample_clip`` (``g_i * min(1, c / |g_i|)``) bounds that pull and leaves
    every sample below the bound exact. Samples are simulated independently, so the
    per-sample gradients cost no extra simulation, only ``B`` copies of the gradient.
    The dead-neuron mask is still the whole batch's (a ``psum`` over the vmapped axis,
    or ``dead`` if given). With ``lanes`` (:func:`per_sample`) fewer than the batch, the
    samples do not run in one ``vmap``; a mask that is needed and not given then
    comes from the forward pass of all samples first (:func:`forward_pass`), and the
    reverse passes follow (:func:`backward_pass`).
    """
    value_and_grad = eqx.filter_value_and_grad(batch_loss, has_aux=True)
    if lanes is None or lanes >= x.shape[0]:
        def one(p, xi, yi, ti):
            return value_and_grad(p, static, xi[None], yi[None], ti[None], readout, options,
                                  axis_name="sample", dead=dead)

        (losses, stats), grads = jax.vmap(one, in_axes=(None, 0, 0, 0), axis_name="sample")(
            params, x, y, t0)
        return jnp.mean(losses), _mean_stats(stats), _clipped_mean(grads, sample_clip)
    if readout.revives and dead is None:
        pullback, out, spiked = _forward_pass(params, static, x, t0, readout, options, True, lanes)
        return _backward_pass(pullback, out, y, dead_mask(spiked), readout, sample_clip, lanes)

    def one(xi, yi, ti):
        return value_and_grad(params, static, xi[None], yi[None], ti[None], readout, options,
                              dead=dead)

    (losses, stats), grads = per_sample(one, (x, y, t0), lanes)
    return jnp.mean(losses), _mean_stats(stats), _clipped_mean(grads, sample_clip)


def _clipped_mean(grads, sample_clip: float):
    """The mean over the leading (sample) axis of per-sample gradients, each scaled
    to norm at most ``sample_clip`` first (see :func:`clipped_mean_grad`)."""
    leaves = [g for g in jtu.tree_leaves(grads) if g is not None]
    sq = sum(jnp.sum(jnp.reshape(g, (g.shape[0], -1)) ** 2, axis=1) for g in leaves)
    norm = jnp.sqrt(sq)
    scale = jnp.where(norm > sample_clip, sample_clip / jnp.where(norm > 0, norm, 1.0), 1.0)
    return jtu.tree_map(
        lambda g: jnp.mean(g * jnp.reshape(scale, (-1,) + (1,) * (g.ndim - 1)).astype(g.dtype), axis=0),
        grads)


@eqx.filter_jit
@eqx.debug.assert_max_traces(max_traces=None)  # counts traces (tests check for recompiles)
def train_step(params, opt_state, static, x, y, t0, readout, optimizer, options,
               sample_clip=None, floors=(), lanes=None):
    """One AdamW step on a batch: ``(params, opt_state, loss, stats)``, ``stats`` as
    :func:`batch_loss` gives them (the accuracy and each loss term's batch mean).

    With ``sample_clip`` (a float, static) every sample's gradient is scaled down to
    norm at most ``sample_clip`` before the batch average (:func:`clipped_mean_grad`).
    ``floors`` (static; :func:`~eventax_dsl.train.build.time_constant_floors`): after
    the update each listed parameter is clipped to at least its bound. With
    ``readout.revive > 0`` the loss has the dead-neuron term over the hidden neurons
    that spiked in none of this batch's samples (:func:`dead_mask`). ``lanes``
    (static): samples simulated side by side (:func:`per_sample`).
    """
    loss, stats, grads = _loss_and_grad(params, static, x, y, t0, readout, options, sample_clip,
                                        lanes=lanes)
    params, opt_state = _update(params, opt_state, grads, optimizer, floors)
    return params, opt_state, loss, stats


def _loss_and_grad(params, static, x, y, t0, readout, options, sample_clip, dead=None,
                   lanes=None):
    if sample_clip is None:
        (loss, stats), grads = eqx.filter_value_and_grad(batch_loss, has_aux=True)(
            params, static, x, y, t0, readout, options, dead=dead, lanes=lanes
        )
        return loss, stats, grads
    return clipped_mean_grad(params, static, x, y, t0, readout, options, sample_clip, dead,
                             lanes)


def _update(params, opt_state, grads, optimizer, floors):
    updates, opt_state = optimizer.update(grads, opt_state, params)
    params = eqx.apply_updates(params, updates)
    return apply_floors(params, floors), opt_state


@eqx.filter_jit
@eqx.debug.assert_max_traces(max_traces=None)
def forward_pass(params, static, x, t0, readout, options, per_sample: bool = False,
                 lanes=None):
    """The first half of :func:`grad_step` for a loss with the dead-neuron term:
    ``(pullback, (scores, c_end), spiked)``.

    The forward pass of a batch (or a device's share of one), keeping what the
    reverse pass needs (``pullback``, from :func:`jax.vjp`; with ``per_sample``, one
    per sample, for per-sample clipping), the scores and the hidden neurons'
    conditions ``c_end``, and ``spiked`` ``(B, n_hidden)``. The dead-neuron mask of
    the *whole* batch is :func:`dead_mask` of all shares' ``spiked`` joined; then
    :func:`backward_pass`. So a batch split across devices gets exactly the step of
    :func:`train_step`, with one simulation per sample, as there.
    """
    return _forward_pass(params, static, x, t0, readout, options, per_sample, lanes)


def _forward_pass(params, static, x, t0, readout, options, one_by_one: bool, lanes):
    def run(p, xs, ts, lanes=None):
        net = eqx.combine(p, static)
        scores, (c_end, spiked) = per_sample(
            lambda xi, ti: readout.forward(net, xi, ti, options, hidden=True), (xs, ts), lanes)
        return (scores, c_end), spiked

    if not one_by_one:
        out, pullback, spiked = jax.vjp(lambda p: run(p, x, t0, lanes), params, has_aux=True)
        return pullback, out, spiked

    def one(xi, ti):
        out, pullback, spiked = jax.vjp(lambda p: run(p, xi[None], ti[None]), params, has_aux=True)
        return pullback, out, spiked

    pullback, out, spiked = per_sample(one, (x, t0), lanes)
    squeeze = lambda a: a[:, 0]  # noqa: E731 - (B, 1, ...) -> (B, ...)
    return pullback, jtu.tree_map(squeeze, out), squeeze(spiked)


@eqx.filter_jit
@eqx.debug.assert_max_traces(max_traces=None)
def backward_pass(pullback, out, y, dead, readout, sample_clip=None, lanes=None):
    """The second half of :func:`grad_step` after :func:`forward_pass`:
    ``(loss, stats, gradient)`` of the share (:func:`batch_loss`), with ``dead`` the whole batch's
    dead-neuron mask; ``sample_clip`` as in :func:`train_step` (then ``forward_pass``
    must have run with ``per_sample=True``)."""
    return _backward_pass(pullback, out, y, dead, readout, sample_clip, lanes)


def _backward_pass(pullback, out, y, dead, readout, sample_clip, lanes):
    scores, _ = out

    def loss_of(o, labels):
        return _reduce(_revived_terms(readout, *o, labels, dead))

    value_and_grad = jax.value_and_grad(loss_of, has_aux=True, allow_int=True)
    acc = jnp.mean(readout.predict(scores) == y)
    if sample_clip is None:
        (loss, stats), cotangent = value_and_grad(out, y)
        (grads,) = pullback(cotangent)
        return loss, {**stats, "acc": acc}, grads

    def one(pull, o, yi):
        o1 = jtu.tree_map(lambda a: a[None], o)
        (loss, stats), cotangent = value_and_grad(o1, yi[None])
        return loss, stats, pull(cotangent)[0]

    losses, stats, grads = per_sample(one, (pullback, out, y), lanes)
    return jnp.mean(losses), {**_mean_stats(stats), "acc": acc}, _clipped_mean(grads, sample_clip)


@eqx.filter_jit
@eqx.debug.assert_max_traces(max_traces=None)
def grad_step(params, static, x, y, t0, readout, options, sample_clip=None, dead=None,
              lanes=None):
    """``(loss, stats, gradient)`` of a batch (or a device's share of one), as in
    :func:`train_step` but without the update; ``dead``: the dead-neuron mask of the
    whole batch (needed when ``readout.revives``)."""
    return _loss_and_grad(params, static, x, y, t0, readout, options, sample_clip, dead, lanes)


@eqx.filter_jit
@eqx.debug.assert_max_traces(max_traces=None)
def update_step(params, opt_state, grads, optimizer, floors=()):
    """The optimiser update of :func:`train_step` with a given gradient:
    ``(params, opt_state)``."""
    return _update(params, opt_state, grads, optimizer, floors)


def apply_floors(params, floors):
    """``params`` with ``populations[p].params[name]`` raised to at least ``bound``
    for each ``(p, name, bound)`` in ``floors`` (skipped where not trained), and every
    trained transmission delay raised to at least 0. (The simulator reads a negative
    delay as 0, where its gradient vanishes: a delay the optimiser pushed below 0
    would stay there for good; at 0 it still has a gradient.)"""
    for p, name, bound in floors:
        value = params.populations[p].params.get(name)
        if value is not None:
            params = eqx.tree_at(lambda n: n.populations[p].params[name], params,
                                 jnp.maximum(value, jnp.asarray(bound, value.dtype)))
    if params.delays is not None and any(d is not None for d in params.delays):
        params = eqx.tree_at(lambda n: n.delays, params,
                             tuple(None if d is None else jnp.maximum(d, 0.0)
                                   for d in params.delays),
                             is_leaf=lambda x: x is None)
    return params


# ---------------------------------------------------------------------- eval
class EvalOutput(eqx.Module):
    """What :func:`eval_step` returns for one batch of ``B`` samples.

    - ``loss_sum``, ``cross_entropy_sum`` (the loss's cross-entropy term alone),
      ``correct``: summed over the valid samples;
    - ``counts``: ``(B, n_neurons)`` spikes of every neuron (global ids);
    - ``first``: ``(B,)`` first spike time of population ``first_pop`` (``inf``: none);
    - ``predictions``: ``(B,)``;
    - ``spike_times``, ``spike_ids``: spikes of sample 0 (padded ``inf`` / ``-1``);
    - ``trace``: ``(P, n_out)`` the plotted output observable of sample 0 at
      the plot times (``None`` if nothing is plotted);
    - ``status``: ``(B,)`` the simulator's status of each sample (0: fine), and
      ``messages`` its messages: evaluation does not stop inside the jitted step
      on a failed simulation, the caller raises it on the host with
      :func:`~eventax_dsl.sim.status_error` (and can say which sample failed).
    """

    loss_sum: jax.Array
    cross_entropy_sum: jax.Array
    correct: jax.Array
    counts: jax.Array
    first: jax.Array
    predictions: jax.Array
    spike_times: jax.Array
    spike_ids: jax.Array
    trace: jax.Array | None
    status: jax.Array
    messages: tuple[str, ...] = eqx.field(static=True)


@eqx.filter_jit
@eqx.debug.assert_max_traces(max_traces=None)
def eval_step(params, static, x, y, t0, valid, plot_mask, plot_times, readout, options,
              first_pop: int, trace_observable: str | None, lanes: int | None = None):
    """Simulate a batch to ``readout.t_end`` with spikes recorded (see :class:`EvalOutput`).

    ``valid``: ``(B,)`` bool, padding rows excluded from sums. ``plot_mask``:
    ``(B,)`` bool, rows observed at ``plot_times`` (``(P,)``) for the voltage
    plot; other rows put those observation slots at ``t = 0``, where the event
    loop records them all in one iteration, so they cost nothing. ``lanes``: see
    :func:`per_sample`.
    """
    net = eqx.combine(params, static)
    n_obs = readout.n_obs
    n_neurons = net.n_neurons
    plot = trace_observable is not None

    messages = []  # the simulator's status messages (static), taken while tracing

    def one(xi, ti, is_plot):
        parts = [readout.obs_times(ti)] if n_obs else []
        if plot:
            parts.append(jnp.where(is_plot, plot_times, jnp.zeros_like(plot_times)))
        obs = jnp.concatenate(parts) if parts else None
        res = simulate(net, xi, readout.t_end, options=options, obs_times=obs, record_spikes=True,
                       check=False)
        messages[:] = [res.messages]
        mine = None if not n_obs else {k: v[:n_obs] for k, v in res.observed.items()}
        if readout.voltage:
            scores = readout.voltage_scores(mine, ti)
        else:
            scores = readout.ttfs_scores(net, res.first_spike[net.output], mine)
        ids = jnp.where(res.spike_ids >= 0, res.spike_ids, n_neurons)
        counts = jnp.zeros((n_neurons,), jnp.int32).at[ids].add(1, mode="drop")
        first = jnp.min(res.first_spike[first_pop], initial=jnp.inf)
        trace = res.observed[trace_observable][n_obs:] if plot else None
        return scores, counts, first, res.spike_times, res.spike_ids, trace, res.status

    scores, counts, first, times, ids, trace, status = per_sample(one, (x, t0, plot_mask), lanes)
    terms = readout.loss_terms(scores, y)
    per = sum(terms.values())
    pred = readout.predict(scores)
    zero = jnp.zeros_like(per)
    return EvalOutput(
        loss_sum=jnp.sum(jnp.where(valid, per, zero)),
        cross_entropy_sum=jnp.sum(jnp.where(valid, terms["cross_entropy"], zero)),
        correct=jnp.sum(valid & (pred == y)),
        counts=counts,
        first=first,
        predictions=pred,
        spike_times=times[0],
        spike_ids=ids[0],
        trace=None if trace is None else trace[0],
        status=status,
        messages=messages[0],
    )
