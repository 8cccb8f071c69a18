"""Read-outs: from a simulated sample to class scores, a loss and a prediction.

A :class:`Readout` is a small, hashable description of *how the output layer is
read* (it is a static argument of the jitted training step). Four kinds:

- ``"ttfs"``: the scores are the first spike times of the (spiking) output
  neurons; loss :func:`~eventax_dsl.train.losses.ttfs_loss`, prediction: the
  earliest neuron. With ``silent_push > 0`` the output population is also
  wrapped with quadrature states of its spike condition, and the scores gain a
  second row: each output neuron's mean spike condition over ``[0, T]``, which
  the loss uses to push a *silent* target neuron towards its threshold (the
  spike time of a neuron that never spiked has no gradient).
- ``"max"``, ``"integral"``, ``"exp-integral"``: the scores are logits read
  from the output voltage over the window ``[t0, T]`` (``t0`` is per sample:
  0 for Yin-Yang and MNIST, the cue time for delayed XOR); loss: softmax
  cross-entropy, prediction: the largest logit. The output population must be
  wrapped with quadrature states (:func:`~eventax_dsl.train.quadrature.attach_quadrature`).

With ``revive > 0`` (any kind) the training loss also pushes hidden neurons that
spiked in none of a batch's samples towards threshold
(:meth:`Readout.hidden_activity`, :func:`~eventax_dsl.train.losses.revive_term`): a
neuron that never spikes passes no gradient on, whatever the loss.

The window is sampled at :meth:`Readout.obs_times` (``[t0, T]`` for the
integrals, a grid of ``grid`` points for the maximum), read with
``net.state_at`` during training and ``simulate(..., obs_times=...)`` during
evaluation.
"""

from __future__ import annotations

import dataclasses

import jax
import jax.numpy as jnp

from ..sim import simulate
from . import losses
from .quadrature import SPIKE_CONDITION

__all__ = ["CONDITION_UNITS", "LOSSES", "LOSS_TERMS", "PUSH_LOSSES", "Readout",
           "check_condition_units", "condition_scale"]

#: Loss names accepted by :class:`Readout` (and ``eventax-train --loss``).
LOSSES = ("ttfs", "max", "integral", "exp-integral")
#: Losses with a silent-target term (``silent_push``): an output that never spikes (TTFS)
#: or never rises above its start (max) has no gradient; the integrals always have one.
PUSH_LOSSES = ("ttfs", "max")
#: The terms of a training loss, by name, in the order the trainer reports them
#: (:meth:`Readout.loss_terms`; ``"revive"``, the dead-neuron term, is added by the
#: training step). Each run has ``"cross_entropy"`` and those its options switch on.
LOSS_TERMS = ("cross_entropy", "early_spike", "silent_push", "revive")
#: Units of the spike condition in the silent-target and dead-neuron terms: ``"rest"``,
#: each neuron's distance below threshold at rest (:func:`condition_scale`; the
#: default), or ``"raw"``, the model's own units (training runs made before this existed).
CONDITION_UNITS = ("rest", "raw")


def check_condition_units(value: str) -> None:
    """Raise a ``ValueError`` unless ``value`` is one of :data:`CONDITION_UNITS`."""
    if value not in CONDITION_UNITS:
        raise ValueError(f"condition_units must be one of {', '.join(CONDITION_UNITS)}, "
                         f"got {value!r}")


