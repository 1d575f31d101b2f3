"""Label-free changes to how a trained image encoder's embeddings are taken, scored against the stored embeddings
on the same rows and the same split: a paired comparison, free of the run-to-run spread of training.

    python benchmarks/embedding_variants.py out/q34    # a quality benchmark run folder (benchmarks/quality.py --out)

The run folder holds ``aurora.emb.zarr`` (what ``spacessl embed`` stored) and ``runs/quality-image`` (the
training run's checkpoints). Each variant below is scored with the evaluation's own kNN (cosine, k = 20,
T = 0.07) and linear probe on the evaluation's rows and grouped split (seed 0), beside the stored embeddings:

* ``size=S``: the frames resized to S px instead of the training size before the encoder (FixRes, Touvron et al.
  2019: training crops magnify the sky by 1 / sqrt(crop area) ~ 1.25 at the ``allsky`` preset's 60-100 %, so
  whole frames at 1.25 x the size show it at the scale the encoder learned).
* ``layer3+layer4``: the last two stages' globally pooled features, each L2-normalised, concatenated.
* ``views=V``: the same embedding averaged over V symmetry views instead of the stored count (1: the frame as it
  is; 8: its rotations by multiples of 90 degrees and their mirror images, :mod:`spacessl.embed.views`).
* ``head hidden`` / ``head output``: the projection head's features instead of the encoder's, from the run's last
  checkpoint (SimCLR v2, Chen et al. 2020, takes features from inside the head): the hidden layer after its
  BatchNorm and ReLU, and the head's output, where the contrastive loss is computed.
* ``whiten D^p``: PCA of the stored embeddings of the evaluated rows (labels unused; the whole archive when it
  holds no more than 20,000 labelled rows), the first D axes scaled by
  eigenvalue^p (p = -0.5: full whitening), L2-normalised (descriptor whitening as in image retrieval; FAISS's
  ``PCAMatrix`` with ``eigen_power``).

Every variant but ``views=V`` keeps the stored embeddings' symmetry views (the mean of the L2-normalised embeddings
of the frame rotated by 0, 90, 180 and 270 degrees, :func:`~spacessl.embed.embedder.embed_views`). Prints one line
per variant: kNN and linear accuracy and their change; with ``--seeds N`` also the kNN averaged over the grouped
splits of seeds 0 .. N-1 (``benchmarks/split_spread.py``) and its change.
"""

from __future__ import annotations

import argparse
import sys
import warnings
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from split_spread import knn_over_splits  # noqa: E402

from spacessl.config import load_config  # noqa: E402
from spacessl.embed.embedder import build_preprocess, embed_views  # noqa: E402
from spacessl.embed.store import open_embeddings  # noqa: E402
from spacessl.evaluate.clustering import pca_whiten  # noqa: E402
from spacessl.evaluate.knn import l2_normalize  # noqa: E402
from spacessl.evaluate.metrics import feature_metrics  # noqa: E402
from spacessl.evaluate.sample import sample_embeddings  # noqa: E402
from spacessl.evaluate.splits import group_ids, grouped_split  # noqa: E402
from spacessl.tracking import load_encoder  # noqa: E402
from spacessl.train.checkpoint import latest_checkpoint, load_state  # noqa: E402
from spacessl.train.loop import build_components  # noqa: E402


def embed_rows(fn, archive, ids: np.ndarray, pre, *, views: int, batch: int = 256) -> np.ndarray:
    """(n, D) rows ``embed_views(fn, pre(samples))`` of archive rows ``ids``, in batches."""
    out = []
    for s in range(0, len(ids), batch):
        x = pre(archive.take(ids[s:s + batch], fields=[]).samples)
        out.append(embed_views(fn, x, views=views, modality="image").numpy())
    return np.concatenate(out)


@torch.inference_mode()
def head_features(run_dir: Path, archive, ids: np.ndarray, info: dict, *, views: int) -> dict[str, np.ndarray]:
    """Projection-head features of archive rows ``ids`` from the run's last checkpoint, averaged over ``views``:
    {"hidden": (n, H) after the hidden layer's BatchNorm and ReLU, "output": (n, P)}, unit rows."""
    cfg = load_config(run_dir / "config.yaml")
    method = build_components(cfg, archive).method
    method.load_state_dict(load_state(latest_checkpoint(run_dir))["model"])
    method.eval()
    layers = method.projection_head.layers
    last = max(i for i, m in enumerate(layers) if isinstance(m, torch.nn.Linear))
    hidden, rest = layers[:last], layers[last:]

    def both(v: torch.Tensor) -> torch.Tensor:  # unit hidden and unit output side by side: equal weights
        h = hidden(method.encoder(v))
        return torch.cat([F.normalize(h, dim=1), F.normalize(rest(h), dim=1)], dim=1)

    f = embed_rows(both, archive, ids, build_preprocess(archive, info), views=views)
    width = rest[0].in_features
    return {"hidden": l2_normalize(f[:, :width]), "output": l2_normalize(f[:, width:])}


