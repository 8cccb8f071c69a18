"""The training loop: :class:`Trainer` and the one-call :func:`train`.

Per epoch:

1. shuffle the training set with the key ``fold_in(key(seed), epoch)`` and
   run :func:`~eventax_dsl.train.engine.train_step` on every full batch (the
   last partial batch is dropped, so the compiled step never sees a new
   shape); a tqdm bar shows the running loss, accuracy and samples/s;
2. evaluate on the validation and test sets
   (:func:`~eventax_dsl.train.engine.eval_step`; the last partial batch is
   padded and masked): accuracy, loss, and on the test set the spike
   statistics;
3. write the checkpoint (``checkpoint.eqx`` + ``checkpoint.json``, and
   ``best.eqx`` when the validation accuracy improved), ``metrics.jsonl``,
   ``metrics.csv`` and the plots.

Everything the next epoch depends on -- parameters, optimiser state, epoch
number, seed -- is in the checkpoint, so :meth:`Trainer.resume` continues a
killed run to bit-for-bit the same parameters as an uninterrupted one.

Long epochs (MNIST on a CPU: hours) can also be checkpointed inside the epoch:
with ``checkpoint_every=N`` the checkpoint is rewritten after every ``N``
training batches, with the position in the epoch (``"batch"``) and the epoch's
running loss, accuracy and training time (``"partial"``) in ``checkpoint.json``.
A run resumed from there skips the batches already done (the epoch's order is
recomputed from the seed) and ends with the same parameters and the same
metrics as an uninterrupted run; ``samples_per_s`` then counts training time
only, not the time the run was down.

Metrics per epoch (``metrics.jsonl``, one JSON object per line, and the same
columns in ``metrics.csv``):

==========================  ====================================================
``train_loss/acc``          mean over the epoch's training batches (parameters
                            changing along the way)
``train_<term>``            the same mean of each term of the training loss
                            (``readout.LOSS_TERMS``: ``train_cross_entropy``, and where
                            the loss has them ``train_early_spike`` (TTFS),
                            ``train_silent_push``, ``train_revive``); they sum to
                            ``train_loss``
``val_loss/acc``,           after the epoch; ``val_cross_entropy``,
``test_loss/acc``           ``test_cross_entropy``: the loss's cross-entropy term
                            alone, comparable between runs whose losses have
                            different extra terms
``best_epoch``,             epoch with the best validation accuracy so far, and
``test_acc_at_best``        the test accuracy at that epoch (the number to report)
``spikes_per_sample``       test set: mean number of spikes (all neurons) per sample
``max_rate``                test set: mean over samples of the largest spike count
                            of any neuron in that sample; ``max_rate_max`` its maximum
``dead_neurons``            spiking neurons that never spiked on the whole test set
                            (``dead_fraction``: of all spiking neurons)
``first_spike_ms``          test set: mean time of the first spike of the output
                            layer (for a non-spiking read-out: of the last spiking
                            population), over samples that have one;
                            ``silent_fraction``: samples without one
``samples_per_s``,          training throughput and duration of the epoch
``epoch_s``
``lr``                      the learning rate after the epoch (``--lr-schedule``)
==========================  ====================================================
"""

from __future__ import annotations

import csv
import dataclasses
import json
import math
import re
import sys
import time
from pathlib import Path

import equinox as eqx
import jax
import jax.numpy as jnp
import jax.random as jr
import jax.tree_util as jtu
import numpy as np

from ..sim import SimOptions, SimulationError, spike_budget, status_error, trainable
from ..sim.dynamics import initial_state
from . import checkpoint as ckpt
from .build import apply_gains, build_network, calibrate, init_key, time_constant_floors
from .config import COSINE_FINAL, RESUME_CHANGES, TrainConfig, default_lanes, load_model
from .engine import (EvalOutput, backward_pass, dead_mask, eval_step, forward_pass, grad_step,
                     learning_rate, make_optimizer, train_step, update_step)
from .readout import LOSS_TERMS, Readout
from .tasks import Split, check_windows, load_task

__all__ = ["Trainer", "TrainResult", "train"]


@dataclasses.dataclass
class TrainResult:
    """What :func:`train` returns: the final network, the metrics per epoch, the best epoch."""

    net: eqx.Module
    history: list[dict]
    best: dict | None
    out: Path | None


def eval_order(x, first: int | None = None) -> np.ndarray:
    """The order in which evaluation simulates the samples of a split: by their number
    of input spikes (stable, so equal counts keep their order), with sample ``first``
    moved to the front if given.

    Why: under ``jax.vmap`` every sample of a batch runs the event loop for as many
    iterations as the batch's busiest sample. Input spikes are events themselves and
    drive the hidden spikes, so batches of samples with similar input counts waste
    little. The metrics do not depend on the order (each sample is simulated on its
    own). Measured on latency-coded MNIST (784-200-10, 512 validation images, one
    core): 1.4x the samples/s at an evaluation batch of 256, 1.7x at 16. Yin-Yang and
    XOR inputs have the same count in every sample: their order is unchanged.
    """
    x = np.asarray(x)
    counts = np.isfinite(x).reshape(len(x), -1).sum(axis=1)
    order = np.argsort(counts, kind="stable")
    if first is not None:
        order = np.concatenate([[first], order[order != first]])
    return order


