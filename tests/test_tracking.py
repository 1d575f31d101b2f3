"""Tracking URI resolution, checkpoint loading, model-URI errors and lineage records (no server needed)."""

from __future__ import annotations

import json
import os
from pathlib import Path

import pytest
import torch

from spacessl import tracking
from spacessl.models import build_encoder, build_method
from spacessl.train.checkpoint import CheckpointError, save_checkpoint
from tests.conftest import free_port


def test_tracking_uri_order(tmp_path, monkeypatch):
    monkeypatch.delenv("MLFLOW_TRACKING_URI", raising=False)
    assert tracking.resolve_tracking_uri("http://x:5000", tmp_path) == "http://x:5000"
    assert tracking.resolve_tracking_uri("", tmp_path) == f"sqlite:///{tmp_path.resolve()}/mlflow.db"
    monkeypatch.setenv("MLFLOW_TRACKING_URI", "http://env:5000")
    assert tracking.resolve_tracking_uri("", tmp_path) == "http://env:5000"
    assert tracking.local_artifact_root(f"sqlite:///{tmp_path}/mlflow.db") == (tmp_path / "mlartifacts").as_uri()


def test_recorded_tracking_uri_order(monkeypatch):
    """Work on an embeddings store: the given URI, then the environment, then the store the embedding job used."""
    attrs = {"tracking_uri": "sqlite:////data/models.db"}
    monkeypatch.delenv("MLFLOW_TRACKING_URI", raising=False)
    assert tracking.recorded_tracking_uri(attrs) == "sqlite:////data/models.db"
    assert tracking.recorded_tracking_uri({}) is None and tracking.recorded_tracking_uri({}, None) is None
    assert tracking.recorded_tracking_uri(attrs, "http://x:5000") == "http://x:5000"
    monkeypatch.setenv("MLFLOW_TRACKING_URI", "http://env:5000")
    assert tracking.recorded_tracking_uri(attrs) == "http://env:5000"
    assert tracking.recorded_tracking_uri(attrs, "http://x:5000") == "http://x:5000"


def test_runs_table_keeps_the_decimals_of_a_column():
    from spacessl.cli.train import _fmt

    assert [_fmt(v) for v in (0.921, 0.7744, 0.0, 4.39, 119.84, None, float("nan"), "FINISHED")] == \
        ["0.921", "0.774", "0.000", "4.390", "119.8", "-", "-", "FINISHED"]


def test_load_encoder_from_checkpoint_and_run_dir(tmp_path):
    torch.manual_seed(0)
    enc = build_encoder("resnet1d", modality="waveform", in_channels=3)
    method = build_method("simsiam", encoder=enc)
    opt = torch.optim.SGD(method.parameters(), lr=0.1)
    sched = torch.optim.lr_scheduler.LambdaLR(opt, lambda s: 1.0)
    info = {"encoder": "auto", "modality": "waveform", "in_channels": 3, "embed_dim": 512, "input_shape": [3, 256]}
    for epoch in (0, 1):
        save_checkpoint(tmp_path / f"checkpoint_{epoch}", method=method, optimizer=opt, scheduler=sched,
                        epoch=epoch, global_step=5 * (epoch + 1), info=info)
    loaded, meta = tracking.load_encoder(str(tmp_path))  # the run directory: newest epoch
    assert meta["epoch"] == 1 and meta["source"] == "checkpoint" and not loaded.training
    assert tracking.read_model_info(str(tmp_path)) == meta
    assert tracking.read_model_info((tmp_path / "checkpoint_0").as_uri())["epoch"] == 0
    x = torch.randn(2, 3, 256)
    with torch.no_grad():
        torch.testing.assert_close(loaded(x), enc.eval()(x))
    with pytest.raises(CheckpointError, match="does not exist"):
        tracking.load_encoder(str(tmp_path / "missing"))
    (tmp_path / "empty").mkdir()
    with pytest.raises(CheckpointError, match="no spacessl checkpoint"):
        tracking.load_encoder(str(tmp_path / "empty"))


