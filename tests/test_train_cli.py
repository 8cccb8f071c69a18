"""``eventax-train`` end to end (in-process ``main([...])``) with tiny networks.

- Yin-Yang: files written (metrics, checkpoint, plots), one compilation of the
  training step for several runs, and ``--resume`` continuing a run (killed
  between epochs, or inside one after a ``--checkpoint-every`` checkpoint) to
  bit-for-bit the same checkpoint as an uninterrupted run;
- clear one-line errors for a bad model, loss, MNIST folder, resume;
- MNIST, delayed XOR and ``--devices 2`` (slow: each compiles its own programs).
"""

import dataclasses
import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import equinox as eqx
import jax.numpy as jnp
import numpy as np
import pytest

from eventax_dsl.sim.loop import BUDGET, NAN_BASE, SPIKE_BUFFER
from eventax_dsl.train import checkpoint as ckpt
from eventax_dsl.train import engine
from eventax_dsl.train.cli import main
from eventax_dsl.train.config import TrainConfig, default_lanes
from eventax_dsl.train.trainer import StepError, Trainer, dead_neuron_note, eval_order

ROOT = Path(__file__).resolve().parents[1]
MNIST_DIR = ROOT.parent / "shared" / "datasets" / "mnist"
TINY = ["--batch", "8", "--train-size", "16", "--val-size", "8", "--test-size", "8",
        "--eval-batch-size", "8", "--no-progress", "--plot-points", "20"]
PNG = b"\x89PNG\r\n\x1a\n"
KEYS = {"epoch", "train_loss", "train_acc", "val_acc", "test_acc", "test_acc_at_best", "best_epoch",
        "train_cross_entropy", "val_cross_entropy", "test_cross_entropy",
        "spikes_per_sample", "max_rate", "dead_neurons", "first_spike_ms", "samples_per_s"}


def _check_run_dir(out: Path, epochs: int, plots=("curves", "raster", "voltages")):
    rows = [json.loads(line) for line in (out / "metrics.jsonl").read_text().splitlines()]
    assert [r["epoch"] for r in rows] == list(range(1, epochs + 1))
    assert KEYS <= set(rows[0])
    for r in rows:
        assert 0.0 <= r["train_acc"] <= 1.0 and 0.0 <= r["test_acc"] <= 1.0
        assert np.isfinite(r["train_loss"]) and r["spikes_per_sample"] >= 0
    csv_lines = (out / "metrics.csv").read_text().splitlines()
    assert len(csv_lines) == epochs + 1 and set(csv_lines[0].split(",")) == set(rows[0])
    meta = json.loads((out / "checkpoint.json").read_text())
    assert meta["epoch"] == epochs and meta["history"] == rows
    assert meta["config"]["task"] and meta["rng"]["seed"] == meta["config"]["seed"]
    for name in ("checkpoint.eqx", "best.eqx"):
        assert (out / name).stat().st_size > 0
    for name in plots:
        assert (out / f"{name}.png").read_bytes()[:8] == PNG
    return rows


# one network for the resume and error tests, so that they share compiled programs
SHARED = ["yinyang", "--model", "lif", "--hidden", "6", "--delay", "0.5", "--silent-push", "1.0",
          "--revive", "1.0",
          "--lr-schedule", "cosine", "--decay-epochs", "2", *TINY]
STACK = ("Above is the stack outside of JIT. Below is the stack inside of JIT:\n"
         '  File "engine.py", line 162, in train_step\n    loss = ...\n\n')
NAN_MESSAGE = (STACK + "equinox.EquinoxRuntimeError: A linear solver received non-finite (NaN or "
               "inf) input and cannot determine a\nsolution.\n\nThis means that you have a bug "
               "upstream of Lineax")
BUDGET_MESSAGE = (STACK + "equinox.EquinoxRuntimeError: eventax_dsl.sim: the event budget of 40 "
                  "loop iterations was exhausted before the end of the simulation (models: lif). "
                  "Raise it with the\noption max_events=...")


def _failing(real, message, on=None):
    """A stand-in for a jitted step that raises ``message`` as Equinox does on the calls
    numbered in ``on`` (1-based; ``None``: every call) and runs ``real`` otherwise."""
    def step(*args):
        step.calls += 1
        if on is None or step.calls in on:
            raise eqx.EquinoxRuntimeError(message)
        return real(*args)

    step.calls = 0
    return step


