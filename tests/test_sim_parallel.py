"""Data-parallel simulation across devices (``eventax_dsl.sim.parallel``).

The device count of the CPU backend is fixed when JAX starts, so the
multi-device checks run in a fresh interpreter with
``XLA_FLAGS=--xla_force_host_platform_device_count=2``:

- outputs and gradients of a batch over two devices, both as one program
  spanning them (``shard``) and as one program per device (``run``), must equal
  the single-device ones, and each device must really compute its share;
- training with ``devices=2`` (one program per device, the batch's dead-neuron
  mask and mean gradient combined between calls; or, marked slow, one program
  spanning both) must give the parameters and evaluation of training on one device.

The scripts are listed in ``EARLY_JOBS``: they start as soon as the suite is collected and
run beside the other tests (tests/conftest.py).
"""

from __future__ import annotations

import os
import subprocess
import sys
import textwrap

import jax
import numpy as np
import pytest

from eventax_dsl.sim.parallel import DataParallel, request_cpu_devices

HERE = os.path.dirname(os.path.abspath(__file__))

SCRIPT = textwrap.dedent(
    """
    import sys
    import jax
    jax.config.update("jax_enable_x64", True)
    import equinox as eqx, jax.numpy as jnp, jax.random as jr, numpy as np
    import eventax_dsl
    from eventax_dsl.sim import FeedForward, trainable
    from eventax_dsl.sim.parallel import DataParallel, request_cpu_devices

    assert len(jax.devices()) == 2, jax.devices()
    lif = eventax_dsl.load({lif!r})  # closed-form path: the quickest to compile
    net = FeedForward(lif, [4, 2], in_size=3, key=jr.key(0))
    params, static = eqx.partition(net, trainable(net))
    xs = jr.uniform(jr.key(1), (6, 3), minval=0.0, maxval=10.0)

    def forward(p, xs):
        n = eqx.combine(p, static)
        return jax.vmap(lambda x: n.ttfs(x, 40.0))(xs)

    def loss(p, xs):
        t = forward(p, xs)
        return jnp.mean(jnp.where(jnp.isfinite(t), t, 40.0)), t

    # one program (loss, output times and gradient), compiled once per placement
    grad = jax.jit(jax.value_and_grad(loss, has_aux=True))
    dp = DataParallel()
    ps, xss = dp.replicate(params), dp.shard(xs)
    assert len(xss.sharding.device_set) == 2
    (l1, t1), g1 = grad(params, xs)
    (l2, t2), g2 = grad(ps, xss)
    assert len(t2.sharding.device_set) == 2, t2.sharding
    assert np.isfinite(np.asarray(t1)).mean() > 0.5, t1
    np.testing.assert_allclose(np.asarray(t2), np.asarray(t1), rtol=1e-12, atol=1e-12)
    np.testing.assert_allclose(float(l2), float(l1), rtol=1e-12)
    for a, b in zip(jax.tree_util.tree_leaves(g1), jax.tree_util.tree_leaves(g2)):
        np.testing.assert_allclose(np.asarray(b), np.asarray(a), rtol=1e-10, atol=1e-12)
    assert any(np.abs(np.asarray(a)).max() > 0 for a in jax.tree_util.tree_leaves(g1))
    try:
        dp.shard(xs[:5])
    except ValueError as e:
        assert "not divisible" in str(e), e
    else:
        raise AssertionError("odd batch accepted")

    # one program per device, side by side
    parts = dp.split(xs)
    assert [p.shape for p in parts] == [(3, 3), (3, 3)]
    assert [list(p.devices()) for p in parts] == [[d] for d in jax.devices()]
    outs = dp.run(grad, dp.copies(params), parts)
    assert list(outs[1][0][1].devices()) == [jax.devices()[1]]
    (l3, t3), g3 = dp.mean(outs)
    np.testing.assert_allclose(float(l3), float(l1), rtol=1e-12)
    np.testing.assert_allclose(np.asarray(dp.concat([o[0][1] for o in outs])), np.asarray(t1),
                               rtol=1e-12, atol=1e-12)
    for a, b in zip(jax.tree_util.tree_leaves(g1), jax.tree_util.tree_leaves(g3)):
        np.testing.assert_allclose(np.asarray(b), np.asarray(a), rtol=1e-10, atol=1e-12)
    np.testing.assert_allclose(float(dp.sum([l3, l3])), 2 * float(l3))
    for bad, match in ((lambda: dp.run(grad, dp.copies(params)[:1], parts), "1 entries for 2"),
                       (lambda: dp.split(xs[:5]), "not divisible"),
                       (lambda: dp.shard_local(xs[:5]), "batch size 5 is not divisible")):
        try:
            bad()
        except ValueError as e:
            assert match in str(e), e
        else:
            raise AssertionError(match)
    print("PARALLEL-OK")
    """
)


