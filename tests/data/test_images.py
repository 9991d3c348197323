"""MNIST (idx), CIFAR-10 (python pickles) and local .npz files; the logit transform's
log-det against jax.jacobian and closed forms; logit-space nats -> pixel bits/dim."""

from __future__ import annotations

import gzip
import io
import pickle
import struct
import tarfile
from pathlib import Path

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from jflows.data import images
from jflows.data.cache import CorruptDataError, MissingDataError
from tests.shared_data import SHARED_DATA

SHARED = SHARED_DATA


# --------------------------------------------------------------------------------------
# The transform.
# --------------------------------------------------------------------------------------


@pytest.mark.parametrize("lam", [images.MNIST_LAMBDA, images.CIFAR10_LAMBDA])
def test_logit_log_det_matches_jacobian(lam):
    x = jnp.asarray(np.random.default_rng(0).random(6), jnp.float32)
    y, log_det = images.logit_transform(x, lam, event_ndims=1)
    jac = jax.jacobian(lambda v: images.logit_transform(v, lam, event_ndims=1)[0])(x)
    _, want = jnp.linalg.slogdet(jac)
    np.testing.assert_allclose(log_det, want, rtol=1e-5)
    np.testing.assert_allclose(images.inverse_logit_transform(y, lam), x, atol=1e-5)


def test_logit_closed_form_and_batching():
    lam = 0.05
    x = np.full((3, 4), 0.5)
    y, log_det = images.logit_transform(x, lam)       # default: sum over all but axis 0
    np.testing.assert_allclose(y, 0.0, atol=1e-12)    # logit(0.5)
    # dy/dx at s = 1/2 is (1 - 2 lam) / (1/4) per pixel
    np.testing.assert_allclose(log_det, 4 * np.log(4 * (1 - 2 * lam)))
    assert isinstance(y, np.ndarray)                  # NumPy in, NumPy out


def test_bits_per_dim_closed_form_uniform_pixels():
    """With lam = 0 and y ~ Logistic(0, 1), sigmoid(y) = x01 is uniform on [0, 1]^D, so
    the pixel density on [0, 256)^D is 256^-D: exactly 8 bits/dim."""
    y = jnp.asarray(np.random.default_rng(1).logistic(size=(5, 10)))
    log_prob_y = jnp.sum(-y - 2 * jax.nn.softplus(-y), axis=-1)   # logistic log density
    x01 = images.inverse_logit_transform(y, 0.0)
    _, log_det = images.logit_transform(x01, 0.0)
    np.testing.assert_allclose(
        images.logit_nats_to_bits_per_dim(log_prob_y, log_det, 10), 8.0, rtol=1e-4)


def test_dequantize_range_and_jit():
    k = jnp.array([[0, 255], [17, 128]], jnp.uint8)
    x = jax.jit(images.dequantize)(jax.random.key(0), k)
    assert x.dtype == jnp.float32
    assert np.all(x >= k / 256.0) and np.all(x < (k.astype(np.float32) + 1) / 256.0)


# --------------------------------------------------------------------------------------
# File formats.
# --------------------------------------------------------------------------------------


def _idx_bytes(array: np.ndarray) -> bytes:
    header = bytes([0, 0, 0x08, array.ndim]) + struct.pack(f">{array.ndim}i", *array.shape)
    return header + array.astype(np.uint8).tobytes()


def _write_mnist(folder: Path, n_train=30, n_test=7, seed=0):
    rng = np.random.default_rng(seed)
    arrays = {
        "train-images-idx3-ubyte.gz": rng.integers(0, 256, (n_train, 28, 28)),
        "train-labels-idx1-ubyte.gz": rng.integers(0, 10, n_train),
        "t10k-images-idx3-ubyte.gz": rng.integers(0, 256, (n_test, 28, 28)),
        "t10k-labels-idx1-ubyte.gz": rng.integers(0, 10, n_test),
    }
    folder.mkdir(parents=True, exist_ok=True)
    for name, a in arrays.items():
        (folder / name).write_bytes(gzip.compress(_idx_bytes(a)))
    return arrays


def test_read_idx_roundtrip_and_truncation(tmp_path):
    a = np.arange(2 * 3 * 4).reshape(2, 3, 4).astype(np.uint8)
    (tmp_path / "a.idx").write_bytes(_idx_bytes(a))
    np.testing.assert_array_equal(images.read_idx(tmp_path / "a.idx"), a)
    (tmp_path / "b.idx").write_bytes(_idx_bytes(a)[:-1])
    with pytest.raises(CorruptDataError, match="23 data bytes"):
        images.read_idx(tmp_path / "b.idx")
    (tmp_path / "c.idx.gz").write_bytes(gzip.compress(_idx_bytes(a))[:-8])
    with pytest.raises(CorruptDataError, match="c.idx.gz could not be read"):
        images.read_idx(tmp_path / "c.idx.gz")


def test_mnist_from_idx_folder(tmp_path, monkeypatch):
    arrays = _write_mnist(tmp_path / "m")
    # The hashes are those of the official files; these test files are not official.
    with pytest.raises(CorruptDataError, match="expected SHA-256"):
        images.mnist(path=tmp_path / "m")
    monkeypatch.setattr(images, "MNIST_FILES", {
        k: images.RemoteFile(v.relpath, v.urls, None, v.description)
        for k, v in images.MNIST_FILES.items()})
    ds = images.mnist(path=tmp_path / "m", validation_size=10)
    assert ds.train["x"].shape == (20, 28, 28, 1) and ds.train["x"].dtype == np.uint8
    np.testing.assert_array_equal(ds.validation["x"][..., 0],
                                  arrays["train-images-idx3-ubyte.gz"][20:])
    np.testing.assert_array_equal(ds.test["label"], arrays["t10k-labels-idx1-ubyte.gz"])
    assert ds.train["label"].dtype == np.int32


