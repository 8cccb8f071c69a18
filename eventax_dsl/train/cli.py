"""``eventax-train``: train a spiking network on Yin-Yang, MNIST or delayed XOR.

Examples::

    eventax-train yinyang --model qif --loss ttfs --epochs 3 --out runs/yy
    eventax-train yinyang --model lif --readout-model li --loss max --out runs/yy-max
    eventax-train mnist --data-dir data/mnist --hidden 200 --loss exp-integral --out runs/mnist
    eventax-train xor --model egru --loss exp-integral --out runs/xor
    eventax-train yinyang --resume runs/yy --epochs 6      # continue a run (same result as
                                                            # an uninterrupted one)

Every option of :class:`~eventax_dsl.train.config.TrainConfig` is a flag; an
option not given takes the task's default (``--help`` shows them). Errors in
the arguments, a missing model or data file, and a runtime check that fails inside
a training step, an evaluation or the initial calibration (a non-finite value, an
exhausted spike or event budget; the message says where) are reported in one line
and exit with status 2.
"""

from __future__ import annotations

import argparse
import sys
import time

from ..sim.options import SOLVERS, STEPPING
from .config import LR_SCHEDULES, PARALLEL, RESUME_CHANGES, TASK_DEFAULTS, TASKS, TrainConfig
from .readout import CONDITION_UNITS, LOSSES

__all__ = ["main"]

#: Flags that only change how a run is shown or executed; allowed on --resume.
_RUNTIME = RESUME_CHANGES | {"epochs"}