TRAIN_SCRIPT = textwrap.dedent(
    """
    import jax, numpy as np
    from eventax_dsl.train import TrainConfig
    from eventax_dsl.train.trainer import Trainer

    assert len(jax.devices()) == 2, jax.devices()
    # TTFS defaults: per-sample gradient clipping and the dead-neuron term, whose
    # mask is the whole batch's (a neuron silent on one device's share but not on
    # the other's is not dead)
    base = dict(task="yinyang", model="lif", hidden=(6,), batch_size=8, train_size=16,
                val_size=8, test_size=8, eval_batch_size=8, epochs=1, x64=True, init_gain=1.0,
                progress=False, plots=False)
    def run(**more):
        trainer = Trainer(TrainConfig(**base, **more), log=None)
        assert trainer.readout.revives and trainer.cfg.sample_clip
        trainer.fit()
        return trainer, trainer.evaluate("test")

    one, e1 = run()
    start = jax.tree_util.tree_leaves(Trainer(TrainConfig(**base), log=None).params)
    moved = max(float(np.max(np.abs(np.asarray(a) - np.asarray(c))))
                for a, c in zip(jax.tree_util.tree_leaves(one.params), start))
    assert moved > 1e-4, moved  # the steps did change the parameters
    for parallel in {modes!r}:
        if parallel == "threads":  # parameters placed where the update step leaves them
            fresh = Trainer(TrainConfig(**base, devices=2), log=None)
            for leaf in jax.tree_util.tree_leaves((fresh.params, fresh.opt_state)):
                assert leaf.committed and leaf.devices() == {{jax.devices()[0]}}, leaf
        two, e2 = run(devices=2, parallel=parallel)
        for a, b in zip(jax.tree_util.tree_leaves(one.params), jax.tree_util.tree_leaves(two.params)):
            np.testing.assert_allclose(np.asarray(b), np.asarray(a), rtol=1e-10, atol=1e-12)
        for key in ("loss", "acc", "spikes_per_sample", "dead_neurons"):
            np.testing.assert_allclose(e2[key], e1[key], rtol=1e-10)
        np.testing.assert_allclose(two.history[-1]["train_loss"], one.history[-1]["train_loss"],
                                   rtol=1e-10)
    print("TRAIN-PARALLEL-OK")
    """
)


def _two_devices(code: str):
    """``(argv, env)`` of a fresh interpreter with two CPU devices running ``code``."""
    env = dict(os.environ)
    env["XLA_FLAGS"] = (env.get("XLA_FLAGS", "") + " --xla_force_host_platform_device_count=2").strip()
    env["JAX_PLATFORMS"] = "cpu"
    return [sys.executable, "-c", code], env


LIF_PATH = os.path.join(HERE, os.pardir, "models", "lif.neuron")
#: started right after collection, beside the rest of the suite (tests/conftest.py)
EARLY_JOBS = {
    "test_two_devices_match_one": lambda: _two_devices(SCRIPT.format(lif=LIF_PATH)),
    "test_training_on_two_devices_matches_one":
        lambda: _two_devices(TRAIN_SCRIPT.format(modes=("threads",))),
    "test_training_on_two_devices_one_program_matches_one":
        lambda: _two_devices(TRAIN_SCRIPT.format(modes=("gspmd",))),
}


def test_two_devices_match_one(early_job):
    assert "PARALLEL-OK" in early_job()


def test_training_on_two_devices_matches_one(early_job):
    assert "TRAIN-PARALLEL-OK" in early_job()


@pytest.mark.slow
def test_training_on_two_devices_one_program_matches_one(early_job):
    """``parallel="gspmd"``: the sharded batch under one program (slow: its own compilations)."""
    assert "TRAIN-PARALLEL-OK" in early_job()


def test_too_many_devices_is_a_clear_error():
    n = len(jax.devices()) + 1
    with pytest.raises(ValueError, match=rf"request_cpu_devices\({n}\).*xla_force_host_platform_device_count={n}"):
        DataParallel(n)


REQUEST_SCRIPT = textwrap.dedent(
    """
    import jax
    from eventax_dsl.sim.parallel import DataParallel, request_cpu_devices

    assert request_cpu_devices(1) is False          # one CPU device is the default
    assert request_cpu_devices(2) is True           # before the first JAX operation
    assert len(jax.devices("cpu")) == 2
    assert DataParallel(2).n_devices == 2
    assert request_cpu_devices(2) is False          # already two
    assert request_cpu_devices(3) is False          # started: the count is fixed now
    assert len(jax.devices("cpu")) == 2
    print("REQUEST-OK")
    """
)


def test_request_cpu_devices_before_jax_starts():
    """``request_cpu_devices`` works without ``XLA_FLAGS``, and only before JAX's backends start."""
    env = {k: v for k, v in os.environ.items() if k != "XLA_FLAGS"}
    env["JAX_PLATFORMS"] = "cpu"
    proc = subprocess.run([sys.executable, "-c", REQUEST_SCRIPT], env=env, capture_output=True,
                          text=True, timeout=300)
    assert proc.returncode == 0, proc.stderr[-4000:]
    assert "REQUEST-OK" in proc.stdout


def test_request_cpu_devices_respects_xla_flags(monkeypatch):
    """A count already asked for in ``XLA_FLAGS`` is not overridden; bad counts are refused."""
    monkeypatch.setenv("XLA_FLAGS", "--xla_force_host_platform_device_count=4")
    assert request_cpu_devices(3) is False
    with pytest.raises(ValueError, match="n must be >= 1"):
        request_cpu_devices(0)


def test_single_device_shard_and_replicate_are_placements():
    dp = DataParallel(1)
    x = np.arange(8.0).reshape(4, 2)
    tree = dp.shard({"x": x, "name": "kept"})
    assert tree["name"] == "kept"
    np.testing.assert_array_equal(np.asarray(tree["x"]), x)
    with pytest.raises(ValueError, match="scalar leaf"):
        dp.shard(np.asarray(1.0))
