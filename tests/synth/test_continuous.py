"""Synthetic continuous records: miniSEED day files readable by ObsPy, events where the catalog says."""

from __future__ import annotations

import csv

import numpy as np
import pytest
from obspy import UTCDateTime, read
from obspy.signal.trigger import recursive_sta_lta

from spacessl.errors import SpacesslError
from spacessl.synth.continuous import CATALOG_COLUMNS, write_continuous

FS = 50.0


@pytest.fixture(scope="module")
def records(tmp_path_factory):
    out = tmp_path_factory.mktemp("continuous")
    res = write_continuous(out, stations=2, days=2, seed=3, sampling_rate_hz=FS, events_per_hour=8, progress=False)
    with open(res["catalog"]) as f:
        rows = list(csv.DictReader(f))
    return out, res, rows


def test_day_files_are_readable(records):
    out, res, _ = records
    names = sorted(p.split("/")[-1] for p in res["files"])
    assert names == ["AW.VNA1..2019.001.mseed", "AW.VNA1..2019.002.mseed", "AW.VNA2..2019.001.mseed",
                     "AW.VNA2..2019.002.mseed"]
    st = read(str(out / "AW.VNA2..2019.002.mseed"))
    assert [tr.stats.channel for tr in st] == ["HHZ", "HHN", "HHE"]
    for tr in st:
        assert tr.stats.starttime == UTCDateTime(2019, 1, 2) and tr.stats.npts == int(86400 * FS)
        assert tr.stats.sampling_rate == FS and tr.data.dtype == np.int32


def test_catalog(records):
    _, res, rows = records
    assert rows and list(rows[0]) == list(CATALOG_COLUMNS)
    assert {r["label"] for r in rows} == {"icequake", "earthquake", "spike", "noise"}
    assert res["n_events"] == len({r["event_id"] for r in rows})
    times = [int(r["time_ns"]) for r in rows]
    assert times == sorted(times)
    # icequakes and earthquakes are seen on every station, with move-out; spikes and bursts on one
    by_event: dict[str, list[dict]] = {}
    for r in rows:
        by_event.setdefault(r["event_id"], []).append(r)
    quakes = [v for v in by_event.values() if v[0]["label"] in ("icequake", "earthquake")]
    assert quakes and all(len(v) == 2 and v[0]["time_ns"] != v[1]["time_ns"] for v in quakes)
    assert all(len(v) == 1 for v in by_event.values() if v[0]["label"] in ("spike", "noise"))
    ice = [float(r["s_minus_p_s"]) for r in rows if r["label"] == "icequake"]
    assert max(ice) < 1.0
    snr = np.array([float(r["snr"]) for r in rows])
    assert snr.min() < 3 and snr.max() > 20  # a range of SNRs


def test_events_are_at_the_catalog_times(records):
    """A 0.5 s / 10 s recursive STA/LTA (ObsPy) rises above 3.5 at ≥ 95 % of the catalog picks with SNR ≥ 5."""
    out, _, rows = records
    hits = []
    for path in sorted(out.glob("*.mseed")):
        st = read(str(path))
        t0 = st[0].stats.starttime
        sta = ".".join([st[0].stats.network, st[0].stats.station, st[0].stats.location])
        cf = np.max([recursive_sta_lta(tr.data - tr.data.mean(), int(0.5 * FS), int(10 * FS)) for tr in st], axis=0)
        for r in rows:
            t = UTCDateTime(int(r["time_ns"]) / 1e9) - t0
            if r["station"] != sta or not 0 <= t < 86400 or float(r["snr"]) < 5:
                continue
            sp = float(r["s_minus_p_s"] or 0)
            hits.append(cf[int((t - 1) * FS):int((t + sp + 2) * FS)].max() > 3.5)
    assert len(hits) > 30 and np.mean(hits) >= 0.95


def test_noise_is_seamless_across_midnight(records):
    out, _, _ = records
    a = read(str(out / "AW.VNA1..2019.001.mseed")).select(channel="HHZ")[0].data.astype(float)
    b = read(str(out / "AW.VNA1..2019.002.mseed")).select(channel="HHZ")[0].data.astype(float)
    step = abs(b[0] - a[-1])
    typical = np.percentile(np.abs(np.diff(a[-5000:])), 99)
    assert step <= typical


def test_deterministic_and_guarded(tmp_path, records):
    _, _, rows = records
    res = write_continuous(tmp_path / "again", stations=2, days=1, seed=3, sampling_rate_hz=FS, events_per_hour=8,
                           progress=False)
    with open(res["catalog"]) as f:
        again = list(csv.DictReader(f))
    first_day = [r for r in rows if int(r["time_ns"]) < 1546387200_000_000_000]
    assert again == first_day
    with pytest.raises(SpacesslError, match="overwrite"):
        write_continuous(tmp_path / "again", stations=2, days=1, seed=3, sampling_rate_hz=FS, progress=False)
    with pytest.raises(SpacesslError, match="stations"):
        write_continuous(tmp_path / "x", stations=0)