def _samples(ids) -> str:
    """``"samples 3-9"`` for a contiguous range, else ``"one of the samples 1, 4, ..."``."""
    ids = np.sort(np.asarray(ids))
    if ids[-1] - ids[0] == len(ids) - 1:
        return f"samples {ids[0]}-{ids[-1]}"
    more = ", ..." if len(ids) > 8 else ""
    return "one of the samples " + ", ".join(str(i) for i in ids[:8]) + more


def _weights_only(net):
    spec = jtu.tree_map(lambda _: False, net)
    return eqx.tree_at(lambda s: s.weights, spec, tuple({k: True for k in w} for w in net.weights))


#: :func:`dead_neuron_note` speaks up once this fraction of the spiking neurons is dead. EIF
#: integral without the dead-neuron term lost 21-23 of 50 hidden neurons and 0.2-1.2 points of
#: test accuracy on seeds 0-2 (benchmarks/RESULTS.md, sessions 32-33): at a threshold of a half
#: it was never told.
DEAD_NOTE_FRACTION = 1 / 3


def _terms_text(row: dict) -> str:
    """`` (cross entropy 0.2100, silent push 0.9000)`` from an epoch's ``train_<term>``
    means, for the epoch line; empty when the loss is the cross-entropy alone."""
    parts = [f"{name.replace('_', ' ')} {row[f'train_{name}']:.4f}" for name in LOSS_TERMS
             if f"train_{name}" in row]
    return f" ({', '.join(parts)})" if len(parts) > 1 else ""


def dead_neuron_note(dead: int, n_spiking: int, revive: float) -> str | None:
    """The note a run prints (once) when at least :data:`DEAD_NOTE_FRACTION` of its spiking
    neurons never spiked on the test set, or ``None``. A dead neuron gets no gradient from the
    loss, so without the dead-neuron term (``revive == 0``) it stays dead for good: EIF
    integral at ``--logit-scale 10`` ended with 41 of 50 dead and test 0.898, against 0.965
    with ``--revive 1`` (benchmarks/RESULTS.md, session 26)."""
    if n_spiking == 0 or dead < DEAD_NOTE_FRACTION * n_spiking:
        return None
    head = f"note: {dead} of {n_spiking} spiking neurons never spiked on the test set"
    if revive > 0:
        return (f"{head}, despite the dead-neuron term (--revive {revive:g}); a lower --lr "
                "or --logit-scale may keep more of them alive")
    return (f"{head}; a dead neuron gets no gradient, and this run has no dead-neuron term: "
            "--revive 1 adds it (docs/training.md, 'Dead hidden neurons')")


def _check_plotting() -> None:
    """Fail before any work, not after the first epoch, where the plots cannot be drawn."""
    try:
        from . import plots  # noqa: F401, PLC0415 - imports matplotlib
    except ImportError as exc:
        raise ValueError(f"the run's plots need matplotlib, which cannot be imported ({exc}); "
                         "install it (pip install matplotlib) or turn the plots off "
                         "(--no-plots, plots=False)") from None


def _check_out(out: Path | None, overwrite: bool = False):
    """A clear error if the output directory ``out`` cannot be created (it, or a folder on
    its path, is a file), or if it holds a run already (its ``checkpoint.json``) and
    ``overwrite`` is false: a new run would replace that run's checkpoint and metrics."""
    if out is None:
        return
    for path in (out, *out.parents):
        if path.exists():
            if not path.is_dir():
                what = "it" if path == out else str(path)
                raise ValueError(f"cannot write the run to {out}: {what} is a file, not a "
                                 "directory")
            break
    if not overwrite and (out / ckpt.META).is_file():
        raise ValueError(f"{out} holds a run already ({ckpt.META}); continue it with --resume "
                         f"{out}, write the new run elsewhere (--out), or replace the old one "
                         "with --overwrite (overwrite=True)")


