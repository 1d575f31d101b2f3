"""End to end on Ray Train: a real MLflow server receives params, metrics and a registered model; a run killed
with SIGKILL resumes from its last checkpointed epoch."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest
import torch

from tests.train.tiny import tiny_config, write_tiny_images

pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def tiny_archive(tmp_path_factory) -> str:
    return write_tiny_images(tmp_path_factory.mktemp("tiny") / "tiny.zarr")


def test_mlflow_server_receives_params_metrics_and_registered_model(ray_cluster, mlflow_server, tiny_archive,
                                                                    tmp_path):
    from mlflow.tracking import MlflowClient

    from spacessl.tracking import list_runs, load_encoder, read_model_info
    from spacessl.train.run import RunExistsError, train

    # with temporal pairs (the tiny frames lie 3 s apart): the paired data path runs under Ray Train too
    cfg = tiny_config(tiny_archive, tmp_path, f"tracking.uri={mlflow_server}", "data.pair_within_s=6")
    result = train(cfg)

    c = MlflowClient(tracking_uri=mlflow_server, registry_uri=mlflow_server)
    run = c.get_run(result.mlflow_run_id)
    assert run.info.status == "FINISHED"
    params = run.data.params
    assert params["train.batch_size"] == "16" and params["model.method"] == "simclr"
    assert params["data.archive"] == tiny_archive and params["derived.lr_effective"] == str(0.3 * 16 / 256)
    assert params["data.pair_within_s"] == "6.0"
    tags = run.data.tags
    assert tags["archive_url"] == tiny_archive and len(tags["archive_fingerprint"]) == 16 and tags["git_commit"]
    artifacts = {a.path for a in c.list_artifacts(result.mlflow_run_id)}
    assert {"config.yaml", "augment.txt"} <= artifacts
    # per-step metrics every step, per-epoch metrics every epoch, the random-init baseline once
    assert [m.step for m in c.get_metric_history(result.mlflow_run_id, "loss")] == list(range(1, 7))
    for key in ("lr", "samples_per_s"):
        assert len(c.get_metric_history(result.mlflow_run_id, key)) == 6
    for key in ("epoch_loss", "embedding_std", "collapse", "knn_acc"):
        assert [m.step for m in c.get_metric_history(result.mlflow_run_id, key)] == [0, 1], key
    assert len(c.get_metric_history(result.mlflow_run_id, "knn_acc_init")) == 1
    assert 0.0 <= run.data.metrics["knn_acc"] <= 1.0

    # registered, aliased and linked to the run
    version = c.get_model_version("tiny-encoder", result.version)
    assert version.run_id == result.mlflow_run_id
    assert c.get_model_version_by_alias("tiny-encoder", "current").version == result.version
    assert result.model_uri == f"models:/tiny-encoder/{result.version}"

    x = torch.rand(3, 1, 32, 32)
    from_ckpt, info_ckpt = load_encoder(result.checkpoint_path)
    with torch.no_grad():
        ref = from_ckpt(x)
    for uri in (result.model_uri, "models:/tiny-encoder@current", "models:/tiny-encoder/latest",
                f"runs:/{result.mlflow_run_id}/model"):
        encoder, info = load_encoder(uri, tracking_uri=mlflow_server)
        with torch.no_grad():
            out = encoder.eval()(x)
        assert out.shape == (3, 512)
        np.testing.assert_allclose(out.numpy(), ref.numpy(), atol=1e-4, rtol=1e-4)
        assert info["run_id"] == result.mlflow_run_id and info["modality"] == "image"
        assert info["input_shape"] == [1, 32, 32] and info["archive_url"] == tiny_archive
        assert read_model_info(uri, tracking_uri=mlflow_server) == info  # the same, without the weights
        if uri.startswith("models:/"):
            assert info["name"] == "tiny-encoder" and info["version"] == str(result.version)
    assert info_ckpt["epoch"] == 1 and info_ckpt["source"] == "checkpoint"
    assert read_model_info(result.checkpoint_path) == info_ckpt

    rows = list_runs(5, tracking_uri=mlflow_server, experiment="tests")
    assert rows[0]["run_id"] == result.mlflow_run_id and rows[0]["model"] == f"tiny-encoder/{result.version}"
    assert rows[0]["knn_acc"] == run.data.metrics["knn_acc"]

    with pytest.raises(RunExistsError, match="--resume"):
        train(cfg)


def _checkpoint_epochs(run_dir: Path) -> list[int]:
    return sorted(json.loads(p.read_text())["epoch"] for p in run_dir.glob("checkpoint_*/model.json"))


def test_killed_run_resumes_from_last_epoch(ray_cluster, tiny_archive, tmp_path):
    from mlflow.tracking import MlflowClient

    from spacessl.train.run import train

    epochs = 4
    overrides = [f"train.epochs={epochs}", "train.max_steps_per_epoch=4", "tracking.register_model=false",
                 f"runtime.ray_address={ray_cluster.get_runtime_context().gcs_address}"]
    cfg = tiny_config(tiny_archive, tmp_path, *overrides, "runtime.reader_processes=0")  # read in threads
    run_dir = tmp_path / "runs" / "tiny"
    config_path = tmp_path / "config.yaml"
    from spacessl.config import save_config
    save_config(cfg, config_path)

    # a separate driver process, killed hard as soon as its first epoch checkpoint is on disk
    log = open(tmp_path / "driver.log", "w")
    proc = subprocess.Popen([sys.executable, "-c", "import sys; from spacessl.cli import main; sys.exit(main())",
                             "train", "--config", str(config_path)], stdout=log, stderr=subprocess.STDOUT,
                            start_new_session=True)
    deadline = time.time() + 600
    while not (run_dir / "checkpoint_manager_snapshot.json").exists():
        assert proc.poll() is None, (tmp_path / "driver.log").read_text()[-3000:]
        assert time.time() < deadline, "no checkpoint within 10 minutes"
        time.sleep(0.2)
    os.killpg(proc.pid, signal.SIGKILL)
    proc.wait()
    log.close()
    snapshot = json.loads((run_dir / "checkpoint_manager_snapshot.json").read_text())
    last_epoch = snapshot["latest_checkpoint_result"]["metrics"]["epoch"]
    assert last_epoch < epochs - 1, "the run finished before it could be killed; make the epochs longer"

    # resumed with a loader process (the default; a runtime choice, free to change on resume) for the rest
    result = train(tiny_config(tiny_archive, tmp_path, *overrides), resume=True)
    assert result.summary["reader_processes"] == 1
    assert result.summary["start_epoch"] == last_epoch + 1  # continued after the last finished epoch
    assert [e["epoch"] for e in result.summary["epochs"]] == list(range(last_epoch + 1, epochs))
    assert result.metrics["epoch"] == epochs - 1 and result.metrics["global_step"] == epochs * 4
    assert _checkpoint_epochs(run_dir)[-1] == epochs - 1
    # the same MLflow run carries on: every epoch logged, the killed epoch at most twice
    state = json.loads((run_dir / "spacessl_run.json").read_text())
    assert state["mlflow_run_id"] == result.mlflow_run_id
    c = MlflowClient(tracking_uri=result.tracking_uri)
    steps = [m.step for m in c.get_metric_history(result.mlflow_run_id, "epoch_loss")]
    assert sorted(set(steps)) == list(range(epochs))
    assert c.get_run(result.mlflow_run_id).info.status == "FINISHED"


def test_relative_archive_made_absolute_for_the_workers(tmp_path, monkeypatch):
    from spacessl.config import load_config
    from spacessl.train.run import _with_absolute_archive

    monkeypatch.chdir(tmp_path)
    cfg = load_config(None, ["data.archive=demo/a.zarr"])
    assert _with_absolute_archive(cfg).data.archive == str(tmp_path / "demo" / "a.zarr")
    assert cfg.data.archive == "demo/a.zarr"  # the caller's config is left alone
    remote = load_config(None, ["data.archive=s3://bucket/a.zarr"])
    assert _with_absolute_archive(remote).data.archive == "s3://bucket/a.zarr"


def test_time_budget_stops_every_worker_and_a_resume_gets_the_rest(ray_cluster, tiny_archive, tmp_path):
    from spacessl.train import checkpoint as ckpt_io
    from spacessl.train.run import train

    epochs, budget_min = 500, 0.15  # an epoch takes about a second: the 9 s budget ends the run, not the epochs
    overrides = [f"train.epochs={epochs}", "train.max_steps_per_epoch=4", "tracking.register_model=false",
                 "runtime.num_workers=2", f"runtime.ray_address={ray_cluster.get_runtime_context().gcs_address}"]
    result = train(tiny_config(tiny_archive, tmp_path, *overrides, f"train.time_budget_min={budget_min}"))
    s, m = result.summary, result.metrics
    assert s["stopped_by_budget"] and s["time_budget_s"] == pytest.approx(9.0)
    assert 1 <= len(s["epochs"]) < epochs
    assert 9.0 <= m["train_elapsed_s"] < 9.0 + 30.0
    assert 1 <= m["epoch_steps"] <= 4 and m["global_step"] == 4 * (len(s["epochs"]) - 1) + m["epoch_steps"]
    # two workers stop together: the shared clock is read every BUDGET_SYNC_STEPS (8) steps
    assert m["global_step"] % 8 == 0
    sched = ckpt_io.load_state(result.checkpoint_path)["scheduler"]
    assert sched["elapsed_s"] >= 9.0
    assert sched["_last_lr"][0] == pytest.approx(0.0, abs=1e-9)  # the cosine ended with the budget

    # resumed with a larger budget: the time already spent counts, training goes on from the next epoch
    resumed = train(tiny_config(tiny_archive, tmp_path, *overrides, f"train.time_budget_min={2 * budget_min}"),
                    resume=True)
    assert resumed.summary["start_epoch"] == len(s["epochs"]) and resumed.summary["stopped_by_budget"]
    assert 18.0 <= resumed.metrics["train_elapsed_s"] < 18.0 + 30.0
    assert resumed.metrics["global_step"] > m["global_step"]


def test_run_files_are_replaced_whole(tmp_path, monkeypatch):
    """A driver killed while it rewrites the run's state and config (as `--resume` does) leaves them as they were;
    the next write replaces them and leaves nothing beside them."""
    import spacessl.archive.store as store_module
    from spacessl.config import load_config
    from spacessl.train.run import CONFIG_FILE, RUN_STATE_FILE, _write_run_files

    cfg = load_config()
    run_dir = tmp_path / "runs" / "r"
    _write_run_files(cfg, str(run_dir), {"mlflow_run_id": "a"})
    before = {name: (run_dir / name).read_text() for name in (RUN_STATE_FILE, CONFIG_FILE)}
    assert json.loads(before[RUN_STATE_FILE])["mlflow_run_id"] == "a"

    def killed(self, *args, **kwargs):
        raise RuntimeError("killed before the move")

    monkeypatch.setattr(store_module.os, "replace", killed)
    with pytest.raises(RuntimeError, match="killed before the move"):
        _write_run_files(cfg, str(run_dir), {"mlflow_run_id": "b"})
    assert {name: (run_dir / name).read_text() for name in before} == before
    monkeypatch.undo()
    _write_run_files(cfg, str(run_dir), {"mlflow_run_id": "b"})
    assert json.loads((run_dir / RUN_STATE_FILE).read_text())["mlflow_run_id"] == "b"
    assert not list(run_dir.glob("*.partial"))
