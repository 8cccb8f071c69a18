"""Training configuration: one JSON-serialisable dataclass, task defaults, model lookup.

:class:`TrainConfig` holds every option of a run (the same names as the
``eventax-train`` flags, with ``-`` replaced by ``_``). Fields left at ``None``
take the task's default (:data:`TASK_DEFAULTS`) in :meth:`TrainConfig.resolved`;
a checkpoint stores the resolved config, so a resumed run uses exactly the same
settings.

Models are given as a path to a ``.neuron`` file or as a library name
(``"qif"`` -> ``<repository>/models/qif.neuron``), see :func:`resolve_model`.
"""

from __future__ import annotations

import dataclasses
import json
import os
from pathlib import Path

from ..sim.options import SimOptions
from .readout import LOSSES, PUSH_LOSSES, check_condition_units

__all__ = [
    "COSINE_FINAL", "LR_SCHEDULES", "MAX_SILENT_PUSH", "MODEL_DIR", "ONE_LANE_STATES",
    "RESUME_CHANGES", "REVIVE", "REVIVE_LOSSES", "SAMPLE_CLIP", "SILENT_PUSH", "TASKS",
    "TASK_DEFAULTS", "TrainConfig", "VOLTAGE_DEFAULTS", "default_lanes", "load_model",
    "remedy_defaults", "resolve_model",
]

#: The model library shipped with the repository.
MODEL_DIR = Path(__file__).resolve().parents[2] / "models"

TASKS = ("yinyang", "mnist", "xor")

#: TTFS defaults, measured on Yin-Yang LIF 5-50-3 (docs/training.md): the weight of the
#: loss's silent-target term (brings targets that never spike back to threshold; inactive
#: where every target spikes, as with QIF), and the per-sample gradient clip (bounds the
#: pull of near-grazing spikes). Without either, LIF TTFS runs drifted into silence.
SILENT_PUSH = 10.0
SAMPLE_CLIP = 10.0
#: Default weight of the max loss's silent-target term (a target whose voltage never rises
#: above its start has no gradient; docs/training.md). On Yin-Yang LIF -> LI, seeds 0-4,
#: it lifted the worst seed from 0.611 to 0.935 test accuracy.
MAX_SILENT_PUSH = 1.0
#: Default weight of the dead-hidden-neuron term for the losses in ``REVIVE_LOSSES``
#: (docs/training.md): without it, hidden neurons that stopped spiking never got a gradient
#: again (LIF TTFS: 31 of 53 dead on one seed, test 0.892 against 0.961 with it; LIF -> LI
#: max: 23-38 of 50 dead, test 0.849 / 0.909 / 0.818 against 0.896 / 0.969 / 0.943 on seeds
#: 0-2). With the LIF integrals it made no measurable difference; EIF integral gained 0.2-1.2
#: points on seeds 0-2 (21-23 of 50 dead without it, none with). Off by default for the
#: integrals; a run that loses a third of its neurons says so and names ``--revive 1``.
REVIVE = 1.0
REVIVE_LOSSES = ("ttfs", "max")


#: Lower bounds of the numeric options, checked by :meth:`TrainConfig.resolved`:
#: name -> (bound, strict). ``(0, True)`` means "> 0", ``(1, False)`` means ">= 1".
_LOWER_BOUNDS = {
    "epochs": (0, False), "batch_size": (1, False), "eval_batch_size": (1, False),
    "lr": (0, True), "clip": (0, True), "sample_clip": (0, False), "t_max": (0, True),
    "plot_points": (2, False), "silent_push": (0, False), "revive": (0, False),
    "logit_scale": (0, True), "decay_epochs": (1, False), "checkpoint_every": (1, False),
    "delay": (0, False), "lanes": (1, False), "devices": (1, False), "tau0": (0, True),
    "tau1": (0, True), "alpha": (0, False), "weight_decay": (0, False), "rtol": (0, True),
    "atol": (0, True), "max_spikes_per_neuron": (1, False),
}
#: The options that name files or folders: given as ``str`` or ``os.PathLike``, kept as ``str``.
_PATH_OPTIONS = ("model", "readout_model", "data_dir", "out")
#: The options of ``_LOWER_BOUNDS`` that may also be left unset (``None``).
_UNSET_ALLOWED = frozenset({"decay_epochs", "checkpoint_every", "delay", "lanes", "devices",
                            "rtol", "atol", "max_spikes_per_neuron"})


