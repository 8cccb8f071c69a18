"""Training spiking networks with exact gradients: losses, a trainer, ``eventax-train``.

Quick start (Python)::

    from eventax_dsl.train import train
    result = train("yinyang", model="qif", loss="ttfs", epochs=3, out="runs/yy")

or from the shell: ``eventax-train yinyang --model qif --loss ttfs --epochs 3 --out runs/yy``.

Modules, in reading order:

- :mod:`~eventax_dsl.train.losses` -- time-to-first-spike and voltage losses
  (pure functions);
- :mod:`~eventax_dsl.train.quadrature` -- integrals of the output voltage as
  extra ODE states, solved with the network;
- :mod:`~eventax_dsl.train.readout` -- :class:`Readout`: what is observed, the
  logits, the loss and the prediction of a loss kind;
- :mod:`~eventax_dsl.train.config` -- :class:`TrainConfig`, task defaults, model lookup;
- :mod:`~eventax_dsl.train.tasks` -- the Yin-Yang, MNIST and delayed-XOR data;
- :mod:`~eventax_dsl.train.build` -- the networks and their initial weight scale;
- :mod:`~eventax_dsl.train.engine` -- the jitted training step and evaluation;
- :mod:`~eventax_dsl.train.trainer` -- :class:`Trainer`, :func:`train`;
- :mod:`~eventax_dsl.train.checkpoint`, :mod:`~eventax_dsl.train.plots`;
- :mod:`~eventax_dsl.train.cli` -- the ``eventax-train`` command.
"""

from .config import TASKS, TrainConfig, load_model, resolve_model
from .losses import (
    cross_entropy,
    finite_times,
    max_over_time,
    revive_term,
    ttfs_loss,
    ttfs_predict,
    ttfs_terms,
    voltage_predict,
    window_exp_integral,
    window_integral,
)
from .quadrature import attach_quadrature, with_quadrature
from .readout import LOSSES, Readout
from .trainer import StepError, Trainer, TrainResult, train

__all__ = [
    "LOSSES", "TASKS", "Readout", "StepError", "TrainConfig", "TrainResult", "Trainer",
    "attach_quadrature",
    "cross_entropy", "finite_times", "load_model", "max_over_time", "resolve_model", "revive_term",
    "train",
    "ttfs_loss", "ttfs_predict", "ttfs_terms", "voltage_predict", "window_exp_integral",
    "window_integral",
    "with_quadrature",
]
