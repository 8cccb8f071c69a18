"""The paper's training table: Yin-Yang over models x losses x seeds, plus MNIST and XOR.

Each configuration is trained with :func:`eventax_dsl.train.train`; the table
reports, per (task, model, loss) over the seeds, medians at each run's best
validation epoch of

- ``test acc``  -- test accuracy at the best-validation epoch;
- ``max rate``  -- mean over test samples of the largest spike count of any neuron;
- ``dead``      -- spiking neurons that never fire on the test set;
- ``spikes``    -- total spikes per test sample (the "fire count");
- ``TTFS``      -- mean time of the first output spike (ms; for a voltage read-out,
  of the hidden layer's first spike).

Every finished run is appended to a JSON file (``--json``), so a long grid can be
run piecewise and the table rebuilt with ``--table-only``. Runs made with
``eventax-train`` itself join the table with ``--collect DIR ...``: each run directory's
``checkpoint.json`` holds its configuration and per-epoch metrics, and a run's labels
name every setting that differs from this script's configuration (batch, learning
rate, read-out, subsets), so that unlike runs are never pooled into one median.
An unfinished run (stopped or still going) counts with the epochs it has; the
``epochs`` column gives the median number of epochs run.

Configurations
--------------
- ``yinyang``: 5-50-3, batch 256, AdamW, clip 1.0; lr 0.005 for ``ttfs`` (with
  ``eventax-train``'s TTFS defaults ``--sample-clip 10 --silent-push 10``) and 0.001 for
  the voltage losses (``li`` read-out), ``ttfs`` and ``max`` with ``--revive 1``, ``max``
  with ``--silent-push 1`` (the remedies are shown in the loss label); models ``lif``, ``lif-amos``,
  ``qif``, ``eif``, ``izhikevich``, ``izhikevich-amos``, ``dendritic``; losses
  ``ttfs``, ``max``, ``integral``, ``exp-integral``.
- ``mnist``: 784-200-10 LIF with an ``li`` read-out, ``exp-integral`` loss,
  batch 256, lr 0.001 (needs ``--data-dir``).
- ``xor``: 32 recurrent EGRU units (no self-connections), two ``li`` outputs,
  ``exp-integral`` loss over ``[cue, 90 ms]``, batch 256, lr 0.001.

Examples::

    python benchmarks/paper_table.py yinyang --models lif qif --losses ttfs --seeds 0 1 2
    python benchmarks/paper_table.py mnist --data-dir data/mnist --epochs 3
    python benchmarks/paper_table.py yinyang --epochs 1 --models lif --losses ttfs max \\
        --train-size 256 --val-size 256 --test-size 256           # a quick check
    python benchmarks/paper_table.py --table-only --json results/paper_table.json
    python benchmarks/paper_table.py yinyang --models lif --losses ttfs --batch-size 32 \\
        --lr 0.002                                   # LIF TTFS as in benchmarks/RESULTS.md
    python benchmarks/paper_table.py yinyang --losses ttfs --sample-clip 0 --silent-push 0 \
        --revive 0
                                                     # the paper's plain TTFS loss
    python benchmarks/paper_table.py yinyang --lr-schedule cosine    # lr decays over --epochs
    python benchmarks/paper_table.py --table-only --json none --collect runs/*/
                                                     # the table of eventax-train run directories
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import math
import statistics
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from eventax_dsl.train import train  # noqa: E402
from eventax_dsl.train.config import (  # noqa: E402
    LR_SCHEDULES,
    MAX_SILENT_PUSH,
    REVIVE,
    REVIVE_LOSSES,
    SAMPLE_CLIP,
    SILENT_PUSH,
    TASK_DEFAULTS,
    TrainConfig,
    remedy_defaults,
)
from eventax_dsl.train.readout import PUSH_LOSSES  # noqa: E402

#: model label -> (library model, amos)
MODELS = {
    "lif": ("lif", False), "lif-amos": ("lif", True), "qif": ("qif", False), "eif": ("eif", False),
    "izhikevich": ("izhikevich", False), "izhikevich-amos": ("izhikevich", True),
    "dendritic": ("dendritic", False),
}
LOSSES = ("ttfs", "max", "integral", "exp-integral")
PAPER_BATCH = 256
COLUMNS = [("test acc", "test_acc_at_best", "{:.4f}"), ("max rate", "max_rate", "{:.2f}"),
           ("dead", "dead_neurons", "{:.0f}"), ("spikes", "spikes_per_sample", "{:.1f}"),
           ("TTFS ms", "first_spike_ms", "{:.2f}")]


def configurations(args) -> list[dict]:
    """The runs selected on the command line, as keyword arguments of ``train``."""
    runs = []
    common = dict(epochs=args.epochs, train_size=args.train_size, val_size=args.val_size,
                  test_size=args.test_size, progress=args.progress, plots=args.plots)
    for seed in args.seeds:
        if args.task == "yinyang":
            for label in args.models:
                model, amos = MODELS[label]
                for loss in args.losses:
                    runs.append(dict(task="yinyang", label=label, model=model, amos=amos, loss=loss,
                                     hidden=TASK_DEFAULTS["yinyang"]["hidden"],
                                     batch_size=PAPER_BATCH,
                                     lr=paper_lr("yinyang", loss),
                                     clip=1.0, seed=seed, **common))
        elif args.task == "mnist":
            runs.append(dict(task="mnist", label="lif", model="lif", loss="exp-integral",
                             hidden=TASK_DEFAULTS["mnist"]["hidden"], batch_size=PAPER_BATCH,
                             lr=1e-3, clip=1.0, seed=seed,
                             data_dir=args.data_dir, **common))
        else:
            runs.append(dict(task="xor", label="egru", model="egru", loss="exp-integral",
                             hidden=TASK_DEFAULTS["xor"]["hidden"], batch_size=PAPER_BATCH,
                             lr=1e-3, clip=1.0, seed=seed,
                             **common))
    for run in runs:  # command-line overrides of the configuration
        for key in ("batch_size", "lr"):
            if getattr(args, key) is not None:
                run[key] = getattr(args, key)
        # the training remedies (docs/training.md): eventax-train's defaults unless given
        defaults = remedy_defaults(run["loss"])
        if run["loss"] == "ttfs":
            run["sample_clip"] = args.sample_clip
        if run["loss"] in PUSH_LOSSES:
            given = args.silent_push
            run["silent_push"] = defaults["silent_push"] if given is None else given
        run["revive"] = defaults["revive"] if args.revive is None else args.revive
        if args.hidden is not None:
            run["hidden"] = tuple(args.hidden)
        if args.lr_schedule != "constant":
            run["lr_schedule"] = args.lr_schedule
    return runs


def paper_lr(task: str, loss: str) -> float:
    """This script's learning rate for ``task`` and ``loss``."""
    return 5e-3 if task == "yinyang" and loss == "ttfs" else 1e-3


