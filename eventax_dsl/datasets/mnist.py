"""MNIST from the standard IDX files, checksummed, and its latency (time-to-first-spike) code.

Nothing is downloaded implicitly: :func:`load_mnist` reads the four files of
the MNIST distribution from a directory you name, each either gzip-compressed
(``train-images-idx3-ubyte.gz``) or raw (``train-images-idx3-ubyte``).
:func:`download_mnist` fetches them once if you are online.

**What is verified.** Every file is checked against the SHA-256 of its
*decompressed* IDX content (the table below), whether it is stored raw or as
``.gz``. Checking the content rather than the archive bytes means that any
faithful copy is accepted: the archives as distributed, raw files, and
re-compressed copies (whose ``.gz`` bytes differ although the data are
identical). For reference, the archives as originally distributed have these
SHA-256 digests (they are *not* required to match)::

    train-images-idx3-ubyte.gz  440fcabf73cc546fa21475e81ea370265605f56be210a4024d2ca8f203523609
    train-labels-idx1-ubyte.gz  3552534a0a558bbed6aed32b30c495cca23d567ec52cac8be1a0730e8010255c
    t10k-images-idx3-ubyte.gz   8d422c7b0a1c1c79245a5bcf07fe86e33eeafee792b84584aec276f5a2dbc4e6
    t10k-labels-idx1-ubyte.gz   f7ae60f92e00ec6debd23a6088c31dbd2371eca3ffa0defaefb259924204aec6

**The IDX format** (big-endian): two zero bytes, a type byte (``0x08``
unsigned byte, ``0x09`` signed byte, ``0x0B`` int16, ``0x0C`` int32, ``0x0D``
float32, ``0x0E`` float64), a byte with the number of dimensions ``d``, then
``d`` uint32 sizes, then the data in C order.
"""

from __future__ import annotations

import errno
import gzip
import hashlib
import http.client
import math
import os
import urllib.request
import uuid
import zlib
from pathlib import Path

import numpy as np

__all__ = [
    "MNIST_URL",
    "MnistNotFoundError",
    "ChecksumError",
    "IdxFormatError",
    "read_idx",
    "load_mnist",
    "download_mnist",
    "encode_latency",
]

#: Default mirror for :func:`download_mnist` (the one torchvision uses); it
#: serves the original archives. Any URL serving the four ``.gz`` files works.
MNIST_URL = "https://ossci-datasets.s3.amazonaws.com/mnist/"

# File stem -> SHA-256 of the decompressed IDX file (the official content).
_SHA256 = {
    "train-images-idx3-ubyte": "ba891046e6505d7aadcbbe25680a0738ad16aec93bde7f9b65e87a2fc25776db",
    "train-labels-idx1-ubyte": "65a50cbbf4e906d70832878ad85ccda5333a97f0f4c3dd2ef09a8a9eef7101c5",
    "t10k-images-idx3-ubyte": "0fa7898d509279e482958e8ce81c8e77db3f2f8254e26661ceb7762c4d494ce7",
    "t10k-labels-idx1-ubyte": "ff7bcfd416de33731a308c3f266cc351222c34898ecbeaf847f06e48f7ec33f2",
}
_SPLITS = {
    "train": ("train-images-idx3-ubyte", "train-labels-idx1-ubyte"),
    "test": ("t10k-images-idx3-ubyte", "t10k-labels-idx1-ubyte"),
}
_IDX_DTYPES = {0x08: "u1", 0x09: "i1", 0x0B: ">i2", 0x0C: ">i4", 0x0D: ">f4", 0x0E: ">f8"}
_GZIP_MAGIC = b"\x1f\x8b"


class MnistNotFoundError(FileNotFoundError):
    """An MNIST file is in neither its raw nor its ``.gz`` form in the directory.

    Attributes ``missing`` (the file name looked for, without ``.gz``) and
    ``directory``; ``errno`` is ``ENOENT``.
    """

    def __init__(self, stem: str, directory: Path):
        missing = ("" if directory.is_dir() else " (that is a file, not a directory)"
                   if directory.exists() else " (the directory does not exist)")
        super().__init__(
            errno.ENOENT,
            f"MNIST file {stem!r} (raw, or gzip-compressed as {stem + '.gz'!r}) not found in "
            f"directory '{directory}'{missing}. Download the four MNIST files there with "
            f"eventax_dsl.datasets.download_mnist({str(directory)!r}), or copy them from "
            f"{MNIST_URL} by hand."
        )
        self.missing = stem
        self.directory = directory


