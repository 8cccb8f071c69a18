"""Training set-up without simulation: model lookup, config, read-outs, calibration search."""

import json

import equinox as eqx
import jax
import jax.numpy as jnp
import jax.random as jr
import numpy as np
import pytest

from eventax_dsl.train import Readout, TrainConfig, load_model, resolve_model
from eventax_dsl.train.build import (
    HIDDEN_BAND,
    RATE_CAP,
    TIME_FLOOR,
    apply_gains,
    build_network,
    calibrate,
    time_constant_floors,
)
from eventax_dsl.train.engine import apply_floors, make_optimizer
from eventax_dsl.sim import BudgetExhausted, SimulationError, trainable
from eventax_dsl.train.config import (
    COSINE_FINAL,
    MAX_SILENT_PUSH,
    MODEL_DIR,
    REVIVE,
    SAMPLE_CLIP,
    SILENT_PUSH,
)


def test_resolve_model_names_paths_and_errors(tmp_path):
    assert resolve_model("qif") == MODEL_DIR / "qif.neuron"
    assert resolve_model("qif.neuron") == MODEL_DIR / "qif.neuron"
    own = tmp_path / "mine.neuron"
    own.write_text((MODEL_DIR / "lif.neuron").read_text())
    assert resolve_model(str(own)) == own
    with pytest.raises(FileNotFoundError, match=r"model 'qiff' not found.*Library models: .*qif"):
        resolve_model("qiff")


