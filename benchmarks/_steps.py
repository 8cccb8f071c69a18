"""Shared by the benchmark scripts that time training steps (not a benchmark itself)."""

from __future__ import annotations


def stepper(trainer, batch: int = 32, batches: int = 10):
    """``make(step) -> call`` for :func:`eventax_dsl.sim.bench.time_alternately`: the
    call runs :func:`eventax_dsl.train.engine.train_step` of ``trainer`` on training
    batch ``step % batches`` without applying the update (every call sees the same
    parameters); the batch's transfer to the device happens in ``make``, untimed."""
    import jax.numpy as jnp  # noqa: PLC0415

    from eventax_dsl.train.engine import train_step  # noqa: PLC0415

    t = trainer
    split = t.data.train

    def make_step(step):
        idx = [batch * (step % batches) + i for i in range(batch)]
        x, y, t0 = (jnp.asarray(a) for a in (split.x[idx], split.y[idx], split.t0[idx]))
        return lambda: train_step(t.params, t.opt_state, t.static, x, y, t0, t.readout,
                                  t.optimizer, t.options, t.cfg.sample_clip or None, t.floors,
                                  t.lanes)
    return make_step
