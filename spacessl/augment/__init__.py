"""View pipelines (batch-level augmentations on tensors) and the deterministic preprocessing that precedes them.

Training: ``views = augment(preprocess(raw))`` twice per batch; embedding and queries: ``preprocess(raw)`` only.

Example::

    pre = Preprocess.for_archive(archive, input_size=64)
    aug = build_augment("image", "allsky")
    x = pre(batch.samples)                     # (B, 1, 64, 64) float32 in [0, 1]
    x0, x1 = aug(x), aug(x)                    # two random views
    print(aug)                                 # the pipeline, one transform per line
"""

from __future__ import annotations

import inspect
from collections.abc import Callable
from typing import Any

from spacessl.augment import images, waveforms
from spacessl.augment.base import Augment, Compose
from spacessl.augment.preprocess import Preprocess
from spacessl.errors import SpacesslError


def _none() -> Compose:
    """No augmentation (identity); a baseline."""
    return Compose([])


#: (modality, preset) -> factory taking the preset's keyword options.
PRESETS: dict[tuple[str, str], Callable[..., Compose]] = {
    ("image", "oath"): images.oath,
    ("image", "allsky"): images.allsky,
    ("image", "default"): images.allsky,
    ("image", "none"): _none,
    ("waveform", "default"): waveforms.default,
    ("waveform", "none"): _none,
}


def build_augment(modality: str, preset: str = "default", **kwargs: Any) -> Augment:
    """The view pipeline ``preset`` for ``modality``, with keyword overrides of the preset's options.

    Presets: images "oath" (SpaceSSL exactly), "allsky" (= "default"), "none"; waveforms "default"
    (Kinzel-style amplitude and frequency variation; pass ``sampling_rate_hz`` from the archive), "none".

    Args:
        modality: "image" or "waveform".
        preset: a preset name for that modality.
        **kwargs: options of the preset function (e.g. ``size=64`` for images, ``sampling_rate_hz=100.0``).

    Returns:
        A :class:`Compose` callable as ``aug(x, generator=None)`` on a batch tensor (any device).
    """
    names = sorted(p for m, p in PRESETS if m == modality)
    if not names:
        modalities = sorted({m for m, _ in PRESETS})
        raise SpacesslError(f"Unknown modality {modality!r}. Available modalities are: {', '.join(modalities)}.")
    if (modality, preset) not in PRESETS:
        raise SpacesslError(
            f"Unknown {modality} augmentation preset {preset!r}. Available presets are: {', '.join(names)} "
            f"(set augment.preset)."
        )
    factory = PRESETS[(modality, preset)]
    options = list(inspect.signature(factory).parameters)
    unknown = sorted(set(kwargs) - set(options))
    if unknown:
        raise SpacesslError(
            f"Unknown option(s) {', '.join(unknown)} for the {modality} preset {preset!r}. "
            f"Its options are: {', '.join(options) or 'none'} (set augment.params)."
        )
    return factory(**kwargs)


__all__ = ["PRESETS", "Augment", "Compose", "Preprocess", "build_augment", "images", "waveforms"]
