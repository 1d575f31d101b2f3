"""Reader: validation, Dask arrays, shard coverage, streaming coverage and its memory bound, fsspec URLs."""

from __future__ import annotations

import json
import tracemalloc
from pathlib import Path

import numpy as np
import pytest
import zarr

from spacessl.archive import ArchiveFormatError, ArchiveWriter, open_archive


def make_archive(url: str, n: int = 103, chunk: int = 8, side: int = 4, rng_data: bool = False) -> np.ndarray:
    rng = np.random.default_rng(0)
    data = (rng.integers(0, 65535, size=(n, 1, side, side), dtype=np.uint16) if rng_data
            else np.arange(n, dtype=np.uint16)[:, None, None, None] * np.ones((1, 1, side, side), np.uint16))
    with ArchiveWriter(url, modality="image", sample_shape=(1, side, side), dtype="uint16", units="DN",
                       channels=["gray"], chunk_size=chunk, shard_chunks=3, label_names=["a", "b", "c"]) as w:
        for i in range(0, n, 10):
            part = data[i:i + 10]
            w.append(part, input_index=i, time_ns=np.arange(i, i + len(part)) * 3_000_000_000,
                     source="gill", origin=f"f{i}", label=np.arange(i, i + len(part)) % 3)
    return data


def test_dask_arrays_match(tmp_path):
    url = str(tmp_path / "a.zarr")
    data = make_archive(url)
    a = open_archive(url)
    assert a.samples.chunks[0][0] == 8
    np.testing.assert_array_equal(a.samples.compute(), data)
    np.testing.assert_array_equal(a.meta("label").compute(), np.arange(103) % 3)
    assert a.num_chunks == 13 and a.num_shards == 5
    assert a.shard_range(4) == (96, 103)
    b = a.take([5, 100, 0])
    np.testing.assert_array_equal(b.samples[:, 0, 0, 0], [5, 100, 0])
    assert list(b.meta["source"]) == ["gill"] * 3


@pytest.mark.parametrize("workers", [1, 2, 3, 5])
def test_shards_cover_every_chunk_once_per_epoch(tmp_path, workers):
    url = str(tmp_path / "a.zarr")
    make_archive(url)
    a = open_archive(url)
    orders = []
    for epoch in range(3):
        parts = [a.shards(workers, r, epoch=epoch, seed=7) for r in range(workers)]
        flat = [c for p in parts for c in p]
        assert sorted(flat) == list(range(a.num_chunks))
        assert max(map(len, parts)) - min(map(len, parts)) <= 1
        rows = np.concatenate([np.arange(*a.chunk_range(c)) for c in flat])
        assert sorted(rows) == list(range(a.n))
        orders.append(flat)
    assert orders[0] != orders[1]  # reshuffled per epoch
    assert a.shards(workers, 0, epoch=1, seed=7) == a.shards(workers, 0, epoch=1, seed=7)


@pytest.mark.parametrize("shuffle", [True, False])
def test_stream_yields_every_sample_once(tmp_path, shuffle):
    url = str(tmp_path / "a.zarr")
    make_archive(url)
    a = open_archive(url)
    chunks = a.shards(2, 1, epoch=0)
    batches = list(a.stream(chunks, batch_size=6, shuffle=shuffle, seed=1))
    ids = np.concatenate([b.ids for b in batches])
    expected = np.concatenate([np.arange(*a.chunk_range(c)) for c in chunks])
    assert sorted(ids) == sorted(expected)
    assert all(len(b) == 6 for b in batches[:-1])
    for b in batches:
        np.testing.assert_array_equal(b.samples[:, 0, 0, 0], b.ids)
        np.testing.assert_array_equal(b.meta["label"], b.ids % 3)
    if not shuffle:
        np.testing.assert_array_equal(ids, expected)
    dropped = list(a.stream(chunks, batch_size=6, shuffle=shuffle, drop_last=True))
    assert all(len(b) == 6 for b in dropped)


def test_stream_memory_is_bounded_by_prefetch_not_archive(tmp_path):
    url = str(tmp_path / "big.zarr")
    make_archive(url, n=64 * 80, chunk=64, side=64, rng_data=True)   # 80 chunks of 512 KiB = 40 MiB
    a = open_archive(url)
    chunk_bytes = 64 * 64 * 64 * 2
    tracemalloc.start()
    n = 0
    for b in a.stream(range(a.num_chunks), batch_size=32, shuffle=True, prefetch=2, buffer_chunks=2):
        n += len(b)
    _, peak = tracemalloc.get_traced_memory()
    tracemalloc.stop()
    assert n == a.n
    archive_bytes = a.n * 64 * 64 * 2
    assert peak < 12 * chunk_bytes, f"peak {peak / 2**20:.1f} MiB for a {archive_bytes / 2**20:.0f} MiB archive"


def test_fsspec_memory_url_round_trip():
    url = "memory://spacessl-test/a.zarr"
    data = make_archive(url, n=20)
    a = open_archive(url)
    np.testing.assert_array_equal(a.read(0, 20).samples, data)