#: settings no label shows: bookkeeping, or shown otherwise (columns, the model label,
#: the remedies of the loss label)
UNLABELLED = {"task", "model", "readout_model", "amos", "hidden", "loss", "seed", "epochs",
              "train_size", "val_size", "test_size", "out", "progress", "plots",
              "plot_points", "eval_batch_size", "checkpoint_every", "data_dir", "devices", "parallel",
              "sample_clip", "silent_push", "revive", "lr_schedule", "decay_epochs"}
SHORT = {"batch_size": "b", "weight_decay": "wd", "label_smoothing": "smooth",
         "logit_scale": "scale", "max_spikes_per_neuron": "maxspikes",
         "condition_units": "units"}


def labels(cfg: TrainConfig) -> tuple[str, str]:
    """``(model label, loss label)`` of a run's configuration.

    The model label is the ``MODELS`` name (else the ``.neuron`` file's stem), plus the
    read-out, the hidden sizes and the data subsets where they are not this script's.
    The loss label is the loss, the training remedies that were on, the learning-rate
    schedule, and every other setting that differs from this script's configuration
    for the task and loss (``b32``: batch 32, ``lr0.005``, ``scale10``, ...), so that
    runs pooled into one median differ in nothing but their seeds.
    """
    cfg = cfg.resolved()
    # this script's configuration of the task, model and loss (hidden sizes and read-out
    # are the task's defaults)
    reference = TrainConfig(task=cfg.task, model=cfg.model, loss=cfg.loss, epochs=cfg.epochs,
                            batch_size=PAPER_BATCH, lr=paper_lr(cfg.task, cfg.loss)).resolved()
    stem = Path(str(cfg.model)).stem
    label = next((k for k, (m, amos) in MODELS.items() if m == stem and amos == cfg.amos),
                 stem + ("-amos" if cfg.amos else ""))
    if cfg.readout_model != reference.readout_model:
        label += "->" + Path(str(cfg.readout_model)).stem
    if cfg.hidden != reference.hidden:
        label += "-" + "-".join(map(str, cfg.hidden))
    sizes = [f"{tag}{getattr(cfg, k + '_size')}" for k, tag in
             (("train", "t"), ("val", "v"), ("test", "T")) if getattr(cfg, k + "_size")]
    if sizes:
        label += "[" + ",".join(sizes) + "]"

    parts = [cfg.loss]
    for name, tag in (("sample_clip", "clip"), ("silent_push", "push"), ("revive", "revive")):
        if getattr(cfg, name):
            parts.append(f"{tag}{getattr(cfg, name):g}")
    if cfg.lr_schedule != "constant":
        parts.append(cfg.lr_schedule)
        if cfg.decay_epochs != cfg.epochs:
            parts.append(f"decay{cfg.decay_epochs}")
    for f in dataclasses.fields(TrainConfig):
        value = getattr(cfg, f.name)
        if f.name in UNLABELLED or value == getattr(reference, f.name):
            continue
        tag = SHORT.get(f.name, f.name)
        if isinstance(value, bool):
            parts.append(tag if value else f"no-{tag}")
        else:
            parts.append(f"{tag}{value:g}" if isinstance(value, (int, float)) else f"{tag}{value}")
    return label, "+".join(parts)


