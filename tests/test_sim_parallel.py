"""Data-parallel simulation across devices (``eventax_dsl.sim.parallel``).

The device count of the CPU backend is fixed when JAX starts, so the
multi-device check runs in a fresh interpreter with
``XLA_FLAGS=--xla_force_host_platform_device_count=2``: outputs and gradients
of a batch sharded over two devices must equal the single-device ones, and the
outputs must really be split across both devices.
"""

from __future__ import annotations

import os
import subprocess
import sys
import textwrap

import jax
import numpy as np
import pytest

from eventax_dsl.sim.parallel import DataParallel

HERE = os.path.dirname(os.path.abspath(__file__))

SCRIPT = textwrap.dedent(
    """
    import sys
    import jax
    jax.config.update("jax_enable_x64", True)
    import equinox as eqx, jax.numpy as jnp, jax.random as jr, numpy as np
    import eventax_dsl
    from eventax_dsl.sim import FeedForward, trainable
    from eventax_dsl.sim.parallel import DataParallel

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
    print("PARALLEL-OK")
    """
)


def test_two_devices_match_one():
    env = dict(os.environ)
    env["XLA_FLAGS"] = (env.get("XLA_FLAGS", "") + " --xla_force_host_platform_device_count=2").strip()
    env["JAX_PLATFORMS"] = "cpu"
    proc = subprocess.run(
        [sys.executable, "-c", SCRIPT.format(lif=os.path.join(HERE, os.pardir, "models", "lif.neuron"))],
        env=env,
        capture_output=True,
        text=True,
        timeout=900,
    )
    assert proc.returncode == 0, proc.stderr[-4000:]
    assert "PARALLEL-OK" in proc.stdout


def test_too_many_devices_is_a_clear_error():
    n = len(jax.devices()) + 1
    with pytest.raises(ValueError, match="xla_force_host_platform_device_count"):
        DataParallel(n)


def test_single_device_shard_and_replicate_are_placements():
    dp = DataParallel(1)
    x = np.arange(8.0).reshape(4, 2)
    tree = dp.shard({"x": x, "name": "kept"})
    assert tree["name"] == "kept"
    np.testing.assert_array_equal(np.asarray(tree["x"]), x)
    with pytest.raises(ValueError, match="scalar leaf"):
        dp.shard(np.asarray(1.0))