def test_foreign_old_broken_and_unfinished_archives_fail_clearly(tmp_path):
    with pytest.raises(ArchiveFormatError, match="no archive at"):
        open_archive(str(tmp_path / "missing.zarr"))
    foreign = tmp_path / "foreign.zarr"
    zarr.open_group(str(foreign), mode="w").create_array("x", shape=(3,), dtype="int8")
    with pytest.raises(ArchiveFormatError, match="not a spacessl archive"):
        open_archive(str(foreign))
    url = tmp_path / "a.zarr"
    make_archive(str(url), n=20)
    meta_path = url / "zarr.json"
    meta = json.loads(meta_path.read_text())
    meta["attributes"]["spacessl_format"] = 0
    meta_path.write_text(json.dumps(meta))
    with pytest.raises(ArchiveFormatError, match="version 0.*reads version 1"):
        open_archive(str(url))
    meta["attributes"]["spacessl_format"] = 1
    meta["attributes"]["channels"] = ["R", "G", "B"]
    meta_path.write_text(json.dumps(meta))
    with pytest.raises(ArchiveFormatError, match="3 channels"):
        open_archive(str(url))
    meta["attributes"]["channels"] = ["gray"]
    meta_path.write_text(json.dumps(meta))
    import shutil
    shutil.rmtree(url / "meta" / "label")
    with pytest.raises(ArchiveFormatError, match="damaged"):
        open_archive(str(url))
    v2 = tmp_path / "v2.zarr"
    v2.mkdir()
    (v2 / ".zgroup").write_text('{"zarr_format": 2}')
    with pytest.raises(ArchiveFormatError):
        open_archive(str(v2))


def test_archive_info_cli(tmp_path, capsys):
    from spacessl.cli import main
    url = str(tmp_path / "a.zarr")
    make_archive(url)
    assert main(["archive", "info", url, "--json"]) == 0
    info = json.loads(capsys.readouterr().out)
    assert info["n"] == 103 and info["label_counts"] == {"a": 35, "b": 34, "c": 34}
    assert info["num_shards"] == 5 and info["sources"] == {"gill": 103} and info["complete"]
    assert info["time_range"][0].startswith("1970-01-01T00:00:00")
    assert main(["archive", "info", url]) == 0
    assert "103 × CHW" in capsys.readouterr().out
    assert main(["archive", "info", str(Path(url).with_name("nope.zarr"))]) == 2


def _brute_candidates(source: np.ndarray, time_ns: np.ndarray, window_s: float) -> list[set[int]]:
    w = window_s * 1e9
    return [{j for j in range(len(source)) if j != i and source[j] == source[i] and abs(time_ns[j] - time_ns[i]) <= w}
            for i in range(len(source))]


def test_temporal_partners_against_brute_force():
    from spacessl.archive.reader import temporal_partners

    rng = np.random.default_rng(3)
    n = 300
    source = rng.choice(["gill", "fsmi", "rank"], n)
    time_ns = (rng.integers(0, 2_000, n) * 1_000_000_000).astype(np.int64)  # seconds, with ties and gaps
    time_ns[:5] = 4 * 10**18 + np.arange(5) * 10**12  # a century on, 1000 s apart: alone, and no overflow
    cands = _brute_candidates(source, time_ns, 12.0)
    assert not any(cands[i] for i in range(5))
    seen: list[set[int]] = [set() for _ in range(n)]
    for draw in range(200):
        p = temporal_partners(source, time_ns, 12.0, np.random.default_rng(draw))
        for i in range(n):
            if cands[i]:
                assert p[i] in cands[i], (i, p[i])
            else:
                assert p[i] == i
            seen[i].add(int(p[i]))
    # uniform over the candidates: with 200 draws every candidate of a row with few of them turns up
    small = [i for i in range(n) if 0 < len(cands[i]) <= 4]
    assert small and all(seen[i] == cands[i] for i in small)
    assert len(temporal_partners(source[:0], time_ns[:0], 12.0, rng)) == 0


def test_stream_pairs_are_same_source_close_in_time(tmp_path):
    url = str(tmp_path / "p.zarr")
    n, side = 96, 4
    sources = np.array(["gill", "fsmi"])[(np.arange(n) // 6) % 2]  # blocks of 6 frames, cameras alternating
    time_ns = np.arange(n, dtype=np.int64) * 3_000_000_000  # 3 s cadence
    time_ns[40] += 3_600_000_000_000  # one frame an hour later: alone within any window
    time_ns[41:] += 7_200_000_000_000
    with ArchiveWriter(url, modality="image", sample_shape=(1, side, side), dtype="uint16", units="DN",
                       channels=["gray"], chunk_size=8, shard_chunks=3, label_names=["a"]) as w:
        w.append(np.arange(n, dtype=np.uint16)[:, None, None, None] * np.ones((1, 1, side, side), np.uint16),
                 input_index=0, time_ns=time_ns, source=list(sources), origin="synthetic", label=np.zeros(n))
    a = open_archive(url)
    cands = _brute_candidates(sources, time_ns, 10.0)
    seen_rows = []
    for batch in a.stream(range(a.num_chunks), batch_size=16, buffer_chunks=a.num_chunks, seed=1, pair_within_s=10.0):
        rows = batch.samples[:, 0, 0, 0].astype(int)
        partners = batch.pairs[:, 0, 0, 0].astype(int)
        assert batch.pairs.shape == batch.samples.shape
        assert set(batch.meta) == {"label"}  # the pairing fields are not handed out unasked
        for r, p in zip(rows, partners, strict=True):
            assert p in cands[r] if cands[r] else p == r
        seen_rows.extend(rows)
    assert sorted(seen_rows) == list(range(n))
    assert not cands[40]
    # chunks taken two at a time: partners come from the same buffer, still same source and within the window
    for batch in a.stream(range(a.num_chunks), batch_size=5, buffer_chunks=2, seed=2, pair_within_s=10.0):
        rows, partners = batch.samples[:, 0, 0, 0].astype(int), batch.pairs[:, 0, 0, 0].astype(int)
        assert all(p == r or p in cands[r] for r, p in zip(rows, partners, strict=True))
    assert all(b.pairs is None for b in a.stream([0, 1], batch_size=4))
    with pytest.raises(ValueError, match="pair_within_s"):
        next(a.stream([0], pair_within_s=-1.0))
