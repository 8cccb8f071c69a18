"""Simulator options: the ODE solver between events, the root finder, the budget.

All options are *static*: they are Python values fixed at trace time, so
changing one recompiles, while changing weights, parameters or input times
does not. :class:`SimOptions` is a frozen dataclass (hashable), which is what
``jax.jit`` needs from anything that is not an array.

Accuracy defaults follow the floating-point precision in use
(``jax_enable_x64``):

========================  =================  ================
                          float64            float32
========================  =================  ================
``rtol`` / ``atol``       1e-8 / 1e-8        1e-6 / 1e-6 (``stepping="single"``),
                                             1e-5 / 1e-5 (``stepping="solve"``)
root finder tolerance     1e-12              1e-6
========================  =================  ================

In float32 the single-step default is tighter: at 1e-5 its spike-time error was
5x that of one solve per event (steps no longer restart at events, so the
controller's error is spread over longer steps); at 1e-6 it is below it and the
simulation is still about 3x faster (figures in ``benchmarks/RESULTS.md``).

The root finder tolerance is on the *time* of a spike (relative and absolute),
Newton's method converges quadratically so a tight one costs one iteration more.
"""

from __future__ import annotations

import dataclasses
from typing import Literal

import diffrax as dfx
import jax.numpy as jnp
import optimistix as optx

from .rootfind import SafeNewton

#: Default number of spikes per spiking neuron the event budget allows for.
DEFAULT_SPIKES_PER_NEURON = 10
#: ``adjoint_checkpoints`` with adaptive steps (``SimOptions.get_adjoint``)
ADAPTIVE_CHECKPOINTS = 8
#: Explicit Runge-Kutta solvers by name: ``SimOptions(solver="dopri8")``,
#: ``eventax-train --solver dopri8``.
SOLVERS = {"tsit5": dfx.Tsit5, "dopri5": dfx.Dopri5, "dopri8": dfx.Dopri8, "bosh3": dfx.Bosh3}
#: ``SimOptions.stepping``: one solver step per event-loop iteration, or one solve per event.
STEPPING = ("single", "solve")


