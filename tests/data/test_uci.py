"""MAF benchmark loaders on small files written in the official formats, the published
row counts from the split arithmetic, and the real MINIBOONE sample."""

from __future__ import annotations

import gzip
import io
import os
import sys
import tarfile
import zipfile
from pathlib import Path

import numpy as np
import pytest

from jflows.data import uci
from jflows.data.cache import CorruptDataError, MissingDataError, RemoteFile
from jflows.data.dataset import maf_split_sizes, tail_split
from tests.shared_data import SHARED_DATA

MINIBOONE_SAMPLE = Path(os.environ.get(
    "JFLOWS_MINIBOONE_SAMPLE",
    str(SHARED_DATA / "miniboone_partial" / "miniboone_maf_rows0-1218.npz")))


# --------------------------------------------------------------------------------------
# Published sizes.
# --------------------------------------------------------------------------------------


@pytest.mark.parametrize("name,total", [
    ("power", 2_049_280),      # 2,075,259 rows of the UCI file less 25,979 with '?'
    ("gas", 1_052_065),        # round(0.25 * 4,208,261): the pickle's 25 % subsample
    ("miniboone", 36_488),     # rows of the archive's data.npy
])
def test_maf_split_arithmetic_gives_published_sizes(name, total):
    assert maf_split_sizes(total) == uci.PUBLISHED_SIZES[name][:3]


def test_hepmass_split_arithmetic_gives_published_sizes():
    train_signal_rows, test_signal_rows = 350_136, 174_987
    head, tail = tail_split(train_signal_rows, 0.1)
    assert (len(head), len(tail), test_signal_rows) == uci.PUBLISHED_SIZES["hepmass"][:3]


def test_gas_subsample_size():
    assert int(round(0.25 * 4_208_261)) == 1_052_065


@pytest.mark.parametrize(("name", "shape", "draw"), [
    ("miniboone", (36_488, 43), "standard_normal"),
    pytest.param("power", (2_049_280, 8), "random", marks=pytest.mark.slow),
])
def test_full_size_file_gives_published_rows(tmp_path, name, shape, draw):
    rng = np.random.default_rng(0)
    (tmp_path / name).mkdir()
    np.save(tmp_path / name / "data.npy", getattr(rng, draw)(shape))
    ds = getattr(uci, name)(path=tmp_path)
    got = tuple(len(s["x"]) for s in (ds.train, ds.validation, ds.test)) + (ds.train["x"].shape[1],)
    assert got == uci.PUBLISHED_SIZES[name]


@pytest.mark.slow
@pytest.mark.skipif("JFLOWS_TEST_MAF_DIR" not in os.environ,
                    reason="set JFLOWS_TEST_MAF_DIR to an extracted MAF data/ folder")
@pytest.mark.parametrize("name", ["power", "gas", "hepmass", "miniboone", "bsds300"])
def test_real_maf_archive_gives_published_sizes(name):
    ds = getattr(uci, name)(path=os.environ["JFLOWS_TEST_MAF_DIR"], download=False)
    got = tuple(len(s["x"]) for s in (ds.train, ds.validation, ds.test)) + (ds.train["x"].shape[1],)
    assert got == uci.PUBLISHED_SIZES[name]


# --------------------------------------------------------------------------------------
# The preprocessing steps.
# --------------------------------------------------------------------------------------


def test_drop_correlated_columns_hand_case():
    rng = np.random.default_rng(1)
    a, c = rng.standard_normal((2, 500))
    b = a + 0.01 * rng.standard_normal(500)        # corr(a, b) ~ 0.9999
    d = 2 * c                                      # corr(c, d) = 1
    e = rng.standard_normal(500)
    data = np.stack([a, b, c, d, e], 1)
    # First pass drops a (first column with a partner), second drops c.
    np.testing.assert_array_equal(uci.drop_correlated_columns(data), [1, 3, 4])