def test_config_defaults_validation_and_json_roundtrip():
    cfg = TrainConfig(task="xor").resolved()
    assert (cfg.model, cfg.readout_model, cfg.loss, cfg.hidden) == ("egru", "li", "exp-integral", (32,))
    assert TrainConfig(task="yinyang", loss="max").resolved().readout_model == "li"
    assert TrainConfig(task="yinyang").resolved().readout_model == "qif"
    assert TrainConfig.from_json(cfg.to_json()) == cfg
    # the silent-target term and the per-sample clip: on for ttfs by default, off for the
    # voltage losses; the dead-neuron term: on for ttfs and max, off for the integrals; each
    # off for checkpoints written before it existed (so they resume unchanged)
    ttfs = TrainConfig(task="yinyang").resolved()
    assert ttfs.silent_push == SILENT_PUSH > 0 and cfg.silent_push == 0.0
    assert ttfs.sample_clip == SAMPLE_CLIP > 0 and cfg.sample_clip == 0.0
    assert ttfs.revive == REVIVE > 0 and cfg.revive == 0.0
    max_ = TrainConfig(task="yinyang", loss="max").resolved()
    assert max_.revive == REVIVE and max_.silent_push == MAX_SILENT_PUSH > 0
    older = ttfs.to_json()
    del older["revive"]  # a checkpoint from before the dead-neuron term resumes without it
    assert TrainConfig.from_json(older).resolved().revive == 0.0
    assert TrainConfig(task="yinyang", silent_push=0.0).resolved().silent_push == 0.0
    # those two terms read spike conditions in units of the resting distance to threshold,
    # except in checkpoints written before that, which resume in the models' own units
    assert ttfs.condition_units == "rest"
    del older["condition_units"]
    assert TrainConfig.from_json(older).resolved().condition_units == "raw"
    # logit scale and label smoothing: 10 and 0.1 for xor's voltage losses, 10 and 0 for
    # mnist's, scale 10 for the max loss everywhere, 1 and 0 elsewhere (ttfs too), 1 and 0 for
    # checkpoints written before they existed
    assert (max_.logit_scale, max_.label_smoothing) == (10.0, 0.0)
    assert TrainConfig(task="yinyang", loss="max", logit_scale=1.0).resolved().logit_scale == 1.0
    for loss in ("integral", "exp-integral"):
        assert TrainConfig(task="yinyang", loss=loss).resolved().logit_scale == 1.0
    max_old = max_.to_json()
    del max_old["logit_scale"]
    assert TrainConfig.from_json(max_old).resolved().logit_scale == 1.0
    assert (cfg.logit_scale, cfg.label_smoothing) == (10.0, 0.1)
    assert (ttfs.logit_scale, ttfs.label_smoothing) == (1.0, 0.0)
    assert TrainConfig(task="xor", loss="ttfs", readout_model="lif").resolved().logit_scale == 1.0
    mnist = TrainConfig(task="mnist").resolved()
    assert (mnist.logit_scale, mnist.label_smoothing) == (10.0, 0.0)
    assert TrainConfig(task="mnist", loss="ttfs", readout_model="lif").resolved().logit_scale == 1.0
    xor_old = cfg.to_json()
    del xor_old["logit_scale"], xor_old["label_smoothing"]
    resumed = TrainConfig.from_json(xor_old).resolved()
    assert (resumed.logit_scale, resumed.label_smoothing) == (1.0, 0.0)
    assert TrainConfig(task="xor", logit_scale=3.0).resolved().logit_scale == 3.0
    old = ttfs.to_json()
    del old["silent_push"]
    old["sample_clip"] = None
    assert (TrainConfig.from_json(old).resolved().silent_push,
            TrainConfig.from_json(old).resolved().sample_clip) == (0.0, 0.0)
    old["sample_clip"] = 3.0  # an old run that asked for clipping keeps it
    assert TrainConfig.from_json(old).resolved().sample_clip == 3.0
    for bad, message in [(dict(loss="integral", silent_push=1.0), "applies to the ttfs and max losses only"),
                         (dict(silent_push=-1.0), "invalid silent_push"),
                         (dict(revive=-1.0), "invalid revive"),
                         (dict(condition_units="mV"), "condition_units must be one of rest, raw"),
                         (dict(task="cifar"), "unknown task 'cifar'"),
                         (dict(loss="hinge"), "unknown loss 'hinge'"),
                         (dict(lr=-1.0), "invalid lr"),
                         (dict(init_gain="big"), "init_gain must be 'auto' or a number"),
                         (dict(batch_size=6, devices=4), "not divisible by devices=4"),
                         (dict(parallel="mpi"), "parallel must be one of threads, gspmd"),
                         (dict(lr_schedule="step"), "unknown lr_schedule 'step'"),
                         (dict(decay_epochs=3), "decay_epochs needs lr_schedule='cosine'"),
                         (dict(lr_schedule="cosine", decay_epochs=0), "invalid decay_epochs"),
                         # unchecked until the review of session 31: devices=0 divided by
                         # zero, tau0=0 blamed the model for a NaN, negative tolerances ran
                         (dict(devices=0), r"invalid devices: 0 \(it must be >= 1\)"),
                         (dict(tau0=0.0), r"invalid tau0: 0.0 \(it must be > 0\)"),
                         (dict(tau1=0.0), "invalid tau1"), (dict(alpha=-1.0), "invalid alpha"),
                         (dict(weight_decay=-1.0), "invalid weight_decay"),
                         (dict(rtol=-1.0), "invalid rtol"), (dict(atol=0.0), "invalid atol"),
                         (dict(max_spikes_per_neuron=0), "invalid max_spikes_per_neuron"),
                         # a required option set to None was a TypeError from the comparison
                         (dict(clip=None), r"invalid clip: None \(it must be > 0\)"),
                         # boundaries no test reached until session 34's mutation audit
                         (dict(label_smoothing=1.0), r"label_smoothing: 1.0 \(it must be in \[0, 1\)\)"),
                         (dict(hidden=(0,)), r"hidden: \(0,\) \(it must be one or more sizes >= 1\)"),
                         (dict(hidden=(50, 0)), r"hidden: \(50, 0\)"),
                         (dict(lanes=2, devices=2, parallel="gspmd"), "lanes does not apply to parallel='gspmd'")]:
        with pytest.raises(ValueError, match=message):
            TrainConfig(**{"task": "yinyang", **bad}).resolved()


def test_paths_given_as_path_objects_are_stored_as_text(tmp_path):
    # a pathlib.Path passed the checks and then failed json.dump at the first checkpoint,
    # after a whole epoch, leaving temporary files in the run directory
    model = resolve_model("qif")
    cfg = TrainConfig(task="mnist", model=model, readout_model=model, data_dir=tmp_path / "mnist",
                      out=tmp_path / "run").resolved()
    assert (cfg.model, cfg.readout_model) == (str(model), str(model))
    assert (cfg.data_dir, cfg.out) == (str(tmp_path / "mnist"), str(tmp_path / "run"))
    assert TrainConfig.from_json(json.loads(json.dumps(cfg.to_json()))).resolved() == cfg


