"""SeisBench-format datasets (metadata.csv + waveforms.hdf5, plain and bucketed/chunked) -> waveform archive."""

from __future__ import annotations

from pathlib import Path

import h5py
import numpy as np
import pandas as pd
import pytest

import spacessl.ingest.seisbench as sb
from spacessl.archive import open_archive
from spacessl.errors import SpacesslError
from spacessl.ingest.seisbench import ingest_seisbench, parse_location

CATS = ["earthquake_local", "noise"]


def _rows(n: int, seed: int) -> tuple[pd.DataFrame, np.ndarray]:
    rng = np.random.default_rng(seed)
    data = rng.normal(0, 100, (n, 3, 600)).astype(np.float32)
    meta = pd.DataFrame({
        "trace_category": [CATS[i % 2] for i in range(n)],
        "station_network_code": ["XX"] * n,
        "station_code": [f"S{i % 3}" for i in range(n)],
        "station_location_code": ["00"] * n,
        "trace_start_time": [f"2020-01-01T00:{i:02d}:00.000000Z" for i in range(n)],
        "trace_sampling_rate_hz": [100.0] * n,
    })
    return meta, data


def _data_format(h5: h5py.File, **fields) -> None:
    g = h5.create_group("data_format")
    for k, v in fields.items():
        g.create_dataset(k, data=v)


def write_plain(root: Path, n: int = 10) -> tuple[Path, pd.DataFrame, np.ndarray]:
    """One metadata.csv + waveforms.hdf5, one dataset per trace, CW, component order ZNE."""
    root.mkdir(parents=True, exist_ok=True)
    meta, data = _rows(n, 0)
    meta.insert(0, "trace_name", [f"tr{i:03d}" for i in range(n)])
    with h5py.File(root / "waveforms.hdf5", "w") as h5:
        _data_format(h5, dimension_order="CW", component_order="ZNE", sampling_rate=100.0)
        for i, name in enumerate(meta["trace_name"]):
            h5.create_dataset(f"data/{name}", data=data[i])
    meta.to_csv(root / "metadata.csv", index=False)
    return root, meta, data


