"""Raw archive samples → L2-normalised embeddings, with a trained encoder and the evaluation preprocessing.

One :class:`Embedder` is what every embedding path uses, so that a query file, an archive row and a bulk job give
the same vector for the same sample::

    emb = Embedder.load("models:/aurora/3", archive)     # loads the encoder once; Preprocess from archive attrs
    v = emb(batch.samples)                                # (B, *sample_shape) raw → (B, D) float32, ‖v‖ = 1

The preprocessing is :class:`spacessl.augment.preprocess.Preprocess` built from the archive's attributes and the
``input_size`` / ``window_samples`` the model was trained with (recorded in the model's info), i.e. training's
evaluation path. On a GPU the encoder runs under fp16 autocast; outputs are normalised in float32.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import numpy as np
import torch
from torch import nn

from spacessl.errors import SpacesslError


class EmbedError(SpacesslError):
    """The model cannot embed this archive's samples (wrong modality, channels or input shape)."""


def l2_normalise(v: torch.Tensor, eps: float = 1e-12) -> torch.Tensor:
    """Rows of ``v`` (B, D) scaled to unit Euclidean norm (zero rows stay zero), computed in float32."""
    v = v.float()
    return v / v.norm(dim=1, keepdim=True).clamp_min(eps)


def embed_views(encode: Callable[[torch.Tensor], torch.Tensor], x: torch.Tensor, *, views: int = 1,
                modality: str) -> torch.Tensor:
    """(B, D) float32 unit vectors of a preprocessed batch ``x``: ``l2_normalise(encode(x))`` for ``views=1``, else
    the normalised mean of the unit encodings of the ``views`` symmetric copies of ``x``
    (:mod:`spacessl.embed.views`)."""
    from spacessl.embed.views import symmetry_views

    total: torch.Tensor | None = None
    for v in symmetry_views(x, views, modality):
        e = l2_normalise(encode(v))
        total = e if total is None else total + e
    assert total is not None
    return total if views == 1 else l2_normalise(total)


def resolve_device(device: str = "auto") -> torch.device:
    """"auto" → the first CUDA device when one is visible, else the CPU."""
    if device == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    return torch.device(device)


def build_preprocess(archive: Any, info: dict[str, Any]) -> Any:
    """The evaluation-path ``Preprocess`` for ``archive`` with the input geometry the model was trained on."""
    from spacessl.augment.preprocess import Preprocess

    return Preprocess.for_archive(archive, input_size=info.get("input_size"),
                                  window_samples=info.get("window_samples"), stretch=info.get("stretch") or "none",
                                  stretch_percentiles=info.get("stretch_percentiles"))


def check_compatible(archive: Any, info: dict[str, Any], model_uri: str) -> None:
    """Raise :class:`EmbedError` when the model's recorded modality or channel count does not fit ``archive``."""
    modality = info.get("modality")
    if modality and modality != archive.modality:
        raise EmbedError(f"model {model_uri} was trained on {modality} samples but {archive.url} holds "
                         f"{archive.modality} samples; pick a model trained on "
                         f"{'an' if archive.modality[:1] in 'aeiou' else 'a'} {archive.modality} archive")
    in_ch = info.get("in_channels")
    if in_ch is not None and int(in_ch) != int(archive.sample_shape[0]):
        raise EmbedError(f"model {model_uri} takes {in_ch} channels but {archive.url} has "
                         f"{archive.sample_shape[0]} ({', '.join(archive.channels)}); pick a model trained on an "
                         "archive with the same channels")


class Embedder:
    """Preprocess + encoder + L2 normalisation on one device.

    Args:
        encoder: maps preprocessed (B, C, H, W) / (B, C, T) float32 to (B, D).
        preprocess: raw archive samples → encoder input (the evaluation path).
        device: where the encoder runs.
        half: fp16 autocast (default: on CUDA only).
        info: what is known about the model (run id, input size, ...), kept for the caller.
        views: symmetric copies of each sample averaged (:mod:`spacessl.embed.views`; 1 = the plain embedding).
    """

    def __init__(self, encoder: nn.Module, preprocess: Any, *, device: str | torch.device = "cpu",
                 half: bool | None = None, info: dict[str, Any] | None = None, views: int = 1) -> None:
        from spacessl.embed.views import check_views

        self.views = check_views(views, preprocess.modality)
        self.device = torch.device(device)
        self.encoder = encoder.to(self.device).eval()
        self.preprocess = preprocess
        self.half = (self.device.type == "cuda") if half is None else bool(half)
        self.info: dict[str, Any] = dict(info or {})
        self._dim: int | None = None

    @classmethod
    def load(cls, model_uri: str, archive: Any, *, device: str = "auto", tracking_uri: str | None = None,
             half: bool | None = None, views: int = 1) -> Embedder:
        """Load the encoder behind ``model_uri`` (see :func:`spacessl.tracking.load_encoder`) for ``archive``."""
        from spacessl.tracking import load_encoder

        dev = resolve_device(device)
        encoder, info = load_encoder(model_uri, tracking_uri=tracking_uri, map_location=dev)
        check_compatible(archive, info, model_uri)
        return cls(encoder, build_preprocess(archive, info), device=dev, half=half, info=info, views=views)

    @property
    def dim(self) -> int:
        """Embedding width D, known once :meth:`probe` or a first batch has run."""
        if self._dim is None:
            raise EmbedError("the embedding width is unknown until probe() or a first batch has run")
        return self._dim

    def probe(self, sample: np.ndarray) -> int:
        """Embed one raw sample (1, *sample_shape) to check that the model takes it; returns D."""
        try:
            out = self(sample)
        except RuntimeError as exc:  # shape mismatches surface as RuntimeError from torch
            raise EmbedError(f"the model cannot embed samples of shape {tuple(sample.shape[1:])} after "
                             f"preprocessing: {exc}") from exc
        return int(out.shape[1])

    @torch.inference_mode()
    def __call__(self, samples: np.ndarray | torch.Tensor) -> np.ndarray:
        """Embed raw samples.

        Args:
            samples: (B, *sample_shape) in the archive's dtype.
        Returns:
            (B, D) float32, every row of unit norm (averaged over ``views`` symmetric copies).
        """
        x = self.preprocess(samples)  # raw dtype (uint16 has few torch kernels) → float32, on the CPU
        if self.device.type == "cuda":
            x = x.pin_memory().to(self.device, non_blocking=True)
        with torch.autocast(self.device.type, dtype=torch.float16, enabled=self.half):
            out = embed_views(self.encoder, x, views=self.views, modality=self.preprocess.modality)
        v = out.cpu().numpy()
        self._dim = int(v.shape[1])
        return v
