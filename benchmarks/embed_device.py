"""Half-precision embedding on a GPU: agreement with float32 and the rate, without Ray (the per-actor work).

    python benchmarks/embed_device.py [--n 4096] [--batch 256] [--size 256]

An :class:`~spacessl.embed.embedder.Embedder` (the object every embedding actor holds) embeds the same synthetic
16-bit all-sky-like frames three ways: fp16 autocast on the GPU (what the embedding job uses there), float32 on the
GPU (the baseline, same run) and float32 on the CPU (a subset). It prints samples/s of both GPU paths and their
ratio, the smallest cosine between fp16 and float32 vectors of the same frame, and how many of each frame's 10
nearest neighbours (cosine, among all N) the fp16 vectors keep. Encoders: ResNet-18 (1 channel, 512-d) and the
1-D ResNet on 3 × 1000 windows, both at random initialisation (weights do not change the arithmetic).
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

import numpy as np
import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))


def frames(n: int, size: int, seed: int = 0) -> np.ndarray:
    """(n, 1, size, size) uint16: smooth sky structure plus noise."""
    rng = np.random.default_rng(seed)
    yy, xx = np.mgrid[0:size, 0:size] / size
    phase = rng.uniform(0, 6.28, size=(n, 1, 1))
    base = 2000 + 1500 * np.sin(6 * xx[None] + phase) * np.cos(4 * yy[None] - phase)
    return (base + rng.normal(0, 40, size=(n, size, size))).clip(0, 16383).astype(np.uint16)[:, None]


def windows(n: int, seed: int = 0) -> np.ndarray:
    """(n, 3, 1000) float32: noise with a decaying burst at a random onset and amplitude."""
    rng = np.random.default_rng(seed)
    t = np.arange(1000) / 100.0
    onset = rng.uniform(1, 6, size=(n, 1, 1))
    env = np.where(t[None, None] > onset, np.exp(-(t[None, None] - onset) * rng.uniform(0.5, 4, (n, 1, 1))), 0)
    burst = env * np.sin(2 * np.pi * rng.uniform(1, 20, (n, 1, 1)) * t[None, None])
    return (burst * 10 ** rng.uniform(1, 4, (n, 1, 1)) + rng.normal(0, 5, (n, 3, 1000))).astype(np.float32)


def embed_all(emb, data: np.ndarray, batch: int) -> tuple[np.ndarray, float]:
    emb(data[:batch])  # warm-up (cuDNN autotuning, allocator)
    if emb.device.type == "cuda":
        torch.cuda.synchronize()
    t0 = time.perf_counter()
    out = np.concatenate([emb(data[i:i + batch]) for i in range(0, len(data), batch)])
    return out, len(data) / (time.perf_counter() - t0)


def knn(v: np.ndarray, k: int = 10) -> np.ndarray:
    sim = v @ v.T
    np.fill_diagonal(sim, -np.inf)
    return np.argsort(-sim, axis=1)[:, :k]


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--n", type=int, default=4096)
    p.add_argument("--batch", type=int, default=256)
    p.add_argument("--size", type=int, default=256)
    p.add_argument("--cpu-n", type=int, default=256, help="frames embedded on the CPU for the agreement check")
    args = p.parse_args()
    if not torch.cuda.is_available():
        print("no CUDA device: this benchmark compares the GPU paths")
        return 0
    from spacessl.augment.preprocess import Preprocess
    from spacessl.embed.embedder import Embedder
    from spacessl.models.encoders import build_encoder

    print(f"{torch.cuda.get_device_name(0)}, torch {torch.__version__}, N={args.n}, batch {args.batch}")
    cases = [("image", 1, frames(args.n, args.size), Preprocess(modality="image", in_channels=1)),
             ("waveform", 3, windows(args.n), Preprocess(modality="waveform", in_channels=3))]
    for modality, ch, data, pre in cases:
        torch.manual_seed(0)
        enc = build_encoder("auto", modality=modality, in_channels=ch).eval()
        fp16 = Embedder(enc, pre, device="cuda", half=True)
        fp32 = Embedder(enc, pre, device="cuda", half=False)
        v16, r16 = embed_all(fp16, data, args.batch)
        v32, r32 = embed_all(fp32, data, args.batch)
        cpu = Embedder(build_encoder("auto", modality=modality, in_channels=ch).eval(), pre, device="cpu")
        cpu.encoder.load_state_dict(enc.state_dict())
        vcpu = cpu(data[:args.cpu_n])
        cos16 = (v16 * v32).sum(1)
        cos_cpu = (v32[:args.cpu_n] * vcpu).sum(1)
        keep = np.mean([len(set(a) & set(b)) / 10 for a, b in zip(knn(v16), knn(v32), strict=True)])
        shape = "x".join(map(str, data.shape[1:]))
        print(f"{modality} {shape}: fp16 {r16:8.0f} samples/s, float32 {r32:8.0f} samples/s, ratio {r16 / r32:.2f}; "
              f"cosine fp16 vs float32 min {cos16.min():.5f}; GPU vs CPU float32 min {cos_cpu.min():.5f}; "
              f"top-10 neighbours kept by fp16 {keep:.3f}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
