"""``benchmarks/paper_table.py``: run labels and tabulating ``eventax-train`` run directories.

The labels must keep unlike runs apart (a run's median pools only runs that differ in
their seed), and a collected run must report the metrics of its best-validation epoch.
"""

import importlib.util
import json
import statistics
from pathlib import Path

import pytest

from eventax_dsl.train.config import TrainConfig

ROOT = Path(__file__).resolve().parents[1]
_spec = importlib.util.spec_from_file_location("paper_table", ROOT / "benchmarks" / "paper_table.py")
paper_table = importlib.util.module_from_spec(_spec)
_spec.loader.exec_module(paper_table)


def _args(*argv):
    """The configurations paper_table itself would run for ``argv``."""
    return paper_table.configurations(paper_table.parser().parse_args(list(argv)))


def test_labels_of_the_scripts_own_runs_name_only_the_remedies():
    runs = _args("yinyang", "--models", "lif", "lif-amos", "--seeds", "0")
    got = {}
    for run in runs:
        options = {k: v for k, v in run.items() if k not in ("task", "label")}
        got[(run["label"], run["loss"])] = paper_table.labels(TrainConfig(task="yinyang", **options))
    assert got[("lif", "ttfs")] == ("lif", "ttfs+clip10+push10+revive1")
    assert got[("lif", "max")] == ("lif", "max+push1+revive1")
    assert got[("lif", "integral")] == ("lif", "integral")
    assert got[("lif-amos", "exp-integral")] == ("lif-amos", "exp-integral")


def test_labels_name_every_setting_that_differs():
    model, loss = paper_table.labels(TrainConfig(
        task="yinyang", model="lif", loss="max", batch_size=32, lr=5e-3, lr_schedule="cosine",
        epochs=30, logit_scale=1.0, revive=0.0, silent_push=0.0, train_size=640))
    assert model == "lif[t640]"
    # data subsets keep their split apart: a smaller test set is not a smaller training set
    assert [paper_table.labels(TrainConfig(task="yinyang", model="lif", **{k: 256}))[0]
            for k in ("train_size", "val_size", "test_size")] == ["lif[t256]", "lif[v256]",
                                                                  "lif[T256]"]
    assert loss == "max+cosine+b32+lr0.005+scale1"
    _, loss = paper_table.labels(TrainConfig(  # scale 10 is the max loss's default
        task="yinyang", model="lif", loss="max", batch_size=32, lr=5e-3, lr_schedule="cosine",
        epochs=30, logit_scale=10.0, revive=0.0, silent_push=0.0, train_size=640))
    assert loss == "max+cosine+b32+lr0.005"
    model, loss = paper_table.labels(TrainConfig(
        task="yinyang", model="models/qif.neuron", readout_model="li", loss="ttfs", amos=True,
        hidden=(20,), lr_schedule="cosine", epochs=30, decay_epochs=10, train_params=False))
    assert model == "qif-amos->li-20"
    assert loss == "ttfs+clip10+push10+revive1+cosine+decay10+b32+no-train_params"


def _run_dir(tmp_path, name, cfg: TrainConfig, val, test):
    """A run directory as eventax-train writes it, with the given per-epoch accuracies."""
    history = [{"epoch": e + 1, "val_acc": v, "test_acc": t, "test_acc_at_best": None,
                "max_rate": 1.0 + e, "dead_neurons": e, "spikes_per_sample": 10.0 * (e + 1),
                "first_spike_ms": 5.0, "epoch_s": 2.0}
               for e, (v, t) in enumerate(zip(val, test))]
    best = max(history, key=lambda r: r["val_acc"])  # first of equals, as the trainer does
    for r in history:
        r["test_acc_at_best"] = best["test_acc"] if r["epoch"] >= best["epoch"] else None
    out = tmp_path / name
    out.mkdir()
    meta = {"config": dict(cfg.to_json(), out=str(out)), "history": history, "epoch": len(history),
            "best": {"epoch": best["epoch"], "val_acc": best["val_acc"], "test_acc": best["test_acc"]}}
    (out / "checkpoint.json").write_text(json.dumps(meta))
    return out


def test_collected_runs_pool_seeds_at_their_best_epochs_and_keep_unlike_runs_apart(tmp_path):
    base = dict(task="yinyang", model="lif", loss="integral", batch_size=32, lr=5e-3, epochs=3)
    dirs = [
        _run_dir(tmp_path, "s0", TrainConfig(seed=0, **base), [0.80, 0.90, 0.85], [0.81, 0.88, 0.90]),
        _run_dir(tmp_path, "s1", TrainConfig(seed=1, **base), [0.95, 0.90, 0.92], [0.93, 0.94, 0.95]),
        _run_dir(tmp_path, "s2", TrainConfig(seed=2, **base), [0.70, 0.75], [0.71, 0.72]),  # stopped
        _run_dir(tmp_path, "other", TrainConfig(seed=0, **dict(base, lr=1e-2)), [0.5], [0.6]),
    ]
    records = [paper_table.collect(d) for d in dirs]
    assert [r["metrics_at_best"]["epoch"] for r in records] == [2, 1, 2, 1]
    assert [r["epochs"] for r in records] == [3, 3, 2, 1]
    lines = paper_table.table(records).splitlines()
    header = lines[0].split()
    rows = {line.split()[2]: line.split() for line in lines[2:]}
    assert set(rows) == {"integral+b32+lr0.005", "integral+b32+lr0.01"}
    pooled = dict(zip(["task", "model", "loss", "seeds", "epochs", "test", "acc", "max", "rate",
                       "dead", "spikes", "TTFS", "ms"], rows["integral+b32+lr0.005"]))
    assert header[:5] == ["task", "model", "loss", "seeds", "epochs"]
    assert pooled["seeds"] == "0,1,2" and pooled["epochs"] == "3"
    # test accuracies at the best validation epochs: 0.88, 0.93, 0.72
    values = rows["integral+b32+lr0.005"][5:]
    assert float(values[0]) == pytest.approx(statistics.median([0.88, 0.93, 0.72]))
    assert float(values[1]) == pytest.approx(statistics.median([2.0, 1.0, 2.0]))  # max rate
    assert float(values[3]) == pytest.approx(statistics.median([20.0, 10.0, 20.0]))  # spikes
    assert rows["integral+b32+lr0.01"][3] == "0"


def test_collect_errors_name_the_directory(tmp_path, capsys):
    (tmp_path / "empty").mkdir()
    assert paper_table.main(["--table-only", "--json", str(tmp_path / "none.json"),
                             "--collect", str(tmp_path / "empty")]) == 2
    err = capsys.readouterr().err
    assert str(tmp_path / "empty") in err and "no checkpoint.json" in err


def test_a_configuration_that_ran_already_is_an_error_before_anything_runs(tmp_path, capsys):
    argv = ["yinyang", "--models", "lif", "--losses", "integral", "--seeds", "0", "1",
            "--out-root", str(tmp_path / "runs"), "--json", str(tmp_path / "table.json")]
    runs = _args(*argv)
    done = paper_table.run_dir(runs[1], tmp_path / "runs")
    assert done.name == "yinyang-lif-integral-seed1"
    done.mkdir(parents=True)
    (done / "checkpoint.json").write_text("{}")
    assert paper_table.main(argv) == 2
    err = capsys.readouterr().err
    assert f"1 run directory holds a run already ({done})" in err and "--overwrite" in err
    assert not (tmp_path / "table.json").exists()  # nothing ran
    assert (done / "checkpoint.json").read_text() == "{}"