def test_repeated_minimum_columns_counts_the_minimum_only():
    col_min6 = np.r_[np.zeros(6), np.arange(1, 11)]            # minimum 0 six times
    col_min5 = np.r_[np.zeros(5), np.arange(1, 12)]            # minimum five times: kept
    col_max10 = np.r_[np.arange(6) - 10.0, np.full(10, 7.0)]   # repeats, but not its min
    data = np.stack([col_min6, col_min5, col_max10], 1)
    np.testing.assert_array_equal(uci.repeated_minimum_columns(data), [0])


def _power_reference(data):
    """The MAF code's POWER steps, transcribed literally (datasets/power.py)."""
    rng = np.random.RandomState(42)
    data = data.copy()
    rng.shuffle(data)
    n = data.shape[0]
    data = np.delete(data, 3, axis=1)
    data = np.delete(data, 1, axis=1)
    voltage_noise = 0.01 * rng.rand(n, 1)
    gap_noise = 0.001 * rng.rand(n, 1)
    sm_noise = rng.rand(n, 3)
    data = data + np.hstack((gap_noise, voltage_noise, sm_noise, np.zeros((n, 1))))
    n_test = int(0.1 * data.shape[0])
    test, data = data[-n_test:], data[:-n_test]
    n_val = int(0.1 * data.shape[0])
    val, train = data[-n_val:], data[:-n_val]
    both = np.vstack((train, val))
    mu, s = both.mean(0), both.std(0)
    return (train - mu) / s, (val - mu) / s, (test - mu) / s


def test_power_matches_reference_steps(tmp_path):
    data = np.random.default_rng(2).random((237, 8)) * 10
    (tmp_path / "power").mkdir()
    np.save(tmp_path / "power" / "data.npy", data)
    ds = uci.power(path=tmp_path)
    for got, want in zip((ds.train, ds.validation, ds.test), _power_reference(data),
                         strict=True):
        np.testing.assert_allclose(got["x"], want, rtol=1e-5, atol=1e-5)
    assert ds.train["x"].dtype == np.float32 and ds.info["event_shape"] == (6,)


def test_power_raw_uci_text(tmp_path):
    rng = np.random.default_rng(3)
    lines = ["Date;Time;Global_active_power;Global_reactive_power;Voltage;"
             "Global_intensity;Sub_metering_1;Sub_metering_2;Sub_metering_3"]
    for i in range(60):
        h, m = divmod(i * 7, 60)
        v = rng.random(7) * 100
        lines.append(f"16/12/2006;{h:02d}:{m:02d}:00;" + ";".join(f"{x:.3f}" for x in v))
    lines.insert(5, "21/12/2006;11:23:00;?;?;?;?;?;?;")
    text = "\n".join(lines) + "\n"
    txt = tmp_path / "household_power_consumption.txt"
    txt.write_text(text)
    table = uci.read_power_txt(txt)
    assert table.shape == (60, 8)
    assert table[1, 7] == 7.0 and table[10, 7] == 70.0  # minutes since midnight
    with zipfile.ZipFile(tmp_path / "power.zip", "w") as z:
        z.writestr("household_power_consumption.txt", text)
    np.testing.assert_array_equal(uci.read_power_txt(tmp_path / "power.zip"), table)
    ds = uci.power(source="uci", path=tmp_path / "power.zip")
    assert [len(s["x"]) for s in ds.splits.values()] == list(maf_split_sizes(60))


# --------------------------------------------------------------------------------------
# GAS
# --------------------------------------------------------------------------------------


def _gas_table(n, rng):
    """19 columns like ethylene_CO.txt; sensor 3 is a near-copy of sensor 2."""
    sensors = rng.standard_normal((n, 16)) * 100 + 1000
    sensors[:, 3] = sensors[:, 2] * 1.01 + rng.standard_normal(n) * 0.1
    meta = np.stack([np.arange(n) * 0.01, rng.random(n) * 500, rng.random(n) * 20], 1)
    return np.hstack([meta, sensors])