def _parser() -> argparse.ArgumentParser:
    d = TASK_DEFAULTS
    p = argparse.ArgumentParser(
        prog="eventax-train",
        description="Train a spiking network with exact event-based gradients.",
        formatter_class=argparse.RawDescriptionHelpFormatter,
        epilog="Task defaults: " + "; ".join(
            f"{t}: model {d[t]['model']}, loss {d[t]['loss']}, hidden {list(d[t]['hidden'])}, "
            f"t_max {d[t]['t_max']}, epochs {d[t]['epochs']}, batch {d[t]['batch_size']}, "
            f"lr {d[t]['lr']}" for t in TASKS),
    )
    S = argparse.SUPPRESS  # options not given stay out of the namespace
    p.add_argument("task", choices=TASKS, help="the task to train on")
    g = p.add_argument_group("network")
    g.add_argument("--model", default=S, help="hidden-layer model: library name (qif, lif, ...) "
                   "or path to a .neuron file")
    g.add_argument("--readout-model", default=S, help="output-layer model (default: --model for "
                   "ttfs, li for the voltage losses)")
    g.add_argument("--hidden", type=int, nargs="+", default=S, help="hidden layer sizes")
    g.add_argument("--loss", default=S, help=f"one of: {', '.join(LOSSES)}")
    g.add_argument("--t-max", type=float, default=S, help="simulated time per sample (ms)")
    g.add_argument("--amos", action="store_true", default=S, help="at most one spike per neuron")
    g.add_argument("--delay", type=float, default=S, metavar="MS",
                   help="axonal delay (ms) on every projection between populations, trained "
                        "with the weights (default: none)")
    g.add_argument("--no-train-params", dest="train_params", action="store_false", default=S,
                   help="train the weights only (not the models' learnable parameters)")
    g.add_argument("--init-gain", default=S, help="'auto' (calibrate, default) or a number")
    g = p.add_argument_group("optimisation")
    g.add_argument("--epochs", type=int, default=S, help="epochs to train (task default below)")
    g.add_argument("--batch-size", "--batch", dest="batch_size", type=int, default=S,
                   help="samples per optimisation step (task default below)")
    g.add_argument("--lr", type=float, default=S, help="AdamW learning rate (task default below)")
    g.add_argument("--lr-schedule", choices=LR_SCHEDULES, default=S,
                   help="constant (default) or cosine: decay to 1%% of --lr over --decay-epochs")
    g.add_argument("--decay-epochs", type=int, default=S,
                   help="cosine: epochs to decay over (default --epochs of the first run; "
                        "kept on --resume, after it the rate stays at 1%%)")
    g.add_argument("--weight-decay", type=float, default=S, help="AdamW decay on weights (1e-4)")
    g.add_argument("--clip", type=float, default=S, help="global gradient-norm clip (1.0)")
    g.add_argument("--sample-clip", type=float, default=S,
                   help="clip each sample's gradient to this norm before averaging (ttfs "
                        "default 10, voltage losses 0 = off); "
                        "bounds the pull of near-grazing spikes (docs/training.md)")
    g.add_argument("--seed", type=int, default=S, help="seed of init and shuffling (0)")
    g = p.add_argument_group("loss details")
    g.add_argument("--tau0", type=float, default=S, help="ttfs softmax temperature, ms (0.5)")
    g.add_argument("--tau1", type=float, default=S, help="ttfs regulariser time constant, ms (6.4)")
    g.add_argument("--alpha", type=float, default=S,
                   help="ttfs regulariser weight (3e-3; QIF trained better with 0, "
                        "docs/training.md)")
    g.add_argument("--silent-push", type=float, default=S,
                   help="ttfs and max: weight of the term that raises a target output "
                        "that never spiked (ttfs; default 10) or whose voltage never rose "
                        "above its value at the window start (max; default 1) "
                        "(0: off; docs/training.md)")
    g.add_argument("--revive", type=float, default=S,
                   help="weight of the term that raises hidden neurons that spiked in none "
                        "of a batch's samples towards threshold (any loss; default 1 for ttfs "
                        "and max, 0 = off for the integrals; docs/training.md)")
    g.add_argument("--condition-units", choices=CONDITION_UNITS, default=S,
                   help="the spike condition in the --silent-push and --revive terms: 'rest' "
                        "(default), in units of each neuron's distance below threshold at "
                        "rest, so one weight means the same for every model; 'raw', the "
                        "model's own units, as runs made before this option existed")
    g.add_argument("--label-smoothing", type=float, default=S,
                   help="label smoothing of the cross-entropy in [0, 1) (default 0; xor "
                        "with a voltage loss 0.1): gives the logits a finite optimum "
                        "(docs/training.md)")
    g.add_argument("--logit-scale", type=float, default=S,
                   help="voltage losses: factor on the logits before the softmax (default 10 "
                        "for max, and for every voltage loss of xor and mnist; else 1; "
                        "docs/training.md)")
    g.add_argument("--max-grid", type=int, default=S, help="max loss: grid points (50)")
    g.add_argument("--no-hermite", dest="hermite", action="store_false", default=S,
                   help="max loss: no cubic Hermite refinement between grid points")
    g.add_argument("--exp-tau", type=float, default=S, help="exp-integral weight time constant "
                   "(default t_max)")
    g = p.add_argument_group("simulation")
    g.add_argument("--x64", action="store_true", default=S, help="float64 (default float32)")
    g.add_argument("--max-spikes-per-neuron", type=int, default=S,
                   help="spike buffer / event budget per spiking neuron (simulator default 10)")
    g.add_argument("--rtol", type=float, default=S,
                   help="relative tolerance of the adaptive step size (default 1e-6 in float32, "
                        "1e-5 there with --stepping solve, 1e-8 with --x64)")
    g.add_argument("--atol", type=float, default=S,
                   help="absolute tolerance of the adaptive step size (defaults as --rtol)")
    g.add_argument("--solver", choices=sorted(SOLVERS), default=S,
                   help="Runge-Kutta solver of the states not solved in closed form (tsit5); "
                        "dopri8 locates spikes more accurately at about 0.7-0.9x the speed")
    g.add_argument("--stepping", choices=STEPPING, default=S,
                   help="single (default): one solver step per event-loop iteration; solve: one "
                        "diffeqsolve per interval between events (slower under vmap)")
    g.add_argument("--lanes", type=int, default=S, metavar="N",
                   help="samples of a batch simulated side by side (one vmap), the rest in "
                        "chunks of N one after another. Default: the whole batch, but 1 on a "
                        "CPU for networks of 300 or more state variables (faster there)")
    g = p.add_argument_group("data and output")
    g.add_argument("--data-dir", default=S, help="MNIST: folder with the four IDX files")
    g.add_argument("--train-size", type=int, default=S, help="use the first N training samples")
    g.add_argument("--val-size", type=int, default=S,
                   help="use the first N validation samples")
    g.add_argument("--test-size", type=int, default=S, help="use the first N test samples")
    g.add_argument("--eval-batch-size", type=int, default=S, help="default max(batch, 256)")
    g.add_argument("--out", default=S, help="run directory (default runs/<task>-<time>)")
    g.add_argument("--overwrite", action="store_true",
                   help="let the new run replace an earlier run in --out (without it, an --out "
                        "holding a run is an error)")
    g.add_argument("--resume", default=S, metavar="DIR", help="continue the run saved in DIR; "
                   "--epochs is the new total")
    g.add_argument("--checkpoint-every", type=int, default=S, metavar="N",
                   help="also checkpoint after every N training batches (for long epochs; "
                        "--resume continues at that batch). Default: at each epoch's end")
    g.add_argument("--devices", type=int, default=S, help="data-parallel over N devices")
    g.add_argument("--parallel", choices=PARALLEL, default=S,
                   help="with --devices: one program per device of this machine, side by side "
                        "(threads, default, the faster) or one program spanning the devices "
                        "(gspmd; also across hosts)")
    g.add_argument("--no-plots", dest="plots", action="store_false", default=S,
                   help="write no PNG plots")
    g.add_argument("--no-progress", dest="progress", action="store_false", default=S,
                   help="no progress bar (the epoch lines are still printed)")
    g.add_argument("--plot-points", type=int, default=S,
                   help="time points of the output-voltage plot (100)")
    return p


