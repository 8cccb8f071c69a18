"""Loss functions for classification with spiking networks (pure, batched JAX functions).

Two families, matching the two kinds of read-out:

**Time to first spike** (spiking output layer; Wunderlich & Pehle, "Event-based
backpropagation can compute exact gradients for spiking neural networks",
Sci. Rep. 11:12829, 2021). The class is the output neuron that spikes first:
:func:`ttfs_loss`, :func:`ttfs_predict`.

**Voltage read-out** (non-spiking ``li`` output layer; Nowotny, Turner &
Knight, "Loss shaping enhances exact gradient learning with Eventprop in
spiking neural networks", Neuromorph. Comput. Eng. 5:014001, 2025). Each output
neuron's membrane voltage ``V(t)`` over the window ``[t0, T]`` is reduced to one
logit, and the loss is the softmax cross-entropy of those logits:

=================  =========================================================
``max``            ``max_{t0 <= t <= T} V(t)``  -- :func:`max_over_time`
``integral``       ``(1 / (T - t0)) * int_{t0}^{T} V(t) dt``  -- :func:`window_integral`
``exp-integral``   ``(1 / (T - t0)) * int_{t0}^{T} V(t) exp(-(t - t0) / tau) dt``
                   -- :func:`window_exp_integral` (``tau = T`` by default)
=================  =========================================================

The integrals are not Riemann sums: the output model is wrapped with
quadrature states (:mod:`eventax_dsl.train.quadrature`) that the ODE solver
integrates together with the network, to the solver's tolerance; these
functions only combine the quadrature states read at ``t0`` and ``T``.

Every function takes a batch (leading axes are broadcast; the time axis, where
there is one, is ``-2`` and the output-neuron axis ``-1``) and is
differentiable without NaNs.
"""

from __future__ import annotations

import jax
import jax.numpy as jnp

__all__ = [
    "at_label",
    "cross_entropy",
    "finite_times",
    "flat_max_sag",
    "max_over_time",
    "revive_term",
    "ttfs_loss",
    "ttfs_predict",
    "ttfs_terms",
    "voltage_predict",
    "window_exp_integral",
    "window_integral",
]


# ------------------------------------------------------------------ helpers
def finite_times(t_first, t_max):
    """First-spike times with "never spiked" (``inf``) replaced by ``t_max``.

    This must happen *before* any arithmetic on the times: ``jnp.where`` passes a
    zero cotangent to the ``inf`` entries, whereas e.g. ``exp(-inf)`` in a softmax
    would give ``0 * inf = NaN`` in the backward pass. A silent neuron is treated
    as if it spiked at ``t_max`` (the latest possible time), with zero gradient.
    """
    t_first = jnp.asarray(t_first)
    return jnp.where(jnp.isfinite(t_first), t_first, jnp.asarray(t_max, t_first.dtype))


def at_label(values, labels):
    """Each sample's entry at its label: ``values[..., labels]`` for ``values`` of shape
    ``(..., n_classes)`` and integer ``labels`` of shape ``(...)``."""
    labels = jnp.asarray(labels)
    return jnp.take_along_axis(jnp.asarray(values), labels[..., None], axis=-1)[..., 0]


def cross_entropy(logits, labels, *, smoothing: float = 0.0, reduce: bool = True):
    """Softmax cross-entropy ``-log softmax(logits)[label]``, optionally label-smoothed.

    ``logits``: ``(..., n_classes)``; ``labels``: integer ``(...)``. Returns the
    mean over all samples (``reduce=True``) or the per-sample values.

    **Label smoothing** (``smoothing = eps`` in ``[0, 1)``; Szegedy et al. 2016):
    the target distribution is ``1 - eps + eps / K`` on the label and ``eps / K``
    on each of the ``K - 1`` other classes, so the loss is
    ``-(1 - eps) * log p_label - (eps / K) * sum_k log p_k``. Plain cross-entropy
    keeps pushing the logit of a correctly classified sample away from the others
    for ever (its gradient only tends to zero), which a spiking network can serve
    by ever more spikes. With ``eps > 0`` the loss has a finite optimum: for two
    classes at the logit gap ``log((1 - eps / 2) / (eps / 2))`` (2.94 for
    ``eps = 0.1``), and a larger gap is pulled back.
    """
    if not 0.0 <= smoothing < 1.0:
        raise ValueError(f"label smoothing must be in [0, 1), got {smoothing}")
    logp = jax.nn.log_softmax(logits, axis=-1)
    per = -at_label(logp, labels)
    if smoothing:
        per = (1.0 - smoothing) * per - smoothing * jnp.mean(logp, axis=-1)
    return jnp.mean(per) if reduce else per


