"""THEMIS ASI level-1 CDF ingest: frames, epoch times, sites, rejects, per-file resume."""

from __future__ import annotations

import csv

import numpy as np
import pytest

from spacessl.archive import open_archive
from spacessl.archive.writer import ArchiveWriter
from spacessl.cli import main as cli_main
from spacessl.ingest.themis import (ThemisFileError, epoch_to_ns, find_themis_files, ingest_themis,
                                    read_themis_cdf)
from tests.ingest.test_images import assert_same_archive
from tests.ingest.themis_cdf import write_asf

HOURS = [("gako", (2011, 1, 6, 17)), ("gako", (2011, 1, 6, 18)), ("fsmi", (2011, 1, 6, 5))]


def _ns(epochs: np.ndarray) -> np.ndarray:
    return np.rint((np.asarray(epochs) - 62167219200000.0) * 1e6).astype(np.int64)


def make_files(root) -> dict[str, tuple[np.ndarray, np.ndarray]]:
    """Three hour files of two sites in nested folders; returns file name → (frames, epochs)."""
    out = {}
    for site, hour in HOURS:
        path, frames, epochs = write_asf(root / site / f"{hour[0]}" / f"{hour[1]:02d}", site, hour, n=3)
        out[path.name] = (frames, epochs)
    return out


def test_read_one_file(tmp_path):
    path, frames, epochs = write_asf(tmp_path, "gako", (2011, 1, 6, 17), n=4)
    r = read_themis_cdf(str(path))
    assert r.site == "gako" and r.frames.shape == (4, 1, 256, 256) and r.frames.dtype == np.uint16
    np.testing.assert_array_equal(r.frames[:, 0], frames)
    assert list(r.time_ns.astype("datetime64[ns]").astype("datetime64[s]").astype(str)) == [
        "2011-01-06T17:00:00", "2011-01-06T17:00:03", "2011-01-06T17:00:06", "2011-01-06T17:00:09"]
    small = read_themis_cdf(str(path), size=64)
    assert small.frames.shape == (4, 1, 64, 64)
    assert abs(float(small.frames.mean()) - float(frames.mean())) < 20


def test_ingest_round_trip_with_times_and_sites(tmp_path):
    files = make_files(tmp_path / "data")
    out = str(tmp_path / "asi.zarr")
    report = ingest_themis([str(tmp_path / "data")], out, chunk_size=4, workers=2, progress=False)
    assert report.n_inputs == 3 and report.n_samples == 9 and report.n_rejects == 0
    a = open_archive(out)
    b = a.read(0, a.n)
    assert a.dtype == np.uint16 and a.sample_shape == (1, 256, 256) and a.attrs["units"] == "counts"
    names = sorted(files)                                   # file-name order: fsmi first, then gako by hour
    assert list(b.meta["origin"]) == [n for n in names for _ in range(3)]
    assert list(b.meta["source"]) == ["fsmi"] * 3 + ["gako"] * 6
    assert list(b.meta["frame_index"]) == [0, 1, 2] * 3
    expect_t = np.concatenate([_ns(files[n][1]) for n in names])
    np.testing.assert_array_equal(b.meta["time_ns"], expect_t)
    expect_px = np.concatenate([files[n][0] for n in names])
    np.testing.assert_array_equal(b.samples[:, 0], expect_px)


def test_bad_files_and_fill_epochs_are_listed(tmp_path):
    data = tmp_path / "data"
    good, _, _ = write_asf(data, "gako", (2011, 1, 6, 17), n=3)
    ep = write_asf(tmp_path / "tmp", "gill", (2012, 2, 3, 4), n=3)[2]
    ep[1] = -1.0e31                                          # the CDF fill value: frame left out
    fill, frames, _ = write_asf(data, "gill", (2012, 2, 3, 4), n=3, epochs=ep)
    (data / "thg_l1_asf_kuuj_2012020305_v01.cdf").write_bytes(b"not a CDF file at all")
    raw = good.read_bytes()
    (data / "thg_l1_asf_gako_2011010618_v01.cdf").write_bytes(raw[: len(raw) // 3])
    out = str(tmp_path / "asi.zarr")
    report = ingest_themis([str(data)], out, workers=0, progress=False)
    assert report.n_samples == 5
    with open(tmp_path / "asi.rejects.csv", newline="") as f:
        rejects = {r["origin"]: r for r in csv.DictReader(f)}
    assert set(rejects) == {"thg_l1_asf_gako_2011010618_v01.cdf", "thg_l1_asf_gill_2012020304_v01.cdf",
                            "thg_l1_asf_kuuj_2012020305_v01.cdf"}
    assert rejects["thg_l1_asf_gill_2012020304_v01.cdf"]["reason"] == "frames without valid time"
    assert all(r["detail"] for r in rejects.values())
    b = open_archive(out).read(0, 5)
    gill = b.meta["source"] == "gill"
    assert list(b.meta["frame_index"][gill]) == [0, 2]
    np.testing.assert_array_equal(b.samples[gill, 0], frames[[0, 2]])
    with pytest.raises(ThemisFileError, match="thg_l1_asf_gako_2011010618_v01.cdf: corrupt"):
        ingest_themis([str(data)], str(tmp_path / "strict.zarr"), strict=True, workers=0, progress=False)


def test_resume_per_file_gives_identical_archive(tmp_path, monkeypatch):
    make_files(tmp_path / "data")
    ref = tmp_path / "ref.zarr"
    ingest_themis([str(tmp_path / "data")], str(ref), chunk_size=2, workers=0, progress=False)
    out = tmp_path / "out.zarr"
    append = ArchiveWriter.append
    calls = {"n": 0}

    def failing_append(self, *args, **kwargs):
        calls["n"] += 1
        if calls["n"] == 2:
            raise KeyboardInterrupt("interrupted in the middle of the second file")
        return append(self, *args, **kwargs)

    monkeypatch.setattr(ArchiveWriter, "append", failing_append)
    with pytest.raises(KeyboardInterrupt):
        ingest_themis([str(tmp_path / "data")], str(out), chunk_size=2, workers=0, progress=False)
    monkeypatch.setattr(ArchiveWriter, "append", append)
    partial = open_archive(str(out), require_complete=False)
    assert partial.n == 2 and not partial.complete            # one whole chunk of the first file committed
    report = ingest_themis([str(tmp_path / "data")], str(out), chunk_size=2, workers=0, progress=False)
    assert report.resumed_from == 0                           # the first file had one frame left to write
    assert_same_archive(ref, out)


def test_find_files_and_cli(tmp_path, capsys):
    files = make_files(tmp_path / "data")
    one = next(p for p in (tmp_path / "data").rglob("*.cdf") if "fsmi" in p.name)
    assert [p.rsplit("/", 1)[-1] for p in find_themis_files([str(tmp_path / "data"), str(one)])] == sorted(files)
    with pytest.raises(ThemisFileError, match="neither"):
        find_themis_files([str(tmp_path / "nope")])
    out = str(tmp_path / "asi.zarr")
    assert cli_main(["ingest", "themis", str(one), str(tmp_path / "data" / "gako"), out, "--size", "64",
                     "--workers", "0", "--quiet"]) == 0
    assert "9 samples from 3 inputs" in capsys.readouterr().out
    assert open_archive(out).sample_shape == (1, 64, 64)


def test_epoch_conversion():
    ns, ok = epoch_to_ns(np.array([63533145603000.0, -1.0e31, 0.0, np.nan]), 31)
    assert list(ok) == [True, False, False, False]
    assert ns[0] == np.datetime64("2013-04-14T08:00:03", "ns").astype(np.int64)