def test_checkpoint_of_a_narrower_encoder_loads_at_its_widths(tmp_path):
    """A checkpoint records model.widths; a reload and the random-init baseline rebuild those widths."""
    from spacessl.evaluate.baselines import random_encoder

    torch.manual_seed(0)
    widths = [32, 64, 128, 256]
    enc = build_encoder("resnet18_s2d", modality="image", in_channels=1, embed_dim=256, widths=widths)
    method = build_method("simclr", encoder=enc, embed_dim=256)
    opt = torch.optim.SGD(method.parameters(), lr=0.1)
    sched = torch.optim.lr_scheduler.LambdaLR(opt, lambda s: 1.0)
    info = {"encoder": "resnet18_s2d", "modality": "image", "in_channels": 1, "embed_dim": 256, "widths": widths,
            "input_shape": [1, 64, 64]}
    save_checkpoint(tmp_path / "checkpoint_0", method=method, optimizer=opt, scheduler=sched, epoch=0,
                    global_step=1, info=info)
    loaded, meta = tracking.load_encoder(str(tmp_path))
    assert meta["widths"] == [32, 64, 128, 256] and loaded.widths == (32, 64, 128, 256)
    x = torch.rand(2, 1, 64, 64)
    with torch.no_grad():
        torch.testing.assert_close(loaded(x), enc.eval()(x))
    baseline = random_encoder(info, modality="image", in_channels=1, embed_dim=256)
    assert baseline.widths == (32, 64, 128, 256) and baseline(x).shape == (2, 256)
    # models recorded before the option are ResNet-18's widths
    old = random_encoder({"encoder": "resnet18_s2d"}, modality="image", in_channels=1, embed_dim=512)
    assert old.widths == (64, 128, 256, 512)


def test_plain_info_keeps_lists_of_plain_values_and_drops_mappings():
    info = {"encoder": "resnet18_s2d", "embed_dim": 512, "input_size": 64, "window_samples": None, "half": False,
            "widths": [32, 64, 128, 512], "stretch_percentiles": (1.0, 99.9), "input_shape": [1, 64, 64],
            "config": {"model": {"method": "simclr"}}, "mixed": [1, {"a": 2}]}
    assert tracking.plain_info(info) == {
        "encoder": "resnet18_s2d", "embed_dim": 512, "input_size": 64, "window_samples": None, "half": False,
        "widths": [32, 64, 128, 512], "stretch_percentiles": [1.0, 99.9], "input_shape": [1, 64, 64]}


def test_bad_model_uri_names_the_choices(tmp_path):
    with pytest.raises(tracking.TrackingError, match="models:/NAME/VERSION"):
        tracking.load_encoder("s3://bucket/model.pt")
    with pytest.raises(tracking.TrackingError, match="models:/NAME/VERSION"):
        tracking.read_model_info("s3://bucket/model.pt")
    for read in (tracking.load_encoder, tracking.read_model_info):
        with pytest.raises(tracking.TrackingError, match=r"cannot find model 'models:/nope/1' in the tracking store"):
            read("models:/nope/1", tracking_uri=f"sqlite:///{tmp_path}/mlflow.db")


def test_record_lineage_tags_the_model_run(tmp_path, caplog):
    from mlflow.tracking import MlflowClient

    uri = f"sqlite:///{tmp_path}/mlflow.db"
    run_id = tracking.create_run(uri, "spacessl", "model")
    model = f"runs:/{run_id}/model"
    info = {"archive_url": "/data/a.zarr", "n": 10, "dim": 512}
    assert tracking.record_lineage(model, "embeddings", "/data/a.emb.zarr", info, tracking_uri=uri,
                                   run_id=run_id) == run_id
    assert tracking.record_lineage(model, "index", "/data/a.idx", {"index_kind": "flat"}, tracking_uri=uri,
                                   run_id=run_id) == run_id
    c = MlflowClient(uri)
    tags = c.get_run(run_id).data.tags
    key = tracking.lineage_key("/data/a.emb.zarr")
    assert tags[f"lineage.embeddings.{key}"] == "/data/a.emb.zarr"
    assert tags[f"lineage.index.{tracking.lineage_key('/data/a.idx')}"] == "/data/a.idx"
    record = json.loads(Path(c.download_artifacts(run_id, f"lineage/embeddings-{key}.json", str(tmp_path)))
                        .read_text())
    assert record == {"kind": "embeddings", "url": "/data/a.emb.zarr", "model_uri": model, **info}
    # a checkpoint has no run; a store that does not answer costs a warning, never an exception
    assert tracking.record_lineage(str(tmp_path), "embeddings", "/x", tracking_uri=uri) is None
    dead = f"http://127.0.0.1:{free_port()}"
    with caplog.at_level("WARNING", logger="spacessl.tracking"):
        assert tracking.record_lineage(model, "index", "/x", tracking_uri=dead, run_id=run_id) is None
    assert "does not answer" in caplog.text
    with pytest.raises(ValueError, match="Available kinds are: embeddings, index"):
        tracking.record_lineage(model, "plots", "/x", tracking_uri=uri)


