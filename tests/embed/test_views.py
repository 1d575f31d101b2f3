"""Symmetry-averaged embeddings: exactly invariant to the group, equal to the hand-computed mean, clear errors."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from spacessl.augment.preprocess import Preprocess
from spacessl.embed.embedder import Embedder, l2_normalise
from spacessl.embed.views import ViewsError, check_views, symmetry_views
from spacessl.models.encoders import build_encoder
from tests.embed.fixtures import frames


def _image_embedder(views: int) -> Embedder:
    torch.manual_seed(0)
    enc = build_encoder("auto", modality="image", in_channels=1, embed_dim=32).eval()
    return Embedder(enc, Preprocess(modality="image", input_size=32, max_value=16383.0, stretch="percentile"),
                    views=views)


def test_check_views_names_the_choices():
    assert check_views(8, "image") == 8 and check_views(2, "waveform") == 2
    with pytest.raises(ViewsError, match="views=2 .* image .* 1, 4, 8"):
        check_views(2, "image")
    with pytest.raises(ViewsError, match="views=4 .* waveform .* 1, 2"):
        check_views(4, "waveform")
    with pytest.raises(ViewsError, match="views=1.5"):
        check_views(1.5, "image")


def test_views_are_the_symmetry_group():
    x = torch.arange(2 * 1 * 4 * 4, dtype=torch.float32).reshape(2, 1, 4, 4)
    eight = list(symmetry_views(x, 8, "image"))
    assert len(eight) == 8 and torch.equal(eight[0], x)
    assert len({tuple(v.flatten().tolist()) for v in eight}) == 8  # all distinct for an asymmetric image
    # closed under a further rotation: rotating every view permutes the set (D4 is a group)
    rotated = {tuple(torch.rot90(v, 1, (-2, -1)).flatten().tolist()) for v in eight}
    assert rotated == {tuple(v.flatten().tolist()) for v in eight}
    assert [torch.equal(a, b) for a, b in zip(symmetry_views(x, 4, "image"), eight[::2], strict=True)] == [True] * 4
    w = torch.randn(3, 3, 100)
    two = list(symmetry_views(w, 2, "waveform"))
    assert len(two) == 2 and torch.equal(two[1], -w)


def test_image_views_make_the_embedding_invariant_and_equal_the_mean():
    raw, *_ = frames(6, 64)
    rot = np.ascontiguousarray(np.rot90(raw, 1, axes=(-2, -1)))
    mirror = np.ascontiguousarray(raw[..., ::-1])
    plain, four, eight = _image_embedder(1), _image_embedder(4), _image_embedder(8)
    # the plain embedding of a random encoder is not invariant: the test below measures something
    assert np.abs(plain(rot) - plain(raw)).max() > 1e-2
    np.testing.assert_allclose(four(rot), four(raw), atol=1e-5)
    np.testing.assert_allclose(eight(rot), eight(raw), atol=1e-5)
    np.testing.assert_allclose(eight(mirror), eight(raw), atol=1e-5)
    assert np.abs(four(mirror) - four(raw)).max() > 1e-3  # 4 rotations alone do not include the mirror
    # reference: the normalised mean of the 8 unit encodings, written out by hand
    x = eight.preprocess(raw)
    with torch.no_grad():
        units = [l2_normalise(eight.encoder(torch.rot90(v, k, (-2, -1))))
                 for v in (x, torch.flip(x, (-1,))) for k in range(4)]
    want = l2_normalise(torch.stack(units).mean(0)).numpy()
    np.testing.assert_allclose(eight(raw), want, atol=1e-5)
    np.testing.assert_allclose(np.linalg.norm(eight(raw), axis=1), 1.0, atol=1e-5)


def test_waveform_polarity_views():
    torch.manual_seed(0)
    enc = build_encoder("auto", modality="waveform", in_channels=3, embed_dim=16).eval()
    pre = Preprocess(modality="waveform", window_samples=200)
    w = np.random.default_rng(0).normal(size=(4, 3, 200)).astype(np.float32)
    plain, both = Embedder(enc, pre, views=1), Embedder(enc, pre, views=2)
    assert np.abs(plain(-w) - plain(w)).max() > 1e-2
    np.testing.assert_allclose(both(-w), both(w), atol=1e-5)
    with pytest.raises(ViewsError, match="waveform"):
        Embedder(enc, pre, views=8)
