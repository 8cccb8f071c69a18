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

One program per device (:meth:`DataParallel.run`)
--------------------------------------------------
The event loop is a while loop of many small operations, and under GSPMD every
iteration waits for the slowest device. On the devices of one machine it is
faster to compile the *single-device* program once per device and run the
copies side by side, one Python thread each (JAX releases the interpreter lock
while XLA runs)::

    grad = jax.jit(jax.value_and_grad(loss))
    outs = dp.run(grad, dp.copies(params), dp.split(xs), dp.split(labels))
    loss, grads = dp.mean(outs)        # equal shares: the batch mean

Measured on a 2-core CPU (QIF 5-20-3, batch 256, float32, forward+backward;
``python benchmarks/throughput.py --quick --devices 2 [--parallel gspmd]``): 2.0x
one device with :meth:`~DataParallel.run`, 1.5x with GSPMD. Each device compiles its own copy
(in parallel, on its own thread). The devices do not talk to each other inside
the program, so whatever couples the samples of a batch (a batch mean, a mask
over the batch) is combined on the host, between calls; the training loop of
:mod:`eventax_dsl.train` does so.

Upstream limitation: running the simulator inside :func:`jax.shard_map` or
:func:`jax.pmap` (one independent program per device) fails under
differentiation, because Optimistix's implicit differentiation of the root find
behind ``diffrax.Event`` rejects the sharding metadata of values inside a
manual mesh (Diffrax issue #765, Lineax issue #185). That is why this module
relies on ``jit`` with sharded inputs, or on one program per device
(:meth:`DataParallel.run`), instead. (The checkpointed while loop of
``equinox.internal`` fails the same way inside ``shard_map``.)

Devices
-------
- **One machine, several GPUs**: nothing to do, ``jax.devices()`` lists them.
- **CPU cores**: XLA exposes one CPU device by default. Call
  :func:`request_cpu_devices` ``(N)`` before the first JAX operation (it sets
  ``jax_num_cpu_devices``; ``eventax-train --devices N`` does so), or start
  Python with ``XLA_FLAGS=--xla_force_host_platform_device_count=N``, to get
  ``N`` CPU devices; each runs its share on its own thread.
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

import os
import re
import threading
from collections.abc import Callable, Sequence
from concurrent.futures import ThreadPoolExecutor

import jax
import numpy as np
from jax.sharding import Mesh, NamedSharding, PartitionSpec

__all__ = ["DataParallel", "request_cpu_devices"]

_AXIS = "batch"
_XLA_COUNT = re.compile(r"--xla_force_host_platform_device_count=(\d+)")


def request_cpu_devices(n: int) -> bool:
    """Ask JAX for at least ``n`` CPU devices; the in-process form of ``XLA_FLAGS``.

    XLA shows one CPU device unless told otherwise, and it reads that setting
    once, when JAX's backends start (at the first JAX operation, not at
    ``import jax``). Called before that, this sets ``jax_num_cpu_devices`` to
    ``n`` and returns ``True``. It returns ``False`` and changes nothing when at
    least ``n`` CPU devices are already asked for (by ``jax_num_cpu_devices`` or
    by ``XLA_FLAGS=--xla_force_host_platform_device_count=M`` with ``M >= n``),
    or when the backends have already started. GPUs and TPUs are not affected.
    """
    n = int(n)
    if n < 1:
        raise ValueError(f"n must be >= 1, got {n}")
    counts = [int(m) for m in _XLA_COUNT.findall(os.environ.get("XLA_FLAGS", ""))]
    configured = jax.config.jax_num_cpu_devices
    if configured < 0 and counts:
        configured = counts[-1]
    if max(configured, 1) >= n:
        return False
    try:
        jax.config.update("jax_num_cpu_devices", n)
    except RuntimeError:  # backends already started: the count is fixed now
        return False
    return True


class DataParallel:
    """Split the leading (batch) axis across devices; copy everything else.

    Two ways to run: one program spanning the devices (:meth:`shard`,
    :meth:`replicate`, then ``jax.jit``; also across hosts), or one program per
    device side by side (:meth:`split`, :meth:`copies`, :meth:`run`, then
    :meth:`mean` / :meth:`concat` / :meth:`sum`; the devices of this process, and
    faster there: module docs).

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
                    f" On CPU, expose more devices with request_cpu_devices({n}) before "
                    f"the first JAX operation, or by starting Python with the environment "
                    f"variable XLA_FLAGS=--xla_force_host_platform_device_count={n}."
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
        self._pool: ThreadPoolExecutor | None = None
        self._lock = threading.Lock()

    def __repr__(self) -> str:
        kinds = sorted({d.platform for d in self.mesh.devices.flat})
        return f"DataParallel(n_devices={self.n_devices}, platform={'/'.join(kinds)})"

    # ------------------------------------------------------------- placing
    def _check_batch(self, x, what: str, processes: int = 1) -> None:
        """``processes``: the leading axis is one process's slice of a batch that many
        times as long."""
        if np.ndim(x) == 0:
            raise ValueError(f"DataParallel.{what}: a scalar leaf has no batch axis to shard")
        batch = x.shape[0] * processes
        if batch % self.n_devices:
            raise ValueError(
                f"DataParallel.{what}: batch size {batch} is not divisible by "
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
            x = np.asarray(x)
            # the global batch (every process passes a slice of the same size), checked
            # before JAX's own, less clear error
            self._check_batch(x, "shard_local", processes=jax.process_count())
            return jax.make_array_from_process_local_data(self.batch_sharding, x)

        return jax.tree_util.tree_map(put, tree)

    # ------------------------------------------- one program per device
    @property
    def local_devices(self) -> list:
        """The devices of the mesh, in order; :meth:`split`, :meth:`copies` and
        :meth:`run` need them all on this process (several hosts: use :meth:`shard`)."""
        devices = list(self.mesh.devices.flat)
        here = jax.process_index()
        if any(d.process_index != here for d in devices):
            raise ValueError(
                "DataParallel: one program per device (split/copies/run) needs devices of "
                "this process only; across hosts, use shard/replicate with jax.jit")
        return devices

    def split(self, tree) -> list:
        """``tree`` cut along the leading axis of every array leaf into ``n_devices``
        equal parts, part ``i`` placed on device ``i`` (for :meth:`run`).

        Returns a list of ``n_devices`` trees. The leading axis must be divisible by
        ``n_devices``; non-array leaves are repeated in every part.
        """
        leaves, treedef = jax.tree_util.tree_flatten(tree)
        for x in leaves:
            if _is_array(x):
                self._check_batch(x, "split")
        parts = []
        for i, device in enumerate(self.local_devices):
            def part(x, i=i, device=device):
                if not _is_array(x):
                    return x
                m = x.shape[0] // self.n_devices
                return jax.device_put(x[i * m:(i + 1) * m], device)

            parts.append(jax.tree_util.tree_unflatten(treedef, [part(x) for x in leaves]))
        return parts

    def copies(self, tree) -> list:
        """One copy of ``tree`` per device (its array leaves placed there), for :meth:`run`."""
        return [
            jax.tree_util.tree_map(lambda x, d=d: jax.device_put(x, d) if _is_array(x) else x, tree)
            for d in self.local_devices
        ]

    def run(self, fn: Callable, *per_device: Sequence) -> list:
        """Call ``fn`` once per device, all at the same time; return the outputs, ready.

        ``per_device``: one or more lists with one entry per device (from
        :meth:`split` and :meth:`copies`); device ``i`` runs
        ``fn(per_device[0][i], per_device[1][i], ...)``, on its own thread, and the
        arguments placed on device ``i`` make a jitted ``fn`` run there. A failure on
        any device is raised here (the first device's first). Returns the list of
        outputs, one per device, each on its device and finished computing.
        """
        for args in per_device:
            if len(args) != self.n_devices:
                raise ValueError(
                    f"DataParallel.run: {len(args)} entries for {self.n_devices} devices; "
                    "build them with DataParallel.split / DataParallel.copies")
        calls = list(zip(*per_device))
        if self.n_devices == 1:
            return [jax.block_until_ready(fn(*calls[0]))]
        with self._lock:
            if self._pool is None:
                self._pool = ThreadPoolExecutor(self.n_devices, thread_name_prefix="eventax-device")
        # JAX's precision setting can be a thread-local context (``jax.enable_x64``):
        # the worker threads take the caller's.
        x64 = jax.numpy.result_type(float) == jax.numpy.float64

        def call(args):
            with jax.enable_x64(x64):
                return jax.block_until_ready(fn(*args))

        futures = [self._pool.submit(call, a) for a in calls]
        return [f.result() for f in futures]

    def concat(self, outs: Sequence):
        """The per-device outputs of :meth:`run` joined along their leading axis, on
        the first device (per-sample results back in batch order)."""
        first = self.local_devices[0]
        return jax.tree_util.tree_map(
            lambda *xs: jax.numpy.concatenate([jax.device_put(x, first) for x in xs]), *outs)

    def mean(self, outs: Sequence):
        """The mean of the per-device outputs of :meth:`run`, on the first device.

        With equal shares of the batch (:meth:`split`), the mean of per-device batch
        means is the mean over the whole batch (losses, accuracies, gradients).
        """
        first = self.local_devices[0]
        return jax.tree_util.tree_map(
            lambda *xs: sum(jax.device_put(x, first) for x in xs) / len(xs), *outs)

    def sum(self, outs: Sequence):
        """The sum of the per-device outputs of :meth:`run`, on the first device."""
        first = self.local_devices[0]
        return jax.tree_util.tree_map(lambda *xs: sum(jax.device_put(x, first) for x in xs), *outs)


def _is_array(x) -> bool:
    return isinstance(x, (jax.Array, np.ndarray))
