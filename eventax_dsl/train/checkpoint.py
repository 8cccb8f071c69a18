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
rebuilds it from the stored config.

A run can be killed at any moment, also while it saves. Every file is written
to a temporary name, flushed to disk and renamed, and the pair
``checkpoint.eqx`` + ``checkpoint.json`` changes as one
(:func:`save_checkpoint`): the new tree goes to ``checkpoint.eqx.new``, then
``checkpoint.json`` is replaced, recording the tree's SHA-256 (this is the
moment the new checkpoint counts), then the tree is renamed into place. Killed
before the JSON, the previous checkpoint is whole; killed after it,
:func:`load_checkpoint` finishes the rename. A tree that matches neither is
refused rather than resumed from the wrong position.
"""

from __future__ import annotations

import hashlib
import io
import json
import os
from pathlib import Path

import equinox as eqx

__all__ = ["CHECKPOINT", "META", "BEST", "load_checkpoint", "load_meta", "load_tree",
           "save_checkpoint", "save_json", "save_tree"]

CHECKPOINT = "checkpoint.eqx"
META = "checkpoint.json"
BEST = "best.eqx"
#: ``checkpoint.json``'s record of the SHA-256 of ``checkpoint.eqx``
TREE_SHA256 = "tree_sha256"


def _sync(path: Path) -> None:
    """Flush ``path`` (a file or a directory) to the disk."""
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def _replace(src: Path, dst: Path) -> None:
    os.replace(src, dst)
    try:  # the rename itself (not every system can open a directory)
        _sync(dst.parent)
    except OSError:
        pass


def _atomic(path: Path, write) -> None:
    tmp = path.with_name(path.name + ".tmp")
    try:
        write(tmp)
        _sync(tmp)
    except BaseException:  # a full disk, an object JSON cannot hold, Ctrl-C: no stray file
        tmp.unlink(missing_ok=True)
        raise
    _replace(tmp, path)


def _sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def save_tree(path, tree) -> None:
    """Serialise the array leaves of ``tree`` to ``path`` (atomically)."""
    _atomic(Path(path), lambda p: eqx.tree_serialise_leaves(p, tree))


def _deserialise(source, like, path: Path):
    """``eqx.tree_deserialise_leaves`` with an error that names ``path``: a damaged file,
    or one that holds another network (shapes, dtypes or leaves that differ from ``like``)."""
    try:
        return eqx.tree_deserialise_leaves(source, like)
    except Exception as exc:  # noqa: BLE001 - EOFError, RuntimeError, Equinox's TreePathError
        cause = exc.__cause__ or exc
        raise ValueError(
            f"cannot read '{path}': it is damaged, or holds a network other than the one "
            f"its configuration builds ({type(cause).__name__}: {cause})") from exc


def load_tree(path, like):
    """The PyTree ``like`` with its leaves read from ``path``."""
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"checkpoint file '{path}' not found")
    return _deserialise(path, like, path)


def save_json(path, data: dict) -> None:
    """Write ``data`` as indented JSON (atomically)."""

    def write(p):
        with open(p, "w") as f:
            json.dump(data, f, indent=2, allow_nan=True)  # insertion order: metrics keep their columns
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
    try:
        with open(path) as f:
            meta = json.load(f)
    except (json.JSONDecodeError, UnicodeDecodeError) as exc:
        raise ValueError(f"cannot resume from '{directory}': {META} is not valid JSON ({exc})"
                         ) from None
    if not isinstance(meta, dict):
        raise ValueError(f"cannot resume from '{directory}': {META} holds a "
                         f"{type(meta).__name__}, not a run's record")
    for key, kind in (("config", dict), ("epoch", int), ("history", list)):
        if not isinstance(meta.get(key), kind):
            what = "no" if key not in meta else f"a {type(meta[key]).__name__} as its"
            raise ValueError(f"cannot resume from '{directory}': {META} has {what} '{key}' "
                             f"(a {kind.__name__} is needed); the file was changed or damaged")
    return meta


def save_checkpoint(directory, tree, meta: dict) -> None:
    """Replace the run's ``checkpoint.eqx`` (``tree``) and ``checkpoint.json`` (``meta``
    plus the tree's SHA-256) together; see the module docstring for the order."""
    directory = Path(directory)
    new = directory / (CHECKPOINT + ".new")
    save_tree(new, tree)
    save_json(directory / META, {**meta, TREE_SHA256: _sha256(new)})
    _replace(new, directory / CHECKPOINT)


def load_checkpoint(directory, meta: dict, like):
    """The tree of the checkpoint whose ``checkpoint.json`` is ``meta``.

    Finishes a save that was killed after its ``checkpoint.json`` was written, and
    refuses a ``checkpoint.eqx`` that does not match it. A checkpoint written before
    the JSON recorded the tree's SHA-256 is read as it is.
    """
    directory = Path(directory)
    path = directory / CHECKPOINT
    want = meta.get(TREE_SHA256)
    if want is None:
        return load_tree(path, like)
    # read each file once: the bytes that are hashed are the bytes that are loaded
    data = path.read_bytes() if path.is_file() else None
    if data is None or hashlib.sha256(data).hexdigest() != want:
        new = directory / (CHECKPOINT + ".new")
        data = new.read_bytes() if new.is_file() else None
        if data is None or hashlib.sha256(data).hexdigest() != want:
            raise ValueError(
                f"cannot resume from '{directory}': {CHECKPOINT} is not the network that "
                f"{META} describes (its SHA-256 differs from {TREE_SHA256} there, and no "
                f"{CHECKPOINT}.new matches either); the files were changed or damaged")
        _replace(new, path)  # the save was killed between its last two steps
    return _deserialise(io.BytesIO(data), like, path)