@dataclasses.dataclass(frozen=True)
class SimOptions:
    """How to simulate; every field is static (changing one recompiles).

    **Solver between events**

    - ``solver``: a Diffrax ODE solver, or its name in :data:`SOLVERS`
      (``"tsit5"``, ``"dopri5"``, ``"dopri8"``, ``"bosh3"``); default
      :class:`diffrax.Tsit5`. Dopri8 (8th order) takes half of Tsit5's steps at
      the same tolerance and located spikes 2-15x more accurately on QIF, EIF and
      Izhikevich networks, but each step costs about twice as much: in float64 at
      ``rtol = 1e-8`` it ran 0.90x, 0.72x and 0.79x as fast as Tsit5 (Yin-Yang
      training networks at initialisation, ``python benchmarks/solvers.py``;
      docs/simulator.md).
    - ``rtol``, ``atol``: tolerances of the adaptive step size controller
      (:class:`diffrax.PIDController`); ``None`` picks the precision-dependent
      default in the module docstring.
    - ``error_norm``: how the controller combines the local error estimates of all
      states of the network into one number: ``"max"`` (default; every state of
      every neuron meets ``atol + rtol |y|`` on its own) or ``"rms"`` (Diffrax's
      default, the root mean square over the whole network state). With RMS the
      error allowed to one neuron grows with the square root of the network size,
      and states that are solved in closed form (and so contribute no error) dilute
      it further: on QIF 5-20-3 in float32 at the default tolerances, the maximum
      output spike-time error is 1.9e-2 ms with RMS and 5.7e-3 ms with the maximum,
      at about the same speed (64 Yin-Yang samples against a float64
      ``rtol = 1e-12`` reference).
    - ``dt``: if given, use fixed steps of this size instead
      (:class:`diffrax.ConstantStepSize`); spikes are still located exactly by
      root finding on the solver's dense interpolation.
    - ``dtmax``: largest step of the adaptive controller (``None``: unbounded).
      A threshold crossing that goes up *and back down* inside one step is not
      seen, so bound the step when conditions can do that.
    - ``max_solver_steps``: bound on solver steps between two events.
    - ``carry_step``: with ``stepping="solve"`` (no effect with single steps, whose
      proposal always carries over), start each adaptive solve between two events with the mean
      length of the previous solve's accepted steps (``True``, default) instead of
      Diffrax's initial-step heuristic, which costs two extra vector-field
      evaluations and starts small, so that a network with many events spends its
      steps ramping the step size up again after every one. The error control is
      the same either way (a first step that is too long is rejected and shortened).
      Measured on QIF 5-20-3 (float32, batch 256, ``stepping="solve"``): 2.05x fewer
      solver steps, 1.18-1.27x forward, 1.25-1.57x forward+backward, the same spike-time error
      (``benchmarks/carry_step.py``). A fixed ``dt`` is never changed.
    - ``adjoint_checkpoints``: checkpoints that the reverse pass of each solve
      between two events keeps (:class:`diffrax.RecursiveCheckpointAdjoint`; more
      checkpoints, less recomputation, but every solver step writes the state to a
      buffer of that length, also in the forward pass). ``None`` (default): 8 with
      adaptive steps, where a solve between two events takes a few steps; with a
      fixed ``dt``, Diffrax's own choice sized from ``max_solver_steps`` (a solve
      can take hundreds of steps). The gradients are the same either way.
    - ``stepping``: ``"single"`` (default) takes *one* solver step per loop
      iteration: Diffrax's solver and step-size controller are called directly,
      the controller's proposal is carried to the next iteration (so consecutive
      iterations continue one solve), and a crossing inside an accepted step is
      located on the step's dense interpolation by the root finder below.
      ``"solve"`` runs one :func:`diffrax.diffeqsolve` per interval between two
      events, with a :class:`diffrax.Event` for spikes. Under ``jax.vmap`` the
      latter pads every event's solve to the batch's slowest sample (256 copies of
      one sample run 3.4x (float32) to 4.3x (float64) faster than 256 different
      samples); one step per iteration pads only the total count. Measured on QIF
      5-20-3, batch 256, one free core (``python benchmarks/stepping.py [--x64]``),
      single against solve: float64 forward+backward 270 against 60 samples/s
      (4.5x), spike-time error 5.1e-6 against 5.4e-6 ms; float32 (each at its
      default tolerances, above) 825 against 284 samples/s (2.9x), error 8.7e-4
      against 3.6e-3 ms. With
      ``"single"`` the event budget also counts ``max_solver_steps`` iterations,
      and ``max_solver_steps`` then bounds the solver steps of the *whole*
      simulation (with ``"solve"``: of each interval between two events). Networks
      solved entirely in closed form (LIF, LI) take no solver steps either way.
    - ``root_tol``: tolerance (relative and absolute) on the spike time of the
      default root finder, :class:`~eventax_dsl.sim.rootfind.SafeNewton`.
    - ``root_finder``: any ``optimistix`` root finder instead (it receives the
      bracket as ``options["lower"/"upper"]``).

    **Exact integration** (:mod:`eventax_dsl.sim.exact`)

    - ``integrator``: ``"auto"`` (default) advances the states a model solves in
      closed form (``EXACT_STATES``, found by the compiler) exactly and integrates
      only the others with ``solver``; ``"numeric"`` integrates every state with
      ``solver``. Per model: ``eventax_dsl.sim.exact.numeric(ModelClass)``.

    **Semantics**

    - ``amos``: at most one spike per neuron; a neuron that has spiked is reset
      once and then held: its states keep their values after the reset and input
      to it is dropped (:class:`eventax_dsl.sim.dynamics.Hold`).

    **Budget** (see :func:`eventax_dsl.sim.loop.event_budget`)

    - ``max_spikes``: size of the spike buffer / spike budget; default
      ``DEFAULT_SPIKES_PER_NEURON`` times the number of spiking neurons
      (the number of spiking neurons with ``amos``).
    - ``max_events``: bound on loop iterations; default derived from the input
      size, the observation times and ``max_spikes``.

    **Outer loop**

    - ``loop``: ``"checkpointed"`` (default: an ``equinox.internal.while_loop``
      that stops as soon as the simulation is over and is reverse-mode
      differentiable with online checkpointing) or ``"scan"`` (a ``lax.scan`` over
      the whole budget with a done flag; no recomputation on the backward pass, but
      always runs ``max_events`` iterations).
    """

    solver: dfx.AbstractSolver | str | None = None
    rtol: float | None = None
    atol: float | None = None
    error_norm: Literal["max", "rms"] = "max"
    dt: float | None = None
    dtmax: float | None = None
    max_solver_steps: int = 4096
    root_tol: float | None = None
    root_finder: optx.AbstractRootFinder | None = None
    amos: bool = False
    max_spikes: int | None = None
    max_events: int | None = None
    loop: Literal["checkpointed", "scan"] = "checkpointed"
    integrator: Literal["auto", "numeric"] = "auto"  # exact integration: see eventax_dsl.sim.exact
    carry_step: bool = True
    adjoint_checkpoints: int | None = None
    stepping: Literal["solve", "single"] = "single"

    def __post_init__(self):
        if self.loop not in ("checkpointed", "scan"):
            raise ValueError(f"loop must be 'checkpointed' or 'scan', got {self.loop!r}")
        for name in ("max_spikes", "max_events"):
            value = getattr(self, name)
            if value is not None and (not isinstance(value, int) or value < 1):
                raise ValueError(f"{name} must be a positive int, got {value!r}")
        if self.error_norm not in ("max", "rms"):
            raise ValueError(f"error_norm must be 'max' or 'rms', got {self.error_norm!r}")
        if self.adjoint_checkpoints is not None and (
                not isinstance(self.adjoint_checkpoints, int) or self.adjoint_checkpoints < 1):
            raise ValueError(f"adjoint_checkpoints must be a positive int or None, got "
                             f"{self.adjoint_checkpoints!r}")
        if isinstance(self.solver, str) and self.solver not in SOLVERS:
            raise ValueError(f"unknown solver {self.solver!r}; by name: {', '.join(SOLVERS)} "
                             "(or pass a diffrax solver)")
        if self.stepping not in STEPPING:
            raise ValueError(f"stepping must be one of {', '.join(STEPPING)}, got {self.stepping!r}")
        if self.dt is not None and not self.dt > 0:
            raise ValueError(f"dt must be positive, got {self.dt!r}")

    # ------------------------------------------------------------ resolved
    def _is64(self, dtype) -> bool:
        return jnp.dtype(dtype) == jnp.float64

    def get_solver(self) -> dfx.AbstractSolver:
        if self.solver is None:
            return dfx.Tsit5()
        if isinstance(self.solver, str):
            return SOLVERS[self.solver]()
        return self.solver

    def get_controller(self, dtype) -> dfx.AbstractStepSizeController:
        if self.dt is not None:
            return dfx.ConstantStepSize()
        default = 1e-8 if self._is64(dtype) else (1e-6 if self.stepping == "single" else 1e-5)
        rtol = default if self.rtol is None else self.rtol
        atol = default if self.atol is None else self.atol
        return dfx.PIDController(rtol=rtol, atol=atol, dtmax=self.dtmax, norm=self.get_error_norm())

    def get_adjoint(self) -> dfx.AbstractAdjoint:
        """The adjoint of each solve between two events (see ``adjoint_checkpoints``)."""
        n = self.adjoint_checkpoints
        if n is None and self.dt is None:
            n = ADAPTIVE_CHECKPOINTS
        return dfx.RecursiveCheckpointAdjoint(checkpoints=n)

    def get_error_norm(self):
        """The controller's norm over the error estimate (a PyTree -> scalar function)."""
        return optx.max_norm if self.error_norm == "max" else optx.rms_norm

    def get_integrator(self) -> str:
        """``"auto"`` or ``"numeric"`` (validated; see :mod:`eventax_dsl.sim.exact`)."""
        if self.integrator not in ("auto", "numeric"):
            raise ValueError(f"integrator must be 'auto' or 'numeric', got {self.integrator!r}")
        return self.integrator

    def get_root_finder(self, dtype) -> optx.AbstractRootFinder:
        if self.root_finder is not None:
            return self.root_finder
        tol = self.root_tol
        if tol is None:
            tol = 1e-12 if self._is64(dtype) else 1e-6
        return SafeNewton(rtol=tol, atol=tol)


def make_options(options: SimOptions | None = None, **kwargs) -> SimOptions:
    """``options`` updated with keyword arguments (``SimOptions()`` if ``None``)."""
    base = SimOptions() if options is None else options
    if not kwargs:
        return base
    unknown = sorted(set(kwargs) - {f.name for f in dataclasses.fields(SimOptions)})
    if unknown:
        raise TypeError(
            f"unknown simulator option(s) {', '.join(unknown)}; options are: "
            + ", ".join(f.name for f in dataclasses.fields(SimOptions))
        )
    return dataclasses.replace(base, **kwargs)
