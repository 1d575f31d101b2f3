"""Cutting one station-day: triggers, alignment, gaps, overlaps, mixed rates, missing components, corrupt files."""

from __future__ import annotations

import numpy as np
import pytest
from obspy import Stream

from spacessl.errors import SpacesslError
from spacessl.ingest.stationday import ScannedFile, ScanReject, expand_sources, plan_station_days, scan_files
from spacessl.ingest.windows import GAP, MISSING, NONFINITE, OVERLAP, UNREADABLE, CutParams, cut_station_day
from tests.ingest.seismic_files import DAY, T0, station_stream, write

SR = 100.0


def cut(paths, **kw):
    """Scan ``paths`` and cut every station-day: (results, scan rejects)."""
    params = CutParams(**kw)
    scanned = scan_files(expand_sources([str(p) for p in paths]))
    good = [f for f in scanned if isinstance(f, ScannedFile)]
    plan = plan_station_days(good, pad_before_ns=params.pad_before_ns, pad_after_ns=params.pad_after_ns)
    return [cut_station_day(sd, params) for sd in plan], [r for r in scanned if isinstance(r, ScanReject)]


def reasons(results):
    return [r[1] for res in results for r in res.rejects]


def test_triggers_find_events_and_windows_hold_the_raw_counts(tmp_path):
    events = (300.0, 700.5, 1200.25)
    st = station_stream(seconds=1800, events=events)
    write(st, tmp_path / "a.mseed")
    (res,), _ = cut([tmp_path])
    assert res.n == 3 and res.rejects == []
    assert res.samples.shape == (3, 3, 1000) and res.samples.dtype == np.float32
    onsets = (res.ref_ns - T0.ns) / 1e9
    np.testing.assert_allclose(onsets, events, atol=0.3)
    np.testing.assert_array_equal(res.time_ns, res.ref_ns - int(2e9))
    assert set(res.channel_codes) == {"HHZ,HHN,HHE"}
    assert np.all(res.trigger_ratio >= 3.5)
    for k in range(3):  # the archived samples are exactly the recorded counts, components aligned
        i0 = int(round((res.time_ns[k] - T0.ns) / 1e7))
        for c in range(3):
            np.testing.assert_array_equal(res.samples[k, c], st[c].data[i0:i0 + 1000].astype(np.float32))


def test_classic_trigger_and_no_trigger_filter(tmp_path):
    write(station_stream(seconds=900, events=(400.0,)), tmp_path / "a.mseed")
    (res,), _ = cut([tmp_path], trigger="classic", trigger_band_hz=None)
    assert res.n == 1 and abs((res.ref_ns[0] - T0.ns) / 1e9 - 400.0) < 0.3


def test_gap_rejects_only_the_window_that_spans_it(tmp_path):
    st = station_stream(seconds=1800, events=(300.0, 900.0, 1500.0))
    n = st.select(channel="HHN")[0]
    # cut 899..905 s out of N only: the second event triggers on Z, but its window spans the gap in N
    a, b = n.slice(T0, T0 + 899), n.slice(T0 + 905, T0 + 1800)
    write(Stream([st[0], a, b, st[2]]), tmp_path / "a.mseed")
    (res,), _ = cut([tmp_path])
    assert sorted(round((t - T0.ns) / 1e9) for t in res.ref_ns) == [300, 1500]
    assert GAP in reasons([res])


def test_overlap_identical_is_merged_and_conflicting_is_rejected(tmp_path):
    st = station_stream(seconds=1800, events=(300.0, 1200.0))
    # identical overlap around the first event: two files share 250..350 s
    write(st.slice(T0, T0 + 350), tmp_path / "p1.mseed")
    write(st.slice(T0 + 250, T0 + 1100), tmp_path / "p2.mseed")
    # conflicting overlap around the second event: p3 and p4 disagree on N over 1190..1210 s
    write(st.slice(T0 + 1100, T0 + 1210), tmp_path / "p3.mseed")
    other = st.slice(T0 + 1190, T0 + 1800).copy()
    other[1].data = other[1].data + 7
    write(other, tmp_path / "p4.mseed")
    (res,), _ = cut([tmp_path])
    assert [round((t - T0.ns) / 1e9) for t in res.ref_ns] == [300]
    assert OVERLAP in reasons([res])
    i0 = int(round((res.time_ns[0] - T0.ns) / 1e7))
    np.testing.assert_array_equal(res.samples[0, 0], st[0].data[i0:i0 + 1000].astype(np.float32))


def test_mixed_sampling_rates_are_resampled(tmp_path):
    st100 = station_stream(seconds=1200, events=(600.0,), comps="Z")
    st50 = station_stream(seconds=1200, events=(600.0,), comps="NE", sr=50.0, seed=1)
    st200 = station_stream("S2", seconds=1200, events=(600.0,), sr=200.0, seed=2)
    write(st100 + st50, tmp_path / "s1.mseed")
    write(st200, tmp_path / "s2.mseed")
    results, _ = cut([tmp_path])
    assert [r.n for r in results] == [1, 1] and reasons(results) == []
    for r in results:
        assert r.samples.shape == (1, 3, 1000)
        # the event's 6 Hz energy survives resampling on every component
        assert np.all(np.abs(r.samples[0] - r.samples[0].mean(axis=1, keepdims=True)).max(axis=1) > 800)