def _write_gas_txt(path, table):
    header = "Time (seconds), CO conc (ppm), Ethylene conc (ppm), Sensor readings (16 channels)"
    body = "\n".join(" ".join(f"{v:.2f}" for v in row) for row in table)
    path.write_text(header + "\n" + body + "\n")


def test_gas_raw_maf_variant(tmp_path):
    table = _gas_table(400, np.random.default_rng(4))
    _write_gas_txt(tmp_path / "ethylene_CO.txt", table)
    ds = uci.gas(source="uci", path=tmp_path / "ethylene_CO.txt", seed=0)
    assert [len(s["x"]) for s in ds.splits.values()] == list(maf_split_sizes(100))
    assert ds.info["sensor_columns"] == [c for c in range(16) if c != 2]
    everything = np.vstack([s["x"] for s in ds.splits.values()]).astype(np.float64)
    np.testing.assert_allclose(everything.mean(0), 0, atol=1e-5)   # z-scored over all rows
    np.testing.assert_allclose(everything.std(0, ddof=1), 1, atol=1e-5)


def test_gas_seed_blog_variant_from_zip(tmp_path):
    table = _gas_table(301, np.random.default_rng(5))
    _write_gas_txt(tmp_path / "ethylene_CO.txt", table)
    with zipfile.ZipFile(tmp_path / "data.zip", "w") as z:
        z.write(tmp_path / "ethylene_CO.txt", "ethylene_CO.txt")
    ds = uci.gas(source="uci", variant="seed_blog", path=tmp_path / "data.zip", seed=1)
    assert ds.validation is None
    assert (len(ds.train["x"]), len(ds.test["x"])) == (150, 151)
    assert ds.info["sensor_columns"] == list(uci.SEED_BLOG_GAS_SENSORS)
    sensors = table[:, 3:][:, list(uci.SEED_BLOG_GAS_SENSORS)]
    z = (sensors - sensors.mean(0)) / sensors.std(0, ddof=1)
    got = np.sort(np.vstack([ds.train["x"], ds.test["x"]]), axis=0)
    np.testing.assert_allclose(got, np.sort(z, axis=0), atol=1e-4)


def test_gas_pickle_without_pandas_names_the_fix(tmp_path, monkeypatch):
    (tmp_path / "gas").mkdir()
    (tmp_path / "gas" / "ethylene_CO.pickle").write_bytes(b"unused")
    monkeypatch.setitem(sys.modules, "pandas", None)
    with pytest.raises(ImportError, match="pip install pandas"):
        uci.gas(path=tmp_path)


def test_gas_pickle_with_pandas(tmp_path):
    pd = pytest.importorskip("pandas")
    table = _gas_table(200, np.random.default_rng(6))
    columns = ["Time", "Meth", "Eth"] + [f"TGS{i}" for i in range(16)]
    (tmp_path / "gas").mkdir()
    pd.DataFrame(table, columns=columns).to_pickle(tmp_path / "gas" / "ethylene_CO.pickle")
    ds = uci.gas(path=tmp_path)
    assert [len(s["x"]) for s in ds.splits.values()] == list(maf_split_sizes(200))
    assert ds.train["x"].shape[1] == 15


def test_gas_rejects_bad_options(tmp_path):
    with pytest.raises(ValueError, match="source='uci'"):
        uci.gas(path=tmp_path, variant="seed_blog")
    with pytest.raises(ValueError, match="source must be"):
        uci.gas(path=tmp_path, source="kaggle")


# --------------------------------------------------------------------------------------
# HEPMASS
# --------------------------------------------------------------------------------------


def _hepmass_tables(rng, n_train=300, n_test=120):
    def table(n, extra_mass):
        label = (rng.random(n) < 0.5).astype(float)
        label[:8] = 1.0
        feats = rng.standard_normal((n, 27))
        feats[:8, 5] = -9.0           # feature 5: its minimum repeats 8 times -> dropped
        cols = [label[:, None], feats] + ([np.full((n, 1), 1000.0)] if extra_mass else [])
        return np.hstack(cols)
    return table(n_train, False), table(n_test, True)


