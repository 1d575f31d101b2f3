"""Encoders, self-supervised methods and collapse metrics."""

from spacessl.models.base import SSLMethod
from spacessl.models.collapse import collapse_level, embedding_std
from spacessl.models.encoders import build_encoder
from spacessl.models.registry import METHODS, build_method

__all__ = ["METHODS", "SSLMethod", "build_encoder", "build_method", "collapse_level", "embedding_std"]