def _saved_devices(directory) -> int | None:
    """The ``devices`` of the run saved in ``directory``, read before JAX starts (``None``
    if it cannot be read: resuming then reports what is wrong with the directory)."""
    from .checkpoint import load_meta  # noqa: PLC0415

    try:
        return load_meta(directory)["config"].get("devices")
    except (OSError, ValueError, KeyError, TypeError, AttributeError):
        return None


def main(argv=None) -> int:
    """Entry point; ``argv`` defaults to ``sys.argv[1:]``. Returns the exit status."""
    parser = _parser()
    args = vars(parser.parse_args(argv))
    task = args.pop("task")
    resume = args.pop("resume", None)
    overwrite = args.pop("overwrite")
    if overwrite and resume is not None:
        parser.error("--overwrite starts a new run; it cannot be combined with --resume")
    from ..datasets import MnistNotFoundError  # noqa: PLC0415
    from .trainer import StepError, Trainer  # noqa: PLC0415

    if "hidden" in args:
        args["hidden"] = tuple(args["hidden"])
    devices = args.get("devices")
    if devices is None and resume is not None:
        devices = _saved_devices(resume)  # a resumed run keeps its --devices unless given
    if (devices or 1) > 1:
        # On a CPU, XLA shows one device unless asked before JAX starts; this is that moment.
        from ..sim.parallel import request_cpu_devices  # noqa: PLC0415

        request_cpu_devices(devices)
    try:
        if resume is not None:
            epochs = args.pop("epochs", None)
            runtime = {k: v for k, v in args.items() if k in _RUNTIME}
            others = {k: v for k, v in args.items() if k not in _RUNTIME}
            trainer = Trainer.resume(resume, epochs=epochs, **runtime, **others)
            if trainer.cfg.task != task:
                raise ValueError(f"the run in '{resume}' is a {trainer.cfg.task} run, not {task}")
            where = (f" ({trainer.batch} of {trainer.batches_per_epoch} batches of epoch "
                     f"{trainer.epoch + 1} done)" if trainer.batch else "")
            print(f"resuming {resume} at epoch {trainer.epoch} of {trainer.cfg.epochs}{where}",
                  file=sys.stderr)
        else:
            if "out" not in args:
                args["out"] = f"runs/{task}-{time.strftime('%Y%m%d-%H%M%S')}"
            trainer = Trainer(TrainConfig(task=task, **args), overwrite=overwrite)
            print(f"writing to {trainer.out}", file=sys.stderr)
        result = trainer.fit()
    except (ValueError, FileNotFoundError, FloatingPointError, StepError,
            MnistNotFoundError) as err:
        print(f"eventax-train: error: {err}", file=sys.stderr)
        return 2
    except OSError as err:  # writing the run's files: a full disk, no permission, ...
        print(f"eventax-train: error: {err}", file=sys.stderr)
        return 1
    if result.best is not None:
        b = result.best
        print(f"best validation accuracy {b['val_acc']:.4f} at epoch {b['epoch']}; "
              f"test accuracy there {b['test_acc']:.4f}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