def _options(run: dict) -> dict:
    return {k: v for k, v in run.items() if k not in ("task", "label")}


def run_dir(run: dict, out_root: Path) -> Path:
    """The ``eventax-train`` run directory of one configuration."""
    model, loss = labels(TrainConfig(task=run["task"], **_options(run)))
    return out_root / f"{run['task']}-{model}-{loss}-seed{run['seed']}"


def run_one(run: dict, out_root: Path, overwrite: bool = False) -> dict:
    options = _options(run)
    model, loss = labels(TrainConfig(task=run["task"], **options))
    options["out"] = str(run_dir(run, out_root))
    start = time.perf_counter()
    result = train(run["task"], overwrite=overwrite, **options)
    best_row = next(r for r in result.history if r["epoch"] == result.best["epoch"])
    return {
        "task": run["task"], "model": model, "loss": loss, "seed": run["seed"],
        "epochs": len(result.history), "best": result.best, "metrics_at_best": best_row,
        "final": result.history[-1], "wall_s": time.perf_counter() - start,
        "out": options["out"], "config": {k: (list(v) if isinstance(v, tuple) else v)
                                          for k, v in options.items()},
    }


def collect(run_dir: Path) -> dict:
    """The table record of one ``eventax-train`` run directory (its ``checkpoint.json``):
    the metrics of its best-validation epoch so far."""
    path = Path(run_dir) / "checkpoint.json"
    if not path.is_file():
        raise FileNotFoundError(f"{run_dir}: no checkpoint.json (not an eventax-train run "
                                "directory, or the run has not finished an epoch)")
    meta = json.loads(path.read_text())
    history, best = meta["history"], meta["best"]
    if not history or best is None:
        raise ValueError(f"{path}: no finished epoch")
    cfg = TrainConfig.from_json(meta["config"])
    model, loss = labels(cfg)
    return {
        "task": cfg.task, "model": model, "loss": loss, "seed": cfg.seed,
        "epochs": len(history), "best": best,
        "metrics_at_best": next(r for r in history if r["epoch"] == best["epoch"]),
        "final": history[-1], "wall_s": sum(r.get("epoch_s", 0.0) for r in history),
        "out": str(run_dir), "config": meta["config"],
    }


def table(records: list[dict]) -> str:
    """One row per (task, model, loss label): the seeds, the median number of epochs
    run and the median of each of ``COLUMNS`` at the runs' best-validation epochs."""
    groups: dict[tuple, list[dict]] = {}
    for r in records:
        groups.setdefault((r["task"], r["model"], r["loss"]), []).append(r)
    rows = [["task", "model", "loss", "seeds", "epochs", *(c[0] for c in COLUMNS)]]
    for (task, model, loss), rs in sorted(groups.items()):
        cells = [task, model, loss, ",".join(str(r["seed"]) for r in sorted(rs, key=_seed)),
                 f"{statistics.median(r['epochs'] for r in rs):g}"]
        for _, key, fmt in COLUMNS:
            vals = [r["metrics_at_best"].get(key) for r in rs]
            vals = [v for v in vals if v is not None]
            cells.append(fmt.format(statistics.median(vals)) if vals else "-")
        rows.append(cells)
    widths = [max(len(row[i]) for row in rows) for i in range(len(rows[0]))]
    lines = ["  ".join(c.ljust(w) if i < 3 else c.rjust(w) for i, (c, w) in
                       enumerate(zip(row, widths))).rstrip() for row in rows]
    lines.insert(1, "-" * len(lines[0]))
    return "\n".join(lines)


