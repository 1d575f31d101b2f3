"""Tracking URI resolution, checkpoint loading and model-URI errors (no server needed)."""

from __future__ import annotations

import pytest
import torch

from spacessl import tracking
from spacessl.models import build_encoder, build_method
from spacessl.train.checkpoint import CheckpointError, save_checkpoint


def test_tracking_uri_order(tmp_path, monkeypatch):
    monkeypatch.delenv("MLFLOW_TRACKING_URI", raising=False)
    assert tracking.resolve_tracking_uri("http://x:5000", tmp_path) == "http://x:5000"
    assert tracking.resolve_tracking_uri("", tmp_path) == f"sqlite:///{tmp_path.resolve()}/mlflow.db"
    monkeypatch.setenv("MLFLOW_TRACKING_URI", "http://env:5000")
    assert tracking.resolve_tracking_uri("", tmp_path) == "http://env:5000"
    assert tracking.local_artifact_root(f"sqlite:///{tmp_path}/mlflow.db") == (tmp_path / "mlartifacts").as_uri()


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
    x = torch.randn(2, 3, 256)
    with torch.no_grad():
        torch.testing.assert_close(loaded(x), enc.eval()(x))
    with pytest.raises(CheckpointError, match="does not exist"):
        tracking.load_encoder(str(tmp_path / "missing"))
    (tmp_path / "empty").mkdir()
    with pytest.raises(CheckpointError, match="no spacessl checkpoint"):
        tracking.load_encoder(str(tmp_path / "empty"))


def test_bad_model_uri_names_the_choices(tmp_path):
    with pytest.raises(tracking.TrackingError, match="models:/NAME/VERSION"):
        tracking.load_encoder("s3://bucket/model.pt")
    with pytest.raises(tracking.TrackingError, match="cannot load model"):
        tracking.load_encoder("models:/nope/1", tracking_uri=f"sqlite:///{tmp_path}/mlflow.db")
