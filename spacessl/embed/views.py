"""Embeddings averaged over the symmetries of the data (test-time views), invariant to them by construction.

An all-sky frame has no preferred azimuth for its class: an arc is an arc whichever way the camera was mounted,
and the training views rotate frames about the zenith and mirror them. An encoder is only approximately invariant
to these; averaging its unit outputs over the group makes the embedding exactly invariant::

    v(x) = normalise( mean_{g in G} normalise(f(g · x)) )

with G the rotations by multiples of 90° (``views=4``, the rotations of the square grid about the centre, where
the field of view sits) and their mirror images (``views=8``, the dihedral group D4). For waveforms G is the
polarity flip (``views=2``): every channel multiplied by -1, a symmetry of the training views too. ``views=1``
is the plain embedding. Cost: ``views`` forward passes per sample.

On the benchmark's frame encoder, 4 views raise kNN / linear-probe accuracy from 0.809 / 0.850 to 0.830 / 0.877
and 8 views raise k-means accuracy from 0.626 to 0.732; a random-init encoder gains more (docs/evaluate.md).
:func:`spacessl.embed.embedder.embed_views` averages.
"""

from __future__ import annotations

from collections.abc import Iterator

import torch
from torch import Tensor

from spacessl.errors import SpacesslError

VIEWS: dict[str, tuple[int, ...]] = {"image": (1, 4, 8), "waveform": (1, 2)}


class ViewsError(SpacesslError):
    """A view count that the modality has no symmetry group for."""


def check_views(views: int, modality: str) -> int:
    """``views`` as an int when the modality has that many symmetry views, else :class:`ViewsError`."""
    allowed = VIEWS.get(modality)
    if allowed is None:
        raise ViewsError(f"unknown modality {modality!r}; known: {', '.join(VIEWS)}")
    if int(views) != views or int(views) not in allowed:
        raise ViewsError(f"views={views!r} is not available for {modality} samples; choose one of "
                         f"{', '.join(map(str, allowed))} (images: 4 rotations by 90°, 8 with their mirror images; "
                         "waveforms: 2 = both polarities)")
    return int(views)


def symmetry_views(x: Tensor, views: int, modality: str) -> Iterator[Tensor]:
    """The ``views`` transformed copies of a batch ``x`` ((B, C, H, W) images, (B, C, T) waveforms), the
    identity first."""
    views = check_views(views, modality)
    if modality == "waveform":
        yield x
        if views == 2:
            yield -x
        return
    for k in range(min(views, 4)):
        r = torch.rot90(x, k, dims=(-2, -1)) if k else x
        yield r
        if views == 8:
            yield torch.flip(r, dims=(-1,))
