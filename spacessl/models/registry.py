"""Registry of self-supervised methods: a name -> the class that implements it.

Adding a method (BYOL, VICReg, ...) is one module holding an :class:`SSLMethod` subclass plus one line in
``METHODS``.
"""

from __future__ import annotations

import importlib
import inspect
from typing import Any

from torch import nn

from spacessl.errors import SpacesslError
from spacessl.models.base import SSLMethod

#: name -> "module:Class". Imported on first use.
METHODS: dict[str, str] = {
    "simclr": "spacessl.models.simclr:SimCLR",
    "simsiam": "spacessl.models.simsiam:SimSiam",
    "moco": "spacessl.models.moco:MoCo",
    "nnclr": "spacessl.models.nnclr:NNCLR",
    "vicreg": "spacessl.models.vicreg:VICReg",
    "barlow_twins": "spacessl.models.barlow_twins:BarlowTwins",
}


def get_method_class(name: str) -> type[SSLMethod]:
    """The class registered as ``name``."""
    if name not in METHODS:
        raise SpacesslError(
            f"Unknown method {name!r}. Available methods are: {', '.join(sorted(METHODS))} (set model.method)."
        )
    module, cls = METHODS[name].split(":")
    return getattr(importlib.import_module(module), cls)  # type: ignore[no-any-return]


def _options(cls: type[SSLMethod]) -> set[str]:
    params = inspect.signature(cls.__init__).parameters
    return {p for p in params if p not in ("self", "encoder", "embed_dim")}


def build_method(name: str, *, encoder: nn.Module, embed_dim: int = 512, **method_kwargs: Any) -> SSLMethod:
    """Build the method ``name`` around ``encoder``.

    ``method_kwargs`` may hold the options of every method (the model section of a config does: temperature,
    proj_hidden_dim, proj_out_dim, pred_hidden_dim); options that belong to another registered method only are
    ignored, options no method knows raise an error.

    Args:
        name: a key of :data:`METHODS`.
        encoder: backbone, (B, *sample_shape) -> (B, embed_dim).
        embed_dim: encoder output width.
        **method_kwargs: method options, e.g. ``temperature=0.5`` for SimCLR.
    """
    cls = get_method_class(name)
    own = _options(cls)
    known = set().union(*(_options(get_method_class(m)) for m in METHODS))
    unknown = sorted(set(method_kwargs) - known)
    if unknown:
        raise SpacesslError(
            f"Unknown option(s) {', '.join(unknown)} for method {name!r}. Its options are: {', '.join(sorted(own))}."
        )
    kwargs = {k: v for k, v in method_kwargs.items() if k in own}
    return cls(encoder, embed_dim, **kwargs)


__all__ = ["METHODS", "SSLMethod", "build_method", "get_method_class"]