class ChecksumError(ValueError):
    """A file's SHA-256 differs from the official one.

    Attributes ``path``, ``expected`` and ``actual`` (hex digests).
    """

    def __init__(self, path, expected: str, actual: str):
        super().__init__(
            f"checksum mismatch for '{path}': the SHA-256 of its decompressed IDX content is "
            f"{actual}, expected {expected}. The file is corrupt or not the official MNIST file; "
            "delete it and download it again."
        )
        self.path, self.expected, self.actual = path, expected, actual


class IdxFormatError(ValueError):
    """A file is not a well-formed IDX file (bad magic, unknown type, wrong size, corrupt gzip)."""


def _read_bytes(path: Path, shown=None) -> bytes:
    """The file's content, gunzipped if it starts with the gzip magic number."""
    data = path.read_bytes()
    if data[:2] != _GZIP_MAGIC:
        return data
    try:
        return gzip.decompress(data)
    except (OSError, EOFError, zlib.error) as exc:  # bad CRC, truncated, corrupt stream
        raise IdxFormatError(
            f"'{shown or path}' is a corrupt gzip file ({exc}); delete it and download it again"
        ) from exc


def _parse_idx(data: bytes, name) -> np.ndarray:
    if len(data) < 4 or data[0] != 0 or data[1] != 0:
        raise IdxFormatError(f"'{name}' is not an IDX file: it does not start with two zero bytes")
    code, ndim = data[2], data[3]
    if code not in _IDX_DTYPES:
        raise IdxFormatError(f"'{name}': unknown IDX type code 0x{code:02X}")
    header = 4 + 4 * ndim
    if len(data) < header:
        raise IdxFormatError(f"'{name}': truncated header ({len(data)} bytes, {ndim} dimensions)")
    shape = tuple(int(s) for s in np.frombuffer(data, ">u4", count=ndim, offset=4))
    dtype = np.dtype(_IDX_DTYPES[code])
    expected = header + math.prod(shape) * dtype.itemsize  # exact: no int64 wrap-around
    if len(data) != expected:
        raise IdxFormatError(
            f"'{name}': header says shape {shape} of {dtype} ({expected} bytes in all), "
            f"but the file has {len(data)} bytes"
        )
    array = np.frombuffer(data, dtype, offset=header).reshape(shape)
    return array.astype(dtype.newbyteorder("="))  # native byte order, writable copy


def read_idx(path) -> np.ndarray:
    """Read one IDX file (raw or gzip-compressed) into a NumPy array.

    No checksum is involved: this reads any IDX file. The header is validated
    (magic number, type code, and that the data size matches the dimensions).

    **Arguments:**

    - `path`: the file; gzip compression is detected from the content.

    **Returns:**

    An array of the stored shape and type, in native byte order (``uint8`` for
    MNIST images ``(N, 28, 28)`` and labels ``(N,)``).

    **Raises:** :class:`IdxFormatError` for a malformed file.

    **Example:**

    ```python
    labels = read_idx("mnist/t10k-labels-idx1-ubyte.gz")   # uint8, shape (10000,)
    ```
    """
    path = Path(path)
    return _parse_idx(_read_bytes(path), path)


def _find(directory: Path, stem: str) -> Path:
    """The raw file if present, else the ``.gz`` one."""
    for candidate in (directory / stem, directory / (stem + ".gz")):
        if candidate.is_file():
            return candidate
    raise MnistNotFoundError(stem, directory)


def _checked_content(path: Path, stem: str, shown=None) -> bytes:
    data = _read_bytes(path, shown)
    actual = hashlib.sha256(data).hexdigest()
    if actual != _SHA256[stem]:
        raise ChecksumError(shown or path, _SHA256[stem], actual)
    return data


