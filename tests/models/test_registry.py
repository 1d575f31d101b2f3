"""The method registry: names, options, errors."""

from __future__ import annotations

import pytest
from torch import nn

from spacessl.errors import SpacesslError
from spacessl.models.base import SSLMethod
from spacessl.models.registry import METHODS, build_method, get_method_class


def test_registered_methods():
    assert {"barlow_twins", "moco", "nnclr", "simclr", "simsiam", "vicreg"} <= set(METHODS)
    for name in METHODS:
        cls = get_method_class(name)
        assert issubclass(cls, SSLMethod) and cls.name == name


def test_errors_name_choices():
    enc = nn.Linear(4, 8)
    with pytest.raises(SpacesslError, match="Available methods are: barlow_twins, moco, nnclr, simclr, simsiam, vicreg"):
        build_method("byol", encoder=enc, embed_dim=8)
    with pytest.raises(SpacesslError, match="temprature"):
        build_method("simclr", encoder=enc, embed_dim=8, temprature=0.1)


def test_embed_uses_encoder():
    enc = nn.Linear(4, 8)
    m = build_method("simclr", encoder=enc, embed_dim=8)
    assert m.encoder is enc and m.embed_dim == 8
