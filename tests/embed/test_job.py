"""The bulk embedding job: complete, normalised, resumable with a bit-identical result."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path

import numpy as np
import pytest
import zarr

from spacessl.embed.job import EmbedActor, EmbedJobError, embed_archive, plan_workers
from tests.embed.fixtures import make_image_archive, save_tiny_encoder

REPO = Path(__file__).resolve().parents[2]


def _done(url: Path) -> int:
    d = url / "done"
    return len(os.listdir(d)) if d.is_dir() else 0


def _read(url: Path) -> tuple[np.ndarray, np.ndarray, dict]:
    g = zarr.open_group(str(url), mode="r")
    return g["vectors"][:], g["ids"][:], dict(g.attrs)


def test_plan_workers():
    assert plan_workers(10, cpus=2, gpus=0, workers=None) == ("cpu", 1, 2)
    assert plan_workers(10, cpus=16, gpus=0, workers=None) == ("cpu", 4, 4)
    assert plan_workers(10, cpus=2, gpus=0, workers=2) == ("cpu", 2, 1)
    assert plan_workers(10, cpus=32, gpus=4, workers=None) == ("cuda", 4, 1)
    assert plan_workers(2, cpus=32, gpus=4, workers=None) == ("cuda", 2, 1)
    with pytest.raises(EmbedJobError):
        plan_workers(10, cpus=2, gpus=0, workers=0)


class _Recording:
    """The actor's real embedder, noting the thread of every call."""

    def __init__(self, inner):
        self.inner, self.threads = inner, set()

    def __call__(self, x):
        self.threads.add(threading.get_ident())
        return self.inner(x)

    def probe(self, x):
        self.threads.add(threading.get_ident())
        return self.inner.probe(x)

    def __getattr__(self, name):
        return getattr(self.inner, name)


def _on_new_thread(fn, *args):
    out: list = []
    t = threading.Thread(target=lambda: out.append((threading.get_ident(), fn(*args))))
    t.start()
    t.join()
    return out[0]


def test_actor_runs_its_torch_work_on_one_thread_whichever_thread_calls(tmp_path):
    """Ray calls a threaded actor's methods on any of its threads; the encoder must still run on one thread only
    (a second OpenMP team would slow every operator: spacessl/train/threads.py)."""
    import torch

    from spacessl.archive import open_archive
    from spacessl.embed.embedder import Embedder
    from spacessl.embed.store import EmbeddingsWriter, open_embeddings

    archive = make_image_archive(tmp_path / "a.zarr", n=64, size=32, chunk_size=16, shard_chunks=2)  # 2 shards
    ckpt = save_tiny_encoder(tmp_path / "ckpt")
    actor = EmbedActor(ckpt, archive, tracking_uri=None, batch_size=16, device="cpu", threads=2)
    worker, threads = actor._torch.submit(lambda: (threading.get_ident(), torch.get_num_threads())).result()
    assert threads == 2
    rec = actor.embedder = _Recording(actor.embedder)

    callers = set()
    caller, desc = _on_new_thread(actor.describe)
    callers.add(caller)
    out_url = str(tmp_path / "e.zarr")
    EmbeddingsWriter(out_url, n=64, dim=desc["dim"], dtype="float32", chunk_size=16, shard_chunks=2, attrs={})
    for shard in (0, 1):
        caller, done = _on_new_thread(actor.embed_shard, out_url, shard, "float32")
        callers.add(caller)
        assert done == (shard, 32)
    assert rec.threads == {worker} and worker not in callers

    a = open_archive(archive)
    reference = Embedder.load(ckpt, a, device="cpu")(a.read(0, 64, fields=[]).samples)
    ids, got = open_embeddings(out_url, require_complete=False).read(0, 64)
    np.testing.assert_array_equal(ids, np.arange(64))
    np.testing.assert_allclose(got, reference, rtol=0, atol=1e-6)


