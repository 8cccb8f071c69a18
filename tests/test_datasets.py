"""Tests of eventax_dsl.datasets: Yin-Yang, MNIST (IDX, checksums, downloader, latency code), delayed XOR."""

from __future__ import annotations

import functools
import gzip
import hashlib
import http.server
import inspect
import json
import os
import shutil
import struct
import threading
from pathlib import Path

import numpy as np
import pytest

from eventax_dsl import datasets
from eventax_dsl.datasets import (
    ChecksumError,
    IdxFormatError,
    MnistNotFoundError,
    delayed_xor,
    delayed_xor_splits,
    download_mnist,
    encode_latency,
    encode_yinyang,
    load_mnist,
    read_idx,
    yinyang,
    yinyang_splits,
)

FIXTURES = Path(__file__).parent / "fixtures"
MNIST_DIR = Path(__file__).parents[1].parent / "shared/datasets/mnist"
MNIST_STEMS = ["train-images-idx3-ubyte", "train-labels-idx1-ubyte", "t10k-images-idx3-ubyte", "t10k-labels-idx1-ubyte"]
needs_mnist = pytest.mark.skipif(
    not all((MNIST_DIR / f"{s}.gz").is_file() for s in MNIST_STEMS),
    reason=f"the real MNIST files are not in {MNIST_DIR} (expected beside the repository)",
)


# --------------------------------------------------------------------------- Yin-Yang


@pytest.fixture(scope="module")
def reference():
    return json.loads((FIXTURES / "yinyang_reference.json").read_text())["splits"]


@pytest.fixture(scope="module")
def splits():
    return yinyang_splits()


def yinyang_geometry(x, y, r_small=0.1, r_big=0.5):
    """Independent region labels: the upper half-disc, minus the right lobe, plus the left lobe; eyes apart."""
    z = (x - r_big) + 1j * (y - r_big)  # relative to the centre of the symbol
    d_left, d_right = np.abs(z + r_big / 2), np.abs(z - r_big / 2)
    eyes = (d_left < r_small) | (d_right < r_small)
    upper = (z.imag > 0) & (d_right > r_big / 2)
    return np.where(eyes, 2, np.where(upper | (d_left <= r_big / 2), 1, 0))


@pytest.mark.parametrize("index, name", [(0, "train"), (1, "val"), (2, "test")])
def test_yinyang_reproduces_reference(splits, reference, index, name):
    features, labels = splits[index]
    ref = reference[name]
    assert features.shape == (ref["size"], 4) and features.dtype == np.float64
    assert labels.shape == (ref["size"],) and np.issubdtype(labels.dtype, np.integer)
    np.testing.assert_allclose(features[:20], np.array(ref["first_features"]), rtol=0, atol=1e-12)
    np.testing.assert_array_equal(labels[:20], ref["first_labels"])
    assert np.bincount(labels, minlength=3).tolist() == ref["label_counts"]
    np.testing.assert_allclose(features.sum(axis=0), ref["feature_sums"], rtol=0, atol=1e-9)
    assert hashlib.sha256(labels.astype("<i8").tobytes()).hexdigest() == ref["labels_sha256"]
    assert hashlib.sha256(features.astype("<f8").tobytes()).hexdigest() == ref["features_sha256"]


def test_yinyang_seeds():
    a, b = yinyang(50, seed=3), yinyang(50, seed=3)
    np.testing.assert_array_equal(a[0], b[0])
    np.testing.assert_array_equal(a[1], b[1])
    assert not np.any(yinyang(50, seed=4)[0] == a[0])
    assert yinyang(0, seed=1)[0].shape == (0, 4)


@pytest.mark.parametrize("r_small, r_big", [(0.1, 0.5), (0.15, 0.8)])
def test_yinyang_geometry_and_balance(r_small, r_big):
    features, labels = yinyang(3000, seed=7, r_small=r_small, r_big=r_big)
    x, y = features[:, 0], features[:, 1]
    np.testing.assert_array_equal(features[:, 2:], 1.0 - features[:, :2])
    assert np.all(np.hypot(x - r_big, y - r_big) <= r_big)
    np.testing.assert_array_equal(labels, yinyang_geometry(x, y, r_small, r_big))
    # rejection sampling on a uniformly drawn goal class: each count ~ Binomial(3000, 1/3), sd ~ 26
    assert np.all(np.abs(np.bincount(labels, minlength=3) - 1000) < 130)


