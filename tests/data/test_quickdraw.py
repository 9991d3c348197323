"""QuickDraw numpy bitmap files: per-class files, labels, caps, splits, local .npz."""

from __future__ import annotations

import io
from pathlib import Path

import numpy as np
import pytest

from jflows.data import quickdraw as qd
from jflows.data.cache import CorruptDataError, MissingDataError
from tests.shared_data import SHARED_DATA

SUBSET = SHARED_DATA / "quickdraw" / "quickdraw_bitmap_subset.npz"


def _write(folder: Path, names_counts, prefix="full_numpy_bitmap_"):
    folder.mkdir(parents=True, exist_ok=True)
    arrays = {}
    for i, (name, n) in enumerate(names_counts):
        a = np.full((n, 784), i, np.uint8)
        a[:, 0] = np.arange(n) % 256          # row id, to check the order kept
        np.save(folder / f"{prefix}{name}.npy", a)
        arrays[name] = a
    return arrays


def test_classes_labels_cap_and_split(tmp_path):
    _write(tmp_path, [("cat", 50), ("sea turtle", 30)])
    ds = qd.quickdraw_bitmaps(["sea turtle", "cat"], path=tmp_path, max_per_class=40)
    assert ds.info["class_names"] == ["sea turtle", "cat"]
    # sea turtle: 30 rows -> 3 test, 2 validation, 25 train; cat: first 40 -> 4, 3, 33
    assert np.bincount(ds.train["label"]).tolist() == [25, 33]
    assert np.bincount(ds.validation["label"]).tolist() == [2, 3]
    assert np.bincount(ds.test["label"]).tolist() == [3, 4]
    assert ds.train["x"].shape[1:] == (28, 28, 1) and ds.train["x"].dtype == np.uint8
    cat_test = ds.test["x"][ds.test["label"] == 1].reshape(-1, 784)
    assert cat_test[:, 0].tolist() == [36, 37, 38, 39]          # last rows of the first 40
    assert np.all(cat_test[:, 1] == 0)                          # the cat file's fill value


def test_plain_class_file_names_and_missing_class(tmp_path):
    _write(tmp_path, [("apple", 10)], prefix="")
    assert len(qd.quickdraw_bitmaps("apple", path=tmp_path).train["x"]) == 9
    with pytest.raises(MissingDataError, match="full_numpy_bitmap_pear.npy"):
        qd.quickdraw_bitmaps(["pear"], path=tmp_path)


def test_truncated_and_wrong_files_are_reported(tmp_path):
    buf = io.BytesIO()
    np.save(buf, np.zeros((100, 784), np.uint8))
    (tmp_path / "full_numpy_bitmap_cut.npy").write_bytes(buf.getvalue()[:5000])
    with pytest.raises(CorruptDataError, match="cut.npy could not be read"):
        qd.quickdraw_bitmaps(["cut"], path=tmp_path)
    np.save(tmp_path / "full_numpy_bitmap_wide.npy", np.zeros((5, 785), np.uint8))
    with pytest.raises(CorruptDataError, match=r"expected \(N, 784\) uint8"):
        qd.quickdraw_bitmaps(["wide"], path=tmp_path)


def test_download_url_quotes_class_names():
    remote = qd.remote_file("The Eiffel Tower")
    assert remote.urls == ("https://storage.googleapis.com/quickdraw_dataset/full/"
                           "numpy_bitmap/The%20Eiffel%20Tower.npy",)
    assert remote.relpath == "quickdraw/full_numpy_bitmap_The Eiffel Tower.npy"
    assert len(qd.SEED_CLASSES) == 20


def test_download_from_local_server(tmp_path, http_server, monkeypatch):
    buf = io.BytesIO()
    np.save(buf, np.full((20, 784), 255, np.uint8))
    http_server.routes["/sun.npy"] = (200, buf.getvalue(), None)
    monkeypatch.setattr(qd, "URL", http_server.url("/{}.npy"))
    ds = qd.quickdraw_bitmaps(["sun"], tmp_path)
    assert len(ds.train["x"]) == 17  # 20 rows: 2 test, int(1.8) = 1 validation
    assert (tmp_path / "quickdraw" / "full_numpy_bitmap_sun.npy").exists()


def test_bad_arguments(tmp_path):
    with pytest.raises(ValueError, match="distinct"):
        qd.quickdraw_bitmaps(["a", "a"], path=tmp_path)
    with pytest.raises(ValueError, match="max_per_class"):
        qd.quickdraw_bitmaps(["a"], path=tmp_path, max_per_class=0)


@pytest.mark.skipif(not SUBSET.exists(), reason="no local QuickDraw subset")
def test_local_subset_npz():
    ds = qd.quickdraw_bitmaps(path=SUBSET, max_per_class=100)
    assert ds.info["class_names"] == ["bicycle", "apple", "cat", "fish", "diamond", "eye"]
    assert len(ds.train["x"]) == 6 * 81
    with pytest.raises(KeyError, match="'bee' is not in"):
        qd.quickdraw_bitmaps(["bee"], path=SUBSET)