def test_readout_windows_and_validation():
    r = Readout(kind="max", t_end=50.0, grid=6)
    np.testing.assert_allclose(np.asarray(r.obs_times(jnp.asarray(10.0))), [10, 18, 26, 34, 42, 50])
    np.testing.assert_allclose(np.asarray(Readout("integral", 90.0).obs_times(jnp.asarray(30.0))),
                               [30.0, 90.0])
    assert Readout("exp-integral", 40.0).tau == 40.0 and not Readout("ttfs").voltage
    with pytest.raises(ValueError, match="unknown loss 'l2'"):
        Readout(kind="l2")
    with pytest.raises(ValueError, match="grid of at least 2"):
        Readout(kind="max", grid=1)


def _net():
    LIF, LI = load_model("lif"), load_model("li")
    return build_network("yinyang", LIF, LIF, (20,), 5, 3, key=jr.key(0), dtype=jnp.float32,
                         readout=Readout("ttfs")), LI


def test_cosine_schedule_horizon_is_fixed_at_the_start_and_drives_adamw():
    # the horizon defaults to the run's epochs and is stored, so resuming with more epochs
    # keeps it; checkpoints from before schedules existed resume at a constant rate
    cos = TrainConfig(task="yinyang", epochs=7, lr_schedule="cosine").resolved()
    assert cos.decay_epochs == 7 and TrainConfig.from_json(cos.to_json()) == cos
    old = TrainConfig(task="yinyang").resolved().to_json()
    del old["lr_schedule"], old["decay_epochs"]
    assert TrainConfig.from_json(old).resolved().lr_schedule == "constant"
    # AdamW with a constant gradient steps by exactly the learning rate (m_hat / sqrt(v_hat)
    # = 1), so its updates trace the schedule: cosine from lr to COSINE_FINAL * lr over
    # 4 steps, then flat
    net = build_network("yinyang", load_model("lif"), load_model("lif"), (2,), 5, 3,
                        key=jr.key(0), dtype=jnp.float32, readout=Readout("ttfs"))
    params, _ = eqx.partition(net, trainable(net))
    grads = jax.tree_util.tree_map(lambda p: jnp.full_like(p, 1e-3), params)
    opt = make_optimizer(0.01, 0.0, 1e6, "cosine", 4, COSINE_FINAL)
    state = opt.init(params)
    steps = []
    for _ in range(6):
        updates, state = opt.update(grads, state, params)
        steps.append(-float(updates.weights[0]["w"][0, 0]))
    k = np.arange(6)
    want = 0.01 * (COSINE_FINAL + (1 - COSINE_FINAL) * (1 + np.cos(np.pi * np.minimum(k, 4) / 4)) / 2)
    np.testing.assert_allclose(steps, want, rtol=1e-4)
    assert make_optimizer(0.01, 0.0, 1e6, "cosine", 4, COSINE_FINAL) is opt  # cached: no retrace


def test_time_constants_are_floored_after_a_step_and_nothing_else_is():
    LIF, LI = load_model("lif"), load_model("li")
    net = build_network("yinyang", LIF, LI, (4,), 5, 3, key=jr.key(0), dtype=jnp.float32,
                        readout=Readout("exp-integral"))
    floors = time_constant_floors(net)
    # tau_mem = 10 ms, tau_syn = 5 ms in both models; bias (unit 1) and v_th (fixed) excluded
    want = [(p, "tau_mem", TIME_FLOOR * 10.0) for p in (0, 1)] + \
        [(p, "tau_syn", TIME_FLOOR * 5.0) for p in (0, 1)]
    assert sorted(floors) == sorted(want)
    assert time_constant_floors(build_network(
        "yinyang", load_model("eif"), LI, (4,), 5, 3, key=jr.key(0), dtype=jnp.float32,
        readout=Readout("max")))[0][0] == 1  # eif learns only its bias (nA): no floor there
    params, _ = eqx.partition(net, trainable(net))
    bad = eqx.tree_at(lambda n: n.populations[1].params["tau_mem"], params,
                      jnp.array([-0.5, 0.05, 3.0]))
    bad = eqx.tree_at(lambda n: n.populations[1].params["bias"], bad, jnp.array([-2.0, 0.0, 1.0]))
    out = apply_floors(bad, floors)
    np.testing.assert_allclose(np.asarray(out.populations[1].params["tau_mem"]), [0.1, 0.1, 3.0])
    np.testing.assert_array_equal(np.asarray(out.populations[1].params["bias"]), [-2.0, 0.0, 1.0])
    # parameters that are not trained (None in the partition) are skipped
    weights_only, _ = eqx.partition(net, lambda x: False)
    assert apply_floors(weights_only, floors) is weights_only
    # trained delays are kept at or above 0 (below it they would have no gradient)
    delayed, _ = eqx.partition(net.with_delays({1: jnp.array([-1.0, 0.0, 0.5, 2.0])}),
                               trainable(net.with_delays({1: 1.0})))
    np.testing.assert_array_equal(np.asarray(apply_floors(delayed, floors).delays[1]),
                                  [0.0, 0.0, 0.5, 2.0])