def test_yinyang_canonical_splits_are_balanced_and_distinct(splits):
    for (features, labels), size in zip(splits, (5000, 1000, 1000)):
        assert features.shape == (size, 4)
        assert np.all((features >= 0) & (features <= 1))
        assert np.all(np.abs(np.bincount(labels, minlength=3) - size / 3) < 4 * np.sqrt(size * 2 / 9))
        np.testing.assert_array_equal(labels, yinyang_geometry(features[:, 0], features[:, 1]))
    train, val, test = (s[0] for s in splits)
    assert not np.isin(val[:, 0], train[:, 0]).any() and not np.isin(test[:, 0], val[:, 0]).any()


def test_encode_yinyang(splits):
    features = splits[1][0]
    times = encode_yinyang(features, t_min=2.0, t_max=30.0, bias_time=5.0)
    assert times.shape == (1000, 5) and times.dtype == np.float64
    np.testing.assert_allclose(times[:, :4], 2.0 + 28.0 * (1.0 - features), rtol=0, atol=1e-12)
    assert np.all(times[:, 4] == 5.0)
    assert np.all((times >= 2.0) & (times <= 30.0))
    # larger value -> earlier spike; defaults: [0, 30] ms, bias at t_min
    np.testing.assert_array_equal(encode_yinyang(np.array([1.0, 0.0, 0.25, 0.5])), [0.0, 30.0, 22.5, 15.0, 0.0])
    order = np.argsort(features[:, 0])
    assert np.all(np.diff(times[order, 0]) <= 0)
    assert encode_yinyang(features[:3], dtype=np.float32).dtype == np.float32
    with pytest.raises(ValueError, match=r"\[0, 1\]"):
        encode_yinyang(np.array([[1.5, 0.0, 0.0, 0.0]]))
    with pytest.raises(ValueError, match="shape"):
        encode_yinyang(np.zeros((3, 5)))
    with pytest.raises(ValueError):
        encode_yinyang(features, t_min=10.0, t_max=5.0)
    with pytest.raises(ValueError, match="0 <= t_min < t_max"):  # negative spike times
        encode_yinyang(features, t_min=-5.0, t_max=30.0)
    for bad in (-3.0, np.nan, np.inf):
        with pytest.raises(ValueError, match="bias_time must be finite and >= 0"):
            encode_yinyang(features, bias_time=bad)


# --------------------------------------------------------------------------- IDX files and MNIST


_IDX_CODES = {np.dtype("u1"): 0x08, np.dtype("i1"): 0x09, np.dtype("i2"): 0x0B,
              np.dtype("i4"): 0x0C, np.dtype("f4"): 0x0D, np.dtype("f8"): 0x0E}


def idx_bytes(array: np.ndarray) -> bytes:
    """An IDX file, written from the format description (independently of the reader)."""
    header = struct.pack(">BBBB", 0, 0, _IDX_CODES[array.dtype], array.ndim)
    header += struct.pack(f">{array.ndim}I", *array.shape)
    return header + array.astype(array.dtype.newbyteorder(">")).tobytes()


def write_idx(path: Path, array: np.ndarray, compress: bool) -> Path:
    data = idx_bytes(array)
    path.write_bytes(gzip.compress(data) if compress else data)
    return path


def write_fake_mnist(directory: Path, compress: bool, n_train=6, n_test=4, seed=0):
    rng = np.random.default_rng(seed)
    sets = {}
    for split, prefix, n in [("train", "train", n_train), ("test", "t10k", n_test)]:
        images = rng.integers(0, 256, size=(n, 28, 28), dtype=np.uint8)
        labels = rng.integers(0, 10, size=n).astype(np.uint8)
        suffix = ".gz" if compress else ""
        write_idx(directory / f"{prefix}-images-idx3-ubyte{suffix}", images, compress)
        write_idx(directory / f"{prefix}-labels-idx1-ubyte{suffix}", labels, compress)
        sets[split] = images, labels
    return sets


@pytest.mark.parametrize("compress", [False, True])
@pytest.mark.parametrize("dtype", ["u1", "i1", "i2", "i4", "f4", "f8"])
def test_idx_round_trip(tmp_path, compress, dtype):
    array = (np.arange(2 * 3 * 5) - 7).reshape(2, 3, 5).astype(dtype) * (3 if dtype[0] != "u" else 1)
    if dtype.startswith("f"):
        array = array / 7
    back = read_idx(write_idx(tmp_path / "a.idx", array, compress))
    assert back.dtype == np.dtype(dtype).newbyteorder("=") and back.shape == (2, 3, 5)
    np.testing.assert_array_equal(back, array)
    back[0, 0, 0] = 1  # a writable copy


