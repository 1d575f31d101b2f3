"""Embeddings store: per-shard writes with markers, resume, refusal to overwrite, streaming reads."""

from __future__ import annotations

import numpy as np
import pytest

from spacessl.embed.store import EmbeddingsError, EmbeddingsWriter, open_embeddings


def _writer(url, **kw):
    args = dict(n=50, dim=4, dtype="float32", chunk_size=8, shard_chunks=2,
                attrs={"archive_url": "a.zarr", "model_uri": "m"})
    args.update(kw)
    return EmbeddingsWriter(str(url), **args)


def test_shards_markers_and_resume(tmp_path):
    url = tmp_path / "e.zarr"
    w = _writer(url)
    assert w.num_shards == 4 and w.shard_range(3) == (48, 50)
    rng = np.random.default_rng(0)
    vecs = rng.normal(size=(50, 4)).astype(np.float32)
    for s in (0, 2):
        a, b = w.shard_range(s)
        w.write_shard(s, np.arange(a, b), vecs[a:b])
    with pytest.raises(EmbeddingsError, match=r"shards \[1, 3\]"):
        w.close()
    with pytest.raises(EmbeddingsError, match="unfinished"):
        open_embeddings(str(url))
    w = _writer(url)  # resumes
    assert w.done_shards() == [0, 2]
    for s in (1, 3):
        a, b = w.shard_range(s)
        w.write_shard(s, np.arange(a, b), vecs[a:b])
    w.close()
    e = open_embeddings(str(url))
    got = np.concatenate([v for _, v in e.iter_shards()])
    np.testing.assert_array_equal(got, vecs)
    np.testing.assert_array_equal(e.ids.compute(), np.arange(50))
    np.testing.assert_array_equal(e.vector(7), vecs[7])
    with pytest.raises(EmbeddingsError, match="--overwrite"):
        _writer(url)
    with pytest.raises(EmbeddingsError, match="different settings"):
        _writer(tmp_path / "e2.zarr").write_shard(0, np.arange(16), vecs[:16]) or _writer(tmp_path / "e2.zarr", dim=8)
    assert _writer(url, overwrite=True).done_shards() == []


def test_kill_during_set_up_resumes(tmp_path, monkeypatch):
    """The store's first write carries its marker: a kill before every array exists (an error after the first,
    here) leaves a store that the same settings start afresh, and other settings are still refused."""
    import zarr

    url = tmp_path / "e.zarr"
    original = zarr.Group.create_array

    def failing(self, name, **kwargs):
        if name == "ids":
            raise RuntimeError("killed during set-up")
        return original(self, name, **kwargs)

    monkeypatch.setattr(zarr.Group, "create_array", failing)
    with pytest.raises(RuntimeError, match="killed during set-up"):
        _writer(url)
    monkeypatch.undo()
    with pytest.raises(EmbeddingsError, match="unfinished"):
        open_embeddings(str(url))
    with pytest.raises(EmbeddingsError, match="different settings"):
        _writer(url, dim=8)
    w = _writer(url)
    vecs = np.arange(200, dtype=np.float32).reshape(50, 4)
    for s in range(w.num_shards):
        a, b = w.shard_range(s)
        w.write_shard(s, np.arange(a, b), vecs[a:b])
    w.close()
    np.testing.assert_array_equal(np.concatenate([v for _, v in open_embeddings(str(url)).iter_shards()]), vecs)


def test_folder_of_other_files_is_never_touched_without_overwrite(tmp_path):
    url = tmp_path / "e.zarr"
    url.mkdir()
    (url / "notes.txt").write_text("field notes")
    with pytest.raises(EmbeddingsError, match="not a Zarr.*--overwrite"):
        _writer(url)
    assert (url / "notes.txt").read_text() == "field notes"
    assert _writer(url, overwrite=True).done_shards() == [] and not (url / "notes.txt").exists()
    a_file = tmp_path / "f.zarr"
    a_file.write_text("not a folder")
    with pytest.raises(EmbeddingsError, match="not a Zarr.*--overwrite"):
        _writer(a_file)
    assert a_file.read_text() == "not a folder"
    assert _writer(a_file, overwrite=True).done_shards() == []


def test_wrong_shard_size_is_named(tmp_path):
    w = _writer(tmp_path / "e.zarr")
    with pytest.raises(EmbeddingsError, match="shard 1"):
        w.write_shard(1, np.arange(3), np.zeros((3, 4)))
