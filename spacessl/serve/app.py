"""The query service: a FastAPI app over one index and its archive.

Endpoints:
    GET  /                    a web page: search by id or upload, gallery of neighbours, filters; click to search on
    GET  /search              neighbours of an archive sample (id, k, since, until, source, label, dedup)
    POST /search              neighbours of an uploaded image or waveform file (multipart field ``file``)
    GET  /samples/{id}        metadata of one sample
    GET  /samples/{id}.png    the sample drawn
    GET  /health              liveness
    GET  /openapi.json        the OpenAPI spec (FastAPI)

Every input is validated: ids must be in the archive, k is bounded, uploads are bounded in size and must have a
known extension; bad input gets a 4xx with a message. The app reads nothing but the index it was given, the
embeddings and archive that index records, and the uploads it stores in its own temporary folder.
"""

from __future__ import annotations

import re
import tempfile
from concurrent.futures import ThreadPoolExecutor
from functools import lru_cache
from pathlib import Path
from typing import Any

import numpy as np
from fastapi import FastAPI, File, HTTPException, Query, Request, UploadFile
from fastapi.responses import HTMLResponse, JSONResponse, Response
from starlette.concurrency import run_in_threadpool

from spacessl.errors import SpacesslError
from spacessl.serve.render import image_png, waveform_png

MAX_K = 200
MAX_UPLOAD_BYTES = 32 * 1024 * 1024
IMAGE_SUFFIXES = {".png", ".jpg", ".jpeg", ".tif", ".tiff", ".pgm", ".pnm", ".bmp"}
WAVEFORM_SUFFIXES = {".mseed", ".miniseed", ".msd", ".sac", ".gse2", ".gse", ".seed", ".sgy", ".segy", ".wav",
                     ".q", ".sh", ".dat", ".ah", ".css", ".knet", ".kinemetrics"}
_DURATION = re.compile(r"^\s*\d+(\.\d+)?\s*(ms|s|sec|min|m|h|d)?\s*$")
PAGE = (Path(__file__).with_name("page.html")).read_text()


class Service:
    """The opened index, embeddings and archive, shared by all requests."""

    def __init__(self, index_dir: str | Path, *, model_uri: str | None = None, tracking_uri: str | None = None):
        from spacessl.embed.store import open_embeddings
        from spacessl.index.search import ShardedIndex

        self.index_dir = str(Path(index_dir).resolve())
        self.index = ShardedIndex.open(self.index_dir)
        self.manifest = dict(getattr(self.index, "manifest", {}) or {})
        self.embeddings = open_embeddings(self.manifest["embeddings_url"])
        self.archive = self.embeddings.archive()
        self.model_uri = model_uri
        self.tracking_uri = tracking_uri
        self.upload_dir = Path(tempfile.mkdtemp(prefix="spacessl-serve-"))
        # every search on one thread, in turn: FAISS and torch are multi-threaded already, and each keeps an OpenMP
        # team per thread that calls them, so requests spread over the server's threads would make several teams,
        # which then stop spinning and slow every operator (spacessl/train/threads.py)
        self.searcher = ThreadPoolExecutor(max_workers=1, thread_name_prefix="spacessl-search")
        self.sources = self.archive.names("source")

    def search(self, **kwargs: Any) -> dict[str, Any]:
        """:func:`spacessl.index.query.query` on the service's search thread (requests wait their turn)."""
        from spacessl.index.query import query

        def run() -> dict[str, Any]:
            return query(self.index, model_uri=self.model_uri, tracking_uri=self.tracking_uri, **kwargs).to_dict()

        return self.searcher.submit(run).result()


def _check_id(svc: Service, sample_id: int) -> int:
    if not 0 <= sample_id < svc.archive.n:
        raise HTTPException(404, f"id {sample_id} is not in the archive: ids run from 0 to {svc.archive.n - 1}")
    return sample_id


def _check_dedup(dedup: str | None) -> str | None:
    if dedup in (None, "", "0", "off"):
        return None
    if not _DURATION.match(dedup):
        raise HTTPException(422, f"dedup {dedup!r} is not a duration such as 30s, 5min, 2h (or 0 for off)")
    return dedup