def _write_csv(path, table, mass):
    names = ["# label"] + [f"f{i}" for i in range(27)] + (["mass"] if mass else [])
    text = ",".join(names) + "\n" + "\n".join(",".join(repr(float(v)) for v in r) for r in table)
    if str(path).endswith(".gz"):
        with gzip.open(path, "wt") as f:
            f.write(text + "\n")
    else:
        path.write_text(text + "\n")


def test_hepmass_pipeline(tmp_path):
    train_t, test_t = _hepmass_tables(np.random.default_rng(7))
    (tmp_path / "hepmass").mkdir()
    _write_csv(tmp_path / "hepmass" / "1000_train.csv", train_t, mass=False)
    _write_csv(tmp_path / "hepmass" / "1000_test.csv", test_t, mass=True)
    ds = uci.hepmass(path=tmp_path)
    sig_train = train_t[train_t[:, 0] == 1][:, 1:]
    sig_test = test_t[test_t[:, 0] == 1][:, 1:-1]
    keep = [c for c in range(27) if c != 5]
    assert ds.info["feature_columns"] == keep
    mu, s = sig_train.mean(0), sig_train.std(0, ddof=1)
    want_train = ((sig_train - mu) / s)[:, keep]
    n_val = int(0.1 * len(sig_train))
    np.testing.assert_allclose(ds.train["x"], want_train[:-n_val], atol=1e-5)
    np.testing.assert_allclose(ds.validation["x"], want_train[-n_val:], atol=1e-5)
    np.testing.assert_allclose(ds.test["x"], ((sig_test - mu) / s)[:, keep], atol=1e-5)


def test_hepmass_raw_gz_and_column_mismatch(tmp_path):
    train_t, test_t = _hepmass_tables(np.random.default_rng(8))
    _write_csv(tmp_path / "1000_train.csv.gz", train_t, mass=False)
    _write_csv(tmp_path / "1000_test.csv.gz", test_t, mass=True)
    ds = uci.hepmass(source="uci", path=tmp_path)
    assert ds.train["x"].shape[1] == 26
    _write_csv(tmp_path / "1000_test.csv.gz", test_t[:, :-1], mass=False)
    with pytest.raises(CorruptDataError, match="train has 27 columns and test 26"):
        uci.hepmass(source="uci", path=tmp_path)


# --------------------------------------------------------------------------------------
# MINIBOONE (real sample) and the archive / cache / download routes.
# --------------------------------------------------------------------------------------


@pytest.fixture
def miniboone_rows():
    if not MINIBOONE_SAMPLE.exists():
        pytest.skip(f"real MINIBOONE sample not at {MINIBOONE_SAMPLE}")
    with np.load(MINIBOONE_SAMPLE) as z:
        return z["x"]


def test_miniboone_real_sample(tmp_path, miniboone_rows):
    raw = miniboone_rows
    assert raw.shape == (1219, 43)
    (tmp_path / "miniboone").mkdir()
    np.save(tmp_path / "miniboone" / "data.npy", raw)
    ds = uci.miniboone(path=tmp_path)
    assert [len(s["x"]) for s in ds.splits.values()] == [989, 109, 121]
    fit = raw[:-121]
    mu, s = fit.mean(0), fit.std(0)
    np.testing.assert_allclose(ds.test["x"], (raw[-121:] - mu) / s, rtol=1e-5, atol=1e-5)
    np.testing.assert_allclose(ds.validation["x"], (raw[989:1098] - mu) / s, atol=1e-5)
    both = np.vstack([ds.train["x"], ds.validation["x"]]).astype(np.float64)
    np.testing.assert_allclose(both.mean(0), 0, atol=1e-5)
    np.testing.assert_allclose(both.std(0), 1, atol=1e-5)


