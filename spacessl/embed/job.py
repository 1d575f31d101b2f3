"""The bulk embedding job: every archive shard → one embeddings shard, on a pool of Ray actors.

::

    spacessl embed --model models:/aurora@current --archive aurora.zarr --out aurora.emb.zarr

How it runs:

- one task per archive shard (a contiguous run of whole chunks), handed out by a :class:`ray.util.ActorPool`;
- each actor loads the encoder once (from the model URI, so the weights never pass through the driver), opens the
  archive itself and reads its shard directly from storage with the archive's prefetching reader;
- the actor applies training's evaluation preprocessing (:class:`spacessl.embed.embedder.Embedder`), L2-normalises
  and writes the shard's vectors and global ids in one atomic step into the embeddings store, which then marks the
  shard done;
- GPUs: one actor per GPU (``num_gpus=1``), fp16 autocast. CPUs: actors ask Ray for a *fraction* of a CPU per
  torch thread (:data:`CPU_REQUEST_PER_THREAD`) and set their thread count explicitly, so that the pool schedules
  on a small node beside whatever else holds CPUs there (a whole-CPU request per actor can wait forever on a
  2-CPU node);
- killed and rerun, finished shards are skipped; every shard is embedded in the same batches whichever actor
  takes it, so the result is identical to an uninterrupted run. The store is marked complete last;
- the driver only schedules and shows progress (samples, rate, ETA); it never holds samples or vectors;
- once complete, the store is recorded on the model's MLflow training run (tag ``lineage.embeddings.<key>``, see
  :func:`spacessl.tracking.record_lineage`) when the model is an MLflow model.
"""

from __future__ import annotations

import math
import os
import sys
import time
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from spacessl.errors import SpacesslError

#: Ray CPUs requested per torch thread of a CPU actor (fractional: see the module docstring).
CPU_REQUEST_PER_THREAD = 0.5
#: Ray CPUs requested by a GPU actor (it only feeds the GPU).
GPU_ACTOR_CPUS = 0.5
#: torch threads per CPU actor when ``workers`` is not given (larger actors on larger nodes).
MAX_THREADS_PER_ACTOR = 4
#: seconds between progress refreshes.
PROGRESS_EVERY_S = 0.5
DTYPES = ("float16", "float32")


class EmbedJobError(SpacesslError):
    """The embedding job cannot start or continue (bad arguments, an output from another model or archive)."""


@dataclass
class EmbedReport:
    """What an embedding run did (printed by the CLI)."""

    url: str
    n: int
    dim: int
    dtype: str
    num_shards: int
    shards_skipped: int
    shards_embedded: int
    samples_embedded: int
    seconds: float
    workers: int
    device: str
    threads_per_worker: int
    startup_s: float = 0.0  #: from the call until the first actor had loaded the model
    attrs: dict[str, Any] = field(default_factory=dict)

    @property
    def samples_per_s(self) -> float:
        return self.samples_embedded / self.seconds if self.seconds > 0 else 0.0

    def summary(self) -> str:
        work = max(1e-9, self.seconds - self.startup_s)
        head = (f"{self.url}: {self.n} vectors of {self.dim} × {self.dtype}; embedded {self.samples_embedded} "
                f"samples ({self.shards_embedded} shards) in {self.seconds:.1f} s on {self.workers} {self.device} "
                f"worker(s)" + (f" × {self.threads_per_worker} thread(s)" if self.device == "cpu" else "")
                + f"\n  start-up (Ray, actors, model load) {self.startup_s:.1f} s, then "
                f"{self.samples_embedded / work:.0f} samples/s")
        if self.shards_skipped:
            head += f"\n  resumed: {self.shards_skipped} of {self.num_shards} shards were already done"
        views = int(self.attrs.get("views", 1))
        if views > 1:
            head += f"\n  each vector the mean over {views} symmetric views of its sample"
        return head + f"\n  model {self.attrs.get('model_uri')} (run {self.attrs.get('run_id') or '-'})"


def _abs_url(url: str) -> str:
    """Local paths made absolute (Ray workers may run elsewhere); fsspec URLs unchanged."""
    url = str(url).rstrip("/")
    if "://" in url:
        return url[len("file://"):] if url.startswith("file://") else url
    return os.path.abspath(os.path.expanduser(url))


def _model_uri(uri: str) -> str:
    """``models:/``/``runs:/`` URIs unchanged; a checkpoint path made absolute."""
    if uri.startswith(("models:/", "runs:/")) or ("://" in uri and not uri.startswith("file://")):
        return uri
    return _abs_url(uri)


