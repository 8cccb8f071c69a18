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
run piecewise and the table rebuilt with ``--table-only``.

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
"""

from __future__ import annotations

import argparse
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
                                     hidden=(50,), batch_size=256, lr=5e-3 if loss == "ttfs" else 1e-3,
                                     clip=1.0, seed=seed, **common))
        elif args.task == "mnist":
            runs.append(dict(task="mnist", label="lif", model="lif", loss="exp-integral",
                             hidden=(200,), batch_size=256, lr=1e-3, clip=1.0, seed=seed,
                             data_dir=args.data_dir, **common))
        else:
            runs.append(dict(task="xor", label="egru", model="egru", loss="exp-integral",
                             hidden=(32,), batch_size=256, lr=1e-3, clip=1.0, seed=seed, **common))
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


def variant(run: dict) -> str:
    """The loss label of the table: the loss, plus the TTFS remedies that were on."""
    parts = [run["loss"]]
    if run.get("sample_clip"):
        parts.append(f"clip{run['sample_clip']:g}")
    if run.get("silent_push"):
        parts.append(f"push{run['silent_push']:g}")
    if run.get("revive"):
        parts.append(f"revive{run['revive']:g}")
    if run.get("lr_schedule"):
        parts.append(run["lr_schedule"])
    return "+".join(parts)


def run_one(run: dict, out_root: Path) -> dict:
    options = {k: v for k, v in run.items() if k not in ("task", "label")}
    name = f"{run['task']}-{run['label']}-{variant(run)}-seed{run['seed']}"
    options["out"] = str(out_root / name)
    start = time.perf_counter()
    result = train(run["task"], **options)
    best_row = next(r for r in result.history if r["epoch"] == result.best["epoch"])
    return {
        "task": run["task"], "model": run["label"], "loss": variant(run), "seed": run["seed"],
        "epochs": len(result.history), "best": result.best, "metrics_at_best": best_row,
        "final": result.history[-1], "wall_s": time.perf_counter() - start,
        "out": options["out"], "config": {k: (list(v) if isinstance(v, tuple) else v)
                                          for k, v in options.items()},
    }


def table(records: list[dict]) -> str:
    groups: dict[tuple, list[dict]] = {}
    for r in records:
        groups.setdefault((r["task"], r["model"], r["loss"]), []).append(r)
    head = f"{'task':8} {'model':16} {'loss':30} {'seeds':>5} " + " ".join(
        f"{c[0]:>9}" for c in COLUMNS)
    lines = [head, "-" * len(head)]
    for (task, model, loss), rs in sorted(groups.items()):
        cells = []
        for _, key, fmt in COLUMNS:
            vals = [r["metrics_at_best"].get(key) for r in rs]
            vals = [v for v in vals if v is not None]
            cells.append(f"{fmt.format(statistics.median(vals)) if vals else '-':>9}")
        lines.append(f"{task:8} {model:16} {loss:30} {len(rs):>5} " + " ".join(cells))
    return "\n".join(lines)


def main(argv=None) -> int:
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
    p.add_argument("--no-progress", dest="progress", action="store_false")
    p.add_argument("--no-plots", dest="plots", action="store_false")
    p.add_argument("--table-only", action="store_true", help="print the table of --json and exit")
    args = p.parse_args(argv)

    path = Path(args.json)
    records = json.loads(path.read_text()) if path.is_file() else []
    if not args.table_only:
        runs = configurations(args)
        print(f"{len(runs)} run(s); appending to {path}", file=sys.stderr)
        for i, run in enumerate(runs, 1):
            print(f"[{i}/{len(runs)}] {run['task']} {run['label']} {run['loss']} seed {run['seed']}",
                  file=sys.stderr)
            records.append(run_one(run, Path(args.out_root)))
            path.parent.mkdir(parents=True, exist_ok=True)
            path.write_text(json.dumps(_finite(records), indent=1, default=str))
    print(table(records))
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