def _seed(record: dict) -> int:
    return record["seed"]


def parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("task", nargs="?", choices=("yinyang", "mnist", "xor"), default="yinyang")
    p.add_argument("--models", nargs="+", default=list(MODELS), choices=list(MODELS))
    p.add_argument("--losses", nargs="+", default=list(LOSSES), choices=LOSSES)
    p.add_argument("--seeds", nargs="+", type=int, default=[0, 1, 2])
    p.add_argument("--epochs", type=int, default=20)
    p.add_argument("--batch-size", type=int, default=None, help="override (default 256)")
    p.add_argument("--lr", type=float, default=None, help="override the per-loss default")
    p.add_argument("--hidden", type=int, nargs="+", default=None, help="override the sizes")
    p.add_argument("--lr-schedule", choices=LR_SCHEDULES, default="constant",
                   help="eventax-train --lr-schedule (cosine: decay over --epochs)")
    p.add_argument("--sample-clip", type=float, default=SAMPLE_CLIP,
                   help="ttfs runs: per-sample gradient clip (eventax-train --sample-clip; "
                        f"default {SAMPLE_CLIP:g}, 0: off)")
    p.add_argument("--silent-push", type=float, default=None,
                   help="ttfs and max runs: silent-target term weight (eventax-train "
                        f"--silent-push; default {SILENT_PUSH:g} for ttfs, {MAX_SILENT_PUSH:g} "
                        "for max, 0: off)")
    p.add_argument("--revive", type=float, default=None,
                   help="dead-hidden-neuron term weight for every run (eventax-train --revive; "
                        f"default: its default, {REVIVE:g} for {' and '.join(REVIVE_LOSSES)}, "
                        "0 for the other losses)")
    p.add_argument("--train-size", type=int, default=None, help="first N samples only (checks)")
    p.add_argument("--val-size", type=int, default=None)
    p.add_argument("--test-size", type=int, default=None)
    p.add_argument("--data-dir", default="data/mnist", help="MNIST IDX files")
    p.add_argument("--out-root", default="runs/paper_table", help="one run directory per config")
    p.add_argument("--json", default="results/paper_table.json", help="runs are appended here")
    p.add_argument("--overwrite", action="store_true",
                   help="rerun configurations whose run directory under --out-root holds a "
                        "run already (without it, that is an error before anything runs)")
    p.add_argument("--no-progress", dest="progress", action="store_false")
    p.add_argument("--no-plots", dest="plots", action="store_false")
    p.add_argument("--table-only", action="store_true", help="print the table of --json and exit")
    p.add_argument("--collect", nargs="+", default=[], metavar="DIR",
                   help="also tabulate these eventax-train run directories (not written to --json)")
    return p


def main(argv=None) -> int:
    args = parser().parse_args(argv)

    path = Path(args.json)
    records = json.loads(path.read_text()) if path.is_file() else []
    try:
        collected = [collect(Path(d)) for d in args.collect]
    except (OSError, ValueError, KeyError, TypeError) as err:
        print(f"paper_table: error: {err}", file=sys.stderr)
        return 2
    if not args.table_only:
        runs = configurations(args)
        done = [d for d in (run_dir(r, Path(args.out_root)) for r in runs)
                if (d / "checkpoint.json").is_file()]
        if done and not args.overwrite:
            which = "y holds" if len(done) == 1 else "ies hold"
            print(f"paper_table: error: {len(done)} run director{which} a run already "
                  f"({', '.join(map(str, done))}); tabulate them with --table-only --collect "
                  "DIR..., or rerun with --overwrite", file=sys.stderr)
            return 2
        print(f"{len(runs)} run(s); appending to {path}", file=sys.stderr)
        for i, run in enumerate(runs, 1):
            print(f"[{i}/{len(runs)}] {run['task']} {run['label']} {run['loss']} seed {run['seed']}",
                  file=sys.stderr)
            records.append(run_one(run, Path(args.out_root), args.overwrite))
            path.parent.mkdir(parents=True, exist_ok=True)
            path.write_text(json.dumps(_finite(records), indent=1, default=str))
    print(table(records + collected))
    return 0


def _finite(obj):
    """JSON has no NaN/inf: write them as null."""
    if isinstance(obj, dict):
        return {k: _finite(v) for k, v in obj.items()}
    if isinstance(obj, (list, tuple)):
        return [_finite(v) for v in obj]
    if isinstance(obj, float) and not math.isfinite(obj):
        return None
    return obj


if __name__ == "__main__":
    sys.exit(main())