def remedy_defaults(loss: str) -> dict[str, float]:
    """``eventax-train``'s default weights of the training remedies for ``loss`` (0: off):
    ``sample_clip`` (``SAMPLE_CLIP`` for ``ttfs``), ``silent_push`` (``SILENT_PUSH`` for
    ``ttfs``, ``MAX_SILENT_PUSH`` for ``max``) and ``revive`` (``REVIVE`` for ``REVIVE_LOSSES``)."""
    return {
        "sample_clip": SAMPLE_CLIP if loss == "ttfs" else 0.0,
        "silent_push": {"ttfs": SILENT_PUSH, "max": MAX_SILENT_PUSH}.get(loss, 0.0),
        "revive": REVIVE if loss in REVIVE_LOSSES else 0.0,
    }

#: Learning-rate schedules: ``constant``, or ``cosine`` decay from ``lr`` to
#: ``COSINE_FINAL * lr`` over ``decay_epochs`` (then constant at that value).
LR_SCHEDULES = ("constant", "cosine")
COSINE_FINAL = 0.01

#: Defaults of the voltage losses' ``logit_scale`` and ``label_smoothing`` per task (others:
#: 1 and 0). Delayed XOR (docs/training.md): at scale 1 the exp-integral logits of a network
#: that already solves the task differ by ~0.2, the cross-entropy asks for ~10x larger
#: voltages, activity grows tenfold and accuracy falls; scale 10 with smoothing 0.1 held
#: 1.000 and a constant spike count. MNIST: after 100 batches of 16, scale 10 reached
#: validation 0.766 against 0.638 at scale 1 (10 classes: logits of ~0.3 leave the softmax
#: near uniform).
VOLTAGE_DEFAULTS = {"xor": dict(logit_scale=10.0, label_smoothing=0.1),
                    "mnist": dict(logit_scale=10.0)}
#: The ``max`` loss defaults to ``logit_scale`` 10 on every task. On Yin-Yang 5-50-3 (cosine
#: schedules; benchmarks/RESULTS.md, sessions 29-30) scale 10 raised the test accuracy over
#: scale 1 for every model tried: LIF median 0.944 -> 0.961 (seeds 0-4), EIF 0.975 -> 0.982,
#: Izhikevich 0.966 -> 0.973, QIF median 0.984 -> 0.988 (seeds 0-2). The integrals keep 1 on
#: Yin-Yang: there scale 10 silenced most of the EIF hidden layer (docs/training.md).
MAX_LOGIT_SCALE = 10.0

#: Per-task defaults for the fields left at ``None``.
TASK_DEFAULTS = {
    "yinyang": dict(model="qif", loss="ttfs", hidden=(50,), t_max=50.0, epochs=5, batch_size=32,
                    lr=5e-3),
    "mnist": dict(model="lif", loss="exp-integral", hidden=(200,), t_max=30.0, epochs=1,
                  batch_size=64, lr=1e-3, data_dir="data/mnist"),
    "xor": dict(model="egru", loss="exp-integral", hidden=(32,), t_max=90.0, epochs=5,
                batch_size=32, lr=1e-3, max_spikes_per_neuron=30),
}


def resolve_model(spec: str) -> Path:
    """The ``.neuron`` file for ``spec``: an existing path, or a library model name.

    ``"qif"`` and ``"qif.neuron"`` resolve to ``<repository>/models/qif.neuron``.
    Raises ``FileNotFoundError`` naming what was looked for and the available
    library models.
    """
    path = Path(spec).expanduser()
    if path.is_file():
        return path
    name = spec if spec.endswith(".neuron") else spec + ".neuron"
    candidate = MODEL_DIR / name
    if "/" not in spec and candidate.is_file():
        return candidate
    available = sorted(p.stem for p in MODEL_DIR.glob("*.neuron"))
    raise FileNotFoundError(
        f"model {spec!r} not found: it is neither a .neuron file nor a library model "
        f"(looked for '{path}' and '{candidate}'). Library models: "
        f"{', '.join(available) or '(none found)'}"
    )


def load_model(spec: str) -> type:
    """The compiled model class for ``spec`` (see :func:`resolve_model`)."""
    from .. import load  # noqa: PLC0415 - avoid an import cycle at package import

    return load(resolve_model(spec))


#: ``TrainConfig.parallel``: one program per device (threads) or spanning them (GSPMD).
PARALLEL = ("threads", "gspmd")

