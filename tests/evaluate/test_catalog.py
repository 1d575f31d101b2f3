import numpy as np
import pandas as pd
import pytest

from spacessl.evaluate.catalog import CatalogWriter, frame, iso_times, read_catalog
from spacessl.evaluate.quakeml import event_type, read_quakeml, write_quakeml

T0 = 1_230_000_000_123_456_789  # 2008-12-23T02:40:00.123456789Z


def _catalog(n=7):
    rng = np.random.default_rng(0)
    return frame(np.arange(n) * 3, T0 + np.arange(n) * 3_000_000_000, np.array(["gill", "fsmi", ""] * 3)[:n],
                 np.array([f"night/{i}.pgm" for i in range(n)]), label=np.array(["arc", "", "moon"] * 3)[:n],
                 cluster=rng.integers(0, 3, n).astype(np.int32), distance=rng.random(n).astype(np.float32),
                 rank=np.arange(n))


def test_catalog_csv_and_parquet_round_trip(tmp_path):
    df = _catalog()
    w = CatalogWriter(tmp_path / "catalog")
    w.append(df.iloc[:3])
    w.append(df.iloc[3:])
    csv, pq = w.close()
    assert csv.exists() and pq.exists() and not list(tmp_path.glob("*.tmp"))
    assert iso_times(np.array([T0]))[0] == "2008-12-23T02:40:00.123456789Z"
    assert open(csv).read().splitlines()[1].startswith("0,2008-12-23T02:40:00.123456789Z,gill,")
    for path in (csv, pq):
        back = read_catalog(path)
        assert list(back.columns) == list(df.columns)
        pd.testing.assert_series_equal(back["time"], df["time"].astype("datetime64[ns, UTC]"), check_names=False)
        for col in ("id", "source", "origin", "label", "cluster", "rank"):
            assert back[col].tolist() == df[col].tolist(), col
        np.testing.assert_allclose(back["distance"], df["distance"], rtol=1e-5)


def test_quakeml_round_trip(tmp_path):
    df = _catalog(4)[["id", "time", "source", "origin"]].copy()
    df["source"] = ["AW.VNA2", "AW.VNA3", "GE.SNAA", "AW.VNA2"]
    df["class"] = ["icequake", "earthquake", "spike", "icequake"]
    df["score"] = np.array([0.97, 0.91, 0.88, 0.85], dtype=np.float32)
    df["seed_id"] = [1, 2, 3, 1]
    path = write_quakeml(df, tmp_path / "candidates.xml", channel="HHZ", coords={"AW.VNA2": (-70.67, -8.27)})
    back = read_quakeml(path)
    assert back["id"].tolist() == df["id"].tolist()
    assert back["class"].tolist() == df["class"].tolist()
    assert back["event_type"].tolist() == ["ice quake", "earthquake", "other event", "ice quake"]
    assert back["source"].tolist() == df["source"].tolist() and back["seed_id"].tolist() == [1, 2, 3, 1]
    np.testing.assert_allclose(back["score"], df["score"], atol=1e-6)
    dt_us = (back["time"] - df["time"]).dt.total_seconds().abs().max()
    assert dt_us < 1e-6  # QuakeML keeps µs
    from obspy import read_events

    ev = read_events(str(path))[0]
    assert ev.origins[0].latitude == pytest.approx(-70.67)
    assert ev.picks[0].waveform_id.get_seed_string() == "AW.VNA2..HHZ"
    assert event_type("Icequake swarm") == "ice quake"