class Trainer:
    """Train a spiking network on one of the tasks (module docs).

    ``Trainer(TrainConfig(task="yinyang", epochs=3, out="runs/yy"))``, then
    :meth:`fit`. ``log``: where messages go (default: stderr; ``None`` for silence).
    ``overwrite``: allow ``out`` to hold an earlier run, which this one replaces (without
    it, that is an error: continue the earlier run with :meth:`resume` instead).
    """

    def __init__(self, config: TrainConfig, *, log=print, overwrite: bool = False,
                 _restore: dict | None = None):
        self.cfg = cfg = config.resolved()
        self._log = log
        self._dead_noted = False  # dead_neuron_note is said once a run
        self.out = Path(cfg.out) if cfg.out else None
        # before any work: a file or an earlier run in the way fails now, not after setup
        _check_out(self.out, overwrite=overwrite or _restore is not None)
        if self.out is not None and cfg.plots:
            _check_plotting()
        with self._precision():
            self.dtype = jnp.float64 if cfg.x64 else jnp.float32
            self.data = load_task(cfg.task, data_dir=cfg.data_dir, dtype=np.dtype(self.dtype),
                                  sizes=(cfg.train_size, cfg.val_size, cfg.test_size))
            check_windows(self.data, cfg.t_max)
            if len(self.data.train) < cfg.batch_size:
                raise ValueError(
                    f"the training set has {len(self.data.train)} samples, fewer than one batch "
                    f"of {cfg.batch_size}; lower batch_size or raise train_size"
                )
            self.hidden_model = load_model(cfg.model)
            self.readout_model = load_model(cfg.readout_model)
            self.readout = Readout(kind=cfg.loss, t_end=float(cfg.t_max), tau0=cfg.tau0,
                                   tau1=cfg.tau1, alpha=cfg.alpha, exp_tau=cfg.exp_tau,
                                   grid=cfg.max_grid, hermite=cfg.hermite,
                                   silent_push=float(cfg.silent_push), revive=float(cfg.revive),
                                   condition_units=cfg.condition_units,
                                   label_smoothing=float(cfg.label_smoothing),
                                   logit_scale=float(cfg.logit_scale))
            net = build_network(cfg.task, self.hidden_model, self.readout_model, cfg.hidden,
                                self.data.in_size, self.data.n_classes, key=init_key(cfg.seed),
                                dtype=self.dtype, readout=self.readout, delay=cfg.delay)
            n_spiking = net.n_spiking
            max_spikes = None
            if cfg.max_spikes_per_neuron is not None:
                max_spikes = max(1, cfg.max_spikes_per_neuron * n_spiking)
            self.options = SimOptions(amos=cfg.amos, max_spikes=max_spikes, rtol=cfg.rtol,
                                      atol=cfg.atol, solver=cfg.solver, stepping=cfg.stepping)
            # for error messages: the per-neuron budget the simulator will use
            self._spikes_per_neuron = spike_budget(net, self.options) // max(n_spiking, 1)
            self.batches_per_epoch = len(self.data.train) // cfg.batch_size
            sched = (cfg.lr_schedule, (cfg.decay_epochs or 0) * self.batches_per_epoch, COSINE_FINAL)
            self.lr_at = learning_rate(float(cfg.lr), *sched)
            self.optimizer = make_optimizer(float(cfg.lr), float(cfg.weight_decay), float(cfg.clip),
                                            *sched)
            spiking = [p for p, pop in enumerate(net.populations) if type(pop).SPIKING]
            out_spiking = type(net.populations[net.output]).SPIKING
            self.first_pop = net.output if out_spiking else (spiking[-1] if spiking else net.output)
            self.spiking_mask = np.concatenate(
                [np.full(pop.n, type(pop).SPIKING) for pop in net.populations])
            out_model = type(net.populations[net.output])
            obs = out_model.OBSERVABLES
            self.trace_observable = None
            if cfg.plots and obs:
                self.trace_observable = self.readout.observable if self.readout.observable in obs else obs[0]
            self.dp = None
            if cfg.devices is not None:
                from ..sim.parallel import DataParallel  # noqa: PLC0415

                self.dp = DataParallel(cfg.devices)
            # one program spanning the devices: parameters replicated, batches sharded
            self.gspmd = self.dp is not None and cfg.parallel == "gspmd"
            # samples simulated side by side (engine.per_sample), chosen for this machine;
            # gspmd shards one vmap of the batch across the devices
            n_states = sum(a.size for a in jtu.tree_leaves(initial_state(net)))
            self.lanes = cfg.lanes or (None if self.gspmd else default_lanes(
                n_states, jax.default_backend()))
            self.plot_times = jnp.linspace(0.0, cfg.t_max, cfg.plot_points, dtype=self.dtype)

            self.epoch = 0
            self.batch = 0  # training batches done in the current epoch (mid-epoch checkpoints)
            self._partial: dict | None = None
            self.history: list[dict] = []
            self.best: dict | None = None
            self.gains: list[float] | None = None
            if _restore is not None:
                like = (net, self.optimizer.init(self._partition(net)[0]))
                meta = _restore["meta"]
                net, opt_state = ckpt.load_checkpoint(_restore["dir"], meta, like)
                self.epoch = int(meta["epoch"])
                self.batch = int(meta.get("batch", 0))
                self._partial = meta.get("partial")
                self.history = list(meta["history"])
                self.best = meta.get("best")
                self.gains = meta.get("gains")
                if self.best is not None and not (Path(_restore["dir"]) / ckpt.BEST).is_file():
                    self._say(f"warning: {Path(_restore['dir']) / ckpt.BEST} is missing: the "
                              f"network of the best epoch so far ({self.best.get('epoch')}) is lost; "
                              "it is written again when validation accuracy improves")
            else:
                if cfg.init_gain == "auto":
                    try:
                        net, self.gains = calibrate(net, self._activity, log=self._say)
                    except (eqx.EquinoxRuntimeError, SimulationError) as err:
                        raise self._step_error(err, "calibration of the initial weights "
                                                    "failed") from err
                else:
                    self.gains = [float(cfg.init_gain)] * len(net.populations)
                    net = apply_gains(net, self.gains)
                opt_state = None
            self.params, self.static = self._partition(net)
            self.floors = time_constant_floors(net)
            if opt_state is None:
                opt_state = self.optimizer.init(self.params)
            self.opt_state = opt_state
            if self.gspmd:
                self.params, self.static, self.opt_state = self.dp.replicate(
                    (self.params, self.static, self.opt_state))
            elif self.dp is not None:
                # where the update step puts them (beside the mean gradient, which
                # DataParallel.mean leaves on the first device): placed arrays from the
                # start, or its second call compiles again for the new placement
                self.params, self.opt_state = jax.device_put(
                    (self.params, self.opt_state), self.dp.local_devices[0])

    # --------------------------------------------------------------- helpers
    def _precision(self):
        return jax.enable_x64(bool(self.cfg.x64))

    def _say(self, msg: str) -> None:
        if self._log is not None:
            self._log(msg)

    def _partition(self, net):
        spec = trainable(net) if self.cfg.train_params else _weights_only(net)
        return eqx.partition(net, spec)

    @property
    def net(self):
        """The current network (parameters and fixed parts combined)."""
        return eqx.combine(self.params, self.static)

    def _eval_step(self, params, static, *arrays) -> EvalOutput:
        """:func:`~eventax_dsl.train.engine.eval_step` on a batch ``(x, y, t0, valid,
        plot_mask)``; with ``devices``, each device simulates its share
        (:meth:`~eventax_dsl.sim.parallel.DataParallel.run`) and the outputs are joined,
        or, with ``parallel="gspmd"``, one program spans the devices."""
        fixed = (self.plot_times, self.readout, self.options, self.first_pop,
                 self.trace_observable, self.lanes)
        arrays = tuple(jnp.asarray(a) for a in arrays)
        if self.gspmd:
            params, static = self.dp.replicate((params, static))
            arrays = self.dp.shard(arrays)
        if self.dp is None or self.gspmd:
            return eval_step(params, static, *arrays, *fixed)
        dp = self.dp
        outs = dp.run(lambda ps, a: eval_step(*ps, *a, *fixed), dp.copies((params, static)),
                      dp.split(arrays))
        # per-sample fields joined, sums added; the plotted sample 0 is device 0's
        per_sample = lambda o: (o.counts, o.first, o.predictions, o.status)  # noqa: E731
        totals = lambda o: (o.loss_sum, o.cross_entropy_sum, o.correct)  # noqa: E731
        out = eqx.tree_at(per_sample, outs[0], dp.concat([per_sample(o) for o in outs]))
        return eqx.tree_at(totals, out, dp.sum([totals(o) for o in outs]))

    def _train_step(self, x, y, t0):
        """One optimisation step on a batch: ``(params, opt_state, loss, stats)`` (``stats``:
        the accuracy and each loss term, :func:`~eventax_dsl.train.engine.batch_loss`).

        With ``devices``: each device's share of the gradient, their mean, and one
        update. When the loss has the dead-neuron term, whose mask is the whole
        batch's, each share's forward pass comes first (keeping what its reverse
        pass needs), then the mask from all shares, then the reverse passes. The same
        step as on one device, up to the order of floating-point sums. With
        ``parallel="gspmd"``: :func:`~eventax_dsl.train.engine.train_step` on the
        sharded batch (XLA combines the devices' shares).
        """
        cfg = self.cfg
        clip = cfg.sample_clip or None
        x, y, t0 = (jnp.asarray(a) for a in (x, y, t0))
        if self.gspmd:
            x, y, t0 = self.dp.shard((x, y, t0))
        if self.dp is None or self.gspmd:
            return train_step(self.params, self.opt_state, self.static, x, y, t0, self.readout,
                              self.optimizer, self.options, clip, self.floors, self.lanes)
        dp = self.dp
        nets, parts = dp.copies((self.params, self.static)), dp.split((x, y, t0))
        ro, opts, lanes = self.readout, self.options, self.lanes
        if ro.revives:
            fwd = dp.run(lambda ps, a: forward_pass(*ps, a[0], a[2], ro, opts, clip is not None,
                                                    lanes), nets, parts)
            dead = dp.copies(dead_mask(dp.concat([spiked for _, _, spiked in fwd])))
            outs = dp.run(lambda f, a, d: backward_pass(f[0], f[1], a[1], d, ro, clip, lanes),
                          fwd, parts, dead)
        else:
            outs = dp.run(lambda ps, a: grad_step(*ps, *a, ro, opts, clip, lanes=lanes), nets,
                          parts)
        loss, stats, grads = dp.mean(outs)
        params, opt_state = update_step(self.params, self.opt_state, grads, self.optimizer,
                                        self.floors)
        return params, opt_state, loss, stats

    # ------------------------------------------------------------ evaluation
    def _eval_batches(self, split: Split, plot: bool = False):
        """Yield ``(EvalOutput, valid)`` for every (padded) batch of ``split``, the
        samples in :func:`eval_order` (with ``plot``, the split's first sample leads
        the first batch, whose row 0 is the plotted one)."""
        B = self.cfg.eval_batch_size
        n = len(split)
        order = eval_order(split.x, first=0 if plot else None)
        for start in range(0, n, B):
            pos = np.arange(start, start + B)
            valid = pos < n
            idx = order[np.where(valid, pos, 0)]
            plot_mask = np.zeros(B, bool)
            plot_mask[0] = plot and start == 0 and self.trace_observable is not None
            try:  # the simulation's own failures come back as a status, checked below
                out = self._eval_step(self.params, self.static, split.x[idx], split.y[idx],
                                      split.t0[idx], valid, plot_mask)
            except eqx.EquinoxRuntimeError as err:
                raise self._step_error(err, f"evaluation failed on {_samples(idx[valid])} "
                                            f"of {n}") from err
            err = status_error(np.where(valid, np.asarray(out.status), 0), out.messages)
            if err is not None:
                more = f" (and {err.count - 1} more in this batch)" if err.count > 1 else ""
                raise self._step_error(err, f"evaluation failed on sample {idx[err.index]} "
                                            f"of {n}{more}") from err
            yield out, valid

    def _step_error(self, err: Exception, where: str) -> RuntimeError:
        """:func:`_step_error` with this run's advice for an exhausted spike or event budget."""
        return _step_error(err, where, budget_advice=(
            "In training, raise max_spikes_per_neuron (--max-spikes-per-neuron, now "
            f"{self._spikes_per_neuron})."))

    def _activity(self, net) -> np.ndarray:
        """Spike counts ``(B, n_neurons)`` of ``net`` on the first training batch (calibration);
        a failed simulation raises :class:`~eventax_dsl.sim.SimulationError`."""
        params, static = self._partition(net)
        B = self.cfg.eval_batch_size
        split = self.data.train
        idx = np.arange(B) % len(split)
        out = self._eval_step(params, static, split.x[idx], split.y[idx], split.t0[idx],
                              np.ones(B, bool), np.zeros(B, bool))
        err = status_error(out.status, out.messages)
        if err is not None:
            raise err  # calibrate() takes BudgetExhausted to mean "too active"
        return np.asarray(out.counts)

    def evaluate(self, split: str | Split = "test", *, plot: bool = False) -> dict:
        """Accuracy, loss (and its cross-entropy term alone) and spike statistics on a split
        (``"train"``, ``"val"``, ``"test"``).

        With ``plot=True`` the result also holds ``"_plot"``: the spikes and output
        trace of the split's first sample.
        """
        with self._precision():
            if isinstance(split, str):
                split = {"train": self.data.train, "val": self.data.val, "test": self.data.test}[split]
            n = len(split)
            loss = cross_entropy = correct = 0.0
            total = np.zeros(self.spiking_mask.shape[0], np.int64)
            per_sample, per_max, firsts = [], [], []
            plot_data = None
            for out, valid in self._eval_batches(split, plot):
                loss += float(out.loss_sum)
                cross_entropy += float(out.cross_entropy_sum)
                correct += int(out.correct)
                counts = np.asarray(out.counts)[valid]
                total += counts.sum(0)
                per_sample.append(counts.sum(1))
                per_max.append(counts.max(1) if counts.shape[1] else np.zeros(len(counts)))
                firsts.append(np.asarray(out.first)[valid])
                if plot and plot_data is None:
                    plot_data = {
                        "spike_times": np.asarray(out.spike_times),
                        "spike_ids": np.asarray(out.spike_ids),
                        "trace": None if out.trace is None else np.asarray(out.trace),
                        "x": split.x[0], "y": int(split.y[0]), "t0": float(split.t0[0]),
                    }
            per_sample, per_max = np.concatenate(per_sample), np.concatenate(per_max)
            firsts = np.concatenate(firsts)
            finite = np.isfinite(firsts)
            n_spiking = int(self.spiking_mask.sum())
            dead = int(np.sum((total == 0) & self.spiking_mask))
            result = {
                "acc": correct / n,
                "loss": loss / n,
                "cross_entropy": cross_entropy / n,
                "spikes_per_sample": float(per_sample.mean()),
                "max_rate": float(per_max.mean()),
                "max_rate_max": int(per_max.max()),
                "dead_neurons": dead,
                "dead_fraction": dead / n_spiking if n_spiking else 0.0,
                "first_spike_ms": float(firsts[finite].mean()) if finite.any() else None,
                "silent_fraction": float(1.0 - finite.mean()),
            }
            if plot:
                result["_plot"] = plot_data
            return result

    # -------------------------------------------------------------- training
    def _epoch_order(self, epoch: int) -> np.ndarray:
        key = jr.fold_in(jr.key(self.cfg.seed), epoch)
        return np.asarray(jr.permutation(key, len(self.data.train)))

    def train_epoch(self) -> dict:
        """Run one epoch of optimisation; returns ``train_loss``, ``train_acc``, each loss
        term's mean (``train_<term>``), throughput."""
        cfg = self.cfg
        B = cfg.batch_size
        split = self.data.train
        order = self._epoch_order(self.epoch)
        n_batches = self.batches_per_epoch
        from tqdm.auto import tqdm  # noqa: PLC0415

        # a run resumed from a mid-epoch checkpoint continues where it stopped
        first = self.batch
        partial = self._partial or {"train_loss": [], "train_acc": [], "train_terms": {},
                                    "train_s": 0.0}
        losses, accs = list(partial["train_loss"]), list(partial["train_acc"])
        if len(losses) != first:
            raise ValueError(f"corrupt checkpoint: {len(losses)} batch losses for {first} batches")
        # a checkpoint written before the terms were logged has none for its batches
        all_terms = first == 0 or "train_terms" in partial
        terms = {name: list(v) for name, v in partial.get("train_terms", {}).items()}
        every = cfg.checkpoint_every if self.out is not None else None
        bar = tqdm(range(first, n_batches), desc=f"epoch {self.epoch + 1}/{cfg.epochs}",
                   disable=not cfg.progress, leave=False, file=sys.stderr, initial=first,
                   total=n_batches)
        start = time.perf_counter()
        for b in bar:
            idx = order[b * B:(b + 1) * B]
            try:
                self.params, self.opt_state, loss, stats = self._train_step(
                    split.x[idx], split.y[idx], split.t0[idx])
            except eqx.EquinoxRuntimeError as err:
                raise self._step_error(err, f"training step failed in epoch {self.epoch + 1}, "
                                            f"batch {b + 1}") from err
            losses.append(loss)
            accs.append(stats["acc"])
            for name, value in stats.items():
                if name != "acc":
                    terms.setdefault(name, []).append(value)
            if cfg.progress:
                loss_f, acc_f = float(loss), float(stats["acc"])
                rate = (b + 1 - first) * B / (time.perf_counter() - start)
                bar.set_postfix(loss=f"{loss_f:.4f}", acc=f"{acc_f:.3f}", samples_s=f"{rate:.1f}")
            if every and (b + 1) % every == 0 and b + 1 < n_batches:
                self.batch = b + 1
                self._partial = {
                    "train_loss": [float(v) for v in jax.device_get(losses)],
                    "train_acc": [float(v) for v in jax.device_get(accs)],
                    "train_terms": {name: [float(v) for v in jax.device_get(values)]
                                    for name, values in terms.items()},
                    "train_s": partial["train_s"] + time.perf_counter() - start,
                }
                self._write_checkpoint()
        losses = np.asarray(jax.device_get(losses), float)
        accs = np.asarray(jax.device_get(accs), float)
        elapsed = partial["train_s"] + time.perf_counter() - start
        bar.close()
        self.batch, self._partial = 0, None
        if not np.all(np.isfinite(losses)):
            raise FloatingPointError(
                f"non-finite training loss in epoch {self.epoch + 1}; lower the learning rate "
                "or check the model")
        self.epoch += 1
        lr = self.lr_at(self.epoch * n_batches) if callable(self.lr_at) else self.lr_at
        row = {"lr": float(lr), "train_loss": float(losses.mean()), "train_acc": float(accs.mean())}
        if all_terms:
            order = [n for n in LOSS_TERMS if n in terms] + sorted(set(terms) - set(LOSS_TERMS))
            row.update({f"train_{name}": float(np.mean(np.asarray(jax.device_get(terms[name]),
                                                                  float)))
                        for name in order})
        return {**row, "samples_per_s": n_batches * B / elapsed, "epoch_s": elapsed}

    def fit(self, epochs: int | None = None) -> TrainResult:
        """Train until ``epochs`` (default ``cfg.epochs``) epochs are done; returns a :class:`TrainResult`."""
        target = self.cfg.epochs if epochs is None else int(epochs)
        if epochs is not None:
            self.cfg.epochs = target
        with self._precision():
            if self.out is not None:
                self.out.mkdir(parents=True, exist_ok=True)
            while self.epoch < target:
                row = {"epoch": self.epoch + 1}
                row.update(self.train_epoch())
                val = self.evaluate("val")
                test = self.evaluate("test", plot=self.cfg.plots and self.out is not None)
                plot_data = test.pop("_plot", None)
                row.update(val_loss=val["loss"], val_cross_entropy=val["cross_entropy"],
                           val_acc=val["acc"], test_loss=test["loss"],
                           test_cross_entropy=test["cross_entropy"], test_acc=test["acc"])
                row.update({k: v for k, v in test.items()
                            if k not in ("acc", "loss", "cross_entropy")})
                improved = self.best is None or row["val_acc"] > self.best["val_acc"]
                if improved:
                    self.best = {"epoch": row["epoch"], "val_acc": row["val_acc"],
                                 "test_acc": row["test_acc"]}
                row.update(best_epoch=self.best["epoch"], test_acc_at_best=self.best["test_acc"])
                self.history.append(row)
                self._say(
                    f"epoch {row['epoch']}: train loss {row['train_loss']:.4f}"
                    f"{_terms_text(row)} acc {row['train_acc']:.3f} | val acc {row['val_acc']:.3f} | test acc "
                    f"{row['test_acc']:.3f} | {row['spikes_per_sample']:.1f} spikes/sample, "
                    f"{row['dead_neurons']} dead | {row['samples_per_s']:.1f} samples/s")
                note = dead_neuron_note(row["dead_neurons"], int(self.spiking_mask.sum()),
                                        float(self.cfg.revive))
                if note and not self._dead_noted:
                    self._dead_noted = True
                    self._say(note)
                if self.out is not None:
                    self.save(improved)
                    if self.cfg.plots:
                        self._plot(plot_data)
        return TrainResult(net=self.net, history=list(self.history), best=self.best, out=self.out)

    # --------------------------------------------------------------- output
    def save(self, improved: bool = False) -> None:
        """Write the checkpoint, ``best.eqx`` (if ``improved``) and the metrics files."""
        if improved:  # first: a run killed before its checkpoint redoes the epoch
            ckpt.save_tree(self.out / ckpt.BEST, jax.device_get(self.net))
        self._write_checkpoint()
        self._write_metrics()

    def _write_checkpoint(self) -> None:
        """Write ``checkpoint.eqx`` and ``checkpoint.json`` (the current position) together."""
        meta = {
            "config": self.cfg.to_json(),
            "epoch": self.epoch,
            "batch": self.batch,
            "partial": self._partial,
            "history": self.history,
            "best": self.best,
            "gains": self.gains,
            "rng": {"seed": self.cfg.seed, "epoch_key": "jax.random.fold_in(jax.random.key(seed), epoch)",
                    "next_epoch": self.epoch},
            "versions": {"jax": jax.__version__, "equinox": eqx.__version__},
        }
        tree = (jax.device_get(self.net), jax.device_get(self.opt_state))
        ckpt.save_checkpoint(self.out, tree, _jsonable(meta))

    def _write_metrics(self) -> None:
        rows = [_jsonable(r) for r in self.history]
        with open(self.out / "metrics.jsonl", "w") as f:
            for r in rows:
                f.write(json.dumps(r) + "\n")
        keys = list(dict.fromkeys(k for r in rows for k in r))
        with open(self.out / "metrics.csv", "w", newline="") as f:
            writer = csv.DictWriter(f, fieldnames=keys)
            writer.writeheader()
            for r in rows:
                writer.writerow({k: ("" if r.get(k) is None else r.get(k)) for k in keys})

    def _plot(self, plot_data) -> None:
        from .plots import plot_curves, plot_raster, plot_trace  # noqa: PLC0415

        plot_curves(self.history, self.out / "curves.png")
        if plot_data is None:
            return
        net = self.net
        names = [("output" if i == net.output else f"population {i}") + f" ({type(p).NAME})"
                 for i, p in enumerate(net.populations)]
        plot_raster(plot_data["spike_times"], plot_data["spike_ids"], net.sizes, names,
                    self.cfg.t_max, self.out / "raster.png", inputs=plot_data["x"],
                    label=plot_data["y"])
        if plot_data["trace"] is not None:
            window = (plot_data["t0"], self.cfg.t_max) if self.readout.voltage else None
            plot_trace(np.asarray(self.plot_times), plot_data["trace"], self.out / "voltages.png",
                       observable=self.trace_observable, window=window, label=plot_data["y"])

    # --------------------------------------------------------------- resume
    @classmethod
    def resume(cls, directory, *, epochs: int | None = None, log=print, **changes) -> "Trainer":
        """A trainer that continues the run saved in ``directory`` (its ``--out``).

        ``epochs``: the new total number of epochs (default: the saved one).
        ``changes``: only options that do not affect the result may change
        (:data:`RESUME_CHANGES`: ``progress``, ``plots``, ``devices``, ``parallel``,
        ``eval_batch_size``, ``checkpoint_every``, ``lanes``); anything else raises
        ``ValueError``. A checkpoint written inside an epoch (``checkpoint_every``)
        continues at its batch.
        """
        meta = ckpt.load_meta(directory)
        try:
            cfg = TrainConfig.from_json(meta["config"])
            cfg.resolved()  # validated here, so that an error names the file
        except (TypeError, ValueError, KeyError) as exc:
            raise ValueError(f"cannot resume from '{directory}': the config in {ckpt.META} is "
                             f"not valid ({type(exc).__name__}: {exc})") from None
        bad = sorted(k for k, v in changes.items()
                     if k not in RESUME_CHANGES and v != getattr(cfg, k))
        if bad:
            raise ValueError(
                f"cannot change {', '.join(bad)} when resuming (the run was made with "
                + ", ".join(f"{k}={getattr(cfg, k)!r}" for k in bad)
                + "); start a new run instead")
        for k, v in changes.items():
            setattr(cfg, k, v)
        if epochs is not None:
            cfg.epochs = int(epochs)
        cfg.out = str(directory)
        return cls(cfg, log=log, _restore={"dir": str(directory), "meta": meta})