# -------------------------------------------------------- time to first spike
def revive_term(c_end, dead, *, reduce: bool = True):
    """The dead-neuron term: ``sum_j dead_j * (-c_j)``, per sample (mean over samples
    if ``reduce``).

    ``c_end``: ``(..., n)`` each hidden neuron's spike condition where the simulation
    stopped (``c >= 0``: spike; a neuron that has not spiked by then has ``c < 0``);
    ``dead``: ``(n,)`` 1 for the neurons that spiked in none of the batch's samples, 0
    otherwise (treated as a constant). A dead neuron receives no gradient from any
    spike-time loss; this term's gradient raises its spike condition towards threshold
    until it spikes somewhere in a batch, and then the term is gone.
    """
    dead = jnp.asarray(dead, jnp.asarray(c_end).dtype)
    per = jnp.sum(-jnp.asarray(c_end) * dead, axis=-1)
    return jnp.mean(per) if reduce else per


def ttfs_loss(
    t_first,
    labels,
    *,
    t_max: float,
    tau0: float = 0.5,
    tau1: float = 6.4,
    alpha: float = 3e-3,
    c_mean=None,
    silent_push: float = 0.0,
    smoothing: float = 0.0,
    reduce: bool = True,
):
    """Time-to-first-spike loss of Wunderlich & Pehle (2021), eq. (13).

    With ``t_k`` the first spike time of output neuron ``k`` (ms) and ``y`` the label::

        L = -log( exp(-t_y / tau0) / sum_k exp(-t_k / tau0) ) + alpha * (exp(t_y / tau1) - 1)

    The first term is the softmax cross-entropy of the logits ``-t / tau0``: it
    pushes the target neuron to spike before the others. The second, added to it
    (not inside the log), rewards an *early* target spike. Defaults are the
    paper's Yin-Yang values (``tau0 = 0.5 ms``, ``tau1 = 6.4 ms``,
    ``alpha = 3e-3``).

    **Silent outputs.** A neuron that never spiked has ``t = inf``; it is replaced
    by ``t_max`` with :func:`finite_times` before anything else, so the loss is
    finite and its gradient NaN-free. A silent neuron's spike time has no
    gradient: nothing in the two terms above moves it towards spiking, and a
    sample whose target never spikes teaches the network nothing about its
    target. Initialise the network so that outputs spike, and/or add

    **the silent-target term** (``silent_push = beta > 0``; needs ``c_mean``, the
    mean over ``[0, t_max]`` of each output's spike condition ``c`` (``c >= 0``:
    spike; ``v - v_th`` for ``lif``), ``(..., n_out)``)::

        L += beta * (-cbar_y)     only where the target y never spiked

    A neuron that never spiked has ``c < 0`` throughout, so the term is positive: the
    target's mean distance below threshold. Its gradient raises the target towards
    threshold; it is zero for every sample whose target spiked, so it leaves the
    loss of eq. (13) unchanged where that loss has a gradient. Measured on Yin-Yang
    LIF 5-50-3: see docs/training.md.

    ``smoothing``: label smoothing of the cross-entropy term (:func:`cross_entropy`).

    ``t_first``: ``(..., n_out)``; ``labels``: integer ``(...)``.
    """
    terms = ttfs_terms(t_first, labels, t_max=t_max, tau0=tau0, tau1=tau1, alpha=alpha,
                       c_mean=c_mean, silent_push=silent_push, smoothing=smoothing)
    per = sum(terms.values())
    return jnp.mean(per) if reduce else per


