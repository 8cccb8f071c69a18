"""The timing helpers of ``eventax_dsl.sim.bench`` that the benchmark scripts share."""

import math
import time

import jax.numpy as jnp

from eventax_dsl.sim.bench import time_alternately, time_call


def test_time_alternately_interleaves_and_skips_warmup():
    calls = []

    def variant(label, seconds):
        def make(i):
            calls.append(("make", label, i))

            def call():
                calls.append(("call", label, i))
                time.sleep(seconds)
                return jnp.zeros(())
            return call
        return make

    med = time_alternately({"fast": variant("fast", 0.0), "slow": variant("slow", 0.05)}, 3,
                           warmup=1)
    # every repetition prepares then runs each variant in turn: A, B, A, B, ...
    assert calls == [(kind, label, i) for i in range(4) for label in ("fast", "slow")
                     for kind in ("make", "call")]
    assert set(med) == {"fast", "slow"}
    assert med["slow"] >= 0.05 > med["fast"] >= 0.0


def test_time_call_returns_first_output_and_median():
    out, compile_s, median = time_call(lambda x: x + 1, jnp.ones(3), repeats=2, with_output=True)
    assert float(out.sum()) == 6.0 and compile_s >= 0.0 and median >= 0.0
    assert math.isnan(time_call(lambda: jnp.ones(()), repeats=0)[1])  # nothing timed