#: Options a resumed run may change: how it is shown or executed, not what it computes
#: (``devices``, ``parallel`` and ``lanes`` change the order of floating-point sums only).
RESUME_CHANGES = frozenset({"progress", "plots", "devices", "parallel", "eval_batch_size",
                            "checkpoint_every", "lanes"})

#: on a CPU, networks with at least this many state variables (all neurons' states
#: together: what one sample's event loop integrates) simulate one sample at a time by
#: default (``TrainConfig.lanes``). Measured on one core, forward and backward of a
#: training batch, one ``vmap`` against one lane, timed alternately: one lane is faster
#: for MNIST 784-200-10 LIF -> LI (440 states, batch 16, partly trained: 1.47-1.72x) and
#: for Yin-Yang 5-50-3 with the dendritic model (1112 states, batch 8: 2.5x); one
#: ``vmap`` is faster for Yin-Yang 5-50-3 LIF -> LI (112 states, batch 32: 1.5x) and
#: Izhikevich -> LI (162: 1.9x). Not measured in between (Hodgkin-Huxley 5-50-3: 262).
ONE_LANE_STATES = 300


def default_lanes(n_states: int, backend: str) -> int | None:
    """``TrainConfig.lanes`` when not given: 1 on a CPU for a network of at least
    :data:`ONE_LANE_STATES` state variables, else ``None`` (the whole batch in one
    ``vmap``). Chosen when a run starts, not stored: a run resumed on another
    machine chooses again."""
    return 1 if backend == "cpu" and n_states >= ONE_LANE_STATES else None


