"""Queries end to end on a small embedded archive: by id, by file, by vector; filters; JSON; gallery."""

from __future__ import annotations

import json

import numpy as np
import pytest
from PIL import Image

from spacessl.cli import main
from spacessl.index.query import QueryError, parse_time, query
from tests.embed.fixtures import CAMERAS, LABELS, T0_NS, make_exact_index


@pytest.fixture(scope="module")
def index_dir(ray_cluster, tmp_path_factory):
    """240 frames of 4 cameras (one frame every 3 s each), embedded by the job, in an exact sharded index."""
    return make_exact_index(tmp_path_factory.mktemp("query"), n=240, chunk_size=16)[0]


def ids_of(result) -> list[int]:
    return [r["id"] for r in result.results]


def test_query_by_id_leaves_out_its_own_neighbourhood(index_dir):
    from spacessl.archive import open_archive

    a = open_archive(str(index_dir.parent / "a.zarr"))
    r = query(index_dir, id=42, k=10, dedup="30s")
    q = r.query
    assert q["kind"] == "id" and q["id"] == 42 and q["source"] == CAMERAS[42 % 4]
    assert len(r.results) == 10 and [x["rank"] for x in r.results] == list(range(1, 11))
    dist = [x["distance"] for x in r.results]
    assert dist == sorted(dist)
    t_q = int(a.read(42, 43).meta["time_ns"][0])
    for x in r.results:
        assert x["id"] != 42
        t = parse_time(x["time"])
        if x["source"] == q["source"]:
            assert abs(t - t_q) > 30 * 10**9                                # not the next frames of the query
    # at most one result per camera within ±30 s
    seen = [(x["source"], parse_time(x["time"])) for x in r.results]
    for i, (s, t) in enumerate(seen):
        assert all(not (s == s2 and abs(t - t2) <= 30 * 10**9) for s2, t2 in seen[:i])
    # the stored vector of 42 against the exact cosine distance of the listed ids
    from spacessl.embed.store import open_embeddings

    e = open_embeddings(str(index_dir.parent / "e.zarr"))
    v = e.vector(42)
    for x in r.results:
        assert abs(x["distance"] - (1 - float(e.vector(x["id"]) @ v))) < 1e-5


def test_query_by_file_equals_query_by_id(index_dir, tmp_path):
    """A PNG of an archive frame, decoded and embedded like the archive, finds the frame itself first and then the
    same neighbours as the query by id."""
    from spacessl.archive import open_archive

    a = open_archive(str(index_dir.parent / "a.zarr"))
    frame = a.read(42, 43).samples[0, 0]
    Image.fromarray(frame).save(tmp_path / "frame.png")
    by_id = query(index_dir, id=42, k=10, dedup="30s")
    by_file = query(index_dir, file=tmp_path / "frame.png", k=11, dedup="30s")
    assert by_file.query["kind"] == "file" and by_file.query["model_uri"] == str(index_dir.parent / "ckpt")
    assert by_file.results[0]["id"] == 42 and by_file.results[0]["distance"] < 1e-5
    assert ids_of(by_file)[1:] == ids_of(by_id)
    np.testing.assert_allclose([x["distance"] for x in by_file.results[1:]],
                               [x["distance"] for x in by_id.results], atol=1e-5)
    np.testing.assert_array_equal(by_file.query_sample[0, 0], frame)


def test_symmetry_views_travel_from_the_job_to_a_file_query(ray_cluster, tmp_path):
    """Embedded with 8 views, the archive's rows and a query file embed the same way: a frame, rotated by 90° or
    mirrored, finds itself first at distance 0."""
    from spacessl.archive import open_archive
    from spacessl.embed.store import open_embeddings

    idx, archive_url, _ = make_exact_index(tmp_path / "v", n=48, chunk_size=16, views=8)
    assert open_embeddings(str(idx.parent / "e.zarr")).attrs["views"] == 8
    frame = open_archive(archive_url).read(10, 11).samples[0, 0]
    for name, img in (("same", frame), ("rotated", np.rot90(frame)), ("mirrored", frame[:, ::-1])):
        Image.fromarray(np.ascontiguousarray(img)).save(tmp_path / f"{name}.png")
        r = query(idx, file=tmp_path / f"{name}.png", k=3, dedup=None)
        assert r.results[0]["id"] == 10 and r.results[0]["distance"] < 1e-5, name