def load_mnist(
    directory, split: str = "train", *, flatten: bool = False, verify: bool = True
) -> tuple[np.ndarray, np.ndarray]:
    """Load the MNIST training or test set from the IDX files in `directory`.

    **Arguments:**

    - `directory`: folder holding ``{train,t10k}-{images-idx3,labels-idx1}-ubyte``,
      each raw or with a ``.gz`` suffix (raw is used when both exist).
    - `split`: ``"train"`` (60,000 images) or ``"test"`` (10,000 images).
    - `flatten`: return images of shape ``(N, 784)`` (row-major pixels, one per
      input channel) instead of ``(N, 28, 28)``.
    - `verify`: check the SHA-256 of each file's decompressed content against
      the official digest (about 0.2 s for the training set). Turn it off only
      for files you made yourself.

    **Returns:**

    ``(images, labels)``: ``uint8`` images (0 = background, 255 = ink) and
    ``int64`` labels in ``0..9`` of shape ``(N,)``.

    **Raises:** :class:`MnistNotFoundError` (a ``FileNotFoundError``) naming
    the missing file, the directory and how to download it;
    :class:`ChecksumError` naming the file and both digests;
    :class:`IdxFormatError` for a malformed file.

    **Example:**

    ```python
    images, labels = load_mnist("data/mnist", "test", flatten=True)
    images.shape, images.dtype, labels[:5]     # (10000, 784), uint8, [7 2 1 0 4]
    ```
    """
    if split not in _SPLITS:
        raise ValueError(f"split must be 'train' or 'test', got {split!r}")
    directory = Path(directory)
    arrays = []
    for stem in _SPLITS[split]:
        path = _find(directory, stem)
        data = _checked_content(path, stem) if verify else _read_bytes(path)
        arrays.append(_parse_idx(data, path))
    images, labels = arrays
    if images.dtype != np.uint8 or images.ndim != 3 or images.shape[1:] != (28, 28):
        raise IdxFormatError(f"expected uint8 images of shape (N, 28, 28), got {images.dtype} {images.shape}")
    if labels.dtype != np.uint8 or labels.shape != images.shape[:1]:
        raise IdxFormatError(
            f"expected {images.shape[0]} uint8 labels to match the images, got {labels.dtype} {labels.shape}"
        )
    if labels.size and labels.max() > 9:
        raise IdxFormatError(f"labels must lie in 0..9, found {labels.max()}")
    if flatten:
        images = images.reshape(images.shape[0], -1)
    return images, labels.astype(np.int64)


def download_mnist(
    directory, base_url: str = MNIST_URL, *, splits=("train", "test"), timeout: float = 60.0
) -> Path:
    """Download the MNIST ``.gz`` files into `directory`, verified and atomically.

    Each file is streamed to a temporary file in `directory`, its decompressed
    content is checked against the official SHA-256, and only then is it
    renamed (``os.replace``, atomic) to its final name. On any failure --
    network error, HTTP error, checksum mismatch, interruption -- the temporary
    file is removed, so no partial or unverified file is ever left under an
    official name. Files already present (raw or ``.gz``) and valid are not
    downloaded again; a present but corrupt ``.gz`` file is replaced, and a
    corrupt raw file, which :func:`load_mnist` would read before the ``.gz``, is
    renamed to ``<name>.corrupt`` (kept, not deleted).

    **Arguments:**

    - `directory`: target folder, created if needed.
    - `base_url`: URL prefix serving ``<base_url>/train-images-idx3-ubyte.gz``
      etc. (default :data:`MNIST_URL`).
    - `splits`: which of ``"train"`` / ``"test"`` to fetch (a sequence, or one name);
      checked before anything is downloaded.
    - `timeout`: socket timeout per request, seconds.

    **Returns:** the directory, ready for :func:`load_mnist`.

    **Raises:** :class:`ChecksumError` for a file whose content is wrong;
    ``OSError`` (with the URL) when a download fails.

    **Example:**

    ```python
    download_mnist("data/mnist")
    images, labels = load_mnist("data/mnist", "train")
    ```
    """
    splits = (splits,) if isinstance(splits, str) else tuple(splits)
    unknown = [s for s in splits if s not in _SPLITS]
    if unknown:  # before any download: a typo must not cost the other files' traffic
        raise ValueError(f"splits must contain only 'train' and 'test', got {unknown[0]!r}")
    directory = Path(directory)
    directory.mkdir(parents=True, exist_ok=True)
    for split in splits:
        for stem in _SPLITS[split]:
            if _is_present_and_valid(directory, stem):
                continue
            url = base_url.rstrip("/") + "/" + stem + ".gz"
            _download_verified(url, directory / (stem + ".gz"), stem, timeout)
            raw = directory / stem
            if raw.is_file():  # corrupt (it failed the check), and load_mnist reads it first
                os.replace(raw, directory / (stem + ".corrupt"))
    return directory