def write_buckets(root: Path, n: int = 12) -> tuple[Path, pd.DataFrame, np.ndarray]:
    """Two chunks, traces in buckets ``bucketB$i,:3,:600``, time-major (WC), component order ENZ."""
    root.mkdir(parents=True, exist_ok=True)
    meta, data = _rows(n, 1)
    names = []
    for chunk, rows in (("_c1", range(0, n // 2)), ("_c2", range(n // 2, n))):
        rows = list(rows)
        with h5py.File(root / f"waveforms{chunk}.hdf5", "w") as h5:
            _data_format(h5, dimension_order="WC", component_order="ENZ", sampling_rate=100.0)
            for b in range(2):
                sel = rows[b::2]
                # stored E, N, Z and time-major, with 10 extra samples the locator cuts off
                block = np.zeros((len(sel), 610, 3), np.float32)
                block[:, :600, :] = data[sel][:, ::-1, :].transpose(0, 2, 1)
                h5.create_dataset(f"data/bucket{b}", data=block)
                for k, i in enumerate(sel):
                    names.append((i, f"bucket{b}$" + f"{k},:600,:3"))
        part = meta.iloc[rows].copy()
        part.insert(0, "trace_name", [dict(names)[i] for i in rows])
        part.to_csv(root / f"metadata{chunk}.csv", index=False)
    (root / "chunks").write_text("_c1\n_c2\n")
    return root, meta, data


def test_parse_location():
    assert parse_location("12,:3,:6000") == (12, slice(None, 3), slice(None, 6000))
    assert parse_location("1:5:2") == (slice(1, 5, 2),)


def test_plain_dataset(tmp_path):
    root, meta, data = write_plain(tmp_path / "ds")
    out = tmp_path / "sb.zarr"
    s = ingest_seisbench(str(root), str(out), label_column="trace_category", block_rows=4, chunk_size=4,
                         progress=False)
    assert s.windows == 10 and s.rejects == 0
    a = open_archive(str(out))
    assert a.label_names == CATS and a.channels == ["Z", "N", "E"] and a.sample_shape == (3, 600)
    assert a.attrs["sampling_rate_hz"] == 100.0 and a.attrs["window_s"] == 6.0
    b = a.read(0, a.n)
    np.testing.assert_array_equal(b.samples, data)
    assert list(b.meta["label"]) == [i % 2 for i in range(10)]
    assert list(b.meta["source"]) == [f"XX.S{i % 3}.00" for i in range(10)]
    assert list(b.meta["trace_name"]) == list(meta["trace_name"])
    assert b.meta["time_ns"][1] - b.meta["time_ns"][0] == 60 * 10**9
    assert b.meta["origin"][0].endswith("waveforms.hdf5")


def test_bucketed_chunked_dataset_reorders_components(tmp_path):
    root, meta, data = write_buckets(tmp_path / "ds")
    out = tmp_path / "sb.zarr"
    s = ingest_seisbench(str(root), str(out), label_column="station_code", components="ZNE", block_rows=5,
                         progress=False)
    a = open_archive(str(out))
    assert s.windows == 12 and a.label_names == ["S0", "S1", "S2"]
    b = a.read(0, a.n)
    order = np.argsort(b.meta["time_ns"])
    np.testing.assert_array_equal(b.samples[order], data)


def test_bad_traces_are_listed_and_good_ones_kept(tmp_path):
    root, meta, data = write_plain(tmp_path / "ds", n=6)
    with h5py.File(root / "waveforms.hdf5", "r+") as h5:
        del h5["data/tr002"]
        h5.create_dataset("data/tr002", data=data[2][:, :300])  # too short
        d = h5["data/tr004"][()]
        d[1, 10] = np.nan
        del h5["data/tr004"]
        h5.create_dataset("data/tr004", data=d)
    meta.loc[len(meta)] = {**meta.iloc[0].to_dict(), "trace_name": "missing"}
    meta.to_csv(root / "metadata.csv", index=False)
    out = tmp_path / "sb.zarr"
    s = ingest_seisbench(str(root), str(out), progress=False, block_rows=3)
    assert s.windows == 4 and s.rejects == 3
    rej = (tmp_path / "sb.rejects.csv").read_text()
    assert "short trace" in rej and "non-finite" in rej and "unreadable" in rej
    b = open_archive(str(out)).read(0, 4)
    assert list(b.meta["trace_name"]) == ["tr000", "tr001", "tr003", "tr005"]


def test_interrupted_ingest_resumes_to_the_same_archive(tmp_path, monkeypatch):
    root, _, _ = write_plain(tmp_path / "ds", n=20)
    ref = tmp_path / "ref.zarr"
    ingest_seisbench(str(root), str(ref), block_rows=3, chunk_size=2, progress=False)
    real = sb._ingest_block
    calls = {"n": 0}

    def dying(w, i, *args, **kw):
        calls["n"] += 1
        if calls["n"] == 4:
            raise KeyboardInterrupt
        return real(w, i, *args, **kw)

    out = tmp_path / "out.zarr"
    monkeypatch.setattr(sb, "_ingest_block", dying)
    with pytest.raises(KeyboardInterrupt):
        ingest_seisbench(str(root), str(out), block_rows=3, chunk_size=2, progress=False)
    monkeypatch.setattr(sb, "_ingest_block", real)
    ingest_seisbench(str(root), str(out), block_rows=3, chunk_size=2, progress=False)
    x, y = open_archive(str(ref)), open_archive(str(out))
    bx, by = x.read(0, x.n), y.read(0, y.n)
    np.testing.assert_array_equal(bx.samples, by.samples)
    for k in bx.meta:
        np.testing.assert_array_equal(bx.meta[k], by.meta[k])


def test_errors_name_the_problem(tmp_path):
    with pytest.raises(SpacesslError, match="holds no SeisBench dataset"):
        (tmp_path / "empty").mkdir()
        ingest_seisbench(str(tmp_path / "empty"), str(tmp_path / "x.zarr"))
    root, _, _ = write_plain(tmp_path / "ds")
    with pytest.raises(SpacesslError, match="label column 'source_type' is not in"):
        ingest_seisbench(str(root), str(tmp_path / "x.zarr"), label_column="source_type")


def test_cli_ingest_seisbench(tmp_path, capsys):
    from spacessl.cli import main

    root, _, _ = write_plain(tmp_path / "ds", n=5)
    assert main(["ingest", "seisbench", str(root), str(tmp_path / "cli.zarr"), "--label-column",
                 "trace_category", "--samples", "500", "--quiet"]) == 0
    assert "5 of 5 traces written" in capsys.readouterr().out
    assert open_archive(str(tmp_path / "cli.zarr")).sample_shape == (3, 500)
