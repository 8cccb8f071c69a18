"""Data parallelism: split a batch across devices, replicate the network.

Simulating a batch is embarrassingly parallel: every sample runs its own event
loop. :class:`DataParallel` places the *batch axis* of the input arrays across
the available devices (GPUs, or CPU cores exposed as devices) and replicates
the network's parameters, using :mod:`jax.sharding`. A function compiled with
``jax.jit`` / ``eqx.filter_jit`` then runs each device's share of the batch on
that device; gradients are summed across devices automatically (XLA inserts
the all-reduce), so a training step needs no other change::

    dp = DataParallel()                      # all visible devices
    net = dp.replicate(net)
    opt_state = dp.replicate(opt_state)
    for xs, ys in batches:                   # batch size divisible by dp.n_devices
        xs, ys = dp.shard((xs, ys))
        net, opt_state, loss = train_step(net, opt_state, xs, ys)

XLA partitions the batched event loop itself (GSPMD): each device computes
its part of the batch, and the loop's stopping test (any sample still
running?) is combined across devices once per iteration.

Upstream limitation: running the simulator inside :func:`jax.shard_map` or
:func:`jax.pmap` (one independent program per device) fails under
differentiation, because Optimistix's implicit differentiation of the root find
behind ``diffrax.Event`` rejects the sharding metadata of values inside a
manual mesh (Diffrax issue #765, Lineax issue #185). That is why this module
relies on ``jit`` with sharded inputs instead.

Devices
-------
- **One machine, several GPUs**: nothing to do, ``jax.devices()`` lists them.
- **CPU cores**: XLA exposes one CPU device by default. Start Python with
  ``XLA_FLAGS=--xla_force_host_platform_device_count=N`` (set before JAX is
  imported) to get ``N`` CPU devices; each runs its share on its own thread.
  The simulator's loops are made of many small operations that XLA runs on one
  thread, so on an ``N``-core machine this is what uses the other cores.
- **Several hosts**: call ``jax.distributed.initialize()`` (on every host, before
  anything else; on SLURM or Cloud TPU it finds its peers automatically,
  otherwise pass ``coordinator_address``, ``num_processes`` and ``process_id``).
  ``jax.devices()`` then lists the devices of all hosts and
  ``DataParallel()`` spans them. Each host loads *its own* part of every batch
  and passes it to :meth:`DataParallel.shard_local`, which assembles the global
  array with :func:`jax.make_array_from_process_local_data`.
"""

from __future__ import annotations

from collections.abc import Sequence

import jax
import numpy as np
from jax.sharding import Mesh, NamedSharding, PartitionSpec

__all__ = ["DataParallel"]

_AXIS = "batch"


class DataParallel:
    """Shard the leading (batch) axis across devices; replicate everything else.

    - ``n_devices``: how many devices to use (default: all of ``devices``).
    - ``devices``: which devices (default ``jax.devices()``).

    Attributes: ``n_devices``, ``mesh`` (a 1-D :class:`jax.sharding.Mesh` with
    axis ``"batch"``), ``batch_sharding`` and ``replicated`` (the two
    :class:`jax.sharding.NamedSharding` objects used).
    """

    def __init__(self, n_devices: int | None = None, devices: Sequence | None = None):
        available = list(jax.devices() if devices is None else devices)
        n = len(available) if n_devices is None else int(n_devices)
        if n < 1:
            raise ValueError(f"n_devices must be >= 1, got {n}")
        if n > len(available):
            hint = ""
            if available and available[0].platform == "cpu":
                hint = (
                    f" On CPU, expose more devices by setting the environment variable "
                    f"XLA_FLAGS=--xla_force_host_platform_device_count={n} before "
                    f"Python imports JAX."
                )
            raise ValueError(
                f"DataParallel: {n} devices requested but only {len(available)} "
                f"{'is' if len(available) == 1 else 'are'} visible "
                f"({available[0].platform if available else 'none'}).{hint}"
            )
        self.n_devices = n
        self.mesh = Mesh(np.asarray(available[:n]), (_AXIS,))
        self.batch_sharding = NamedSharding(self.mesh, PartitionSpec(_AXIS))
        self.replicated = NamedSharding(self.mesh, PartitionSpec())

    def __repr__(self) -> str:
        kinds = sorted({d.platform for d in self.mesh.devices.flat})
        return f"DataParallel(n_devices={self.n_devices}, platform={'/'.join(kinds)})"

    # ------------------------------------------------------------- placing
    def _check_batch(self, x, what: str) -> None:
        if np.ndim(x) == 0:
            raise ValueError(f"DataParallel.{what}: a scalar leaf has no batch axis to shard")
        if x.shape[0] % self.n_devices:
            raise ValueError(
                f"DataParallel.{what}: batch size {x.shape[0]} is not divisible by "
                f"the {self.n_devices} devices; use a batch size that is a multiple "
                f"of {self.n_devices} (or drop/pad the last partial batch)"
            )

    def shard(self, tree):
        """Every array leaf split along its leading axis across the devices.

        The leading axis must be divisible by ``n_devices``. Non-array leaves are
        left alone.
        """

        def put(x):
            if not _is_array(x):
                return x
            self._check_batch(x, "shard")
            return jax.device_put(x, self.batch_sharding)

        return jax.tree_util.tree_map(put, tree)

    def replicate(self, tree):
        """Every array leaf copied to all devices (parameters, optimiser state)."""
        return jax.tree_util.tree_map(
            lambda x: jax.device_put(x, self.replicated) if _is_array(x) else x, tree
        )

    def shard_local(self, tree):
        """Multi-host: build global batch-sharded arrays from this host's rows.

        Each process passes its own slice of the batch (leading axis); the
        result is the concatenation over processes, sharded like :meth:`shard`.
        On a single host this is the same as :meth:`shard`.
        """

        def put(x):
            if not _is_array(x):
                return x
            return jax.make_array_from_process_local_data(self.batch_sharding, np.asarray(x))

        out = jax.tree_util.tree_map(put, tree)
        for leaf in jax.tree_util.tree_leaves(out):
            if _is_array(leaf):
                self._check_batch(leaf, "shard_local")
        return out


def _is_array(x) -> bool:
    return isinstance(x, (jax.Array, np.ndarray))