def test_linked_evaluation_run_carries_the_model_lineage(tmp_path):
    from mlflow.tracking import MlflowClient

    from spacessl.evaluate.report import log_evaluation

    uri = f"sqlite:///{tmp_path}/mlflow.db"
    run_id = tracking.create_run(uri, "spacessl", "model", tags={"archive_url": "/data/a.zarr"})
    tracking.log_params(uri, run_id, {"model.method": "simclr", "train.lr": 0.3})
    tracking.record_lineage(f"runs:/{run_id}/model", "index", "/data/a.idx", tracking_uri=uri, run_id=run_id)
    result = {"split": "random", "n": 5, "ssl": {"knn_acc": 0.5, "linear_acc": 0.5, "kmeans_acc": 0.5, "nmi": 0.1,
                                                  "ari": 0.1},
              "run_id": run_id, "model_uri": f"runs:/{run_id}/model", "embeddings": "/data/a.emb.zarr",
              "archive": "/data/a.zarr"}
    c = MlflowClient(uri)
    linked = c.get_run(log_evaluation(result, tracking_uri=uri, linked_run=True)["run_id"])
    tags = linked.data.tags
    assert tags["archive_url"] == "/data/a.zarr" and tags["embeddings_url"] == "/data/a.emb.zarr"
    assert tags["model_uri"] == f"runs:/{run_id}/model" and tags["mlflow.parentRunId"] == run_id
    assert tags[f"lineage.index.{tracking.lineage_key('/data/a.idx')}"] == "/data/a.idx"
    assert linked.data.params == {"model.method": "simclr", "train.lr": "0.3"}
    assert linked.data.metrics["eval_random_ssl_knn_acc"] == 0.5
    assert log_evaluation(result, tracking_uri=uri)["mode"] == "model-run"
    model_tags = c.get_run(run_id).data.tags
    assert model_tags["evaluation.random.embeddings_url"] == "/data/a.emb.zarr"
    assert c.get_run(run_id).data.metrics["eval_random_ssl_knn_acc"] == 0.5


def test_cpu_prediction_device_is_set_only_inside_and_respects_the_user(monkeypatch):
    from mlflow.environment_variables import MLFLOW_DEFAULT_PREDICTION_DEVICE

    monkeypatch.delenv("MLFLOW_DEFAULT_PREDICTION_DEVICE", raising=False)
    with tracking.cpu_prediction_device():
        assert MLFLOW_DEFAULT_PREDICTION_DEVICE.get() == "cpu"  # what log_model's input-example check reads
    assert "MLFLOW_DEFAULT_PREDICTION_DEVICE" not in os.environ
    with pytest.raises(RuntimeError), tracking.cpu_prediction_device():
        raise RuntimeError("log_model failed")
    assert "MLFLOW_DEFAULT_PREDICTION_DEVICE" not in os.environ
    monkeypatch.setenv("MLFLOW_DEFAULT_PREDICTION_DEVICE", "cuda:1")
    with tracking.cpu_prediction_device():
        assert MLFLOW_DEFAULT_PREDICTION_DEVICE.get() == "cuda:1"
    assert os.environ["MLFLOW_DEFAULT_PREDICTION_DEVICE"] == "cuda:1"