def test_idx_malformed(tmp_path):
    good = idx_bytes(np.zeros((2, 3), np.uint8))
    cases = {
        "magic": b"\x01" + good[1:],
        "type": good[:2] + b"\x07" + good[3:],
        "truncated data": good[:-1],
        "extra data": good + b"\x00",
        "truncated header": good[:6],
    }
    for name, data in cases.items():
        (tmp_path / name).write_bytes(data)
        with pytest.raises(IdxFormatError):
            read_idx(tmp_path / name)
    # four dimensions of 2**16: 2**64 elements, which wraps to 0 in int64 arithmetic
    huge = b"\x00\x00\x08\x04" + np.full(4, 2**16, ">u4").tobytes()
    (tmp_path / "huge").write_bytes(huge)
    with pytest.raises(IdxFormatError, match=f"{4 + 16 + 2**64} bytes in all"):
        read_idx(tmp_path / "huge")
    (tmp_path / "bad.gz").write_bytes(gzip.compress(good)[:-6])  # cut-off archive
    with pytest.raises(IdxFormatError, match="corrupt gzip"):
        read_idx(tmp_path / "bad.gz")


@pytest.mark.parametrize("compress", [False, True])
def test_load_mnist_synthetic(tmp_path, compress):
    sets = write_fake_mnist(tmp_path, compress)
    for split, (images, labels) in sets.items():
        got_images, got_labels = load_mnist(tmp_path, split, verify=False)
        assert got_images.dtype == np.uint8 and got_images.shape == images.shape
        assert got_labels.dtype == np.int64
        np.testing.assert_array_equal(got_images, images)
        np.testing.assert_array_equal(got_labels, labels)
        flat, _ = load_mnist(tmp_path, split, flatten=True, verify=False)
        np.testing.assert_array_equal(flat, images.reshape(len(images), 784))
    with pytest.raises(ValueError, match="split"):
        load_mnist(tmp_path, "validation", verify=False)


@pytest.mark.parametrize("compress", [False, True])
def test_load_mnist_checksum_error(tmp_path, compress):
    write_fake_mnist(tmp_path, compress)
    name = "t10k-images-idx3-ubyte" + (".gz" if compress else "")
    content = gzip.decompress((tmp_path / name).read_bytes()) if compress else (tmp_path / name).read_bytes()
    official = "0fa7898d509279e482958e8ce81c8e77db3f2f8254e26661ceb7762c4d494ce7"
    with pytest.raises(ChecksumError) as info:
        load_mnist(tmp_path, "test")
    message = str(info.value)
    assert name in message and official in message and hashlib.sha256(content).hexdigest() in message
    assert info.value.expected == official


def test_load_mnist_bad_contents(tmp_path):
    write_fake_mnist(tmp_path, compress=False)
    write_idx(tmp_path / "t10k-labels-idx1-ubyte", np.zeros(3, np.uint8), compress=False)  # 4 images
    with pytest.raises(IdxFormatError, match="labels"):
        load_mnist(tmp_path, "test", verify=False)
    write_idx(tmp_path / "t10k-labels-idx1-ubyte", np.full(4, 10, np.uint8), compress=False)
    with pytest.raises(IdxFormatError, match="0..9"):
        load_mnist(tmp_path, "test", verify=False)


def test_load_mnist_missing_file(tmp_path):
    with pytest.raises(MnistNotFoundError) as info:
        load_mnist(tmp_path, "train")
    assert isinstance(info.value, FileNotFoundError)
    message = str(info.value)
    assert "train-images-idx3-ubyte" in message and str(tmp_path) in message and "download_mnist" in message
    # images present, labels missing: the error names the labels file
    write_idx(tmp_path / "t10k-images-idx3-ubyte.gz", np.zeros((1, 28, 28), np.uint8), compress=True)
    with pytest.raises(FileNotFoundError, match="t10k-labels-idx1-ubyte") as info:
        load_mnist(tmp_path, "test", verify=False)
    assert info.value.missing == "t10k-labels-idx1-ubyte" and info.value.directory == tmp_path
    with pytest.raises(FileNotFoundError, match="does not exist"):
        load_mnist(tmp_path / "nowhere")
    (tmp_path / "afile").write_text("")  # said "the directory does not exist" too
    with pytest.raises(FileNotFoundError, match="that is a file, not a directory"):
        load_mnist(tmp_path / "afile")