class StepError(RuntimeError):
    """A simulation or a runtime check failed in a training, evaluation or calibration step."""


_NON_FINITE = re.compile(r"non-finite|\bnan\b|\binf\b", re.IGNORECASE)


def _step_error(err: Exception, where: str, budget_advice: str = "") -> RuntimeError:
    """A one-paragraph error for a check that failed inside a jitted step.

    Equinox's runtime checks (a NaN/inf reaching a linear solve in the spike-time
    derivative, an exhausted event budget, ...) arrive with a long JAX trace, a
    :class:`~eventax_dsl.sim.SimulationError` from the host-side status check without; this
    keeps their message, says ``where`` (e.g. "training step failed in epoch 1,
    batch 2"), and, for a non-finite value, what to try. A non-finite value gives a
    :class:`FloatingPointError`, anything else a :class:`StepError`. ``budget_advice`` is
    appended when the message asks for a larger ``max_spikes`` / ``max_events`` (the
    simulator's options, which a trainer sets through its own).
    """
    def is_trace(par):  # Equinox puts the in-JIT stack before the message
        return par.startswith("Above is the stack") or any(
            line.strip().startswith("File \"") for line in par.splitlines())

    paragraphs = [par for par in str(err).split("\n\n") if par.strip() and not is_trace(par)]
    first = " ".join(paragraphs[0].split()) if paragraphs else type(err).__name__
    first = re.sub(r"^[\w.]*Error: ", "", first)  # "equinox.EquinoxRuntimeError: ..."
    first = re.sub(r"^eventax_dsl\.sim: ", "", first)
    if budget_advice and re.search(r"\bmax_(spikes|events)=", first):
        first = f"{first} {budget_advice}"
    if not _NON_FINITE.search(first):
        return StepError(f"{where}: {first}")
    return FloatingPointError(
        f"{where}: {first} This usually means a NaN or inf in the simulation or its gradient "
        "(float32 overflow of a fast-growing model such as eif: try --x64, a smaller --lr or "
        "--clip)")


