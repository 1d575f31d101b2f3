"""Query files are decoded exactly as ingest decodes them, and query arguments parse strictly."""

from __future__ import annotations

import datetime as dt

import numpy as np
import pytest
from PIL import Image

from spacessl.archive import open_archive
from spacessl.index.query import QueryError, iso_utc, load_vector, parse_duration, parse_time
from spacessl.index.query_input import QueryFileError, load_query_file


def test_durations():
    assert parse_duration("30s") == 30.0
    assert parse_duration("5min") == 300.0
    assert parse_duration("2h") == 7200.0
    assert parse_duration("1.5d") == 1.5 * 86400
    assert parse_duration("250ms") == 0.25
    assert parse_duration(12) == 12.0
    assert parse_duration("0") is None and parse_duration(None) is None and parse_duration("off") is None
    with pytest.raises(QueryError, match="30s, 5min"):
        parse_duration("5 fortnights")


def test_times_are_utc_ns_and_round_trip():
    ns = parse_time("2008-02-01T06:30:00Z")
    assert ns == int(dt.datetime(2008, 2, 1, 6, 30, tzinfo=dt.timezone.utc).timestamp()) * 10**9
    assert parse_time("2008-02-01T06:30:00") == ns                       # naive = UTC
    assert parse_time("2008-02-01T08:30:00+02:00") == ns
    assert parse_time("2008-02-01") == ns - (6 * 3600 + 30 * 60) * 10**9
    assert iso_utc(ns) == "2008-02-01T06:30:00Z"
    assert iso_utc(ns + 250_000_000) == "2008-02-01T06:30:00.250000Z"
    assert parse_time(iso_utc(ns + 123_456_000)) == ns + 123_456_000
    with pytest.raises(QueryError, match="ISO 8601"):
        parse_time("yesterday")


def test_vectors_are_checked_and_normalised(tmp_path):
    np.save(tmp_path / "v.npy", np.array([3.0, 4.0], np.float32))
    np.testing.assert_allclose(load_vector(tmp_path / "v.npy", 2), [0.6, 0.8])
    with pytest.raises(QueryError, match=r"shape \(3,\) \(3 values\) .* 2-d"):
        load_vector(np.ones(3), 2)
    with pytest.raises(QueryError, match="zeros"):
        load_vector(np.zeros(2), 2)


def test_image_file_decodes_like_the_archive(tmp_path):
    from tests.embed.fixtures import make_image_archive

    a = open_archive(make_image_archive(tmp_path / "a.zarr", n=8, size=32, chunk_size=8))
    frame = a.read(5, 6).samples[0, 0]                                   # (32, 32) uint16
    Image.fromarray(frame).save(tmp_path / "f.png")                       # 16-bit PNG
    q = load_query_file(str(tmp_path / "f.png"), a)
    assert q.sample.shape == (1, 1, 32, 32) and q.sample.dtype == np.uint16
    np.testing.assert_array_equal(q.sample[0, 0], frame)
    big = np.kron(frame, np.ones((2, 2), np.uint16))                     # 64 px: resized as ingest resizes
    Image.fromarray(big).save(tmp_path / "big.png")
    assert load_query_file(str(tmp_path / "big.png"), a).sample.shape == (1, 1, 32, 32)
    (tmp_path / "notes.txt").write_text("hello")
    with pytest.raises(QueryFileError, match="not an image file"):
        load_query_file(str(tmp_path / "notes.txt"), a)
    with pytest.raises(QueryFileError, match="does not exist"):
        load_query_file(str(tmp_path / "missing.png"), a)


def test_waveform_file_gives_its_first_ingested_window(tmp_path):
    from spacessl.ingest.waveforms import ingest_waveforms
    from tests.ingest.seismic_files import T0, station_stream, write

    path = write(station_stream("S1", seconds=1800.0, events=(300.0, 900.0)), tmp_path / "S1.mseed")
    ingest_waveforms([str(path)], str(tmp_path / "w.zarr"), chunk_size=4, shard_chunks=1, progress=False,
                     use_ray=False)
    a = open_archive(str(tmp_path / "w.zarr"))
    first = a.read(0, 1)
    q = load_query_file(str(path), a)
    assert q.how == "trigger" and q.source == first.meta["source"][0] and q.time_ns == first.meta["time_ns"][0]
    np.testing.assert_array_equal(q.sample, first.samples)
    # a snippet too short for the trigger's warm-up: its first window_s, resampled as ingest does
    snip = station_stream("S1", seconds=1800.0, events=(300.0, 900.0)).slice(T0 + 899, T0 + 904)
    q2 = load_query_file(str(write(snip, tmp_path / "snip.mseed")), a)
    assert q2.how == "file start" and q2.sample.shape == (1, 3, 1000)
    assert q2.time_ns == (T0 + 899).ns