def test_mnist_missing_offline_names_every_url(tmp_path):
    with pytest.raises(MissingDataError) as err:
        images.mnist(tmp_path, download=False)
    assert "train-images-idx3-ubyte.gz" in str(err.value)
    assert str(tmp_path / "mnist" / "train-images-idx3-ubyte.gz") in str(err.value)


def test_mnist_logit_preprocessing(tmp_path, monkeypatch):
    _write_mnist(tmp_path / "m")
    monkeypatch.setattr(images, "MNIST_FILES", {
        k: images.RemoteFile(v.relpath, v.urls, None, v.description)
        for k, v in images.MNIST_FILES.items()})
    raw = images.mnist(path=tmp_path / "m", validation_size=10)
    ds = images.mnist(path=tmp_path / "m", validation_size=10, preprocessing="logit")
    assert ds.train["x"].shape == (20, 784) and ds.info["lambda"] == 1e-6
    x01 = images.inverse_logit_transform(ds.train["x"].astype(np.float64), 1e-6)
    k = raw.train["x"].reshape(20, -1).astype(np.int64)
    assert np.all(x01 * 256 >= k - 1e-3) and np.all(x01 * 256 < k + 1 + 1e-3)
    _, want = images.logit_transform(x01, 1e-6)
    np.testing.assert_allclose(ds.train["logdet"], want, rtol=1e-4)
    again = images.mnist(path=tmp_path / "m", validation_size=10, preprocessing="logit")
    np.testing.assert_array_equal(again.test["x"], ds.test["x"])   # fixed noise


def _cifar_batch(rng, n):
    return {b"batch_label": b"x", b"labels": rng.integers(0, 10, n).tolist(),
            b"data": rng.integers(0, 256, (n, 3072)).astype(np.uint8),
            b"filenames": [b"f"] * n}


def test_cifar10_tar_layout_and_hwc_order(tmp_path, monkeypatch):
    rng = np.random.default_rng(2)
    batches = {f"data_batch_{i}": _cifar_batch(rng, 8) for i in range(1, 6)}
    batches["test_batch"] = _cifar_batch(rng, 6)
    tar_path = tmp_path / "cifar-10-python.tar.gz"
    with tarfile.open(tar_path, "w:gz") as t:
        for name, batch in batches.items():
            blob = pickle.dumps(batch, protocol=2)
            info = tarfile.TarInfo(f"cifar-10-batches-py/{name}")
            info.size = len(blob)
            t.addfile(info, io.BytesIO(blob))
    monkeypatch.setattr(images, "CIFAR10_FILE", images.RemoteFile(
        images.CIFAR10_FILE.relpath, images.CIFAR10_FILE.urls, None, "cifar"))
    ds = images.cifar10(path=tar_path)
    assert ds.train["x"].shape == (36, 32, 32, 3) and ds.validation["x"].shape[0] == 4
    first = batches["data_batch_1"][b"data"][0]
    # pixel (row 2, col 5) of channel c is element c*1024 + 2*32 + 5 of the CHW row
    np.testing.assert_array_equal(ds.train["x"][0, 2, 5], first[[69, 1024 + 69, 2048 + 69]])
    np.testing.assert_array_equal(ds.test["label"], batches["test_batch"][b"labels"])
    flipped = images.cifar10(path=tar_path, flip=True)
    np.testing.assert_array_equal(flipped.train["x"][36], ds.train["x"][0][:, ::-1])


def test_cifar_unpickler_refuses_code():
    class Evil:
        def __reduce__(self):
            return (print, ("pwned",))

    blob = pickle.dumps({b"data": Evil(), b"labels": []})
    with pytest.raises(pickle.UnpicklingError, match="refusing"):
        images.read_cifar_batch(io.BytesIO(blob))


@pytest.mark.skipif(not (SHARED / "mnist" / "mnist.npz").exists(), reason="no local MNIST")
def test_mnist_local_npz():
    ds = images.mnist(path=SHARED / "mnist" / "mnist.npz")
    assert ds.train["x"].shape == (50_000, 28, 28, 1)
    assert len(ds.validation["x"]) == 10_000
    assert ds.train["x"].max() == 255 and set(np.unique(ds.test["label"])) == set(range(10))


@pytest.mark.skipif(not (SHARED / "cifar10" / "cifar10_jpeg_subset.npz").exists(),
                    reason="no local CIFAR-10 subset")
def test_cifar10_local_class_sorted_npz_gets_stratified_validation():
    ds = images.cifar10(path=SHARED / "cifar10" / "cifar10_jpeg_subset.npz")
    np.testing.assert_array_equal(np.bincount(ds.validation["label"]), [200] * 10)
    assert ds.train["x"].shape == (18_000, 32, 32, 3)
    assert "class-sorted" in ds.info["split"]


def test_npz_with_wrong_shape_is_rejected(tmp_path):
    np.savez(tmp_path / "bad.npz", x_train=np.zeros((4, 27, 28), np.uint8),
             y_train=np.zeros(4), x_test=np.zeros((2, 28, 28), np.uint8), y_test=np.zeros(2))
    with pytest.raises(CorruptDataError, match="expected uint8 images of"):
        images.mnist(path=tmp_path / "bad.npz")