@needs_mnist
def test_real_mnist(tmp_path):
    images, labels = load_mnist(MNIST_DIR, "train")
    assert images.shape == (60000, 28, 28) and images.dtype == np.uint8
    assert np.bincount(labels).tolist() == [5923, 6742, 5958, 6131, 5842, 5421, 5918, 6265, 5851, 5949]
    # the test set, with the images stored raw (verified by the same content digest)
    (tmp_path / "t10k-images-idx3-ubyte").write_bytes(gzip.open(MNIST_DIR / "t10k-images-idx3-ubyte.gz").read())
    shutil.copy(MNIST_DIR / "t10k-labels-idx1-ubyte.gz", tmp_path)
    images, labels = load_mnist(tmp_path, "test", flatten=True)
    assert images.shape == (10000, 784) and labels[:5].tolist() == [7, 2, 1, 0, 4]
    np.testing.assert_array_equal(images, load_mnist(MNIST_DIR, "test", flatten=True)[0])


# --------------------------------------------------------------------------- downloader


class _Handler(http.server.SimpleHTTPRequestHandler):
    """Serves a directory quietly, logs request paths, and can cut responses short."""

    def log_message(self, *args):
        pass

    def do_GET(self):
        self.server.requests.append(self.path)
        if self.server.truncate:  # promise 1 MB, send 10 bytes, hang up
            self.send_response(200)
            self.send_header("Content-Length", str(1 << 20))
            self.end_headers()
            self.wfile.write(b"\x1f\x8b" + bytes(8))
            return
        super().do_GET()


@pytest.fixture
def http_root(tmp_path):
    """Serve ``tmp_path / "www"`` on 127.0.0.1; yields ``(root, base_url, server)``."""
    root = tmp_path / "www"
    root.mkdir()
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), functools.partial(_Handler, directory=str(root)))
    server.requests, server.truncate = [], False
    thread = threading.Thread(target=server.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True)
    thread.start()
    try:
        yield root, f"http://127.0.0.1:{server.server_address[1]}/mnist/", server
    finally:
        server.shutdown()
        server.server_close()
        thread.join()


@needs_mnist
def test_download_mnist(tmp_path, http_root):
    root, base_url, server = http_root
    requests = server.requests
    shutil.copytree(MNIST_DIR, root / "mnist")
    target = tmp_path / "data" / "mnist"
    target.mkdir(parents=True)
    (target / "t10k-labels-idx1-ubyte.gz").write_bytes(b"stale, corrupt copy")  # must be replaced
    assert download_mnist(target, base_url, splits="test") == target  # one name: a split, not letters
    assert sorted(p.name for p in target.iterdir()) == ["t10k-images-idx3-ubyte.gz", "t10k-labels-idx1-ubyte.gz"]
    for name in ["t10k-images-idx3-ubyte.gz", "t10k-labels-idx1-ubyte.gz"]:
        assert (target / name).read_bytes() == (MNIST_DIR / name).read_bytes()
        umask = os.umask(0)
        os.umask(umask)
        assert (target / name).stat().st_mode & 0o777 == 0o666 & ~umask  # not a private temp file's 0o600
    images, labels = load_mnist(target, "test")
    assert images.shape == (10000, 28, 28) and labels.shape == (10000,)
    assert len(requests) == 2
    download_mnist(target, base_url, splits=("test",))  # already there and valid: no request
    assert len(requests) == 2


@needs_mnist
def test_download_mnist_sets_aside_a_corrupt_raw_file(tmp_path, http_root):
    # load_mnist reads a raw file before the .gz: a corrupt one would shadow the download
    root, base_url, server = http_root
    shutil.copytree(MNIST_DIR, root / "mnist")
    target = tmp_path / "mnist"
    target.mkdir()
    (target / "t10k-labels-idx1-ubyte").write_bytes(b"truncated")
    download_mnist(target, base_url, splits=("test",))
    images, labels = load_mnist(target, "test")
    assert images.shape == (10000, 28, 28) and labels.shape == (10000,)
    assert (target / "t10k-labels-idx1-ubyte.corrupt").read_bytes() == b"truncated"  # kept
    n = len(server.requests)
    download_mnist(target, base_url, splits=("test",))  # now valid: nothing fetched again
    assert len(server.requests) == n