def plan_workers(num_shards: int, *, cpus: float, gpus: float, workers: int | None) -> tuple[str, int, int]:
    """(device, actors, torch threads per actor) for a cluster with ``cpus`` and ``gpus``.

    GPUs: one actor per GPU (or ``workers``, at most the GPUs). CPUs: ``workers`` actors sharing the CPUs, by
    default as few actors as keep each at most :data:`MAX_THREADS_PER_ACTOR` threads. The plan depends only on the
    cluster and the archive (never on how many shards are left), so a resumed run computes the same way.
    """
    if workers is not None and workers < 1:
        raise EmbedJobError(f"--workers must be >= 1, got {workers}")
    if gpus >= 1:
        n = int(gpus) if workers is None else min(int(workers), int(gpus))
        return "cuda", max(1, min(n, num_shards)), 1
    total = max(1, int(cpus))
    n = max(1, math.ceil(total / MAX_THREADS_PER_ACTOR)) if workers is None else int(workers)
    threads = max(1, total // n)
    return "cpu", max(1, min(n, max(1, num_shards))), threads


class EmbedActor:
    """One worker of the pool: the encoder, the archive and the store, opened once; embeds whole shards.

    The actor answers :meth:`progress` while it embeds (Ray runs its methods on a pool of threads), but every torch
    operator runs on one thread of its own: PyTorch's OpenMP keeps a team of worker threads per thread that starts
    parallel operators, and with two teams on a CPU actor's cores every operator waits for sleeping workers
    (``spacessl/train/threads.py``, ``benchmarks/omp_teams.py``).
    """

    def __init__(self, model_uri: str, archive_url: str, *, tracking_uri: str | None, batch_size: int,
                 device: str, threads: int, views: int = 1) -> None:
        from concurrent.futures import ThreadPoolExecutor

        from spacessl.archive import open_archive

        self._torch = ThreadPoolExecutor(max_workers=1, thread_name_prefix="spacessl-embed")
        self.archive = open_archive(archive_url)
        self.embedder = self._torch.submit(self._load, model_uri, tracking_uri=tracking_uri, device=device,
                                           threads=threads, views=views).result()
        self.batch_size = int(batch_size)
        self.rows = 0          # samples embedded by this actor so far (read by progress() from another thread)
        self._store: Any = None

    def _load(self, model_uri: str, *, tracking_uri: str | None, device: str, threads: int, views: int) -> Any:
        import torch

        from spacessl.embed.embedder import Embedder

        if device == "cpu":
            torch.set_num_threads(threads)
        return Embedder.load(model_uri, self.archive, device=device, tracking_uri=tracking_uri, views=views)

    def describe(self) -> dict[str, Any]:
        """Embedding width (probed on the archive's first sample) and what the model records about itself."""
        from spacessl.tracking import plain_info

        dim = self._torch.submit(self.embedder.probe, self.archive.read(0, 1, fields=[]).samples).result()
        info = self.embedder.info
        return {"dim": dim, "info": plain_info(info), "run_id": str(info.get("run_id") or "")}

    def progress(self) -> int:
        return self.rows

    def embed_shard(self, out_url: str, shard: int, dtype: str) -> tuple[int, int]:
        """Embed archive shard ``shard`` and commit it to the store at ``out_url``; returns (shard, rows)."""
        return self._torch.submit(self._embed_shard, out_url, shard, dtype).result()

    def _embed_shard(self, out_url: str, shard: int, dtype: str) -> tuple[int, int]:
        from spacessl.embed.store import EmbeddingsWriter

        if self._store is None:
            self._store = EmbeddingsWriter.open(out_url)
        a = self.archive
        start, stop = a.shard_range(shard)
        chunks = list(range(start // a.chunk_size, -(-stop // a.chunk_size)))
        vectors = np.empty((stop - start, self._store.dim), dtype=dtype)
        filled = 0
        stream = a.stream(chunks, batch_size=self.batch_size, shuffle=False, fields=(), prefetch=2)
        try:
            for batch in stream:  # batches are cut from the shard's start: the same whichever actor runs it
                v = self.embedder(batch.samples)
                vectors[batch.ids - start] = v.astype(dtype, copy=False)
                filled += len(batch)
                self.rows += len(batch)
        finally:
            stream.close()
        if filled != stop - start:
            raise EmbedJobError(f"shard {shard} of {a.url}: read {filled} rows, expected {stop - start}")
        self._store.write_shard(shard, np.arange(start, stop, dtype=np.int64), vectors)
        return shard, stop - start


def preflight(model_uri: str, archive: Any, tracking_uri: str | None) -> dict[str, Any]:
    """What the model records about itself, read without loading weights, checked against ``archive``: a wrong
    URI, a missing checkpoint or a model for other samples fails here with a clear error, before any actor starts."""
    from spacessl import tracking
    from spacessl.embed.embedder import check_compatible

    info = tracking.read_model_info(model_uri, tracking_uri=tracking_uri)
    check_compatible(archive, info, model_uri)
    return info


def check_output(out_url: str, *, overwrite: bool, provenance: dict[str, Any]) -> None:
    """Fail early (before actors start) when ``out_url`` is a complete store, or an unfinished one from another
    model or archive, and ``overwrite`` is not set. The store's writer checks again when it opens."""
    from spacessl.archive import store as st
    from spacessl.embed.store import open_embeddings, recorded

    if overwrite or not st.exists(out_url):
        return
    try:
        attrs = open_embeddings(out_url, require_complete=False).attrs
    except SpacesslError as exc:
        raise EmbedJobError(f"{out_url} exists and is not an embeddings store ({exc}); choose another --out or "
                            "pass --overwrite") from None
    if attrs.get("complete"):
        raise EmbedJobError(f"{out_url} is a complete embeddings store; pass --overwrite to replace it")
    diffs = [k for k, v in provenance.items() if recorded(attrs, k) != v]
    if diffs:
        raise EmbedJobError(f"{out_url} is an unfinished embeddings store made with another {', '.join(diffs)} "
                            f"({', '.join(str(attrs.get(k)) for k in diffs)}); rerun with the same --model and "
                            "--archive to resume it, or pass --overwrite")


def _user_error(exc: BaseException) -> BaseException:
    """The spacessl error inside a Ray task error (so the CLI prints its message, not a remote traceback)."""
    cause = getattr(exc, "cause", None)
    return cause if isinstance(cause, SpacesslError) else exc


def _ray_init(ray_address: str | None) -> bool:
    """Connect to Ray (``ray_address``, else the current or $RAY_ADDRESS cluster, else a local one); True if this
    call started the connection (and should end it)."""
    import ray

    if ray.is_initialized():
        return False
    ray.init(address=ray_address or None, log_to_driver=True, configure_logging=False)
    return True


def embed_archive(model_uri: str, archive_url: str, out_url: str, *, workers: int | None = None,
                  batch_size: int = 256, dtype: str = "float32", overwrite: bool = False,
                  ray_address: str | None = None, progress: bool = True,
                  tracking_uri: str | None = None, views: int = 1) -> EmbedReport:
    """Embed every sample of ``archive_url`` with the encoder ``model_uri`` into the embeddings store ``out_url``.

    Args:
        model_uri: ``models:/NAME/VERSION``, ``models:/NAME@alias``, ``runs:/RUN_ID/model`` or a checkpoint path.
        archive_url: a complete archive (local path or fsspec URL).
        out_url: the embeddings store to write (Zarr v3 group). An unfinished store from the same model and archive
            is resumed; a complete one is an error unless ``overwrite``.
        workers: actors (default: one per GPU, else CPUs / :data:`MAX_THREADS_PER_ACTOR`, at least one).
        batch_size: samples per forward pass.
        dtype: stored vector type, "float16" or "float32" (vectors are computed and normalised in float32).
        overwrite: replace an existing store.
        ray_address: Ray cluster to use (default: the current one, $RAY_ADDRESS, or a new local one).
        progress: show a tqdm bar in samples with rate and ETA.
        tracking_uri: MLflow store for ``models:/`` and ``runs:/`` URIs (default: $MLFLOW_TRACKING_URI or the
            local store).
        views: symmetric copies of each sample averaged (:mod:`spacessl.embed.views`: 1, 4 or 8 for frames, 1 or
            2 for waveforms); recorded in the store, so that queries by file embed the same way.
    Returns:
        An :class:`EmbedReport`.
    """
    import ray
    from ray.util import ActorPool
    from tqdm.auto import tqdm

    from spacessl.archive import open_archive
    from spacessl.embed.store import EmbeddingsWriter
    from spacessl.embed.views import check_views

    if dtype not in DTYPES:
        raise EmbedJobError(f"dtype {dtype!r} is not one of {list(DTYPES)}")
    if batch_size < 1:
        raise EmbedJobError(f"batch size must be >= 1, got {batch_size}")
    archive_url, out_url, model_uri = _abs_url(archive_url), _abs_url(out_url), _model_uri(model_uri)
    if model_uri.startswith(("models:/", "runs:/")) and tracking_uri is None:
        from spacessl.tracking import resolve_tracking_uri

        tracking_uri = resolve_tracking_uri()
    archive = open_archive(archive_url)
    if archive.n == 0:
        raise EmbedJobError(f"{archive_url} holds no samples; nothing to embed")
    views = check_views(views, archive.modality)
    preflight(model_uri, archive, tracking_uri)
    fingerprint = archive.fingerprint()
    check_output(out_url, overwrite=overwrite, provenance={"model_uri": model_uri, "archive_url": archive_url,
                                                            "archive_fingerprint": fingerprint, "views": views})
    t0 = time.perf_counter()
    started = _ray_init(ray_address)
    actors: list[Any] = []
    try:
        res = ray.cluster_resources()
        device, n_actors, threads = plan_workers(archive.num_shards, cpus=res.get("CPU", 1.0),
                                                 gpus=res.get("GPU", 0.0), workers=workers)
        if device == "cuda":
            opts: dict[str, Any] = {"num_gpus": 1, "num_cpus": GPU_ACTOR_CPUS}
        else:
            opts = {"num_gpus": 0, "num_cpus": CPU_REQUEST_PER_THREAD * threads}
        remote = ray.remote(max_concurrency=2, max_restarts=2, max_task_retries=2)(EmbedActor)
        actors = [remote.options(**opts).remote(model_uri, archive_url, tracking_uri=tracking_uri,
                                                batch_size=batch_size, device=device, threads=threads,
                                                views=views)
                  for _ in range(n_actors)]
        try:
            desc = ray.get(actors[0].describe.remote())
        except ray.exceptions.RayTaskError as exc:
            raise _user_error(exc) from None
        startup_s = time.perf_counter() - t0
        attrs = {"model_uri": model_uri, "run_id": desc["run_id"], "archive_url": archive_url,
                 "archive_fingerprint": fingerprint, "model_info": desc["info"], "views": views}
        if tracking_uri:
            attrs["tracking_uri"] = tracking_uri  # where queries find the model again
        writer = EmbeddingsWriter(out_url, n=archive.n, dim=int(desc["dim"]), dtype=dtype,
                                  chunk_size=archive.chunk_size, shard_chunks=archive.shard_chunks, attrs=attrs,
                                  overwrite=overwrite)
        done = set(writer.done_shards())
        todo = [s for s in range(archive.num_shards) if s not in done]
        rows_done = sum(_rows(archive, s) for s in done)
        if progress:
            print(f"embed: {archive.n} samples in {archive.num_shards} shards of {archive.url} → {out_url} "
                  f"({len(done)} shards already done) on {n_actors} {device} actor(s)"
                  + (f" × {threads} thread(s)" if device == "cpu" else ""), file=sys.stderr, flush=True)
        bar = tqdm(total=archive.n, initial=rows_done, unit="sample", unit_scale=True, desc="embed",
                   disable=not progress, smoothing=0.1, dynamic_ncols=True)
        embedded = 0
        try:
            pool = ActorPool(actors)
            for s in todo:
                pool.submit(lambda actor, s: actor.embed_shard.remote(out_url, s, dtype), s)
            while pool.has_next():
                try:
                    _, rows = pool.get_next_unordered(timeout=PROGRESS_EVERY_S)
                    embedded += rows
                except TimeoutError:
                    pass
                except ray.exceptions.RayTaskError as exc:
                    raise _user_error(exc) from None
                shown = min(archive.n, rows_done + max(embedded, _live_rows(actors)))
                if shown > bar.n:
                    bar.update(shown - bar.n)
            bar.update(rows_done + embedded - bar.n)
        finally:
            bar.close()
        writer.close()
        from spacessl.tracking import record_lineage

        record_lineage(model_uri, "embeddings", out_url,
                       {"archive_url": archive_url, "archive_fingerprint": fingerprint, "n": archive.n,
                        "dim": int(desc["dim"]), "dtype": dtype},
                       tracking_uri=tracking_uri, run_id=desc["run_id"])
        return EmbedReport(url=out_url, n=archive.n, dim=int(desc["dim"]), dtype=dtype,
                           num_shards=archive.num_shards, shards_skipped=len(done), shards_embedded=len(todo),
                           samples_embedded=embedded, seconds=time.perf_counter() - t0, workers=n_actors,
                           device=device, threads_per_worker=threads, startup_s=startup_s, attrs=attrs)
    finally:
        for actor in actors:
            ray.kill(actor, no_restart=True)
        if started:
            ray.shutdown()


def _rows(archive: Any, shard: int) -> int:
    start, stop = archive.shard_range(shard)
    return stop - start


def _live_rows(actors: list[Any]) -> int:
    """Samples embedded so far by all actors (0 for an actor that does not answer in time)."""
    import ray

    refs = [a.progress.remote() for a in actors]
    ready, _ = ray.wait(refs, num_returns=len(refs), timeout=PROGRESS_EVERY_S)
    total = 0
    for ref in ready:
        try:
            total += int(ray.get(ref))
        except Exception:  # noqa: BLE001 - a restarting actor just does not count this time
            pass
    return total