def test_missing_component_rejects_the_station_day_only(tmp_path):
    write(station_stream("S1", seconds=900, events=(400.0,), comps="ZN"), tmp_path / "s1.mseed")
    write(station_stream("S2", seconds=900, events=(400.0,), seed=5), tmp_path / "s2.mseed")
    results, _ = cut([tmp_path])
    by = {r.source: r for r in results}
    assert by["XX.S1."].n == 0 and [x[1] for x in by["XX.S1."].rejects] == [MISSING]
    assert by["XX.S2."].n == 1 and by["XX.S2."].rejects == []


def test_component_aliases_1_2_stand_in_for_n_e(tmp_path):
    write(station_stream(seconds=900, events=(400.0,), comps="Z12"), tmp_path / "a.mseed")
    (res,), _ = cut([tmp_path])
    assert res.n == 1 and res.channel_codes == ["HHZ,HH1,HH2"]


def test_corrupt_files_are_rejected_and_nothing_else_is_lost(tmp_path):
    st = station_stream(seconds=1800, events=(300.0, 900.0, 1500.0))
    good = write(st, tmp_path / "good.mseed")
    (tmp_path / "garbage.mseed").write_bytes(np.random.default_rng(0).bytes(5000))
    s2 = station_stream("S2", seconds=1800, events=(300.0, 900.0, 1500.0), seed=3)
    for tr in s2:
        write(Stream([tr]), tmp_path / f"s2.{tr.stats.channel}.mseed")
    trunc = tmp_path / "s2.HHZ.mseed"
    raw = trunc.read_bytes()
    trunc.write_bytes(raw[: len(raw) * 6 // 10 + 100])  # cut mid-record: Z ends near 1080 s
    results, scan_rejects = cut([tmp_path])
    assert [(r.path.rsplit("/", 1)[-1], r.reason) for r in scan_rejects] == [("garbage.mseed", UNREADABLE)]
    by = {r.source: r for r in results}
    assert by["XX.S1."].n == 3 and by["XX.S1."].rejects == []
    # the complete records of the truncated file still count
    assert [round((t - T0.ns) / 1e9) for t in by["XX.S2."].ref_ns] == [300, 900]
    assert good.exists()


def test_non_finite_samples_are_rejected(tmp_path):
    st = station_stream(seconds=1800, events=(300.0, 900.0), dtype=np.float32)
    st[1].data[int(905 * SR)] = np.nan
    write(st, tmp_path / "a.mseed")
    (res,), _ = cut([tmp_path])
    assert [round((t - T0.ns) / 1e9) for t in res.ref_ns] == [300]
    assert NONFINITE in reasons([res])


def test_window_across_midnight_reads_the_next_day(tmp_path):
    st = station_stream(start=T0 + DAY - 1800, seconds=3600, events=(1798.0,))  # event at 23:59:58
    write(st.slice(T0 + DAY - 1800, T0 + DAY - 0.01), tmp_path / "d0.mseed")
    write(st.slice(T0 + DAY, T0 + DAY + 1800), tmp_path / "d1.mseed")
    results, _ = cut([tmp_path])
    assert [r.n for r in results] == [1, 0]
    res = results[0]
    i0 = int(round((res.time_ns[0] - st[0].stats.starttime.ns) / 1e7))
    np.testing.assert_array_equal(res.samples[0], np.stack([tr.data[i0:i0 + 1000] for tr in st]).astype(np.float32))
    assert res.origin[0].endswith("d0.mseed")


def test_regular_windows_on_a_midnight_grid_with_merged_gap_rejects(tmp_path):
    st = station_stream(seconds=600)
    z = st[0]
    write(Stream([z.slice(T0, T0 + 295), z.slice(T0 + 331, T0 + 600), st[1], st[2]]), tmp_path / "a.mseed")
    (res,), _ = cut([tmp_path], trigger="none", stride_s=10.0)
    assert res.n == 55  # 60 windows, 5 touch the gap in Z (those at 290 ... 330 s)
    assert np.all((res.time_ns - T0.ns) % int(10e9) == 0)
    assert np.all(np.isnan(res.trigger_ratio))
    assert len(res.rejects) == 1 and res.rejects[0][1] == GAP and res.rejects[0][2].startswith("5 windows")


def test_misaligned_component_is_interpolated_onto_the_trigger_grid(tmp_path):
    st = station_stream(seconds=600, events=(300.0,), dtype=np.float64, noise=0.0)
    n = st[1].copy()
    n.stats.starttime += 0.004  # 0.4 sample late
    t = np.arange(n.stats.npts) / SR
    n.data = 1000 * np.sin(2 * np.pi * 1.5 * (t + 0.004))
    write(Stream([st[0], n, st[2]]), tmp_path / "a.mseed", fmt="MSEED")
    (res,), _ = cut([tmp_path])
    assert res.n == 1
    t0 = (res.time_ns[0] - T0.ns) / 1e9
    want = 1000 * np.sin(2 * np.pi * 1.5 * (t0 + np.arange(1000) / SR))
    np.testing.assert_allclose(res.samples[0, 1], want, atol=5.0)


def test_bad_parameters_name_the_value():
    with pytest.raises(SpacesslError, match="unknown trigger 'sta'"):
        CutParams(trigger="sta").validate()
    with pytest.raises(SpacesslError, match="--pre"):
        CutParams(pre_s=12.0).validate()
    with pytest.raises(SpacesslError, match="--sta < --lta"):
        CutParams(sta_s=20.0).validate()