def _maf_archive(tmp_path, member, array):
    buf = io.BytesIO()
    np.save(buf, array)
    archive = tmp_path / "data.tar.gz"
    with tarfile.open(archive, "w:gz") as t:
        info = tarfile.TarInfo(f"data/{member}")
        info.size = buf.getbuffer().nbytes
        buf.seek(0)
        t.addfile(info, buf)
    return archive


def test_maf_archive_downloaded_and_extracted(tmp_path, http_server, monkeypatch):
    raw = np.random.default_rng(9).standard_normal((50, 43))
    archive = _maf_archive(tmp_path, "miniboone/data.npy", raw)
    http_server.routes["/data.tar.gz"] = (200, archive.read_bytes(), None)
    monkeypatch.setattr(uci, "MAF_ARCHIVE", RemoteFile(
        "maf/data.tar.gz", (http_server.url("/data.tar.gz"),), None, "MAF archive"))
    cache = tmp_path / "cache"
    ds = uci.miniboone(cache)
    assert (cache / "maf" / "data.tar.gz").exists()
    np.testing.assert_array_equal(np.load(cache / "maf" / "miniboone" / "data.npy"), raw)
    assert len(ds.test["x"]) == 5
    http_server.routes.clear()  # later loads use the extracted file
    assert len(uci.miniboone(cache, download=False).test["x"]) == 5


def test_maf_missing_offline_names_url_and_paths(tmp_path):
    with pytest.raises(MissingDataError) as err:
        uci.miniboone(tmp_path, download=False)
    msg = str(err.value)
    assert "zenodo.org/records/1161203" in msg
    assert str(tmp_path / "maf" / "data.tar.gz") in msg
    assert str(tmp_path / "maf" / "miniboone" / "data.npy") in msg


def test_truncated_npy_is_reported(tmp_path):
    (tmp_path / "miniboone").mkdir()
    buf = io.BytesIO()
    np.save(buf, np.zeros((100, 43)))
    (tmp_path / "miniboone" / "data.npy").write_bytes(buf.getvalue()[:3000])
    with pytest.raises(CorruptDataError, match="data.npy could not be read"):
        uci.miniboone(path=tmp_path)


def test_miniboone_raw_uci_text(tmp_path):
    rng = np.random.default_rng(10)
    signal = rng.standard_normal((10, 50))
    signal[3, 0] = -999.0           # a placeholder row: dropped
    signal[:, 7] = 0.0              # a column whose minimum repeats: dropped
    background = rng.standard_normal((4, 50)) + 100  # must not be read
    rows = np.vstack([signal, background])
    text = "10 4\n" + "\n".join(" ".join(f"{v:.6E}" for v in r) for r in rows) + "\n"
    (tmp_path / "MiniBooNE_PID.txt").write_text(text)
    data = uci.read_miniboone_txt(tmp_path / "MiniBooNE_PID.txt")
    want = np.delete(np.delete(signal, 3, axis=0), 7, axis=1)
    np.testing.assert_allclose(data, want, rtol=1e-6)


def test_bsds300_without_h5py_names_the_fix(tmp_path, monkeypatch):
    (tmp_path / "BSDS300").mkdir()
    (tmp_path / "BSDS300" / "BSDS300.hdf5").write_bytes(b"unused")
    monkeypatch.setitem(sys.modules, "h5py", None)
    with pytest.raises(ImportError, match="pip install h5py"):
        uci.bsds300(path=tmp_path)


def test_bsds300_with_h5py(tmp_path):
    h5py = pytest.importorskip("h5py")
    (tmp_path / "BSDS300").mkdir()
    rng = np.random.default_rng(11)
    with h5py.File(tmp_path / "BSDS300" / "BSDS300.hdf5", "w") as f:
        for k, n in (("train", 20), ("validation", 5), ("test", 7)):
            f[k] = rng.standard_normal((n, 63)).astype(np.float32)
    ds = uci.bsds300(path=tmp_path)
    assert [len(s["x"]) for s in ds.splits.values()] == [20, 5, 7]