def ttfs_terms(t_first, labels, *, t_max: float, tau0: float = 0.5, tau1: float = 6.4,
               alpha: float = 3e-3, c_mean=None, silent_push: float = 0.0,
               smoothing: float = 0.0) -> dict:
    """The terms of :func:`ttfs_loss`, per sample, as a dict whose values sum to it:
    ``"cross_entropy"``, ``"early_spike"`` (``alpha * (exp(t_y / tau1) - 1)``) and, with
    ``silent_push > 0``, ``"silent_push"``. Arguments as in :func:`ttfs_loss`."""
    labels = jnp.asarray(labels)
    t = finite_times(t_first, t_max)
    terms = {"cross_entropy": cross_entropy(-t / tau0, labels, smoothing=smoothing,
                                            reduce=False),
             "early_spike": alpha * jnp.expm1(at_label(t, labels) / tau1)}
    if silent_push:
        if c_mean is None:
            raise ValueError("ttfs_loss: silent_push > 0 needs c_mean (the outputs' mean "
                             "spike condition)")
        silent = ~jnp.isfinite(at_label(t_first, labels))
        push = -silent_push * at_label(c_mean, labels)
        terms["silent_push"] = jnp.where(silent, push, jnp.zeros_like(push))
    return terms


def ttfs_predict(t_first):
    """The class whose output neuron spiked first; ``-1`` where no output spiked.

    Ties go to the lower index. ``-1`` never equals a label, so a sample without
    an output spike counts as wrong.
    """
    t_first = jnp.asarray(t_first)
    any_spike = jnp.any(jnp.isfinite(t_first), axis=-1)
    return jnp.where(any_spike, jnp.argmin(t_first, axis=-1), -1)


def voltage_predict(logits):
    """The class with the largest logit."""
    return jnp.argmax(logits, axis=-1)


# ---------------------------------------------------------- voltage read-outs
def flat_max_sag(values, maxima):
    """How far an output whose maximum is its first sample sank below it: ``(..., n)``.

    ``values``: ``(..., G, n)`` a voltage sampled over the window (the first sample at
    its start ``t0``); ``maxima``: ``(..., n)`` its maximum (:func:`max_over_time`).
    Where the maximum *is* the first sample (the output never rose above ``V(t0)``),
    the result is ``V(t0) - mean_k V(t_k) >= 0``; elsewhere 0.

    Why: such an output's max logit is the constant ``V(t0)`` and has no gradient, so
    a cross-entropy that wants it higher cannot move it. The term
    ``beta * flat_max_sag`` (on the target only, see
    :meth:`~eventax_dsl.train.readout.Readout.loss`) raises its voltage over the whole
    window until it has a maximum inside it, and then vanishes.
    """
    values = jnp.asarray(values)
    start = values[..., 0, :]
    flat = maxima == start
    sag = start - jnp.mean(values, axis=-2)
    return jnp.where(flat, sag, jnp.zeros_like(sag))


def window_integral(q_start, q_end, t_start, t_end):
    """Mean of ``V`` over ``[t_start, t_end]`` from a quadrature state ``q' = V``.

    ``(q(t_end) - q(t_start)) / (t_end - t_start)``. ``q_*``: ``(..., n_out)``,
    ``t_*``: ``(...)`` (one window per sample; e.g. XOR trials start at their cue).
    """
    width = jnp.asarray(t_end - t_start)[..., None]
    return (q_end - q_start) / width


def window_exp_integral(qe_start, qe_end, t_start, t_end, tau):
    """Exponentially weighted mean ``(1 / (t1 - t0)) int_{t0}^{t1} V(t) exp(-(t - t0) / tau) dt``.

    From the quadrature state ``qe' = V w`` with ``w = exp(-t / tau)`` (so
    ``qe(t) = int_0^t V(s) exp(-s / tau) ds``)::

        int_{t0}^{t1} V exp(-(t - t0)/tau) dt = (qe(t1) - qe(t0)) * exp(t0 / tau)

    For ``t0 = 0`` and ``tau = t1 = T`` this is the loss-shaping read-out
    ``int_0^T V(t) exp(-t/T) dt / T``: early voltage counts more than late.
    """
    t_start = jnp.asarray(t_start)
    width = jnp.asarray(t_end - t_start)[..., None]
    return (qe_end - qe_start) * jnp.exp(t_start / tau)[..., None] / width


