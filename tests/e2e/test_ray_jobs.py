"""End to end through `ray job submit`: a Ray head (`ray start --head --num-cpus 2`) and an MLflow tracking server
(SQLite backend, local artifacts) of its own on 127.0.0.1; synth → ingest → train → embed → index build, each a Ray
job; then a query on the index, the registered model and its run, and the lineage the embeddings, the index and the
run record. Both servers are stopped by pid at the end, and checked to be gone.

The Ray head is a separate cluster from the session's ``ray_cluster`` fixture: this process never calls
``ray.init``; it talks to the head only through the `ray job` CLI and the job REST API. The jobs run this machine's
interpreter (``sys.executable``) on an upload of the repository (``--working-dir``, big folders excluded).
"""

from __future__ import annotations

import json
import os
import shlex
import shutil
import signal
import subprocess
import sys
import tempfile
import time
import urllib.error
import urllib.request
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

from tests.conftest import free_port, start_mlflow_server

REPO = Path(__file__).resolve().parents[2]
BIN = Path(sys.executable).parent
#: never uploaded with --working-dir (Ray's limit is about 100 MiB)
EXCLUDES = [".venv", ".git", "out", "demo", "runs", "mlruns", "*.zarr", "*.db", "node_modules", "__pycache__",
            ".pytest_cache", ".hypothesis", "*.egg-info", "build", "tmp", "*.tmp", "*.mseed"]
MODEL = "e2e-seismic"
JOB_TIMEOUT_S = 300


# ------------------------------------------------------------------------------------------------- processes


def _stat(pid: int) -> tuple[int, int, str] | None:
    """(parent pid, session id, state) of a live process, None when it is gone (or a zombie)."""
    try:
        text = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return None
    fields = text[text.rindex(")") + 2:].split()  # state ppid pgrp session ...
    return (None if fields[0] in ("Z", "X") else (int(fields[1]), int(fields[3]), fields[0]))


def _cmdline(pid: int) -> str:
    try:
        return Path(f"/proc/{pid}/cmdline").read_bytes().replace(b"\0", b" ").decode(errors="replace")
    except OSError:
        return ""


def server_pids(session_id: int, marker: str = "") -> set[int]:
    """Live processes of session ``session_id`` or whose command line holds ``marker``, with all their
    descendants."""
    found, parents = set(), {}
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        st = _stat(int(entry))
        if st is None:
            continue
        parents[int(entry)] = st[0]
        if st[1] == session_id or (marker and marker in _cmdline(int(entry))):
            found.add(int(entry))
    grew = True
    while grew:
        more = {pid for pid, ppid in parents.items() if ppid in found and pid not in found}
        found |= more
        grew = bool(more)
    found.discard(os.getpid())
    return found


def stop_pids(pids: set[int], grace_s: float = 20.0) -> set[int]:
    """SIGTERM ``pids``, SIGKILL those still alive after ``grace_s``; returns the pids still alive after that."""
    for sig, wait_s in ((signal.SIGTERM, grace_s), (signal.SIGKILL, 10.0)):
        for pid in pids:
            if _stat(pid) is not None:
                try:
                    os.kill(pid, sig)
                except ProcessLookupError:
                    pass
        deadline = time.time() + wait_s
        while time.time() < deadline and any(_stat(p) is not None for p in pids):
            time.sleep(0.2)
    return {p for p in pids if _stat(p) is not None}


# ------------------------------------------------------------------------------------------------- servers


@dataclass
class RayHead:
    dashboard: str  #: http://127.0.0.1:PORT, where jobs are submitted
    session_id: int  #: the `ray start` process's pid: every head process is in its session
    temp_dir: str


def _ray_env() -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if k not in ("RAY_ADDRESS", "RAY_API_SERVER_ADDRESS")}
    env.update(RAY_AUTH_MODE="disabled", RAY_USAGE_STATS_ENABLED="0", TQDM_DISABLE="1")
    return env


@pytest.fixture(scope="module")
def mlflow_tracking(tmp_path_factory) -> Iterator[str]:
    """This module's own MLflow server; stopped (with its workers) by pid at the end."""
    proc, uri = start_mlflow_server(tmp_path_factory.mktemp("mlflow-e2e"), own_session=True)
    yield uri
    pids = server_pids(proc.pid) | {proc.pid}
    left = stop_pids(pids)
    proc.wait(timeout=10)
    assert not left, f"mlflow server processes still alive: {sorted(left)}"


