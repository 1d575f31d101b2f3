"""A small real index (synthetic frames → tiny encoder → Ray embedding job → FAISS) and the app serving it."""

from __future__ import annotations

import pytest

from tests.embed.fixtures import make_image_archive, save_tiny_encoder


@pytest.fixture(scope="session")
def served_index(ray_cluster, tmp_path_factory):
    """(index_dir, archive_url, model_uri) of a 192-frame, 32 px index."""
    from spacessl.embed.job import embed_archive
    from spacessl.index.build import build_index

    root = tmp_path_factory.mktemp("serve")
    archive = make_image_archive(root / "a.zarr", n=192, size=32, chunk_size=32, shard_chunks=2)
    model = save_tiny_encoder(root / "model")
    embed_archive(model, archive, str(root / "e.zarr"), batch_size=32, progress=False)
    build_index(str(root / "e.zarr"), root / "idx", kind="flat", progress=False)
    return str(root / "idx"), archive, model


@pytest.fixture(scope="session")
def app(served_index):
    from spacessl.serve.app import create_app

    return create_app(served_index[0])
