"""Waveform ingest end to end: Ray station-day tasks, archive content, labels, coincidence, kill-and-resume."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest

from spacessl.archive import ArchiveExistsError, open_archive
from spacessl.errors import SpacesslError
from spacessl.ingest.waveforms import ingest_waveforms
from tests.ingest.seismic_files import DAY, T0, station_stream, write, write_day_files

REPO = Path(__file__).resolve().parents[2]


def content(url: Path) -> dict:
    """Everything an archive holds: samples, decoded meta, attributes, rejects file."""
    a = open_archive(str(url))
    b = a.read(0, a.n)
    rej = Path(str(url).replace(".zarr", ".rejects.csv"))
    return {"samples": b.samples, **b.meta, "attrs": dict(a.attrs),
            "rejects": rej.read_text() if rej.exists() else ""}


def assert_same(x: dict, y: dict) -> None:
    assert x.keys() == y.keys()
    for k in x:
        if isinstance(x[k], np.ndarray):
            np.testing.assert_array_equal(x[k], y[k], err_msg=k)
        else:
            assert x[k] == y[k], k


@pytest.fixture(scope="module")
def network(tmp_path_factory) -> Path:
    """3 stations x 2 days, 30 min each day; events at 300 s (all), 900 s (S1 only), 1500 s (S1, S2)."""
    root = tmp_path_factory.mktemp("network")
    write_day_files(root, {"S1": (300.0, 900.0, 1500.0), "S2": (300.0, 1500.0), "S3": (300.0,)}, days=2,
                    seconds=1800.0)
    (root / "notes.txt").write_text("not a waveform file\n")
    return root


def test_ingest_with_ray_writes_a_self_describing_archive(ray_cluster, network, tmp_path):
    out = tmp_path / "w.zarr"
    s = ingest_waveforms([str(network)], str(out), chunk_size=4, shard_chunks=2, progress=False)
    assert s.station_days == 6 and s.windows == 12 and s.files == 7
    a = open_archive(str(out))
    assert (a.n, a.modality, a.sample_shape, a.dtype) == (12, "waveform", (3, 1000), np.float32)
    assert a.attrs["sampling_rate_hz"] == 100.0 and a.attrs["window_s"] == 10.0 and a.attrs["units"] == "counts"
    assert a.channels == ["Z", "N", "E"] and a.attrs["ingest"]["trigger"] == "recursive"
    b = a.read(0, a.n)
    assert np.all(np.diff(b.meta["time_ns"][b.meta["source"] == "XX.S1."]) > 0)
    assert set(b.meta["channel_codes"]) == {"HHZ,HHN,HHE"}
    assert np.all(b.meta["trigger_ratio"] > 3.5)
    assert list(b.meta["stations"]) == list(b.meta["source"])
    assert np.all(b.meta["label"] == -1)
    days = (b.meta["time_ns"] // int(DAY * 1e9)) - T0.ns // int(DAY * 1e9)
    assert sorted(zip(days, b.meta["source"]))[:6] == [(0, "XX.S1.")] * 3 + [(0, "XX.S2.")] * 2 + [(0, "XX.S3.")]
    rejects = (tmp_path / "w.rejects.csv").read_text()
    assert "notes.txt,unreadable" in rejects
    assert not (tmp_path / "w.staging").exists()
    # the in-process path writes the same archive
    ingest_waveforms([str(network)], str(tmp_path / "local.zarr"), chunk_size=4, shard_chunks=2, use_ray=False,
                     progress=False)
    assert_same({k: v for k, v in content(out).items() if k != "rejects"},
                {k: v for k, v in content(tmp_path / "local.zarr").items() if k != "rejects"})


def test_existing_archive_is_kept_unless_overwrite(network, tmp_path):
    out = tmp_path / "w.zarr"
    kw = dict(use_ray=False, progress=False, trigger="none", stride_s=600.0)
    ingest_waveforms([str(network / "S3.0.mseed")], str(out), **kw)
    with pytest.raises(ArchiveExistsError, match="--overwrite"):
        ingest_waveforms([str(network / "S3.0.mseed")], str(out), **kw)
    s = ingest_waveforms([str(network / "S3.1.mseed")], str(out), overwrite=True, **kw)
    assert s.windows == 3 and open_archive(str(out)).n == 3


def test_catalog_labels_attach_within_tolerance(network, tmp_path):
    cat = tmp_path / "catalog.csv"
    cat.write_text("time,station,label\n"
                   f"{(T0 + 300.5).isoformat()},XX.S1.,icequake\n"     # full id
                   f"{(T0 + 1500.8).isoformat()},XX.S2,earthquake\n"   # NET.STA
                   f"{(T0 + DAY + 300.2).isoformat()},S3,spike\n"       # STA
                   f"{(T0 + DAY + 900.0).isoformat()},,earthquake\n"   # any station
                   f"{(T0 + 1200.0).isoformat()},XX.S1.,icequake\n")   # no trigger near it
    out = tmp_path / "w.zarr"
    ingest_waveforms([str(network)], str(out), labels=str(cat), label_tolerance_s=2.0, use_ray=False,
                     progress=False)
    a = open_archive(str(out))
    assert a.label_names == ["earthquake", "icequake", "spike"]
    b = a.read(0, a.n)
    got = {(src, round((t - T0.ns) / 1e9 + 2)): lab for src, t, lab in
           zip(b.meta["source"], b.meta["time_ns"], b.meta["label"])}
    assert got[("XX.S1.", 300)] == 1
    assert got[("XX.S2.", 1500)] == 0
    assert got[("XX.S3.", round(DAY) + 300)] == 2
    assert got[("XX.S1.", round(DAY) + 900)] == 0
    assert sum(v >= 0 for v in got.values()) == 4


def test_bad_catalog_names_the_missing_column(network, tmp_path):
    cat = tmp_path / "catalog.csv"
    cat.write_text("when,station,label\n2020-01-01T00:00:00Z,S1,x\n")
    with pytest.raises(SpacesslError, match="lacks column.*time"):
        ingest_waveforms([str(network)], str(tmp_path / "w.zarr"), labels=str(cat), use_ray=False)


def test_coincidence_keeps_network_events_and_lists_the_stations(ray_cluster, network, tmp_path):
    out = tmp_path / "w.zarr"
    s = ingest_waveforms([str(network)], str(out), coincidence=2, progress=False)
    b = open_archive(str(out)).read(0, s.windows)
    sec = [round((t - T0.ns) / 1e9 + 2) % round(DAY) for t in b.meta["time_ns"]]
    # 300 s: three stations; 1500 s: two; 900 s (S1 alone) is dropped
    assert sorted(zip(sec, b.meta["source"])) == sorted(
        [(300, f"XX.S{i}.") for i in (1, 2, 3)] * 2 + [(1500, "XX.S1."), (1500, "XX.S2.")] * 2)
    st = dict(zip(zip(sec, b.meta["source"]), b.meta["stations"]))
    assert st[(300, "XX.S3.")] == "XX.S1.,XX.S2.,XX.S3." and st[(1500, "XX.S1.")] == "XX.S1.,XX.S2."
    s3 = ingest_waveforms([str(network)], str(tmp_path / "w3.zarr"), coincidence=3, progress=False)
    assert s3.windows == 6


def test_coincidence_across_midnight(tmp_path):
    s1 = station_stream("S1", start=T0 + DAY - 600, seconds=1200, events=(599.8,), seed=1)
    s2 = station_stream("S2", start=T0 + DAY - 600, seconds=1200, events=(600.6,), seed=2)
    for st in (s1, s2):
        write(st.slice(T0 + DAY - 600, T0 + DAY - 0.01), tmp_path / f"{st[0].stats.station}.0.mseed")
        write(st.slice(T0 + DAY, T0 + DAY + 600), tmp_path / f"{st[0].stats.station}.1.mseed")
    s = ingest_waveforms([str(tmp_path)], str(tmp_path / "w.zarr"), coincidence=2, use_ray=False, progress=False)
    b = open_archive(str(tmp_path / "w.zarr")).read(0, s.windows)
    assert s.windows == 2 and set(b.meta["stations"]) == {"XX.S1.,XX.S2."}


def test_obspy_example_recordings_ingest_without_error(tmp_path):
    import obspy

    data = Path(obspy.__file__).parent
    sources = [data / "io/mseed/tests/data", data / "io/sac/tests/data", data / "io/gse2/tests/data"]
    obspy.read().write(str(tmp_path / "rjob_example.mseed"), format="MSEED")  # obspy.read()'s default example
    out = tmp_path / "examples.zarr"
    s = ingest_waveforms([str(p) for p in sources] + [str(tmp_path / "rjob_example.mseed")], str(out),
                         trigger="none", window_s=2.0, stride_s=2.0, pre_s=0.0, components="Z", use_ray=False,
                         progress=False)
    a = open_archive(str(out))
    assert a.n == s.windows > 50
    assert len(set(a.read(0, a.n).meta["source"])) >= 5
    ex = ingest_waveforms([str(tmp_path / "rjob_example.mseed")], str(tmp_path / "rjob.zarr"), lta_s=5.0,
                          thr_on=2.5, thr_off=1.0, use_ray=False, progress=False)
    assert ex.windows >= 1


def test_response_removal_gives_physical_units(tmp_path):
    import obspy

    inv = Path(obspy.__file__).parent / "core/data/BW_RJOB.xml"
    obspy.read().write(str(tmp_path / "rjob.mseed"), format="MSEED")
    kw = dict(trigger="none", window_s=10.0, stride_s=10.0, pre_s=0.0, use_ray=False, progress=False)
    counts = ingest_waveforms([str(tmp_path / "rjob.mseed")], str(tmp_path / "c.zarr"), **kw)
    vel = ingest_waveforms([str(tmp_path / "rjob.mseed")], str(tmp_path / "v.zarr"), inventory=str(inv),
                           remove_response=True, **kw)
    a, c = open_archive(str(tmp_path / "v.zarr")), open_archive(str(tmp_path / "c.zarr"))
    assert vel.windows == counts.windows == 2
    assert a.attrs["units"] == "m/s" and c.attrs["units"] == "counts"
    peak = np.abs(a.read(0, a.n).samples).max()
    assert 1e-9 < peak < 1e-2 and np.abs(c.read(0, c.n).samples).max() > 100
    with pytest.raises(SpacesslError, match="--inventory"):
        ingest_waveforms([str(tmp_path / "rjob.mseed")], str(tmp_path / "x.zarr"), remove_response=True, **kw)


# ----------------------------------------------------------------------------------------------- kill and resume


def _cli(out: Path, src: Path, *extra: str) -> list[str]:
    return [str(Path(sys.executable).parent / "spacessl"), "ingest", "waveforms", str(src), str(out), "--quiet",
            "--chunk-size", "4", "--shard-chunks", "2", "--lta", "5", *extra]


def _committed(out: Path) -> int:
    try:
        return int(json.loads((out / "zarr.json").read_text())["attributes"].get("n", 0))
    except (OSError, ValueError, KeyError):
        return 0


def _staged(out: Path) -> int:
    d = Path(str(out).replace(".zarr", ".staging"))
    return len(list(d.glob("part-*.npz"))) if d.exists() else 0


@pytest.fixture(scope="module")
def busy_network(tmp_path_factory) -> Path:
    root = tmp_path_factory.mktemp("busy")
    events = tuple(60.0 + 45.0 * k for k in range(30))
    write_day_files(root, {f"K{i}": events for i in range(6)}, days=2, seconds=1500.0)
    return root


@pytest.mark.parametrize("when", ["committed", "staged"])
def test_kill_and_resume_gives_the_same_archive(ray_cluster, busy_network, tmp_path, when):
    """Killed after the first chunk commit, or (coincidence: append waits for all) with parts only staged."""
    coincidence = 1 if when == "committed" else 2
    ref = tmp_path / "ref.zarr"
    ingest_waveforms([str(busy_network)], str(ref), chunk_size=4, shard_chunks=2, lta_s=5.0,
                     coincidence=coincidence, progress=False)
    out = tmp_path / "w.zarr"
    # committed: the Ray path (driver and its local Ray killed); staged: in-process, parts staged, none appended
    extra = ["--num-cpus", "1"] if when == "committed" else ["--no-ray"]
    proc = subprocess.Popen(_cli(out, busy_network, *extra, "--coincidence", str(coincidence)),
                            cwd=REPO, start_new_session=True, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    deadline = time.time() + 240
    ready = (lambda: _committed(out) > 0) if when == "committed" else (lambda: _staged(out) >= 3)
    while not ready():
        assert proc.poll() is None, proc.stderr.read().decode()[-2000:]
        assert time.time() < deadline, "ingest made no progress"
        time.sleep(0.01)
    os.killpg(proc.pid, signal.SIGKILL)  # the whole process group this test started (driver and its Ray)
    proc.wait()
    attrs = json.loads((out / "zarr.json").read_text())["attributes"]
    assert attrs["complete"] is False and attrs["n"] < 12 * 30
    s = ingest_waveforms([str(busy_network)], str(out), chunk_size=4, shard_chunks=2, lta_s=5.0,
                         coincidence=coincidence, progress=False)
    assert s.resumed_from < s.station_days
    assert_same(content(ref), content(out))
    assert not Path(str(out).replace(".zarr", ".staging")).exists()


def test_cli_ingest_waveforms(network, tmp_path, capsys):
    from spacessl.cli import main

    out = tmp_path / "cli.zarr"
    rc = main(["ingest", "waveforms", str(network / "S1.0.mseed"), str(network / "S1.1.mseed"), str(out),
               "--no-ray", "--quiet", "--trigger-component", "Z", "--window", "8", "--pre", "1"])
    assert rc == 0
    printed = capsys.readouterr().out
    assert "6 windows from 2 station-days" in printed
    a = open_archive(str(out))
    assert a.sample_shape == (3, 800) and a.attrs["ingest"]["trigger_component"] == "Z"
    assert main(["ingest", "waveforms", str(network), str(out), "--no-ray", "--quiet"]) == 2  # exists
    assert "--overwrite" in capsys.readouterr().err