def create_app(index_dir: str | Path, *, model_uri: str | None = None, tracking_uri: str | None = None) -> FastAPI:
    """The FastAPI app serving ``index_dir``."""
    svc = Service(index_dir, model_uri=model_uri, tracking_uri=tracking_uri)
    app = FastAPI(title="spacessl query service", version="1",
                  description="Similar samples of an archive, from a sample id or an uploaded file.")
    app.state.service = svc

    @app.exception_handler(SpacesslError)
    async def _bad_input(request: Request, exc: SpacesslError) -> JSONResponse:
        return JSONResponse(status_code=400, content={"detail": str(exc)})

    @app.exception_handler(ValueError)
    async def _bad_value(request: Request, exc: ValueError) -> JSONResponse:
        return JSONResponse(status_code=400, content={"detail": str(exc)})

    @app.get("/", response_class=HTMLResponse, summary="web page")
    def page() -> str:
        return (PAGE.replace("{{N}}", str(svc.archive.n)).replace("{{MODALITY}}", svc.archive.modality)
                .replace("{{SOURCES}}", "".join(f"<option>{s}</option>" for s in svc.sources[:500])))

    @app.get("/health", summary="liveness")
    def health() -> dict[str, Any]:
        return {"status": "ok", "n": svc.archive.n, "modality": svc.archive.modality}

    @app.get("/search", summary="neighbours of an archive sample")
    def search_by_id(id: int = Query(..., ge=0, le=2**62, description="archive row id"),  # noqa: A002
                     k: int = Query(20, ge=1, le=MAX_K), since: str | None = Query(None, max_length=64),
                     until: str | None = Query(None, max_length=64), source: str | None = Query(None, max_length=256),
                     label: str | None = Query(None, max_length=256),
                     dedup: str | None = Query("30s", max_length=32)) -> dict[str, Any]:
        _check_id(svc, id)
        return svc.search(id=id, k=k, since=since or None, until=until or None, source=source or None,
                          label=label or None, dedup=_check_dedup(dedup))

    @app.post("/search", summary="neighbours of an uploaded image or waveform file")
    async def search_by_file(file: UploadFile = File(..., description="image or waveform file"),
                             k: int = Query(20, ge=1, le=MAX_K), since: str | None = Query(None, max_length=64),
                             until: str | None = Query(None, max_length=64),
                             source: str | None = Query(None, max_length=256),
                             label: str | None = Query(None, max_length=256),
                             dedup: str | None = Query("30s", max_length=32)) -> dict[str, Any]:
        name = Path(file.filename or "upload").name
        suffix = Path(name).suffix.lower()
        allowed = IMAGE_SUFFIXES if svc.archive.modality == "image" else WAVEFORM_SUFFIXES
        if suffix not in allowed:
            raise HTTPException(415, f"upload {name!r}: expected a {svc.archive.modality} file with one of the "
                                     f"extensions {sorted(allowed)}")
        data = await file.read(MAX_UPLOAD_BYTES + 1)
        if len(data) > MAX_UPLOAD_BYTES:
            raise HTTPException(413, f"upload {name!r} is larger than {MAX_UPLOAD_BYTES // 2**20} MiB")
        if not data:
            raise HTTPException(422, f"upload {name!r} is empty")
        with tempfile.NamedTemporaryFile(dir=svc.upload_dir, suffix=suffix, delete=True) as tmp:
            tmp.write(data)
            tmp.flush()
            try:
                out = await run_in_threadpool(svc.search, file=tmp.name, k=k, since=since or None,
                                              until=until or None, source=source or None, label=label or None,
                                              dedup=_check_dedup(dedup))
            except SpacesslError as exc:
                raise HTTPException(422, f"upload {name!r}: {exc}") from exc
            except Exception as exc:  # a file the decoders cannot read is bad input, not a server fault
                raise HTTPException(422, f"upload {name!r} could not be read as a {svc.archive.modality} "
                                         f"file: {type(exc).__name__}: {exc}") from exc
        out["query"]["file"] = name
        return out

    @app.get("/samples/{sample_id}.png", summary="the sample drawn", response_class=Response)
    def sample_png(sample_id: int) -> Response:
        return Response(_png(sample_id), media_type="image/png",
                        headers={"Cache-Control": "public, max-age=86400"})

    @lru_cache(maxsize=2048)
    def _png(sample_id: int) -> bytes:
        _check_id(svc, sample_id)
        sample = svc.archive.read(sample_id, sample_id + 1, fields=[]).samples[0]
        if svc.archive.modality == "image":
            return image_png(sample)
        return waveform_png(sample, channels=svc.archive.channels,
                            sampling_rate_hz=float(svc.archive.attrs["sampling_rate_hz"]))

    @app.get("/samples/{sample_id}", summary="metadata of one sample")
    def sample_meta(sample_id: int) -> dict[str, Any]:
        from spacessl.index.query import iso_utc

        _check_id(svc, sample_id)
        batch = svc.archive.read(sample_id, sample_id + 1, fields=None)
        meta: dict[str, Any] = {"id": sample_id}
        for key, values in batch.meta.items():
            v = values[0]
            if key == "time_ns":
                meta["time"] = iso_utc(int(v))
            elif key == "label":
                names = svc.archive.label_names or []
                meta["label"] = names[int(v)] if 0 <= int(v) < len(names) else None
            else:
                meta[key] = v.item() if isinstance(v, np.generic) else v
        return meta

    return app