def max_over_time(values, times=None, derivatives=None):
    """Maximum over time of sampled values, optionally refined by cubic Hermite interpolation.

    ``values``: ``(..., G, n)``, the read-out sampled at ``G`` increasing times
    (axis ``-2``); ``times``: ``(..., G)`` and ``derivatives`` (``dV/dt`` at the
    same times, ``(..., G, n)``) are needed for the refinement only.

    Without derivatives this is ``max_k V(t_k)``: for a ``V`` with bounded second
    derivative it underestimates the true maximum by at most
    ``max|V''| * dt**2 / 8`` (``dt`` the grid spacing), since the maximum is at
    most ``dt / 2`` from a grid point where ``V' = 0``.

    With derivatives, an interval ``[t_k, t_{k+1}]`` where ``V`` turns from rising
    to falling (``V'_k > 0 > V'_{k+1}``) holds a maximum inside: it is taken as the
    maximum of the cubic Hermite interpolant of ``(V_k, V'_k, V_{k+1}, V'_{k+1})``
    (at a root of its quadratic derivative), capped by where the tangents at the
    two ends meet. Where ``V`` is smooth the cubic's error is ``O(dt**4)``
    (``max|V''''| dt**4 / 384``) and the cap, an upper bound of a concave ``V``,
    does not bind. An input spike inside the interval makes ``V'`` jump; the cubic
    then bulges by up to ``4/27 dt |V'|`` above the trace, but a trace that is
    concave on each side of the jump still lies under both tangents, so the cap
    holds the result at most ``O(dt**2)`` above the true maximum. (The cap alone is
    exact for a piecewise linear trace; the result, the smaller of cap and cubic,
    can fall below the maximum when the kink is in mid-interval.) Intervals
    without such a turn (an input spike that only bends a flat or falling trace
    downwards, say) add nothing to the grid maximum. Gradients flow to the values
    and derivatives that define the maximising piece (through the root, where the
    derivative of the cubic vanishes, so the envelope theorem holds).
    """
    values = jnp.asarray(values)
    grid_max = jnp.max(values, axis=-2)
    if derivatives is None:
        return grid_max
    if times is None:
        raise ValueError("max_over_time: the Hermite refinement needs the sample times")
    times = jnp.asarray(times, values.dtype)
    v0, v1 = values[..., :-1, :], values[..., 1:, :]
    m0, m1 = derivatives[..., :-1, :], derivatives[..., 1:, :]
    h = (times[..., 1:] - times[..., :-1])[..., None]
    # p(s) = h00 v0 + h10 h m0 + h01 v1 + h11 h m1,  s in [0, 1]
    # p'(s) = a s^2 + b s + c
    a = 6 * v0 + 3 * h * m0 - 6 * v1 + 3 * h * m1
    b = -6 * v0 - 4 * h * m0 + 6 * v1 - 2 * h * m1
    c = h * m0
    disc = b * b - 4 * a * c
    real = disc > 0
    root = jnp.sqrt(jnp.where(real, disc, jnp.ones_like(disc)))
    sign = jnp.where(b >= 0, jnp.ones_like(b), -jnp.ones_like(b))
    q = -0.5 * (b + sign * root)  # stable roots: q / a and c / q
    ok1 = real & (a != 0)
    ok2 = real & (q != 0)
    s1 = jnp.where(ok1, q / jnp.where(ok1, a, jnp.ones_like(a)), 0.0)
    s2 = jnp.where(ok2, c / jnp.where(ok2, q, jnp.ones_like(q)), 0.0)
    # degenerate quadratic (a == 0): the single root -c / b
    lin = (a == 0) & (b != 0)
    s1 = jnp.where(lin, -c / jnp.where(lin, b, jnp.ones_like(b)), s1)

    def cubic(s):
        s = jnp.clip(s, 0.0, 1.0)
        s2_, s3_ = s * s, s * s * s
        return ((2 * s3_ - 3 * s2_ + 1) * v0 + (s3_ - 2 * s2_ + s) * h * m0
                + (-2 * s3_ + 3 * s2_) * v1 + (s3_ - s2_) * h * m1)

    # a maximum inside needs a turn from rising to falling; a concave V lies under
    # both end tangents, V_k + V'_k x and V_{k+1} + V'_{k+1} (x - h), which meet at x
    turn = (m0 > 0) & (m1 < 0)
    x = (v1 - v0 - m1 * h) / jnp.where(turn, m0 - m1, jnp.ones_like(m0))
    cap = v0 + m0 * jnp.clip(x, 0.0, h)
    inner = jnp.minimum(jnp.maximum(cubic(s1), cubic(s2)), cap)
    inner = jnp.where(turn, inner, jnp.full_like(inner, -jnp.inf))
    return jnp.maximum(grid_max, jnp.max(inner, axis=-2))