def _wait_http(url: str, deadline: float, what: str, log: str) -> None:
    """Return once ``url`` gives any HTTP answer (an error status counts: the server is up); raise after
    ``deadline`` (time.time()) naming ``what`` with the tail of ``log``."""
    while True:
        try:
            with urllib.request.urlopen(url, timeout=5):
                return
        except urllib.error.HTTPError:
            return
        except OSError:
            if time.time() > deadline:
                raise RuntimeError(f"{what} does not answer:\n{log[-3000:]}") from None
        time.sleep(1)


@pytest.fixture(scope="module")
def ray_head() -> Iterator[RayHead]:
    """A Ray head with 2 CPUs on 127.0.0.1, every port chosen free, in a short temporary directory (Ray's socket
    paths must stay under 108 bytes); stopped by pid at the end."""
    temp_dir = tempfile.mkdtemp(prefix="rayh", dir="/tmp")
    port, dashboard_port, client_port, agent_port = (free_port() for _ in range(4))
    cmd = [str(BIN / "ray"), "start", "--head", "--num-cpus", "2", "--port", str(port),
           "--dashboard-port", str(dashboard_port), "--dashboard-host", "127.0.0.1", "--node-ip-address", "127.0.0.1",
           "--ray-client-server-port", str(client_port), "--dashboard-agent-listen-port", str(agent_port),
           "--temp-dir", temp_dir, "--include-dashboard", "true", "--disable-usage-stats"]
    proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, env=_ray_env(),
                            start_new_session=True)
    head = RayHead(f"http://127.0.0.1:{dashboard_port}", proc.pid, temp_dir)
    try:
        out, _ = proc.communicate(timeout=180)
        if proc.returncode != 0:
            raise RuntimeError(f"ray start failed ({proc.returncode}):\n{out[-3000:]}")
        deadline = time.time() + 120
        _wait_http(f"{head.dashboard}/api/version", deadline, f"Ray dashboard {head.dashboard}", out)
        # jobs go through the head node's dashboard agent, which registers itself once its HTTP server is up; the
        # dashboard waits only 10 s for it before it refuses a job ("No available agent to submit job")
        _wait_http(f"http://127.0.0.1:{agent_port}/api/job_agent/jobs/none/logs", deadline,
                   f"Ray dashboard agent on port {agent_port}", out)
        yield head
    finally:
        if proc.poll() is None:
            proc.kill()
        pids = server_pids(head.session_id, temp_dir)
        left = stop_pids(pids)
        shutil.rmtree(temp_dir, ignore_errors=True)
        assert pids, "no Ray head process was found to stop"
        assert not left, f"Ray head processes still alive: {sorted(left)}"


# ------------------------------------------------------------------------------------------------- jobs


def submit(head: RayHead, tracking_uri: str, name: str, *entrypoint: str) -> str:
    """Run ``entrypoint`` as a Ray job with `ray job submit` (waits and streams its logs); assert it SUCCEEDED and
    return its logs."""
    from ray.job_submission import JobStatus, JobSubmissionClient

    runtime_env = {"excludes": EXCLUDES,
                   "env_vars": {"MLFLOW_TRACKING_URI": tracking_uri, "TQDM_DISABLE": "1",
                                "MLFLOW_ENABLE_ASYNC_LOGGING": "false", "GIT_PYTHON_REFRESH": "quiet",
                                "RAY_AUTH_MODE": "disabled"}}
    job_id = f"e2e-{name}-{int(time.time() * 1000)}"
    cmd = [str(BIN / "ray"), "job", "submit", "--address", head.dashboard, "--submission-id", job_id,
           "--working-dir", str(REPO), "--runtime-env-json", json.dumps(runtime_env), "--", *entrypoint]
    t0 = time.time()
    try:
        done = subprocess.run(cmd, capture_output=True, text=True, env=_ray_env(), timeout=JOB_TIMEOUT_S)
        out = done.stdout + done.stderr
    except subprocess.TimeoutExpired as exc:
        out = f"(`ray job submit` timed out after {JOB_TIMEOUT_S} s)\n{exc.stdout or ''}{exc.stderr or ''}"
    client = JobSubmissionClient(head.dashboard)
    try:
        status, logs = client.get_job_status(job_id), client.get_job_logs(job_id)
    except Exception as exc:  # noqa: BLE001 - the job may never have been created
        status, logs = None, f"(no job {job_id}: {exc})"
    print(f"job {name}: {status} in {time.time() - t0:.1f} s")
    assert status == JobStatus.SUCCEEDED, (f"job {name} ({shlex.join(entrypoint)}) ended {status}\n"
                                           f"--- ray job submit ---\n{out[-4000:]}\n--- ray job logs ---\n{logs[-6000:]}")
    return logs


