"""The query service's JSON API: answers, validation (4xx with a message, never 5xx), sample rendering."""

from __future__ import annotations

import io

import numpy as np
import pytest
from fastapi.testclient import TestClient
from PIL import Image


@pytest.fixture(scope="module")
def client(app):
    with TestClient(app, raise_server_exceptions=False) as c:
        yield c


def test_search_by_id_matches_the_library(client, served_index):
    from spacessl.index.query import query

    r = client.get("/search", params={"id": 5, "k": 7, "dedup": "0"})
    assert r.status_code == 200, r.text
    body = r.json()
    expected = query(served_index[0], id=5, k=7, dedup=None).to_dict()
    assert [x["id"] for x in body["results"]] == [x["id"] for x in expected["results"]]
    assert body["query"]["id"] == 5 and len(body["results"]) == 7
    assert {"rank", "id", "distance", "time", "source", "label", "origin"} <= set(body["results"][0])
    assert 5 not in [x["id"] for x in body["results"]]


def test_filters_and_dedup(client):
    r = client.get("/search", params={"id": 0, "k": 10, "source": "fsmi", "dedup": "30s"})
    assert r.status_code == 200, r.text
    res = r.json()["results"]
    assert res and all(x["source"] == "fsmi" for x in res)
    times = sorted(np.datetime64(x["time"].rstrip("Z")) for x in res)
    assert all((b - a) > np.timedelta64(30, "s") for a, b in zip(times, times[1:]))


@pytest.mark.parametrize("params, status, words", [
    ({"id": 10**6}, 404, "not in the archive"),
    ({"id": -1}, 422, ""),
    ({"id": 1, "k": 0}, 422, ""),
    ({"id": 1, "k": 100000}, 422, ""),
    ({"id": 1, "dedup": "soon"}, 422, "not a duration"),
    ({"id": 1, "source": "nowhere"}, 400, "not in this index"),
    ({"id": 1, "since": "yesterday-ish"}, 400, ""),
    ({"k": 3}, 422, ""),
])
def test_bad_queries_get_4xx_with_a_message(client, params, status, words):
    r = client.get("/search", params=params)
    assert r.status_code == status, r.text
    assert words in r.text


def _png_of_frame(frame: np.ndarray) -> bytes:
    buf = io.BytesIO()
    Image.fromarray(frame[0].astype(np.uint16)).save(buf, format="PNG")
    return buf.getvalue()


def test_upload_equals_query_by_id(client, served_index):
    from spacessl.archive import open_archive

    frame = open_archive(served_index[1]).read(17, 18).samples[0]
    r = client.post("/search", params={"k": 5, "dedup": "0"},
                    files={"file": ("frame.png", _png_of_frame(frame), "image/png")})
    assert r.status_code == 200, r.text
    by_file = [x["id"] for x in r.json()["results"]]
    by_id = [x["id"] for x in client.get("/search", params={"id": 17, "k": 5, "dedup": "0"}).json()["results"]]
    assert by_file[0] == 17 and by_file[1:] == by_id[:4]


@pytest.mark.parametrize("name, data, status", [
    ("notes.txt", b"hello", 415),
    ("broken.png", b"\x89PNG\r\n\x1a\n garbage", 422),
    ("empty.png", b"", 422),
])
def test_bad_uploads(client, name, data, status):
    r = client.post("/search", files={"file": (name, data, "application/octet-stream")})
    assert r.status_code == status, r.text
    assert r.json()["detail"]


def test_upload_size_limit(client, monkeypatch):
    import spacessl.serve.app as app_module
    monkeypatch.setattr(app_module, "MAX_UPLOAD_BYTES", 1000)
    r = client.post("/search", files={"file": ("big.png", b"x" * 5000, "image/png")})
    assert r.status_code == 413


def test_samples_png_and_metadata(client):
    r = client.get("/samples/3.png")
    assert r.status_code == 200 and r.headers["content-type"] == "image/png"
    img = Image.open(io.BytesIO(r.content))
    assert img.size == (256, 256)
    meta = client.get("/samples/3").json()
    assert meta["id"] == 3 and meta["source"] in {"gill", "fsmi", "rank", "inuv"} and meta["time"].endswith("Z")
    assert client.get("/samples/99999.png").status_code == 404
    assert client.get("/samples/abc").status_code == 422


def test_page_and_openapi(client):
    page = client.get("/")
    assert page.status_code == 200 and "<form" in page.text and "192 image samples" in page.text
    spec = client.get("/openapi.json").json()
    assert {"/search", "/samples/{sample_id}", "/samples/{sample_id}.png"} <= set(spec["paths"])


def test_searches_run_on_one_thread_whichever_thread_serves_the_request(app, monkeypatch):
    # torch and FAISS keep an OpenMP team per calling thread; several teams slow each other (spacessl/train/threads.py)
    import threading

    import spacessl.index.query as q

    svc = app.state.service
    seen: list[int] = []
    real = q.query

    def noting(*args, **kwargs):
        seen.append(threading.get_ident())
        return real(*args, **kwargs)

    monkeypatch.setattr(q, "query", noting)
    answers: list[list[int]] = []
    callers = [threading.Thread(target=lambda: answers.append([x["id"] for x in svc.search(id=5, k=3)["results"]]))
               for _ in range(3)]
    for t in callers:
        t.start()
    for t in callers:
        t.join()
    assert len(seen) == 3 and len(set(seen)) == 1 and len(set(map(tuple, answers))) == 1