def test_yinyang_smoke_resume_is_exact_and_nothing_recompiles(tmp_path, capsys, monkeypatch):
    # with the silent-target term (its quadrature read-out in training and evaluation),
    # the dead-neuron term, and a cosine schedule over the 2 epochs (its step count is in
    # the optimiser state)
    traces = eqx.debug.get_num_traces(engine.train_step)
    # uninterrupted: 2 epochs
    assert main([*SHARED, "--epochs", "2", "--out", str(tmp_path / "a")]) == 0
    rows = _check_run_dir(tmp_path / "a", 2)
    assert rows[0]["train_loss"] != rows[1]["train_loss"]
    # the loss's terms, logged and named in the epoch line, sum to it
    terms = ("cross_entropy", "early_spike", "silent_push", "revive")
    for r in rows:
        assert r["train_loss"] == pytest.approx(sum(r[f"train_{k}"] for k in terms), rel=1e-6)
    assert rows[0]["train_cross_entropy"] > 0 and rows[0]["train_early_spike"] > 0
    # on val and test the cross-entropy alone is less than the loss by the early-spike term
    for r in rows:
        assert 0 < r["val_cross_entropy"] < r["val_loss"] and 0 < r["test_cross_entropy"] < r["test_loss"]
    said = capsys.readouterr().out
    assert (f"epoch 1: train loss {rows[0]['train_loss']:.4f} (cross entropy "
            f"{rows[0]['train_cross_entropy']:.4f}, early spike ") in said
    # yinyang default lr 5e-3: half-way down the cosine after epoch 1, at 1 % after epoch 2
    np.testing.assert_allclose([r["lr"] for r in rows], [5e-3 * (0.01 + 0.99 / 2), 5e-5], rtol=1e-6)
    # killed after epoch 1, resumed for one more
    assert main([*SHARED, "--epochs", "1", "--out", str(tmp_path / "b")]) == 0
    after_one = (tmp_path / "b" / "checkpoint.eqx").read_bytes()
    assert main(["yinyang", "--resume", str(tmp_path / "b"), "--epochs", "2", "--no-progress"]) == 0
    assert "resuming" in capsys.readouterr().err
    _check_run_dir(tmp_path / "b", 2)
    # the metrics files keep the uninterrupted run's columns and their order (the history
    # came back from checkpoint.json with its keys sorted)
    def columns(d):
        return ((d / "metrics.csv").read_text().splitlines()[0],
                list(json.loads((d / "metrics.jsonl").read_text().splitlines()[0])))
    assert columns(tmp_path / "b") == columns(tmp_path / "a")
    final = (tmp_path / "b" / "checkpoint.eqx").read_bytes()
    assert final != after_one
    # bit-for-bit the same network and optimiser state as the uninterrupted run
    assert final == (tmp_path / "a" / "checkpoint.eqx").read_bytes()

    # killed inside epoch 2, right after a mid-epoch checkpoint (--checkpoint-every 1: after
    # batch 1 of 2), resumed: the batch already done is not repeated, and parameters,
    # optimiser state and the epoch's metrics come out as in the uninterrupted run
    original = Trainer._write_checkpoint

    def killed_mid_epoch(self):
        net = original(self)
        if self.epoch == 1 and self.batch == 1:
            raise KeyboardInterrupt
        return net

    monkeypatch.setattr(Trainer, "_write_checkpoint", killed_mid_epoch)
    with pytest.raises(KeyboardInterrupt):
        main([*SHARED, "--epochs", "2", "--checkpoint-every", "1", "--out", str(tmp_path / "c")])
    monkeypatch.setattr(Trainer, "_write_checkpoint", original)
    meta = json.loads((tmp_path / "c" / "checkpoint.json").read_text())
    assert (meta["epoch"], meta["batch"], len(meta["partial"]["train_loss"])) == (1, 1, 1)
    # a checkpoint from before the terms were logged: the same parameters, and the
    # resumed epoch has no term means (its first batch's terms are unknown)
    shutil.copytree(tmp_path / "c", tmp_path / "d")
    del meta["partial"]["train_terms"]
    (tmp_path / "d" / "checkpoint.json").write_text(json.dumps(meta))
    assert main(["yinyang", "--resume", str(tmp_path / "d"), "--no-progress"]) == 0
    assert (tmp_path / "d" / "checkpoint.eqx").read_bytes() == (tmp_path / "a" / "checkpoint.eqx").read_bytes()
    old = _check_run_dir(tmp_path / "d", 2)
    assert all(f"train_{k}" in old[0] and f"train_{k}" not in old[1] for k in terms)
    assert main(["yinyang", "--resume", str(tmp_path / "c"), "--no-progress"]) == 0
    assert "(1 of 2 batches of epoch 2 done)" in capsys.readouterr().err
    assert (tmp_path / "c" / "checkpoint.eqx").read_bytes() == (tmp_path / "a" / "checkpoint.eqx").read_bytes()
    timing = {"samples_per_s", "epoch_s"}
    resumed = _check_run_dir(tmp_path / "c", 2)
    assert [{k: v for k, v in r.items() if k not in timing} for r in resumed] == \
        [{k: v for k, v in r.items() if k not in timing} for r in rows]
    meta = json.loads((tmp_path / "c" / "checkpoint.json").read_text())
    assert (meta["batch"], meta["partial"]) == (0, None)

    # killed while saving that mid-epoch checkpoint, after checkpoint.json was replaced and
    # before the new tree was renamed to checkpoint.eqx (which still holds epoch 1's end):
    # the resume finishes the rename and ends as the uninterrupted run did
    real_replace = ckpt._replace

    def killed_while_saving(src, dst):
        if dst.name == "checkpoint.eqx":
            meta = json.loads((dst.parent / "checkpoint.json").read_text())
            if (meta["epoch"], meta["batch"]) == (1, 1):
                raise KeyboardInterrupt
        real_replace(src, dst)

    monkeypatch.setattr(ckpt, "_replace", killed_while_saving)
    with pytest.raises(KeyboardInterrupt):
        main([*SHARED, "--epochs", "2", "--checkpoint-every", "1", "--out", str(tmp_path / "e")])
    monkeypatch.setattr(ckpt, "_replace", real_replace)
    assert (tmp_path / "e" / "checkpoint.eqx").read_bytes() == after_one
    assert (tmp_path / "e" / "checkpoint.eqx.new").is_file()
    assert main(["yinyang", "--resume", str(tmp_path / "e"), "--no-progress"]) == 0
    assert "(1 of 2 batches of epoch 2 done)" in capsys.readouterr().err
    assert (tmp_path / "e" / "checkpoint.eqx").read_bytes() == (tmp_path / "a" / "checkpoint.eqx").read_bytes()
    assert not (tmp_path / "e" / "checkpoint.eqx.new").exists()
    # a checkpoint.eqx that is not the one checkpoint.json describes is refused
    shutil.copytree(tmp_path / "a", tmp_path / "f")
    (tmp_path / "f" / "checkpoint.eqx").write_bytes(after_one)
    assert main(["yinyang", "--resume", str(tmp_path / "f"), "--no-progress"]) == 2
    assert "checkpoint.eqx is not the network that checkpoint.json describes" in \
        capsys.readouterr().err
    # damaged or mismatched files: one line that names the file, never a traceback
    good = json.loads((tmp_path / "a" / "checkpoint.json").read_text())
    text = json.dumps(good)
    damaged = {
        "g": ({**{k: v for k, v in good.items() if k != "tree_sha256"}}, after_one[:100],
              "checkpoint.eqx': it is damaged, or holds a network other"),
        "h": (dict(good, config=dict(good["config"], hidden=[7])), None,
              "checkpoint.eqx': it is damaged, or holds a network other"),
        "i": (text[:len(text) // 2], None, "checkpoint.json is not valid JSON"),
        "j": ({k: v for k, v in good.items() if k != "history"}, None,
              "checkpoint.json has no 'history' (a list is needed)"),
        "k": ([good], None, "checkpoint.json holds a list, not a run's record"),
        "l": (dict(good, config=dict(good["config"], hidden=["a"])), None,
              "the config in checkpoint.json is not valid"),
    }
    for name, (meta, tree, message) in damaged.items():
        shutil.copytree(tmp_path / "a", tmp_path / name)
        (tmp_path / name / "checkpoint.json").write_text(meta if isinstance(meta, str)
                                                         else json.dumps(meta))
        if tree is not None:
            (tmp_path / name / "checkpoint.eqx").write_bytes(tree)
        assert main(["yinyang", "--resume", str(tmp_path / name), "--no-progress"]) == 2, name
        err = capsys.readouterr().err
        assert err.startswith("eventax-train: error: cannot ") and message in err, (name, err)
        assert str(tmp_path / name) in err and len(err.strip().splitlines()) == 1, (name, err)
    # a lost best.eqx is said on resume (it is written again only when validation improves)
    (tmp_path / "b" / "best.eqx").unlink()
    said = []
    Trainer.resume(tmp_path / "b", log=said.append)
    assert any(f"{tmp_path / 'b' / 'best.eqx'} is missing" in m for m in said), said

    # every run and resume above: one trace of the training step (fixed batch shape)
    assert eqx.debug.get_num_traces(engine.train_step) - traces == 1
    # the hidden -> output delays (--delay 0.5) were trained (those of hidden neurons
    # that spiked before the outputs did), the input has none
    delays = Trainer.resume(tmp_path / "a", log=None).net.delays
    assert delays[0] is None and delays[1].shape == (6,)
    assert np.any(np.asarray(delays[1]) != 0.5)

    # resuming may not change what the result depends on
    assert main(["yinyang", "--resume", str(tmp_path / "b"), "--lr", "0.1"]) == 2
    assert "cannot change lr when resuming" in capsys.readouterr().err
    assert main(["xor", "--resume", str(tmp_path / "b")]) == 2
    assert "is a yinyang run, not xor" in capsys.readouterr().err


def test_a_failed_atomic_write_keeps_the_old_file_and_leaves_no_temporary_one(tmp_path):
    ckpt.save_json(tmp_path / "checkpoint.json", {"epoch": 1})
    with pytest.raises(TypeError, match="not JSON serializable"):
        ckpt.save_json(tmp_path / "checkpoint.json", {"epoch": 2, "out": tmp_path})
    assert [p.name for p in tmp_path.iterdir()] == ["checkpoint.json"]  # no checkpoint.json.tmp
    assert json.loads((tmp_path / "checkpoint.json").read_text()) == {"epoch": 1}


def test_an_output_path_through_a_file_is_a_clear_error_before_any_work(tmp_path, capsys):
    (tmp_path / "afile").write_text("")
    for out, what in [(tmp_path / "afile", "it is a file"),
                      (tmp_path / "afile" / "sub", f"{tmp_path / 'afile'} is a file")]:
        assert main(["yinyang", "--out", str(out), "--no-progress"]) == 2
        err = capsys.readouterr().err
        assert err.startswith("eventax-train: error: cannot write the run to ") and what in err
        assert "calibrat" not in err


def test_an_output_directory_holding_a_run_is_kept_unless_overwrite_is_given(tmp_path, capsys):
    out = tmp_path / "run"
    out.mkdir()
    (out / "checkpoint.json").write_text('{"an": "earlier run"}')
    assert main(["yinyang", "--out", str(out), "--no-progress"]) == 2
    err = capsys.readouterr().err
    assert err.startswith(f"eventax-train: error: {out} holds a run already (checkpoint.json)")
    assert f"--resume {out}" in err and "--overwrite" in err and "calibrat" not in err
    assert (out / "checkpoint.json").read_text() == '{"an": "earlier run"}'
    assert list(out.iterdir()) == [out / "checkpoint.json"]
    with pytest.raises(SystemExit):  # a usage error: --overwrite starts a new run
        main(["yinyang", "--resume", str(out), "--overwrite"])
    assert "cannot be combined with --resume" in capsys.readouterr().err
    # with overwrite, the directory is accepted (the run itself is tested elsewhere)
    from eventax_dsl.train.trainer import _check_out  # noqa: PLC0415
    _check_out(out, overwrite=True)
    _check_out(tmp_path / "new" / "dir")


@pytest.mark.parametrize(
    "argv, message",
    [
        (["yinyang", "--model", "no_such_model"], "model 'no_such_model' not found"),
        (["yinyang", "--readout-model", "missing/x.neuron"], "Library models: "),
        (["yinyang", "--loss", "hinge"], "unknown loss 'hinge'; choose one of: ttfs, max"),
        (["yinyang", "--readout-model", "li", "--loss", "ttfs"], "needs a spiking output layer"),
        (["mnist", "--data-dir", "{tmp}/nowhere"], "MNIST file 'train-images-idx3-ubyte'"),
        (["yinyang", "--resume", "{tmp}"], "no checkpoint.json there"),
        (["xor", "--hidden", "4", "4"], "one recurrent hidden population"),
        # ran without a word, with half the trials' windows starting after they ended
        (["xor", "--t-max", "40"], "t_max = 40 ms ends 2487 of the 5000 training trials"),
        (["xor", "--t-max", "59.72"], "the latest at 59.73 ms); use t_max >= 59.8 ms"),
        (["yinyang", "--train-size", "4", "--batch", "8"], "fewer than one batch"),
        (["yinyang", "--loss", "integral", "--silent-push", "1"], "silent_push applies to the ttfs"),
        (["yinyang", "--label-smoothing", "1.5"], "invalid label_smoothing: 1.5"),
        (["yinyang", "--loss", "max", "--logit-scale", "0"], "invalid logit_scale: 0.0"),
        (["yinyang", "--logit-scale", "2"], "logit_scale applies to the voltage losses only"),
    ],
)
def test_clear_errors(tmp_path, capsys, argv, message):
    argv = [a.replace("{tmp}", str(tmp_path)) for a in argv]
    assert main([*argv, "--out", str(tmp_path / "run"), "--no-progress"]) == 2
    err = capsys.readouterr().err
    assert err.startswith("eventax-train: error: ") and message in err
    if "no_such_model" in message:
        assert "qif" in err and "lif" in err  # lists the library


def test_solver_stepping_and_condition_units_reach_the_trainer():
    import diffrax as dfx  # noqa: PLC0415

    from eventax_dsl.train.cli import _parser  # noqa: PLC0415

    args = _parser().parse_args(["yinyang", "--solver", "dopri8", "--stepping", "solve",
                                 "--condition-units", "raw", "--lanes", "4"])
    assert (args.solver, args.stepping, args.condition_units, args.lanes) == ("dopri8", "solve",
                                                                            "raw", 4)
    cfg = TrainConfig(task="yinyang", model="qif", hidden=(4,), solver="dopri8", stepping="solve",
                      init_gain=1.0, batch_size=8, train_size=16, val_size=8, test_size=8,
                      progress=False, plots=False)
    trainer = Trainer(cfg)
    options = trainer.options
    assert options.stepping == "solve" and isinstance(options.get_solver(), dfx.Dopri8)
    assert trainer.readout.condition_units == "rest"
    assert Trainer(dataclasses.replace(cfg, condition_units="raw")).readout.condition_units == "raw"
    assert Trainer(dataclasses.replace(cfg, solver="tsit5", stepping="single")).options.stepping \
        == "single"
    assert Trainer(dataclasses.replace(cfg, lanes=4)).lanes == 4
    with pytest.raises(ValueError, match="invalid lanes: 0"):
        TrainConfig(lanes=0).resolved()
    with pytest.raises(ValueError, match="unknown solver 'rk4'; by name: tsit5, dopri5"):
        TrainConfig(solver="rk4").resolved()
    with pytest.raises(ValueError, match="stepping must be one of single, solve, got 'each'"):
        TrainConfig(stepping="each").resolved()


@pytest.mark.parametrize("message, expected, hint", [
    (NAN_MESSAGE, "A linear solver received non-finite (NaN or inf) input and cannot determine a "
                  "solution. This usually means", True),
    (BUDGET_MESSAGE, "the event budget of 40 loop iterations was exhausted before the end of the "
                     "simulation (models: lif). Raise it with the option max_events=... In "
                     "training, raise max_spikes_per_neuron (--max-spikes-per-neuron, now 10).",
     False),
])
def test_failing_training_step_is_one_clear_line(tmp_path, capsys, monkeypatch, message,
                                                 expected, hint):
    # an Equinox runtime check firing inside the jitted step (the message lineax gives when
    # a NaN reaches the spike-time derivative; the simulator's event budget) becomes one
    # line naming epoch and batch; only a non-finite value gets the NaN advice
    monkeypatch.setattr("eventax_dsl.train.trainer.train_step",
                        _failing(engine.train_step, message, on={2}))
    assert main([*SHARED, "--epochs", "1", "--out", str(tmp_path / "run")]) == 2
    lines = capsys.readouterr().err.strip().splitlines()
    assert lines[0].startswith("writing to ") and len(lines) == 2
    prefix = "eventax-train: error: training step failed in epoch 1, batch 2: "
    assert lines[1].startswith(prefix + expected)
    assert ("--x64" in lines[1]) == hint and ("NaN or inf in the simulation" in lines[1]) == hint
    if not hint:  # the check's message and the trainer's option, nothing else
        assert lines[1] == prefix + expected


def _with_status(real, code, samples=None, on=None):
    """A stand-in for ``eval_step`` that runs ``real`` and then reports the simulator
    status ``code`` for ``samples`` (``None``: all) on the calls numbered in ``on``
    (1-based; ``None``: every call), as a failed simulation does."""
    def step(*args):
        step.calls += 1
        out = real(*args)
        if on is None or step.calls in on:
            status = np.zeros(out.status.shape, np.int32)
            status[slice(None) if samples is None else samples] = code
            out = eqx.tree_at(lambda o: o.status, out, jnp.asarray(status))
        return out

    step.calls = 0
    return step


# SHARED as a config, for the tests that do not go through the CLI
SHARED_CONFIG = dict(task="yinyang", model="lif", hidden=(6,), delay=0.5, silent_push=1.0,
                     revive=1.0, lr_schedule="cosine", decay_epochs=2, epochs=1, batch_size=8,
                     train_size=16, val_size=8, test_size=8, eval_batch_size=8, progress=False,
                     plot_points=20)


def test_failing_evaluation_and_calibration_say_where(monkeypatch):
    config = SHARED_CONFIG
    # a real overflow: one spike per neuron allowed, strong input weights (no calibration)
    strong = Trainer(TrainConfig(**config, max_spikes_per_neuron=1, init_gain=3.0))
    with pytest.raises(StepError, match=r"^evaluation failed on sample \d of 8( \(and \d more "
                                        r"in this batch\))?: more than max_spikes=9 spikes "
                                        r"occurred; the spike buffer is full\. Raise it with the "
                                        r"option max_spikes=\.\.\. In training, raise "
                                        r"max_spikes_per_neuron \(--max-spikes-per-neuron, now 1\)\.$"):
        strong.evaluate("val")

    trainer = Trainer(TrainConfig(**config))
    # the failing sample is named (sample 5 of the batch); the event budget's own message
    monkeypatch.setattr("eventax_dsl.train.trainer.eval_step",
                        _with_status(engine.eval_step, BUDGET, samples=[5]))
    with pytest.raises(StepError, match=r"^evaluation failed on sample 5 of 8: the event "
                                        r"budget of \d+ loop iterations was exhausted .* "
                                        r"max_events=\.\.\. .* In training, raise "
                                        r"max_spikes_per_neuron \(--max-spikes-per-neuron, now 10\)\.$"):
        trainer.evaluate("val")
    # AMOS (one spike per neuron), as the simulator sizes it
    other = Trainer(TrainConfig(**config, amos=True, init_gain=1.0))  # no calibration run
    with pytest.raises(StepError, match=r"--max-spikes-per-neuron, now 1\)\.$"):
        other.evaluate("val")
    # a NaN is a FloatingPointError with the advice
    monkeypatch.setattr("eventax_dsl.train.trainer.eval_step",
                        _with_status(engine.eval_step, NAN_BASE, samples=[2, 3]))
    with pytest.raises(FloatingPointError, match=r"^evaluation failed on sample 2 of 8 \(and 1 "
                                                 r"more in this batch\): NaN or Inf in .*--x64"):
        trainer.evaluate("val")
    # another runtime check firing inside the jitted step names the batch
    monkeypatch.setattr("eventax_dsl.train.trainer.eval_step", _failing(engine.eval_step,
                                                                        NAN_MESSAGE))
    with pytest.raises(FloatingPointError, match=r"^evaluation failed on samples 0-7 of 8: A "
                                                 r"linear solver received non-finite"):
        trainer.evaluate("val")
    # the initial-gain calibration takes an exhausted budget to mean "too active" and
    # lowers the gain: here the first trial (gain 1) overflows, then the real step runs
    once = _with_status(engine.eval_step, SPIKE_BUFFER, on={1})
    monkeypatch.setattr("eventax_dsl.train.trainer.eval_step", once)
    assert Trainer(TrainConfig(**config)).gains[0] < 1.0 and once.calls > 1
    # if it overflows at every gain, it says so and names the option
    monkeypatch.setattr("eventax_dsl.train.trainer.eval_step",
                        _with_status(engine.eval_step, BUDGET))
    with pytest.raises(ValueError, match=r"calibration: population 0 \(LIF\) fails to simulate "
                                         r"even with tiny input weights .* raise max_spikes_per_neuron"):
        Trainer(TrainConfig(**config))
    # any other failure is reported as the calibration's, in one line
    monkeypatch.setattr("eventax_dsl.train.trainer.eval_step",
                        _with_status(engine.eval_step, NAN_BASE, samples=[0]))
    with pytest.raises(FloatingPointError, match=r"^calibration of the initial weights failed: "
                                                 r"NaN or Inf in "):
        Trainer(TrainConfig(**config))


def test_evaluation_sorts_samples_by_input_count_without_changing_the_metrics(monkeypatch):
    config = {**SHARED_CONFIG, "val_size": 16, "eval_batch_size": 4}
    trainer = Trainer(TrainConfig(**config, init_gain=1.0))
    # input counts that differ between samples (Yin-Yang's are all 5): drop some spikes
    val = trainer.data.val
    x = np.array(val.x)
    drop = np.random.default_rng(0).random(x.shape) < 0.4
    drop[0] = False  # sample 0 keeps all five, so others sort before it
    x[drop] = np.inf
    trainer.data = trainer.data._replace(val=type(val)(x, val.y, val.t0))

    order = eval_order(x)
    counts = np.isfinite(x).sum(axis=1)
    assert sorted(order) == list(range(16)) and np.all(np.diff(counts[order]) >= 0)
    assert order[0] != 0
    plotted = eval_order(x, first=0)
    assert plotted[0] == 0 and sorted(plotted) == list(range(16))

    sorted_run = trainer.evaluate("val", plot=True)
    monkeypatch.setattr("eventax_dsl.train.trainer.eval_order",
                        lambda x, first=None: np.arange(len(x)))
    plain_run = trainer.evaluate("val", plot=True)
    assert sorted_run["spikes_per_sample"] > 0
    for key in ("acc", "spikes_per_sample", "max_rate", "max_rate_max", "dead_neurons",
                "silent_fraction"):
        assert sorted_run[key] == plain_run[key], key
    for key in ("loss", "first_spike_ms"):
        assert sorted_run[key] == pytest.approx(plain_run[key], rel=1e-6), key
    # the plot still shows sample 0
    a, b = sorted_run["_plot"], plain_run["_plot"]
    assert np.array_equal(a["x"], x[0]) and np.array_equal(a["spike_ids"], b["spike_ids"])
    np.testing.assert_allclose(a["spike_times"], b["spike_times"], rtol=1e-6)


def test_a_mostly_dead_network_gets_one_note(monkeypatch):
    # a gain this small leaves every neuron below threshold: all 6 + 3 are dead
    said = []
    trainer = Trainer(TrainConfig(**{**SHARED_CONFIG, "epochs": 2}, init_gain=1e-3),
                      log=said.append)
    monkeypatch.setattr(trainer, "train_epoch", lambda: (
        setattr(trainer, "epoch", trainer.epoch + 1)
        or {"lr": 0.0, "train_loss": 1.0, "train_acc": 0.5, "samples_per_s": 1.0, "epoch_s": 1.0}))
    trainer.fit()
    assert [r["dead_neurons"] for r in trainer.history] == [9, 9]
    notes = [m for m in said if m.startswith("note:")]
    assert notes == ["note: 9 of 9 spiking neurons never spiked on the test set, despite the "
                     "dead-neuron term (--revive 1); a lower --lr or --logit-scale may keep "
                     "more of them alive"]
    assert said.index(notes[0]) == 1  # after epoch 1's line, and not again after epoch 2
    # without the term the note says how to add it; below a third dead it says nothing
    # (EIF integral lost 22 of 50, and accuracy, without a word at the old threshold of half)
    assert dead_neuron_note(22, 50, 0.0).endswith("--revive 1 adds it (docs/training.md, "
                                                  "'Dead hidden neurons')")
    assert dead_neuron_note(16, 50, 0.0) is None and dead_neuron_note(0, 0, 0.0) is None


def test_lanes_change_how_a_batch_runs_not_what_it_computes(monkeypatch):
    # the engine's results with lanes are checked against closed forms and the vmapped
    # gradient in test_train_losses.py; here: the trainer's evaluation and what it passes on
    whole = Trainer(TrainConfig(**SHARED_CONFIG, init_gain=1.0))
    chunks = Trainer(TrainConfig(**SHARED_CONFIG, init_gain=1.0, lanes=3))  # 8 = 3 + 3 + 2
    assert whole.lanes is None and chunks.lanes == 3
    a, b = whole.evaluate("val"), chunks.evaluate("val")
    assert a["spikes_per_sample"] > 0
    for key in ("acc", "spikes_per_sample", "max_rate_max", "dead_neurons"):
        assert a[key] == b[key], key
    assert a["loss"] == pytest.approx(b["loss"], rel=1e-5)
    seen = []
    monkeypatch.setattr("eventax_dsl.train.trainer.train_step",
                        lambda *args: seen.append(args[-1]) or args[:2] + (0.0, 0.0))
    d = chunks.data.train
    chunks._train_step(d.x[:8], d.y[:8], d.t0[:8])
    assert seen == [3]
    # the default: one sample at a time on a CPU for large networks only (by state count)
    assert default_lanes(440, "cpu") == 1 and default_lanes(440, "gpu") is None
    assert default_lanes(112, "cpu") is None
    with pytest.raises(ValueError, match="lanes does not apply to parallel='gspmd'"):
        TrainConfig(**SHARED_CONFIG, lanes=2, devices=2, parallel="gspmd").resolved()


@pytest.mark.slow
@pytest.mark.skipif(not MNIST_DIR.is_dir(), reason=f"MNIST not found in {MNIST_DIR}")
def test_mnist_smoke_voltage_loss(tmp_path):
    out = tmp_path / "mnist"
    assert main(["mnist", "--data-dir", str(MNIST_DIR), "--hidden", "8", "--loss", "integral",
                 "--epochs", "1", "--out", str(out), *TINY]) == 0
    rows = _check_run_dir(out, 1)
    assert rows[0]["first_spike_ms"] is None or rows[0]["first_spike_ms"] > 0


@pytest.mark.slow
def test_eif_trains_in_float32(tmp_path):
    # eif's exponential overflowed float32 in rejected trial steps, and every gradient was
    # NaN (the run failed in batch 1); its exponent is now capped far above the cut-off
    out = tmp_path / "eif"
    assert main(["yinyang", "--model", "eif", "--hidden", "4", "--epochs", "1", *TINY,
                 "--out", str(out)]) == 0
    rows = _check_run_dir(out, 1)
    assert np.isfinite(rows[0]["train_loss"])


@pytest.mark.slow
def test_xor_smoke_recurrent_egru(tmp_path):
    out = tmp_path / "xor"
    assert main(["xor", "--hidden", "6", "--epochs", "1", "--out", str(out), *TINY]) == 0
    (row,) = _check_run_dir(out, 1)
    # the cross-entropy is this loss's only term (no silent-target or dead-neuron term)
    assert row["train_cross_entropy"] == pytest.approx(row["train_loss"], rel=1e-6)
    for split in ("val", "test"):
        assert row[f"{split}_cross_entropy"] == pytest.approx(row[f"{split}_loss"], rel=1e-6)
    meta = json.loads((out / "checkpoint.json").read_text())
    assert meta["config"]["model"] == "egru" and meta["config"]["loss"] == "exp-integral"


@pytest.mark.slow
def test_two_cpu_devices(tmp_path):
    """``--devices 2`` on a CPU, with no ``XLA_FLAGS``: the command asks JAX for two CPU devices
    itself (a fresh interpreter, as JAX fixes the count when it starts)."""
    env = {k: v for k, v in os.environ.items() if k != "XLA_FLAGS"}
    code = ("import sys; from eventax_dsl.train.cli import main; sys.exit(main(sys.argv[1:]))")
    out = tmp_path / "dp"
    proc = subprocess.run(
        [sys.executable, "-c", code, "yinyang", "--model", "lif", "--hidden", "6", "--devices", "2",
         "--epochs", "1", "--out", str(out), *TINY],
        env=env, capture_output=True, text=True, timeout=900,
    )
    assert proc.returncode == 0, proc.stderr[-2000:]
    _check_run_dir(out, 1)
    # resumed in a fresh interpreter without --devices: the saved run's 2 devices are asked for
    proc = subprocess.run([sys.executable, "-c", code, "yinyang", "--resume", str(out), "--epochs",
                           "2", "--no-progress"], env=env, capture_output=True, text=True,
                          timeout=900)
    assert proc.returncode == 0, proc.stderr[-2000:]
    _check_run_dir(out, 2)