@dataclasses.dataclass
class TrainConfig:
    """Every option of a training run (see ``eventax-train --help`` for each flag).

    **Task and network**: ``task`` (``yinyang``, ``mnist``, ``xor``); ``model``
    (hidden layers) and ``readout_model`` (output layer; default: ``model`` for
    ``ttfs``, ``li`` for the voltage losses); ``hidden`` (sizes of the hidden
    layers; ``xor``: one recurrent population); ``loss`` (``ttfs``, ``max``,
    ``integral``, ``exp-integral``); ``t_max`` (simulated time per sample, ms,
    = the read-out window end).

    **Optimisation**: ``epochs``, ``batch_size``, ``lr`` (AdamW),
    ``lr_schedule`` (``constant``, or ``cosine``: decay to ``COSINE_FINAL * lr``
    over ``decay_epochs``, default the run's ``epochs`` when it starts; stored, so
    resuming with more epochs keeps the schedule and continues at the final rate),
    ``weight_decay`` (on weights only), ``clip`` (global gradient norm),
    ``sample_clip`` (per-sample gradient norm, before averaging; default
    ``SAMPLE_CLIP`` for ``ttfs``, 0 = off, the default for the voltage losses),
    ``seed``, ``train_params`` (also train the models' ``learnable``
    parameters, e.g. time constants, besides the weights).

    **Simulation**: ``amos`` (at most one spike per neuron), ``x64``,
    ``max_spikes_per_neuron`` (spike buffer / event budget), ``rtol``/``atol``,
    ``solver`` (a name in :data:`eventax_dsl.sim.options.SOLVERS`, default
    ``"tsit5"``), ``stepping`` (``"single"``, default, or ``"solve"``; both as in
    :class:`~eventax_dsl.sim.SimOptions`),
    ``delay`` (ms: an axonal transmission delay on every projection between
    populations, trained with the weights; ``None``: spikes arrive at once).

    **Loss details**: ``tau0``, ``tau1``, ``alpha``, ``silent_push`` (TTFS and max;
    default ``SILENT_PUSH`` for ``ttfs``, ``MAX_SILENT_PUSH`` for ``max``, 0 = off;
    docs/training.md), ``revive`` (weight of the
    dead-hidden-neuron term, any loss; default ``REVIVE`` for ``ttfs`` and ``max``, 0 = off
    for the integral losses; docs/training.md), ``condition_units`` (the unit of the
    spike condition in those two terms, :data:`~eventax_dsl.train.readout.CONDITION_UNITS`:
    ``"rest"``, the default, or ``"raw"``, as in runs written before it existed),
    ``max_grid`` and
    ``hermite`` (``max``), ``exp_tau`` (``exp-integral``; default ``t_max``),
    ``label_smoothing`` (of the cross-entropy, every loss; 0 = off: bounds how far
    training pushes the logits of samples already classified correctly),
    ``logit_scale`` (voltage losses: factor on the logits before the softmax);
    defaults 0 and 1, except for the voltage losses on ``xor`` (smoothing 0.1,
    scale 10) and ``mnist`` (scale 10; :data:`VOLTAGE_DEFAULTS`).

    **Initialisation**: ``init_gain``: ``"auto"`` calibrates one gain per
    spiking population on a training batch so that it is active (see
    :func:`eventax_dsl.train.build.calibrate`); a number uses that gain.

    **Data and output**: ``data_dir`` (MNIST), ``train_size``/``val_size``/
    ``test_size`` (use only the first N samples of a split), ``eval_batch_size``,
    ``lanes`` (how many samples of a batch are simulated side by side, in one
    ``vmap``; the rest of the batch runs in chunks of that size, one after another.
    Default: the whole batch, except on a CPU for networks of at least
    :data:`ONE_LANE_STATES` state variables, where one sample at a time is the
    faster; see :func:`eventax_dsl.train.engine.per_sample`), ``out`` (run
    directory), ``checkpoint_every`` (also checkpoint after every N training
    batches, for epochs too long to lose; default: at the end of each epoch only),
    ``devices`` (data-parallel devices), ``parallel`` (how:
    ``"threads"``, one program per device of this machine, the faster, or
    ``"gspmd"``, one program spanning the devices, also across hosts; see
    docs/training.md), ``plots``, ``progress``, ``plot_points``.
    """

    task: str = "yinyang"
    model: str | None = None
    readout_model: str | None = None
    loss: str | None = None
    hidden: tuple[int, ...] | None = None
    t_max: float | None = None
    epochs: int | None = None
    batch_size: int | None = None
    lr: float | None = None
    lr_schedule: str = "constant"
    decay_epochs: int | None = None
    weight_decay: float = 1e-4
    clip: float = 1.0
    sample_clip: float | None = None
    seed: int = 0
    train_params: bool = True
    amos: bool = False
    delay: float | None = None
    x64: bool = False
    max_spikes_per_neuron: int | None = None
    rtol: float | None = None
    atol: float | None = None
    solver: str = "tsit5"
    stepping: str = "single"
    tau0: float = 0.5
    tau1: float = 6.4
    alpha: float = 3e-3
    silent_push: float | None = None
    revive: float | None = None
    condition_units: str = "rest"
    max_grid: int = 50
    hermite: bool = True
    exp_tau: float | None = None
    label_smoothing: float | None = None
    logit_scale: float | None = None
    init_gain: str | float = "auto"
    data_dir: str | None = None
    train_size: int | None = None
    val_size: int | None = None
    test_size: int | None = None
    eval_batch_size: int | None = None
    lanes: int | None = None
    out: str | None = None
    checkpoint_every: int | None = None
    devices: int | None = None
    parallel: str = "threads"
    plots: bool = True
    progress: bool = True
    plot_points: int = 100

    def resolved(self) -> "TrainConfig":
        """A copy with task defaults filled in and every option validated."""
        if self.task not in TASKS:
            raise ValueError(f"unknown task {self.task!r}; choose one of: {', '.join(TASKS)}")
        cfg = dataclasses.replace(self)
        for name, value in TASK_DEFAULTS[self.task].items():
            if getattr(cfg, name) is None:
                setattr(cfg, name, value)
        cfg.hidden = tuple(int(h) for h in cfg.hidden)
        for name in _PATH_OPTIONS:  # a pathlib.Path is welcome, but the checkpoint is JSON
            if isinstance(getattr(cfg, name), os.PathLike):
                setattr(cfg, name, os.fspath(getattr(cfg, name)))
        if cfg.loss not in LOSSES:
            raise ValueError(f"unknown loss {cfg.loss!r}; choose one of: {', '.join(LOSSES)}")
        for name, value in remedy_defaults(cfg.loss).items():
            if getattr(cfg, name) is None:
                setattr(cfg, name, value)
        voltage = {} if cfg.loss == "ttfs" else VOLTAGE_DEFAULTS.get(cfg.task, {})
        if cfg.logit_scale is None:
            cfg.logit_scale = voltage.get("logit_scale",
                                          MAX_LOGIT_SCALE if cfg.loss == "max" else 1.0)
        if cfg.label_smoothing is None:
            cfg.label_smoothing = voltage.get("label_smoothing", 0.0)
        if cfg.lr_schedule not in LR_SCHEDULES:
            raise ValueError(f"unknown lr_schedule {cfg.lr_schedule!r}; choose one of: "
                             f"{', '.join(LR_SCHEDULES)}")
        if cfg.lr_schedule == "constant":
            if cfg.decay_epochs is not None:
                raise ValueError("decay_epochs needs lr_schedule='cosine'")
        elif cfg.decay_epochs is None:
            cfg.decay_epochs = cfg.epochs
        if cfg.readout_model is None:
            cfg.readout_model = cfg.model if cfg.loss == "ttfs" else "li"
        if cfg.eval_batch_size is None:
            cfg.eval_batch_size = max(cfg.batch_size, 256)
        if isinstance(cfg.init_gain, str) and cfg.init_gain != "auto":
            try:
                cfg.init_gain = float(cfg.init_gain)
            except ValueError:
                raise ValueError(f"init_gain must be 'auto' or a number, got {cfg.init_gain!r}") from None
        for name, (bound, strict) in _LOWER_BOUNDS.items():
            value = getattr(cfg, name)
            if value is None and name in _UNSET_ALLOWED:
                continue
            if value is None or not (value > bound if strict else value >= bound):
                raise ValueError(f"invalid {name}: {value!r} "
                                 f"(it must be {'>' if strict else '>='} {bound})")
        if not (len(cfg.hidden) >= 1 and min(cfg.hidden) >= 1):
            raise ValueError(f"invalid hidden: {cfg.hidden!r} (it must be one or more sizes >= 1)")
        if not 0 <= cfg.label_smoothing < 1:
            raise ValueError(f"invalid label_smoothing: {cfg.label_smoothing!r} "
                             "(it must be in [0, 1))")
        if cfg.silent_push and cfg.loss not in PUSH_LOSSES:
            raise ValueError(f"silent_push applies to the ttfs and max losses only, not "
                             f"{cfg.loss}: the integrals have a gradient for every output")
        check_condition_units(cfg.condition_units)
        if cfg.logit_scale != 1.0 and cfg.loss == "ttfs":
            raise ValueError("logit_scale applies to the voltage losses only; the ttfs loss "
                             "has --tau0 (its logits are -t/tau0)")
        if cfg.task == "xor" and len(cfg.hidden) != 1:
            raise ValueError(f"xor uses one recurrent hidden population; got hidden={cfg.hidden}")
        SimOptions(solver=cfg.solver, stepping=cfg.stepping)  # validates both
        if cfg.parallel not in PARALLEL:
            raise ValueError(f"parallel must be one of {', '.join(PARALLEL)}, got {cfg.parallel!r}")
        if cfg.lanes is not None and cfg.devices is not None and cfg.parallel == "gspmd":
            raise ValueError("lanes does not apply to parallel='gspmd', where the batch is one "
                             "vmap sharded across the devices")
        if cfg.devices is not None:
            for name in ("batch_size", "eval_batch_size"):
                if getattr(cfg, name) % cfg.devices:
                    raise ValueError(
                        f"{name}={getattr(cfg, name)} is not divisible by devices={cfg.devices}"
                    )
        return cfg

    # ---------------------------------------------------------------- JSON
    def to_json(self) -> dict:
        d = dataclasses.asdict(self)
        d["hidden"] = None if self.hidden is None else list(self.hidden)
        return d

    @classmethod
    def from_json(cls, d: dict) -> "TrainConfig":
        known = {f.name for f in dataclasses.fields(cls)}
        unknown = sorted(set(d) - known)
        if unknown:
            raise ValueError(f"unknown config field(s) in checkpoint: {', '.join(unknown)}")
        d = dict(d)
        # checkpoints written before the TTFS defaults below existed ran without the
        # silent-target term and, unless asked for, without per-sample clipping
        if "silent_push" not in d:
            d["silent_push"] = 0.0
            if d.get("sample_clip") is None:
                d["sample_clip"] = 0.0
        if "revive" not in d:  # written before the dead-neuron term existed
            d["revive"] = 0.0
        # written before the terms were scaled: their conditions were read in model units
        d.setdefault("condition_units", "raw")
        d.setdefault("logit_scale", 1.0)  # written before these two existed
        d.setdefault("label_smoothing", 0.0)
        if d.get("hidden") is not None:
            d["hidden"] = tuple(d["hidden"])
        return cls(**d)

    def dumps(self) -> str:
        return json.dumps(self.to_json(), indent=2, sort_keys=True)
