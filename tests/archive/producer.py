"""A deterministic producer used by the kill-and-resume tests: `python producer.py URL [--kill-after I]`."""

from __future__ import annotations

import os
import signal
import sys
import time

import numpy as np

from spacessl.archive import ArchiveWriter

N_INPUTS = 40


def input_samples(i: int) -> np.ndarray:
    """Input i yields (i % 5) samples of shape (1, 6, 6), seeded by i."""
    rng = np.random.default_rng(i)
    return rng.integers(0, 65535, size=(i % 5, 1, 6, 6), dtype=np.uint16)


def main(url: str, kill_after: int | None, delay_s: float) -> None:
    w = ArchiveWriter(url, modality="image", sample_shape=(1, 6, 6), dtype="uint16", units="DN",
                      channels=["gray"], label_names=["odd", "even"], chunk_size=7, shard_chunks=2,
                      extra_meta={"site": "str"})
    for i in range(w.resume_from, N_INPUTS):
        if i % 9 == 4:
            w.reject(input_index=i, origin=f"file{i}.png", reason="corrupt", detail=f"bad bytes, input {i}")
        else:
            s = input_samples(i)
            k = len(s)
            w.append(s, input_index=i, time_ns=np.arange(k, dtype=np.int64) + 1_000 * i, source=f"cam{i % 3}",
                     origin=f"file{i}.png", label=np.full(k, i % 2), site=[f"site-{i}-{j}" for j in range(k)])
        if kill_after is not None and i == kill_after:
            os.kill(os.getpid(), signal.SIGKILL)
        time.sleep(delay_s)
    w.close()


if __name__ == "__main__":
    kill = int(sys.argv[sys.argv.index("--kill-after") + 1]) if "--kill-after" in sys.argv else None
    delay = float(sys.argv[sys.argv.index("--delay") + 1]) if "--delay" in sys.argv else 0.0
    main(sys.argv[1], kill, delay)
