"""Hand-written reference neuron models implementing :mod:`eventax_dsl.contract`.

These are what the code generator should produce for the corresponding
``.neuron`` files, written out by hand so that the simulator can be tested on its
own. Every method is written for **one** neuron (scalars); the base class lifts
them to a population with :func:`jax.vmap`.

Time is in milliseconds, voltages are dimensionless (threshold 1 by default).

* :class:`LIF`    -- leaky integrate-and-fire with an exponential current synapse.
* :class:`LI`     -- the same membrane without a threshold: a leaky-integrator read-out.
* :class:`QIF`    -- quadratic integrate-and-fire in phase form (the theta neuron).
* :class:`LIFRef` -- :class:`LIF` with an absolute refractory period.
"""

from __future__ import annotations

import jax.numpy as jnp

from eventax_dsl.contract import ChannelSpec, NeuronModel, ParamSpec, StateSpec


class LIF(NeuronModel):
    r"""Leaky integrate-and-fire neuron with a current synapse.

    .. math::
        \tau_m \dot v = -v + i + b, \qquad \tau_s \dot i = -i

    A spike when ``v`` crosses ``v_th`` upwards; then ``v = v_reset``. An input
    spike of weight ``w`` adds ``w`` to the synaptic current ``i``.
    """

    NAME = "LIF"
    STATES = (StateSpec("v"), StateSpec("i"))
    PARAMETERS = (
        ParamSpec("tau_mem", 10.0, learnable=True, unit="ms"),
        ParamSpec("tau_syn", 5.0, learnable=True, unit="ms"),
        ParamSpec("bias", 0.0, learnable=True),
        ParamSpec("v_th", 1.0),
        ParamSpec("v_reset", 0.0),
    )
    CHANNELS = (ChannelSpec("w"),)
    OBSERVABLES = ("v", "i")

    def init(self, p):
        zero = jnp.zeros_like(p["tau_mem"])
        return {"v": zero, "i": zero}

    def dynamics(self, p, s):
        return {
            "v": (-s["v"] + s["i"] + p["bias"]) / p["tau_mem"],
            "i": -s["i"] / p["tau_syn"],
        }

    def spike_condition(self, p, s):
        return s["v"] - p["v_th"]

    def reset(self, p, s):
        return {**s, "v": jnp.broadcast_to(p["v_reset"], jnp.shape(s["v"])).astype(s["v"].dtype)}

    def receive(self, p, s, w):
        return {**s, "i": s["i"] + w["w"]}

    def observe(self, p, s):
        return {"v": s["v"], "i": s["i"]}


class LI(LIF):
    """Leaky integrator read-out: the :class:`LIF` membrane without a threshold."""

    NAME = "LI"
    SPIKING = False
    PARAMETERS = (
        ParamSpec("tau_mem", 10.0, learnable=True, unit="ms"),
        ParamSpec("tau_syn", 5.0, learnable=True, unit="ms"),
        ParamSpec("bias", 0.0, learnable=True),
    )
    OBSERVABLES = ("v",)

    def spike_condition(self, p, s):  # never called: SPIKING is False
        return -jnp.ones_like(s["v"])

    def reset(self, p, s):
        return dict(s)

    def observe(self, p, s):
        return {"v": s["v"]}


class QIF(NeuronModel):
    r"""Quadratic integrate-and-fire neuron in phase form (the theta neuron).

    The membrane ``V`` obeys :math:`\tau_m \dot V = V^2 + I` with
    :math:`I = b + i`; it blows up to :math:`+\infty` in finite time (the spike)
    and restarts from :math:`-\infty`. With :math:`V = -\pi\cot(\pi\varphi)` the
    phase :math:`\varphi \in [0, 1]` stays finite:

    .. math::
        \tau_m \dot\varphi = \cos^2(\pi\varphi) + \frac{I}{\pi^2}\sin^2(\pi\varphi),
        \qquad \tau_s \dot i = -i.

    A spike when ``phi`` reaches 1 (``V = +inf``), reset to ``phi = 0``
    (``V = -inf``). With a constant drive ``I > 0`` the inter-spike interval is
    :math:`\pi\tau_m/\sqrt{I}`. An input spike adds ``w`` to the current ``i``.
    """

    NAME = "QIF"
    STATES = (StateSpec("phi"), StateSpec("i"))
    PARAMETERS = (
        ParamSpec("tau_mem", 10.0, learnable=True, unit="ms"),
        ParamSpec("tau_syn", 5.0, learnable=True, unit="ms"),
        ParamSpec("bias", -1.0, learnable=True),
        ParamSpec("phi0", 0.5),
    )
    CHANNELS = (ChannelSpec("w"),)
    OBSERVABLES = ("phi", "i")

    def init(self, p):
        return {"phi": p["phi0"], "i": jnp.zeros_like(p["tau_mem"])}

    def dynamics(self, p, s):
        x = jnp.pi * s["phi"]
        drive = p["bias"] + s["i"]
        return {
            "phi": (jnp.cos(x) ** 2 + drive * jnp.sin(x) ** 2 / jnp.pi**2) / p["tau_mem"],
            "i": -s["i"] / p["tau_syn"],
        }

    def spike_condition(self, p, s):
        return s["phi"] - 1.0

    def reset(self, p, s):
        return {**s, "phi": jnp.zeros_like(s["phi"])}

    def receive(self, p, s, w):
        return {**s, "i": s["i"] + w["w"]}

    def observe(self, p, s):
        return {"phi": s["phi"], "i": s["i"]}


class LIFRef(LIF):
    """:class:`LIF` with an absolute refractory period ``t_ref``.

    While refractory ``v`` is held at ``v_reset`` (``CLAMPED``), input is dropped
    and the threshold is ignored (``GUARDED``); the synaptic current keeps decaying.
    """

    NAME = "LIFRef"
    PARAMETERS = LIF.PARAMETERS + (ParamSpec("t_ref", 2.0, unit="ms"),)
    REFRACTORY = True
    GUARDED = True
    CLAMPED = ("v",)

    def refractory_period(self, p):
        return p["t_ref"]