def _jsonable(obj):
    """Replace non-finite floats by ``None`` (JSON has no NaN/inf) and NumPy scalars by Python ones."""
    if isinstance(obj, dict):
        return {k: _jsonable(v) for k, v in obj.items()}
    if isinstance(obj, (list, tuple)):
        return [_jsonable(v) for v in obj]
    if isinstance(obj, np.generic):
        obj = obj.item()
    if isinstance(obj, float) and not math.isfinite(obj):
        return None
    return obj


def train(task: str = "yinyang", *, resume=None, overwrite: bool = False, log=print,
          **options) -> TrainResult:
    """Train on ``task`` with the options of :class:`~eventax_dsl.train.config.TrainConfig`.

    Example::

        from eventax_dsl.train import train
        result = train("yinyang", model="qif", loss="ttfs", epochs=3, out="runs/yy")
        print(result.best)      # {'epoch': ..., 'val_acc': ..., 'test_acc': ...}

    ``resume``: a run directory to continue (``options`` may then only hold
    ``epochs`` and the options :meth:`Trainer.resume` allows). ``overwrite``: let a new
    run replace an earlier one in ``out`` (otherwise an error).
    """
    if resume is not None:
        epochs = options.pop("epochs", None)
        trainer = Trainer.resume(resume, epochs=epochs, log=log, **options)
        if trainer.cfg.task != task:
            raise ValueError(f"the run in '{resume}' is a {trainer.cfg.task} run, not {task}")
    else:
        trainer = Trainer(TrainConfig(task=task, **options), log=log, overwrite=overwrite)
    return trainer.fit()