def _gain(net, ref, index):
    return float(jnp.mean(net.weights[index]["w"]) / jnp.mean(ref.weights[index]["w"]))


def test_delay_option_puts_axonal_delays_between_populations():
    net = build_network("xor", load_model("egru"), load_model("li"), (4,), 9, 2, key=jr.key(0),
                        dtype=jnp.float32, delay=1.5)
    # input -> hidden: none; recurrent hidden -> hidden and hidden -> read-out: 1.5 ms each
    assert net.delays[0] is None
    for j in (1, 2):
        np.testing.assert_array_equal(np.asarray(net.delays[j]), np.full(4, 1.5))
    assert build_network("xor", load_model("egru"), load_model("li"), (4,), 9, 2,
                         key=jr.key(0), dtype=jnp.float32).delays is None
    with pytest.raises(ValueError, match="invalid delay: -1.0"):
        TrainConfig(task="yinyang", delay=-1.0).resolved()


def test_calibration_finds_gains_in_band_and_silences_downstream():
    net, _ = _net()
    ref = net
    seen = []

    def activity(trial):
        """Fake simulation: the hidden layer's activity grows with its gain g0 (fraction
        min(1, g0 / 4)); the outputs' with g1, only if the hidden layer is active."""
        g0, g1 = _gain(trial, ref, 0), _gain(trial, ref, 1)
        seen.append((g0, g1))
        B, counts = 64, np.zeros((64, 23), int)
        hidden_on = np.arange(B * 20).reshape(B, 20) < min(1.0, g0 / 4) * B * 20
        counts[:, :20] = hidden_on
        counts[:, 20:] = (g1 > 0.3) * (g0 > 0) * np.ceil(10 * g1)  # tonic above g1 ~ 0.4
        return counts

    log = []
    out, gains = calibrate(net, activity, log=log.append)
    assert seen[0] == (1.0, 0.0)  # outputs silenced while the hidden layer is calibrated
    # one progress line per trial (slow models take minutes each), then the choice
    trials = [m for m in log if " trial gain " in m]
    assert len(trials) == len(seen) and len(log) == len(seen) + 2
    assert trials[0].startswith("calibration: population 0 (LIF) trial gain 1: active fraction 0.25,")
    assert log[-1].startswith(f"calibration: population 1 (LIF) gain {gains[1]:.3g}, ")
    assert HIDDEN_BAND[0] <= min(1.0, gains[0] / 4) <= HIDDEN_BAND[1]
    g1 = gains[1]
    assert g1 > 0.3 and np.ceil(10 * g1) <= RATE_CAP  # active, and not tonic
    np.testing.assert_allclose(_gain(out, ref, 0), gains[0], rtol=1e-6)
    np.testing.assert_allclose(_gain(apply_gains(ref, gains), ref, 1), g1, rtol=1e-6)


def test_calibration_gives_a_clear_error_when_every_gain_fails():
    net, _ = _net()

    def failing(trial):
        raise BudgetExhausted("eventax_dsl.sim: more than max_spikes=1 spikes occurred", 2)

    log = []
    with pytest.raises(ValueError, match="fails to simulate even with tiny input weights"):
        calibrate(net, failing, log=log.append)
    assert len(log) == 8 + 12 and all("event budget exhausted (too active)" in m for m in log)

    # only an exhausted budget is taken as "too strong": another simulation failure
    # (a NaN) and anything else propagate
    for error in (SimulationError("eventax_dsl.sim: NaN or Inf in v", 4), KeyError("a bug")):
        def other(trial, error=error):
            raise error

        with pytest.raises(type(error)):
            calibrate(net, other)