def test_query_by_vector(index_dir, tmp_path):
    from spacessl.embed.store import open_embeddings

    e = open_embeddings(str(index_dir.parent / "e.zarr"))
    np.save(tmp_path / "v.npy", 3.0 * e.vector(7))
    r = query(index_dir, vector=tmp_path / "v.npy", k=5, dedup=None)
    assert r.results[0]["id"] == 7 and r.results[0]["distance"] < 1e-5
    with pytest.raises(QueryError, match="32-d"):
        query(index_dir, vector=np.ones(5), k=5)
    with pytest.raises(QueryError, match=r"shape \(2, 32\) \(64 values\) .* give one vector of shape \(32,\)"):
        query(index_dir, vector=np.ones((2, 32)), k=5)


def test_filters_pass_through(index_dir):
    """With de-duplication off and k above the number of matches, the results are exactly the matching rows."""
    from spacessl.archive import open_archive

    a = open_archive(str(index_dir.parent / "a.zarr"))
    meta = a.read(0, a.n, fields=["time_ns", "source", "label"]).meta
    since, until = T0_NS + 30 * 10**9, T0_NS + 90 * 10**9
    in_range = (meta["source"] == "gill") & (meta["time_ns"] >= since) & (meta["time_ns"] < until)
    label = int(np.bincount(meta["label"][in_range]).argmax())
    expected = set(np.flatnonzero(in_range & (meta["label"] == label)).tolist()) - {3}
    assert len(expected) >= 3
    r = query(index_dir, id=3, k=50, since="2023-11-14T22:13:50Z", until="2023-11-14T22:14:50Z", source="gill",
              label=LABELS[label], dedup=None)
    assert set(ids_of(r)) == expected
    for x in r.results:
        assert x["source"] == "gill" and x["label"] == LABELS[label]
        assert since <= parse_time(x["time"]) < until
    with pytest.raises(QueryError, match="unknown label 'aurora'.*arc, diffuse, clear"):
        query(index_dir, id=3, label="aurora")
    with pytest.raises(QueryError, match="exactly one"):
        query(index_dir, id=3, vector=np.ones(32))
    with pytest.raises(QueryError, match="ids run from 0 to 239"):
        query(index_dir, id=240)


def test_cli_json_shape_and_gallery(index_dir, tmp_path, capsys):
    out = tmp_path / "g.png"
    assert main(["query", str(index_dir), "--id", "10", "-k", "6", "--json", "--gallery", str(out)]) == 0
    doc = json.loads(capsys.readouterr().out)
    drawn = out.read_bytes()
    assert main(["query", str(index_dir), "--id", "11", "--gallery", str(out)]) == 2
    assert f"{out} already exists" in capsys.readouterr().err and out.read_bytes() == drawn
    assert main(["query", str(index_dir), "--id", "11", "-k", "6", "--gallery", str(out), "--overwrite"]) == 0
    assert out.read_bytes() != drawn
    capsys.readouterr()
    assert set(doc) == {"query", "results"}
    assert doc["query"]["kind"] == "id" and doc["query"]["id"] == 10 and doc["query"]["dedup_s"] == 30.0
    assert len(doc["results"]) == 6
    for rank, x in enumerate(doc["results"], 1):
        assert set(x) == {"rank", "id", "distance", "time", "source", "label", "origin"}
        assert x["rank"] == rank and isinstance(x["id"], int) and isinstance(x["distance"], float)
        assert x["time"].endswith("Z") and x["source"] in CAMERAS and x["label"] in LABELS
        assert x["origin"].endswith(".png")
    data = out.read_bytes()
    assert data[:8] == b"\x89PNG\r\n\x1a\n" and len(data) > 5000
    img = Image.open(out)
    assert img.size[0] > 400 and img.size[1] > 200

    assert main(["query", str(index_dir), "--id", "10", "-k", "3", "--dedup", "5min"]) == 0
    table = capsys.readouterr().out.splitlines()
    assert table[0].startswith("query: id 10") and table[1].split() == ["rank", "id", "distance", "time",
                                                                          "source", "label", "origin"]
    assert len(table) == 2 + 3
    assert main(["query", str(index_dir), "--id", "10", "--dedup", "5 fortnights"]) == 2
    assert "5min" in capsys.readouterr().err