def test_download_mnist_checks_splits_before_any_request(tmp_path, http_root):
    # a typo in the last split used to be found after the first split's 55 MB had come
    _, base_url, server = http_root
    for splits, bad in [(("train", "val"), "'val'"), ("tset", "'tset'")]:
        with pytest.raises(ValueError, match=f"only 'train' and 'test', got {bad}"):
            download_mnist(tmp_path / "out", base_url, splits=splits)
    assert server.requests == [] and not (tmp_path / "out").exists()


def test_download_mnist_wrong_content_leaves_nothing(tmp_path, http_root):
    root, base_url, _ = http_root
    (root / "mnist").mkdir()
    for stem in MNIST_STEMS:  # valid gzip, valid IDX, wrong data
        write_idx(root / "mnist" / f"{stem}.gz", np.zeros((2, 28, 28), np.uint8), compress=True)
    target = tmp_path / "out"
    with pytest.raises(ChecksumError) as info:
        download_mnist(target, base_url)
    message = str(info.value)
    assert "train-images-idx3-ubyte.gz" in message and base_url in message
    actual = hashlib.sha256(idx_bytes(np.zeros((2, 28, 28), np.uint8))).hexdigest()
    assert actual in message and "ba891046e6505d7aadcbbe25680a0738ad16aec93bde7f9b65e87a2fc25776db" in message
    assert list(target.iterdir()) == []