@dataclasses.dataclass(frozen=True)
class Readout:
    """How to read the output layer (see module docs). All fields are static.

    - ``kind``: one of :data:`LOSSES`.
    - ``t_end``: end of the simulation and of the read-out window ``T`` (ms).
    - ``observable``: the output observable read by the voltage losses.
    - ``tau0``, ``tau1``, ``alpha``: parameters of the TTFS loss.
    - ``exp_tau``: time constant of the exponential weight (must equal the
      ``tau`` of the quadrature wrapper; ``None``: ``t_end``).
    - ``grid``: number of sample times for ``"max"`` (spacing ``(T - t0) / (grid - 1)``).
    - ``hermite``: refine the maximum by cubic Hermite interpolation between grid
      points (:func:`~eventax_dsl.train.losses.max_over_time`).
    - ``silent_push``: TTFS and max only, the weight ``beta`` of the silent-target
      term (``0``: off): of :func:`~eventax_dsl.train.losses.ttfs_loss` for TTFS; for
      max, ``beta * flat_max_sag`` of the target
      (:func:`~eventax_dsl.train.losses.flat_max_sag`: a target whose maximum is its
      value at the window start has no gradient).
    - ``revive``: the weight of the dead-neuron term
      :func:`~eventax_dsl.train.losses.revive_term` in the training loss (``0``: off).
    - ``condition_units``: the unit of the spike conditions that the silent-target
      (TTFS) and dead-neuron terms read: ``"rest"``, each neuron's distance below
      threshold at rest (:func:`condition_scale`), or ``"raw"``, the model's own.
    - ``label_smoothing``: of the softmax cross-entropy, every loss
      (:func:`~eventax_dsl.train.losses.cross_entropy`; ``0``: off).
    - ``logit_scale``: voltage losses only, the factor applied to the logits before
      the softmax (an inverse temperature; the TTFS loss has ``tau0`` for this).
      Voltage integrals can be small (delayed XOR: logit gaps of about 0.2 once
      every trial is right), and the cross-entropy then asks for far larger
      voltages, i.e. many more spikes; a scale makes it content sooner.
    """

    kind: str = "ttfs"
    t_end: float = 50.0
    observable: str = "v"
    tau0: float = 0.5
    tau1: float = 6.4
    alpha: float = 3e-3
    exp_tau: float | None = None
    grid: int = 50
    hermite: bool = True
    silent_push: float = 0.0
    revive: float = 0.0
    condition_units: str = "rest"
    label_smoothing: float = 0.0
    logit_scale: float = 1.0

    def __post_init__(self):
        if self.kind not in LOSSES:
            raise ValueError(f"unknown loss {self.kind!r}; choose one of: {', '.join(LOSSES)}")
        if not self.t_end > 0:
            raise ValueError(f"the read-out window end t_end must be > 0, got {self.t_end}")
        if self.kind == "max" and self.grid < 2:
            raise ValueError(f"the max loss needs a grid of at least 2 points, got {self.grid}")
        if not self.silent_push >= 0:
            raise ValueError(f"silent_push must be >= 0, got {self.silent_push}")
        if self.silent_push and self.kind not in PUSH_LOSSES:
            raise ValueError("silent_push applies to the ttfs and max losses only (the "
                             "integrals have a gradient for every output)")
        if not self.revive >= 0:
            raise ValueError(f"revive must be >= 0, got {self.revive}")
        check_condition_units(self.condition_units)
        if not 0.0 <= self.label_smoothing < 1.0:
            raise ValueError(f"label_smoothing must be in [0, 1), got {self.label_smoothing}")
        if not self.logit_scale > 0:
            raise ValueError(f"logit_scale must be > 0, got {self.logit_scale}")
        if self.logit_scale != 1.0 and self.kind == "ttfs":
            raise ValueError("logit_scale applies to the voltage losses only; the ttfs loss "
                             "scales its logits -t/tau0 with tau0")

    @property
    def voltage(self) -> bool:
        """Whether this read-out uses the output voltage (not spike times)."""
        return self.kind != "ttfs"

    @property
    def pushes(self) -> bool:
        """Whether the loss has the silent-target term (TTFS or max, ``silent_push > 0``)."""
        return self.kind in PUSH_LOSSES and self.silent_push > 0

    @property
    def revives(self) -> bool:
        """Whether the training loss has the dead-neuron term (``revive > 0``)."""
        return self.revive > 0

    @property
    def quadrature(self) -> str | None:
        """What the output population's quadrature states integrate: the observable
        (voltage losses), the spike condition (TTFS with ``silent_push``), or ``None``."""
        if self.voltage:
            return self.observable
        return SPIKE_CONDITION if self.silent_push > 0 else None

    @property
    def integrals(self) -> tuple[str, ...]:
        """The integrals the loss reads (``integrals`` of
        :func:`~eventax_dsl.train.quadrature.with_quadrature`): ``q_int`` for ``"integral"``
        and the silent-target term, ``q_exp`` for ``"exp-integral"``, none for ``"max"``
        (which reads the voltage and its time derivative)."""
        return {"max": (), "integral": ("int",), "exp-integral": ("exp",)}.get(self.kind, ("int",))

    @property
    def tau(self) -> float:
        """Time constant of the exponential weight of ``"exp-integral"``."""
        return float(self.t_end if self.exp_tau is None else self.exp_tau)

    @property
    def n_obs(self) -> int:
        """Number of observation times per sample (TTFS: 1 with ``silent_push``, else 0)."""
        ttfs = 1 if self.silent_push > 0 else 0
        return {"ttfs": ttfs, "max": self.grid, "integral": 2, "exp-integral": 2}[self.kind]

    # ------------------------------------------------------------- one sample
    def obs_times(self, t0):
        """Observation times of one sample whose window starts at ``t0``: ``(n_obs,)``."""
        t0 = jnp.asarray(t0)
        if self.kind == "max":
            return t0 + (self.t_end - t0) * jnp.linspace(0.0, 1.0, self.grid, dtype=t0.dtype)
        if self.kind == "ttfs":
            return jnp.full((1,), self.t_end, t0.dtype)
        return jnp.stack([t0, jnp.full_like(t0, self.t_end)])

    def logits(self, observed: dict, t0):
        """Logits of one sample from its observables at :meth:`obs_times` (``(n_obs, n_out)`` each)."""
        if self.kind == "max":
            v = observed[self.observable]
            dv = observed.get(f"{self.observable}_dot") if self.hermite else None
            return losses.max_over_time(v, self.obs_times(t0), dv)
        if self.kind == "integral":
            q = observed["q_int"]
            return losses.window_integral(q[0], q[1], t0, self.t_end)
        q = observed["q_exp"]
        return losses.window_exp_integral(q[0], q[1], t0, self.t_end, self.tau)

    def voltage_scores(self, observed, t0):
        """Scores of a voltage loss for one sample: :meth:`logits` ``(n_out,)``; with the
        max loss's silent-target term ``(2, n_out)``: the logits and each output's
        :func:`~eventax_dsl.train.losses.flat_max_sag`."""
        z = self.logits(observed, t0)
        if not self.pushes:
            return z
        return jnp.stack([z, losses.flat_max_sag(observed[self.observable], z)])

    def ttfs_scores(self, net, t_first, observed):
        """TTFS scores of one sample from its first spike times (``(n_out,)``).

        Without ``silent_push`` these are the times themselves. With it, ``(2, n_out)``:
        the times, and each output's mean spike condition ``q_int(T) / T`` over
        ``[0, T]``, in units of the output population's :meth:`condition_scale` (0
        where the simulation stopped early because every output had spiked: the
        observation slot at ``T`` was never reached, and the loss uses the mean only
        for a silent target, for which the simulation always runs to ``T``).
        """
        if not self.pushes:
            return t_first
        q = observed["q_int"][0]
        q = jnp.where(jnp.isfinite(q), q, jnp.zeros_like(q))
        scale = self.condition_scale(net.populations[net.output])
        return jnp.stack([t_first, q / (self.t_end * scale)])

    def forward(self, net, input_times, t0, options, *, hidden: bool = False):
        """Scores of one sample: first spike times (see :meth:`ttfs_scores`) or logits.

        ``hidden=True`` returns ``(scores, hidden_activity)``, the second as
        :meth:`hidden_activity` gives it, from the same simulation (which, for a
        voltage loss, runs to ``T``: the observation times end there).
        """
        if self.kind == "ttfs":
            if not (self.pushes or hidden):
                return net.ttfs(input_times, self.t_end, options=options)
            res = simulate(net, input_times, self.t_end, options=options,
                           obs_times=self.obs_times(t0) if self.pushes else None,
                           stop_when_output_spiked=True, record_spikes=False)
            scores = self.ttfs_scores(net, res.first_spike[net.output], res.observed)
            return (scores, self.hidden_activity(net, res)) if hidden else scores
        times = self.obs_times(t0)
        if not hidden:
            return self.voltage_scores(net.state_at(input_times, times, options=options), t0)
        res = simulate(net, input_times, jnp.max(times), options=options, obs_times=times,
                       record_spikes=False)  # what state_at runs, with the hidden state kept
        return self.voltage_scores(res.observed, t0), self.hidden_activity(net, res)

    def condition_scale(self, population):
        """The unit of ``population``'s spike conditions in the silent-target and
        dead-neuron terms (``condition_units``): :func:`condition_scale`, or 1."""
        if self.condition_units == "raw":
            return 1.0
        return condition_scale(population)

    def hidden_activity(self, net, res):
        """``(c_end, spiked)`` of the spiking hidden neurons (every spiking population but
        the output, concatenated in population order) of one simulation ``res``: the
        spike condition at the time the simulation stopped, in units of
        :meth:`condition_scale`, and whether the neuron spiked before it."""
        hidden = [p for p, pop in enumerate(net.populations)
                  if type(pop).SPIKING and p != net.output]
        if not hidden:
            empty = jnp.zeros((0,), res.t.dtype)
            return empty, empty.astype(bool)
        pops = net.populations
        c = jnp.concatenate([pops[p].spike_conditions(res.state[p])
                             / self.condition_scale(pops[p]) for p in hidden])
        spiked = jnp.concatenate([jnp.isfinite(res.first_spike[p]) for p in hidden])
        return c, spiked

    # ---------------------------------------------------------------- a batch
    def loss(self, scores, labels, *, reduce: bool = True):
        """Loss of a batch of scores ``(B, n_out)`` and labels ``(B,)``: the sum of
        :meth:`loss_terms`, its mean over the batch if ``reduce``."""
        per = sum(self.loss_terms(scores, labels).values())
        return jnp.mean(per) if reduce else per

    def loss_terms(self, scores, labels) -> dict:
        """The terms of :meth:`loss`, per sample (``(B,)`` each), by name.

        ``"cross_entropy"`` (every kind); TTFS: ``"early_spike"``, the
        ``alpha * (exp(t_y / tau1) - 1)`` of :func:`~eventax_dsl.train.losses.ttfs_loss`;
        with ``silent_push``: ``"silent_push"``. (The dead-neuron term, which needs
        the whole batch, is added by the training step as ``"revive"``.) The trainer
        logs each term's epoch mean (``train_<name>``), which shows which one moved
        when the training loss jumps.
        """
        if self.kind == "ttfs":
            t_first, c_mean = (scores[..., 0, :], scores[..., 1, :]) if self.pushes else (scores, None)
            return losses.ttfs_terms(t_first, labels, t_max=self.t_end, tau0=self.tau0,
                                     tau1=self.tau1, alpha=self.alpha, c_mean=c_mean,
                                     silent_push=self.silent_push, smoothing=self.label_smoothing)
        z = scores[..., 0, :] if self.pushes else scores
        terms = {"cross_entropy": losses.cross_entropy(z * self.logit_scale, labels,
                                                       smoothing=self.label_smoothing,
                                                       reduce=False)}
        if self.pushes:  # the max loss's silent-target term (see voltage_scores)
            terms["silent_push"] = self.silent_push * losses.at_label(scores[..., 1, :], labels)
        return terms

    def predict(self, scores):
        """Predicted classes ``(B,)`` (``-1``: no output spike, TTFS only)."""
        if self.kind == "ttfs":
            return losses.ttfs_predict(scores[..., 0, :] if self.pushes else scores)
        return losses.voltage_predict(scores[..., 0, :] if self.pushes else scores)


def condition_scale(population):
    """Each neuron's distance below threshold in its initial state: ``(n,)``.

    The silent-target and dead-neuron terms (``silent_push``, ``revive``) are
    distances below threshold, measured with the model's spike condition ``c``,
    whose unit is the model's: ``v - 1`` for ``lif`` (dimensionless), ``phi - 1`` for
    ``qif``, but ``v - 30 mV`` for ``izhikevich``, whose resting neuron sits 100 mV
    below its cut-off. Divided by this scale, ``-c(s0) / scale = 1`` at rest for every
    model, so one weight means the same push whatever the model's units (without it
    the Izhikevich terms were 100 times, and the EIF terms 25 times, those of LIF).
    ``-c(s0)`` where the initial state ``s0`` is below threshold, else 1; no gradient
    (a scale, not a parameter's effect).
    """
    c0 = jax.lax.stop_gradient(population.spike_conditions(population.initial_state()))
    return jnp.where(c0 < 0, -c0, jnp.ones_like(c0))