def test_kill_and_resume_is_identical(ray_cluster, tmp_path, capsys):
    """SIGKILL the job partway, rerun it: finished shards are skipped and the vectors equal an uninterrupted run's
    bit for bit."""
    archive = make_image_archive(tmp_path / "a.zarr", n=384, size=32, chunk_size=16, shard_chunks=2)  # 12 shards
    ckpt = save_tiny_encoder(tmp_path / "ckpt")
    ref_url, out_url = tmp_path / "ref.zarr", tmp_path / "out.zarr"

    ref = embed_archive(ckpt, archive, str(ref_url), batch_size=16, progress=False)
    assert ref.shards_embedded == ref.num_shards == 12 and ref.samples_embedded == 384
    vectors, ids, attrs = _read(ref_url)
    assert vectors.shape == (384, 32) and vectors.dtype == np.float32
    np.testing.assert_array_equal(ids, np.arange(384))
    np.testing.assert_allclose(np.linalg.norm(vectors, axis=1), 1.0, atol=1e-5)
    assert attrs["complete"] and attrs["dim"] == 32 and attrs["dtype"] == "float32"
    assert attrs["model_uri"] == ckpt and attrs["run_id"] == "0123456789abcdef"
    assert attrs["archive_url"] == archive and len(attrs["archive_fingerprint"]) == 16

    # the same job as a separate driver on the same cluster, killed after a few shards
    address = ray_cluster.get_runtime_context().gcs_address
    proc = subprocess.Popen([sys.executable, str(REPO / "jobs" / "embed.py"), "--model", ckpt, "--archive", archive,
                             "--out", str(out_url), "--batch", "16", "--ray-address", address, "--no-progress"],
                            cwd=REPO, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    deadline = time.time() + 300
    while _done(out_url) < 3 and proc.poll() is None and time.time() < deadline:
        time.sleep(0.02)
    proc.send_signal(signal.SIGKILL)
    proc.wait()
    err = proc.stderr.read().decode()
    killed_at = _done(out_url)
    assert 1 <= killed_at < 12, f"job not killed partway (done={killed_at}); stderr: {err[-2000:]}"
    assert not zarr.open_group(str(out_url), mode="r").attrs.get("complete")
    time.sleep(2.0)  # let Ray reap the dead driver's actors

    resumed = embed_archive(ckpt, archive, str(out_url), batch_size=16, progress=False)
    assert resumed.shards_skipped >= killed_at and resumed.shards_skipped + resumed.shards_embedded == 12
    got, got_ids, got_attrs = _read(out_url)
    assert got_attrs["complete"]
    np.testing.assert_array_equal(got_ids, ids)
    assert got.tobytes() == vectors.tobytes()

    # a complete store is not replaced unless asked
    from spacessl.cli import main

    assert main(["embed", "--model", ckpt, "--archive", archive, "--out", str(out_url), "--no-progress"]) == 2
    assert "--overwrite" in capsys.readouterr().err


def test_bad_input_fails_before_any_actor_starts(tmp_path):
    from spacessl.embed.embedder import EmbedError
    from spacessl.train.checkpoint import CheckpointError

    archive = make_image_archive(tmp_path / "a.zarr", n=16, size=32, chunk_size=16)
    rgb = save_tiny_encoder(tmp_path / "rgb", in_channels=3)
    with pytest.raises(EmbedError, match="takes 3 channels .* has 1"):
        embed_archive(rgb, archive, str(tmp_path / "e.zarr"), progress=False)
    waves = save_tiny_encoder(tmp_path / "waves", modality="waveform", in_channels=1)
    with pytest.raises(EmbedError, match="trained on waveform samples .* trained on an image archive"):
        embed_archive(waves, archive, str(tmp_path / "e.zarr"), progress=False)
    with pytest.raises(CheckpointError, match="does not exist"):
        embed_archive(str(tmp_path / "nowhere"), archive, str(tmp_path / "e.zarr"), progress=False)
    with pytest.raises(EmbedJobError, match="dtype"):
        embed_archive(rgb, archive, str(tmp_path / "e.zarr"), dtype="int8", progress=False)
    assert not (tmp_path / "e.zarr").exists()

    # an unfinished store from another model is not resumed with this one
    from spacessl.archive import open_archive
    from spacessl.embed.store import EmbeddingsWriter

    a = open_archive(archive)
    EmbeddingsWriter(str(tmp_path / "e.zarr"), n=16, dim=32, dtype="float32", chunk_size=16, shard_chunks=16,
                     attrs={"model_uri": "models:/other/1", "archive_url": archive,
                            "archive_fingerprint": a.fingerprint()})
    ok = save_tiny_encoder(tmp_path / "ok")
    with pytest.raises(EmbedJobError, match="another model_uri .*models:/other/1.* --overwrite"):
        embed_archive(ok, archive, str(tmp_path / "e.zarr"), progress=False)
    # nor one embedded with other symmetry views; a view count the modality lacks fails first
    from spacessl.embed.views import ViewsError

    with pytest.raises(ViewsError, match="views=2 .* image"):
        embed_archive(ok, archive, str(tmp_path / "v.zarr"), progress=False, views=2)
    EmbeddingsWriter(str(tmp_path / "v.zarr"), n=16, dim=32, dtype="float32", chunk_size=16, shard_chunks=16,
                     attrs={"model_uri": ok, "archive_url": archive, "archive_fingerprint": a.fingerprint(),
                            "views": 8})
    with pytest.raises(EmbedJobError, match="another views .*8.* --overwrite"):
        embed_archive(ok, archive, str(tmp_path / "v.zarr"), progress=False)


@pytest.mark.slow
def test_registered_model_from_mlflow(ray_cluster, mlflow_server, tmp_path):
    """models:/NAME@alias: the actors load the model from the tracking server; the store records the run."""
    import torch

    from spacessl import tracking
    from spacessl.models.encoders import build_encoder

    archive = make_image_archive(tmp_path / "a.zarr", n=48, size=32, chunk_size=16)
    torch.manual_seed(0)
    enc = build_encoder("auto", modality="image", in_channels=1, embed_dim=16, widths=[8, 16, 32, 64]).eval()
    run_id = tracking.create_run(mlflow_server, "embed-test", "tiny")
    info = {"encoder": "auto", "modality": "image", "in_channels": 1, "embed_dim": 16, "widths": [8, 16, 32, 64],
            "stretch": "percentile", "stretch_percentiles": [1.0, 99.9]}
    tracking.log_encoder(mlflow_server, run_id, enc, torch.rand(2, 1, 32, 32), info=info,
                         registered_name="tiny-embed", alias="current")
    out = tmp_path / "e.zarr"
    r = embed_archive("models:/tiny-embed@current", archive, str(out), tracking_uri=mlflow_server,
                      dtype="float16", progress=False)
    vectors, ids, attrs = _read(out)
    assert r.samples_embedded == 48 and vectors.dtype == np.float16 and vectors.shape == (48, 16)
    assert attrs["model_uri"] == "models:/tiny-embed@current" and attrs["run_id"] == run_id
    assert attrs["tracking_uri"] == mlflow_server and attrs["dtype"] == "float16"
    # what rebuilds and feeds the encoder is recorded, lists included: the evaluation's baselines are made from it
    recorded = attrs["model_info"]
    assert recorded["widths"] == [8, 16, 32, 64] and recorded["stretch_percentiles"] == [1.0, 99.9]
    assert recorded["stretch"] == "percentile" and recorded["embed_dim"] == 16
    from spacessl.archive import open_archive
    from spacessl.embed.embedder import Embedder

    a = open_archive(archive)
    local = Embedder(enc, Embedder.load("models:/tiny-embed@current", a, device="cpu",
                                        tracking_uri=mlflow_server).preprocess)(a.read(0, 48).samples)
    np.testing.assert_allclose(vectors.astype(np.float32), local, atol=2e-3)
    # MLflow leaves a pt2 export on the device it was exported from (the CPU) whatever map_location says; an actor
    # moves it with .to(device), which reaches every weight only if the graph reads them all as parameters or
    # buffers and pins no op to a device
    loaded, _ = tracking.load_encoder("models:/tiny-embed@current", tracking_uri=mlflow_server)
    graph = loaded.graph
    held = {name for name, _ in graph.named_parameters()} | {name for name, _ in graph.named_buffers()}
    reads = {node.target for node in graph.graph.nodes if node.op == "get_attr"}
    assert reads and reads <= held
    assert not [node for node in graph.graph.nodes if "device" in node.kwargs]