def test_download_mnist_corrupt_archive_leaves_nothing(tmp_path, http_root):
    root, base_url, _ = http_root
    (root / "mnist").mkdir()
    archive = bytearray(gzip.compress(np.random.default_rng(0).bytes(100_000)))
    archive[len(archive) // 2] ^= 0xFF  # one flipped byte in the deflate stream
    (root / "mnist" / "t10k-images-idx3-ubyte.gz").write_bytes(bytes(archive))
    with pytest.raises((IdxFormatError, ChecksumError), match="t10k-images-idx3-ubyte") as info:
        download_mnist(tmp_path / "out", base_url, splits=("test",))
    assert ".part" not in str(info.value) and base_url in str(info.value)  # names the real file and URL
    assert list((tmp_path / "out").iterdir()) == []


def test_download_mnist_interrupted_transfer_leaves_nothing(tmp_path, http_root):
    root, base_url, server = http_root
    server.truncate = True
    with pytest.raises(OSError, match="t10k-images-idx3-ubyte.gz"):
        download_mnist(tmp_path / "out", base_url, splits=("test",))
    assert server.requests and list((tmp_path / "out").iterdir()) == []


def test_download_mnist_http_error_leaves_nothing(tmp_path, http_root):
    _, base_url, _ = http_root  # serves nothing: 404
    with pytest.raises(OSError, match="t10k-images-idx3-ubyte.gz"):
        download_mnist(tmp_path / "out", base_url, splits=("test",))
    assert list((tmp_path / "out").iterdir()) == []


# --------------------------------------------------------------------------- latency code


def test_encode_latency_monotonic_and_silent_zero():
    levels = np.arange(256, dtype=np.uint8)
    times = encode_latency(levels, t_max=20.0, dtype=np.float64)
    assert times[0] == np.inf and np.all(np.isfinite(times[1:]))
    assert np.all(np.diff(times[1:]) < 0)  # strictly earlier for brighter pixels
    np.testing.assert_allclose(times[1:], 20.0 * (1 - levels[1:] / 255.0), rtol=0, atol=1e-12)
    assert times[255] == 0.0
    t32 = encode_latency(levels, t_max=20.0, t_min=1.0)
    assert t32.dtype == np.float32 and t32[255] == 1.0 and np.all(np.diff(t32[1:]) < 0)
    thresholded = encode_latency(levels, threshold=64)
    assert np.all(np.isinf(thresholded[:64])) and np.all(np.isfinite(thresholded[64:]))


def test_encode_latency_shapes_and_errors():
    images = np.random.default_rng(1).integers(0, 256, size=(3, 28, 28), dtype=np.uint8)
    times = encode_latency(images.reshape(3, -1))
    assert times.shape == (3, 784)
    np.testing.assert_array_equal(np.isinf(times), images.reshape(3, -1) == 0)
    assert encode_latency(images).shape == (3, 28, 28)
    with pytest.raises(TypeError, match="integer"):
        encode_latency(images / 255.0)
    with pytest.raises(ValueError, match="threshold"):
        encode_latency(images, threshold=0)
    with pytest.raises(ValueError, match="0..255"):
        encode_latency(np.array([300]))


@needs_mnist
def test_encode_latency_real_digits():
    images, _ = load_mnist(MNIST_DIR, "test", flatten=True)
    times = encode_latency(images[:500], t_max=20.0)
    assert times.shape == (500, 784)
    np.testing.assert_array_equal(np.isfinite(times), images[:500] > 0)
    assert np.all(times[np.isfinite(times)] >= 0.0) and np.all(times[np.isfinite(times)] < 20.0)


# --------------------------------------------------------------------------- delayed XOR


def decode_xor(times):
    """Recover (first value, second value, cue-spike times) of one trial from its spike times alone."""
    channel, _ = np.nonzero(np.isfinite(times))
    spikes = sorted(zip(times[np.isfinite(times)], channel))
    assert len(spikes) == 9
    events = [spikes[0:3], spikes[3:6], spikes[6:9]]
    groups = []
    for event in events:
        channels = sorted(int(c) for _, c in event)
        group = channels[0] // 3
        assert channels == [3 * group, 3 * group + 1, 3 * group + 2]  # one spike per channel of a group
        groups.append(group)
    assert groups[2] == 2 and groups[0] in (0, 1) and groups[1] in (0, 1)
    return groups[0], groups[1], events


def test_delayed_xor_labels_and_timing():
    jitter, t_trial, t_first, min_gap, cue_delay = 1.0, 90.0, 5.0, 5.0, (10.0, 30.0)
    trials = delayed_xor(400, seed=5)
    times, labels, cue_times, values = trials
    assert times.shape == (400, 9, 2) and times.dtype == np.float64
    assert labels.shape == (400,) and cue_times.shape == (400,) and values.shape == (400, 2)
    second_spike = np.isfinite(times[..., 1])
    assert np.all(times[..., 1][second_spike] > times[..., 0][second_spike])  # ascending per channel
    assert np.all(np.isinf(times[:, 6:, 1]))
    for n in range(len(labels)):
        v1, v2, (first, second, cue) = decode_xor(times[n])
        assert (v1, v2) == tuple(values[n]) and labels[n] == v1 ^ v2
        first_t, second_t, cue_t = (np.array([t for t, _ in e]) for e in (first, second, cue))
        assert np.all(np.abs(first_t - t_first) <= jitter)
        assert np.all(second_t >= t_first + min_gap - jitter) and np.all(second_t <= t_trial / 3 + jitter)
        assert np.all(np.abs(cue_t - cue_times[n]) <= jitter)
        assert first_t.max() < second_t.min() and second_t.max() < cue_t.min()
        assert cue_delay[0] - 2 * jitter <= cue_times[n] - second_t.mean() <= cue_delay[1] + 2 * jitter
        assert cue_t.max() < t_trial and first_t.min() >= 0
    # all four value combinations occur
    assert len({tuple(v) for v in values}) == 4


def test_delayed_xor_reproducible_options_and_splits():
    a, b = delayed_xor(30, seed=2), delayed_xor(30, seed=2)
    for x, y in zip(a, b):
        np.testing.assert_array_equal(x, y)
    assert not np.array_equal(a.times, delayed_xor(30, seed=3).times)
    fixed = delayed_xor(50, seed=0, jitter=0.0, cue_delay=(20.0, 20.0), dtype=np.float32)
    assert fixed.times.dtype == np.float32
    np.testing.assert_array_equal(np.nanmin(np.where(np.isfinite(fixed.times), fixed.times, np.nan), axis=(1, 2)), 5.0)
    assert np.all(fixed.times[:, 6:, 0] == fixed.cue_times[:, None])
    train, val, test = delayed_xor_splits()
    assert [len(s.labels) for s in (train, val, test)] == [5000, 1000, 1000]
    assert abs(train.labels.mean() - 0.5) < 0.03
    assert not np.array_equal(val.cue_times, test.cue_times)
    with pytest.raises(ValueError):
        delayed_xor(10, jitter=3.0, min_gap=5.0)
    with pytest.raises(ValueError):
        delayed_xor(10, t_trial=60.0, cue_delay=(10.0, 45.0))


# --------------------------------------------------------------------------- API


def test_public_api_is_documented():
    for name in datasets.__all__:
        obj = getattr(datasets, name)
        if inspect.isfunction(obj):
            doc = inspect.getdoc(obj)
            assert doc and "Example" in doc and "Returns" in doc, name