@torch.inference_mode()
def encode(encoder: torch.nn.Module, archive, ids: np.ndarray, info: dict, *, size: int | None = None,
           views: int = 4, batch: int = 256) -> dict[str, np.ndarray]:
    """Features of archive rows ``ids`` averaged over ``views`` symmetric copies as ``spacessl embed`` averages
    them (:func:`~spacessl.embed.embedder.embed_views`): {"layer4": (n, 512), "layer3": (n, C3)}, unit rows."""
    pooled: dict[str, torch.Tensor] = {}
    hook = encoder.backbone.layer3.register_forward_hook(
        lambda m, i, o: pooled.__setitem__("layer3", o.mean(dim=(-2, -1))))

    def both(v: torch.Tensor) -> torch.Tensor:  # unit layer4 and unit layer3 side by side: equal weights
        last = F.normalize(encoder(v), dim=1)
        return torch.cat([last, F.normalize(pooled["layer3"], dim=1)], dim=1)

    pre = build_preprocess(archive, dict(info, input_size=size or info.get("input_size")))
    try:
        f = embed_rows(both, archive, ids, pre, views=views, batch=batch)
    finally:
        hook.remove()
    d = int(info.get("embed_dim") or 512)
    return {"layer4": l2_normalize(f[:, :d]), "layer3": l2_normalize(f[:, d:])}


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("run", help="a benchmarks/quality.py output folder")
    p.add_argument("--sizes", default="80,96", help="input sizes to embed at (px, comma-separated)")
    p.add_argument("--views", default="1,8", help="symmetry view counts to embed with (1, 4, 8; comma-separated)")
    p.add_argument("--seeds", type=int, default=1,
                   help="also print each variant's kNN averaged over the grouped splits of seeds 0 .. N-1")
    p.add_argument("--whiten", default="32,64,128,256", help="PCA dimensions to whiten to")
    args = p.parse_args(argv)
    warnings.filterwarnings("ignore", category=UserWarning)
    run = Path(args.run)
    emb = open_embeddings(str(run / "aurora.emb.zarr"))
    archive = emb.archive()
    sample = sample_embeddings(emb, 20_000, seed=0)
    y = sample.labels
    groups = group_ids(sample.source, sample.time_ns)
    train, test = grouped_split(y, groups, test_fraction=0.3, seed=0)
    encoder, info = load_encoder(str(run / "runs" / "quality-image"))

    def score(x: np.ndarray) -> tuple[float, float]:
        m = feature_metrics(x, y, train, test, seed=0, groups=groups).scores()
        return m["knn_acc"], m["linear_acc"]

    base = score(sample.vectors)
    print(f"{run}: {len(y)} rows, {len(train)} train / {len(test)} test (grouped, seed 0)")
    spread = f"kNN 0-{args.seeds - 1}" if args.seeds > 1 else ""
    base_spread = knn_over_splits(sample.vectors, sample, seeds=args.seeds).mean() if spread else 0.0
    print(f"{'variant':<16}{'kNN':>8}{'linear':>8}{'ΔkNN':>8}{'Δlinear':>9}"
          + (f"{spread:>10}{'Δ':>8}" if spread else ""))

    def show(name: str, x: np.ndarray) -> None:
        knn, lin = score(x)
        line = f"{name:<16}{knn:8.3f}{lin:8.3f}{knn - base[0]:+8.3f}{lin - base[1]:+9.3f}"
        if spread:
            mean = knn_over_splits(x, sample, seeds=args.seeds).mean()
            line += f"{mean:10.3f}{mean - base_spread:+8.3f}"
        print(line, flush=True)

    show("stored", sample.vectors)
    own = encode(encoder, archive, sample.ids, info, views=emb.views)
    if np.abs(own["layer4"] - sample.vectors).max() > 1e-4:
        raise SystemExit(f"{run}: re-embedding does not reproduce the stored embeddings; is this the run's model?")
    show("layer3+layer4", l2_normalize(np.hstack([own["layer3"], own["layer4"]])))
    for size in (int(s) for s in args.sizes.split(",") if s):
        show(f"size={size}", encode(encoder, archive, sample.ids, info, size=size, views=emb.views)["layer4"])
    for views in (int(v) for v in args.views.split(",") if v):
        show(f"views={views}", encode(encoder, archive, sample.ids, info, views=views)["layer4"])
    head = head_features(run / "runs" / "quality-image", archive, sample.ids, info, views=emb.views)
    show("head hidden", head["hidden"])
    show("head output", head["output"])
    for dim in (int(d) for d in args.whiten.split(",") if d):
        for power in (-0.5, -0.25):
            show(f"whiten {dim}^{power}", l2_normalize(pca_whiten(sample.vectors, dim, power=power)))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
