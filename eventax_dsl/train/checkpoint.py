"""Checkpoints without pickle: array leaves with Equinox, everything else as JSON.

A run directory holds

- ``checkpoint.eqx``: the network and the optimiser state after the last
  finished epoch (or the last ``checkpoint_every`` mark inside an epoch),
  written with :func:`equinox.tree_serialise_leaves` (NumPy's ``.npy`` format
  per leaf: exact bits, no code);
- ``checkpoint.json``: the resolved :class:`~eventax_dsl.train.config.TrainConfig`,
  the epoch (and the batches done inside the next one, with that epoch's running
  metrics), the metrics history, the best epoch so far, the calibrated gains
  and the RNG description (shuffling keys are ``fold_in(key(seed), epoch)``, so
  the seed and the epoch are the whole RNG state);
- ``best.eqx``: the network at the epoch with the best validation accuracy.

Reading needs a PyTree of the same structure to fill (``like``): the trainer
rebuilds it from the stored config. Files are written to a temporary name and
renamed, so a run killed while saving leaves the previous checkpoint intact.
"""

from __future__ import annotations

import json
import os
from pathlib import Path

import equinox as eqx

__all__ = ["CHECKPOINT", "META", "BEST", "load_meta", "load_tree", "save_json", "save_tree"]

CHECKPOINT = "checkpoint.eqx"
META = "checkpoint.json"
BEST = "best.eqx"


def _atomic(path: Path, write) -> None:
    tmp = path.with_name(path.name + ".tmp")
    write(tmp)
    os.replace(tmp, path)


def save_tree(path, tree) -> None:
    """Serialise the array leaves of ``tree`` to ``path`` (atomically)."""
    _atomic(Path(path), lambda p: eqx.tree_serialise_leaves(p, tree))


def load_tree(path, like):
    """The PyTree ``like`` with its leaves read from ``path``."""
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"checkpoint file '{path}' not found")
    return eqx.tree_deserialise_leaves(path, like)


def save_json(path, data: dict) -> None:
    """Write ``data`` as indented JSON (atomically)."""

    def write(p):
        with open(p, "w") as f:
            json.dump(data, f, indent=2, sort_keys=True, allow_nan=True)
            f.write("\n")

    _atomic(Path(path), write)


def load_meta(directory) -> dict:
    """The ``checkpoint.json`` of a run directory, with a clear error if absent."""
    path = Path(directory) / META
    if not path.is_file():
        raise FileNotFoundError(
            f"cannot resume from '{directory}': no {META} there (is it the --out directory of "
            "a run that finished at least one epoch?)"
        )
    with open(path) as f:
        return json.load(f)
