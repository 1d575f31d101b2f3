"""Config: layering, overrides, errors that name the key and the nearest valid one, saving."""

from __future__ import annotations

import pytest
import yaml

from spacessl.config import ConfigError, load_config, save_config


def test_layering_defaults_file_overrides(tmp_path):
    base = tmp_path / "base.yaml"
    base.write_text("train:\n  batch_size: 32\n  epochs: 3\nmodel:\n  method: simclr\n")
    exp = tmp_path / "exp.yaml"
    exp.write_text("base: base.yaml\nname: exp\ntrain:\n  epochs: 5\n")
    cfg = load_config(exp, ["train.lr=0.1", "augment.params={size: 64}"])
    assert cfg.name == "exp"
    assert cfg.train.batch_size == 32 and cfg.train.epochs == 5 and cfg.train.lr == 0.1
    assert cfg.model.method == "simclr" and cfg.model.embed_dim == 512
    assert cfg.augment.params == {"size": 64}
    out = save_config(cfg, tmp_path / "run" / "config.yaml")
    assert load_config(out) == cfg
    assert yaml.safe_load(out.read_text())["train"]["epochs"] == 5


@pytest.mark.parametrize("text, message", [
    ("train:\n  bach_size: 3\n", "unknown config key 'train.bach_size'.*did you mean 'train.batch_size'"),
    ("trian:\n  epochs: 3\n", "unknown config key 'trian'.*did you mean 'train'"),
    ("train:\n  epochs: zero\n", "'train.epochs' is invalid"),
    ("train: 3\n", "'train'.*must be a mapping"),
])
def test_file_errors_name_the_key(tmp_path, text, message):
    path = tmp_path / "bad.yaml"
    path.write_text(text)
    with pytest.raises(ConfigError, match=message):
        load_config(path)


def test_override_errors():
    with pytest.raises(ConfigError, match="did you mean 'train.batch_size'"):
        load_config(None, ["train.batchsize=4"])
    with pytest.raises(ConfigError, match="section.key=value"):
        load_config(None, ["train.batch_size"])
    with pytest.raises(ConfigError, match="does not exist"):
        load_config("nope.yaml")