def _is_present_and_valid(directory: Path, stem: str) -> bool:
    try:
        _checked_content(_find(directory, stem), stem)
    except (ChecksumError, IdxFormatError, OSError):
        return False
    return True


def _download_verified(url: str, target: Path, stem: str, timeout: float) -> None:
    # Created by hand rather than with ``tempfile.mkstemp`` so that the final
    # file gets the usual permissions (0o666 minus the umask), not 0o600.
    tmp = target.with_name(f".{target.name}.{uuid.uuid4().hex[:12]}.part")
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL | getattr(os, "O_BINARY", 0), 0o666)
    try:
        with os.fdopen(fd, "wb") as out:
            try:
                with urllib.request.urlopen(url, timeout=timeout) as response:
                    announced, received = response.headers.get("Content-Length"), 0
                    while chunk := response.read(1 << 20):
                        out.write(chunk)
                        received += len(chunk)
                if announced is not None and received != int(announced):
                    raise OSError(f"connection closed after {received} of {announced} bytes")
            except (OSError, http.client.HTTPException) as exc:  # URLError, HTTPError, IncompleteRead, ...
                raise OSError(f"downloading {url} failed: {exc!r}") from exc
            out.flush()
            os.fsync(out.fileno())
        _checked_content(tmp, stem, shown=f"{target} (downloaded from {url})")
        os.replace(tmp, target)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise


def encode_latency(
    images, t_max: float = 20.0, *, t_min: float = 0.0, threshold: int = 1, dtype=np.float32
) -> np.ndarray:
    """Latency-code pixel intensities: brighter pixels spike earlier, black ones never.

    Each pixel is one input channel that spikes at most once, at

    ``t = t_min + (t_max - t_min) * (1 - x / 255)``  (ms)

    for intensity ``x >= threshold``; pixels below ``threshold`` (always
    including ``x = 0``) emit no spike, marked ``inf``. So ``x = 255`` spikes at
    ``t_min``, ``x = 1`` at ``t_max - (t_max - t_min) / 255``, and the time is
    strictly decreasing in ``x``.

    **Arguments:**

    - `images`: integer array of intensities in ``0..255`` of any shape;
      usually ``(N, 784)`` from ``load_mnist(..., flatten=True)``.
    - `t_max`, `t_min`: the time of a (virtual) zero-intensity spike and of a
      full-intensity spike, ms, ``0 <= t_min < t_max``.
    - `threshold`: smallest intensity that spikes, ``1..255``.
    - `dtype`: floating dtype of the result. ``float32`` by default: the full
      training set is 60,000 x 784 times, 188 MB in float32.

    **Returns:**

    Spike times of the same shape as `images` with ``inf`` for silent pixels:
    for ``(N, 784)`` input, row ``n`` is the ``input_times`` of sample ``n``
    for a network with ``in_size=784``.

    **Example:**

    ```python
    images, labels = load_mnist("data/mnist", "test", flatten=True)
    times = encode_latency(images, t_max=20.0)   # (10000, 784), float32, inf = no spike
    encode_latency(np.array([0, 1, 128, 255], np.uint8), t_max=255.0)
    # array([inf, 254., 127., 0.], dtype=float32)
    ```
    """
    if not 0.0 <= t_min < t_max:
        raise ValueError(f"need 0 <= t_min < t_max, got t_min={t_min}, t_max={t_max}")
    if not 1 <= threshold <= 255:
        raise ValueError(f"threshold must be in 1..255 (0 would make black pixels spike), got {threshold}")
    x = np.asarray(images)
    if not np.issubdtype(x.dtype, np.integer):
        raise TypeError(f"images must hold integer intensities 0..255 (e.g. uint8), got dtype {x.dtype}")
    if x.size and (x.min() < 0 or x.max() > 255):
        raise ValueError(f"intensities must lie in 0..255, found [{x.min()}, {x.max()}]")
    # A 256-entry lookup table: exact in float64 before the cast, and cheap in memory.
    levels = np.arange(256, dtype=np.float64)
    table = np.where(levels >= threshold, t_min + (t_max - t_min) * (1.0 - levels / 255.0), np.inf)
    return table.astype(dtype)[x]
