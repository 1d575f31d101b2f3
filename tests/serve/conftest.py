"""A small real index (synthetic frames → tiny encoder → Ray embedding job → FAISS) and the app serving it."""

from __future__ import annotations

import pytest

from tests.embed.fixtures import make_exact_index


@pytest.fixture(scope="session")
def served_index(ray_cluster, tmp_path_factory):
    """(index_dir, archive_url, model_uri) of a 192-frame, 32 px index."""
    idx, archive, model = make_exact_index(tmp_path_factory.mktemp("serve"), n=192, chunk_size=32)
    return str(idx), archive, model


@pytest.fixture(scope="session")
def app(served_index):
    from spacessl.serve.app import create_app

    return create_app(served_index[0])