# ------------------------------------------------------------------------------------------------- the test


def test_synth_ingest_train_embed_index_through_ray_jobs(ray_head, mlflow_tracking, tmp_path):
    from mlflow.tracking import MlflowClient

    from spacessl.embed.store import open_embeddings
    from spacessl.index.query import query
    from spacessl.tracking import lineage_key

    raw, archive = tmp_path / "raw", str(tmp_path / "seismic.zarr")
    emb_url, index_dir = str(tmp_path / "seismic.emb.zarr"), tmp_path / "seismic.idx"
    spacessl, python = str(BIN / "spacessl"), sys.executable
    run = lambda name, *cmd: submit(ray_head, mlflow_tracking, name, *cmd)  # noqa: E731

    run("synth", spacessl, "synth", "continuous", str(raw), "--stations", "2", "--days", "1", "--quiet")
    run("ingest", spacessl, "ingest", "waveforms", str(raw / "*.mseed"), archive, "--labels",
        str(raw / "catalog.csv"), "--chunk-size", "32", "--shard-chunks", "2", "--quiet")
    run("train", python, "jobs/train.py", "--config", "configs/demo_seismic.yaml", f"name={MODEL}",
        f"data.archive={archive}", "train.epochs=1", "train.max_steps_per_epoch=2", "train.batch_size=16",
        "train.log_every_steps=1", "train.knn_max_bank=256", "train.knn_max_query=128", "runtime.num_workers=1",
        "runtime.cpus_per_worker=1", f"runtime.storage_path={tmp_path / 'runs'}",
        f"runtime.output_dir={tmp_path / 'out'}", "tracking.experiment=e2e", f"tracking.model_name={MODEL}")
    model_uri = f"models:/{MODEL}@current"
    run("embed", python, "jobs/embed.py", "--model", model_uri, "--archive", archive, "--out", emb_url,
        "--batch", "64", "--no-progress")
    run("index", python, "jobs/index.py", "build", emb_url, "--out", str(index_dir), "--no-progress")

    # the index answers a query by id: k other samples, the query's own neighbourhood left out
    emb = open_embeddings(emb_url)
    result = query(index_dir, id=0, k=5)
    ids = result.ids
    assert len(ids) == 5 and len(set(ids.tolist())) == 5
    assert ((ids >= 0) & (ids < emb.n)).all() and 0 not in ids
    distances = [r["distance"] for r in result.results]
    assert distances == sorted(distances)

    # the registered model points at its training run, which holds the config, the metrics and the lineage
    c = MlflowClient(mlflow_tracking, registry_uri=mlflow_tracking)
    version = c.get_model_version_by_alias(MODEL, "current")
    train_run = c.get_run(version.run_id)
    (only,) = c.search_runs([c.get_experiment_by_name("e2e").experiment_id])
    assert only.info.run_id == train_run.info.run_id and train_run.info.status == "FINISHED"
    assert train_run.data.tags["registered_model"] == f"{MODEL}/{version.version}"
    assert train_run.data.tags["archive_url"] == archive
    assert train_run.data.params["model.method"] == "simclr" and train_run.data.params["train.epochs"] == "1"
    assert {"loss", "epoch_loss", "collapse", "knn_acc"} <= set(train_run.data.metrics)

    # the embeddings and the index record that model; the run records both of them
    assert emb.attrs["model_uri"] == model_uri and emb.attrs["run_id"] == version.run_id
    assert emb.attrs["archive_url"] == archive and emb.attrs["tracking_uri"] == mlflow_tracking
    manifest = json.loads((index_dir / "manifest.json").read_text())
    assert manifest["model_uri"] == model_uri and manifest["run_id"] == version.run_id
    assert manifest["embeddings_url"] == emb_url and manifest["n"] == emb.n
    tags = train_run.data.tags
    assert tags[f"lineage.embeddings.{lineage_key(emb_url)}"] == emb_url
    assert tags[f"lineage.index.{lineage_key(str(index_dir.resolve()))}"] == str(index_dir.resolve())
    record = json.loads(Path(c.download_artifacts(version.run_id, f"lineage/index-{lineage_key(str(index_dir))}"
                                                   ".json", str(tmp_path))).read_text())
    assert record["embeddings_url"] == emb_url and record["model_uri"] == model_uri and record["n"] == emb.n
