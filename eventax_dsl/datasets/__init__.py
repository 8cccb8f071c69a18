"""Datasets for spiking networks, as NumPy arrays of input spike times (ms).

Three benchmarks, each with a generator or loader and a spike-time encoder
whose output is the simulator's ``input_times`` layout (per sample
``(in_size,)`` or ``(in_size, k)``, ``inf`` for an absent spike):

- **Yin-Yang** (Kriener, Göltz & Petrovici 2022): :func:`yinyang`,
  :func:`yinyang_splits` (identical to the reference generator, sample for
  sample) and :func:`encode_yinyang` (4 features + 1 bias channel).
- **MNIST**: :func:`load_mnist` reads the official IDX files (raw or ``.gz``)
  from a directory and verifies their SHA-256; :func:`download_mnist` fetches
  them; :func:`encode_latency` gives one channel per pixel, brighter = earlier.
- **Delayed-memory XOR**: :func:`delayed_xor`, :func:`delayed_xor_splits`
  (9 channels, a value must be held until a cue).

Example::

    from eventax_dsl import datasets
    (x, y), val, test = datasets.yinyang_splits()
    input_times = datasets.encode_yinyang(x)       # (5000, 5), ms

Only NumPy is used here (no JAX): convert with ``jnp.asarray`` when batching.
"""

from .mnist import (
    MNIST_URL,
    ChecksumError,
    IdxFormatError,
    MnistNotFoundError,
    download_mnist,
    encode_latency,
    load_mnist,
    read_idx,
)
from .xor import XorTrials, delayed_xor, delayed_xor_splits
from .yinyang import CLASS_NAMES, Splits, encode_yinyang, yinyang, yinyang_splits

__all__ = [
    "yinyang", "yinyang_splits", "encode_yinyang", "CLASS_NAMES", "Splits",
    "load_mnist", "download_mnist", "encode_latency", "read_idx", "MNIST_URL",
    "MnistNotFoundError", "ChecksumError", "IdxFormatError",
    "delayed_xor", "delayed_xor_splits", "XorTrials",
]
