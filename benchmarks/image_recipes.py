"""Screen SimCLR recipes for all-sky frames at a fixed number of steps, then score them like ``spacessl evaluate``.

    python benchmarks/image_recipes.py                                    # GPU: every variant; CPU: a short check
    python benchmarks/image_recipes.py --archive A --out DIR --variants v1_stretch48,v8_stretch32_adam
    python benchmarks/image_recipes.py --archive A --out DIR --score-only  # score features saved by a GPU run
    python benchmarks/image_recipes.py --archive A --out DIR --variants v8_stretch32_adam --supervised --scale 0.235

The archive defaults to the quality benchmark's (6,000 synthetic 64 px frames, seed 0), written if missing. On a CPU
the default is a short check of the stretch (``v0_base48`` against ``v1_stretch48`` at a tenth of the steps).

Variants ``x5``/``x6`` make the second view of each frame from another frame of the same camera at most 30 s away
(the loop's ``data.pair_within_s``); ``x3``/``x4``/``x6`` use the space-to-depth stem (``model.encoder=resnet18_s2d``)
at 64 px. ``y1``-``y6`` vary the stem recipe ``x3`` one option at a time: a 4 x learning rate, crops down to 35 % of
the area, temperature 0.1, the decoupled contrastive loss (``model.loss=dcl`` / ``dclw``), sensor-noise views;
``y7``/``y8`` batches of 128 / 256 for the wall time that ``x3``'s steps take on a 2-core CPU; ``y9`` both views
through the encoder as one batch (``model.joint_views``: BatchNorm over both views together).
``n1``-``n3`` narrow the encoder's stages (``model.widths``) and take the more steps that the cheaper step allows
in ``x3``'s wall time. ``z1`` adds multi-crop (Caron et al. 2020): 4 local 32 px views of 10-35 % of the area
beside the two global ones, each paired with both global views in the loss; it costs 2.3 x a step, so it gets
that many fewer steps. ``d1``/``d2`` use the debiased contrastive loss (``model.loss=debiased``; ``d2`` with hard
negatives), ``k1``/``k2`` NNCLR (``model.method=nnclr``; ``k2`` with ``model.nn_delay_steps=10``), ``c1`` views of
48 px from 45-70 % of the frame (``augment.params`` ``size``/``max_scale``), the features still from whole 64 px
frames; ``e1`` AdamW's weight decay at 0.05, ``e2`` residual blocks started as the identity.
``--buffer-chunks K`` draws each batch from K random chunks, as the training loop's archive stream does
(``data.buffer_chunks``), instead of uniformly from the whole archive.

Each variant trains the training loop's own components (``build_components``, ``build_optimizer``,
``train_step``; bf16 autocast on CUDA) in this process, without Ray or MLflow, for the number of steps at batch 64
that a 2-core CPU manages in the quality benchmark's 20 minutes at that input size (~1,400 at 32 px, ~1,000 at
48 px), or a multiple of it (``x4``). Batches are drawn uniformly from the whole archive unless ``--buffer-chunks``
(SSL uses no labels).
Backbone features of every frame are saved as ``DIR/<variant>.npy`` (float16) and scored on the benchmark's
grouped split (whole camera-nights on one side) with ``feature_metrics``: weighted kNN (k=20), linear probe,
k-means on PCA-whitened features. Where FAISS or scikit-learn are missing (a bare GPU machine), only a quick
cosine kNN is printed and ``--score-only`` scores the saved features later on a machine that has them.

This is how the quality benchmark's image recipe was chosen; it runs in minutes on one GPU. ``--supervised`` trains
the same encoder, input and views with the labels of the training rows instead (cross-entropy through a linear
head), as a reference for what the frames allow at that training length.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from spacessl.archive import open_archive  # noqa: E402
from spacessl.archive.reader import temporal_partners  # noqa: E402
from spacessl.config import load_config  # noqa: E402
from spacessl.train.loop import build_components, build_optimizer, train_step  # noqa: E402
from spacessl.train.schedule import build_scheduler  # noqa: E402

#: the quality benchmark's image recipe before per-frame stretch and AdamW (SGD at lr 0.6 per 256)
BASE = ["model.method=simclr", "model.encoder=resnet18", "model.proj_hidden_dim=512", "model.proj_out_dim=128",
        "model.temperature=0.2", "augment.preset=allsky", "train.batch_size=64", "train.optimizer=sgd",
        "train.lr=0.6", "train.momentum=0.9", "train.weight_decay=1.0e-5", "train.schedule=cosine"]
ADAM = ["train.optimizer=adamw", "train.lr=0.002", "train.weight_decay=1.0e-4"]
STRETCH = ["data.stretch=percentile"]
NO_JITTER = ["augment.params={brightness: [1.0, 1.0], contrast: [1.0, 1.0], gamma: [1.0, 1.0]}"]
NO_BLUR = ["augment.params={blur_p: 0.0}"]
#: the recipe of ``x3``: 64 px frames through the space-to-depth stem, stretched, AdamW
S2D64_ADAM = ["data.input_size=64", "model.encoder=resnet18_s2d", *STRETCH, *ADAM]
#: ``x3`` with the white point of ``s1``, the quality benchmark's image recipe since ``out/q35``
S2D64_P999_ADAM = [*S2D64_ADAM, "data.stretch_percentiles=[1, 99.9]"]

#: name -> (overrides, steps at the variant's batch size, 64 unless it says)
VARIANTS: dict[str, tuple[list[str], int]] = {
    "v0_base48": (["data.input_size=48"], 800),
    "v1_stretch48": (["data.input_size=48", *STRETCH], 800),
    "v2_stretch32": (["data.input_size=32", *STRETCH], 1700),
    "v3_base32": (["data.input_size=32"], 1700),
    "v4_stretch32_t05": (["data.input_size=32", *STRETCH, "model.temperature=0.5"], 1700),
    "v5_stretch32_oath": (["data.input_size=32", *STRETCH, "augment.preset=oath"], 1700),
    "v7_stretch48_x4": (["data.input_size=48", *STRETCH], 3200),
    "v8_stretch32_adam": (["data.input_size=32", *STRETCH, *ADAM], 1700),
    "w1_p98_adam": (["data.input_size=32", *STRETCH, "data.stretch_percentiles=[1, 98]", *ADAM], 1400),
    "w3_p98_nojitter_adam": (["data.input_size=32", *STRETCH, "data.stretch_percentiles=[1, 98]", *ADAM,
                              *NO_JITTER], 1400),
    "w4_p98_48_adam": (["data.input_size=48", *STRETCH, "data.stretch_percentiles=[1, 98]", *ADAM], 1000),
    "x1_noblur32_adam": (["data.input_size=32", *STRETCH, *ADAM, *NO_BLUR], 1700),
    "x2_noblur48_adam": (["data.input_size=48", *STRETCH, *ADAM, *NO_BLUR], 1000),
    "x3_s2d64_adam": ([*S2D64_ADAM], 1400),
    "x4_s2d64_noblur_adam": ([*S2D64_ADAM, *NO_BLUR], 1400),
    "x5_temporal32_adam": (["data.input_size=32", *STRETCH, *ADAM], 1700),
    "x6_temporal_s2d64_adam": ([*S2D64_ADAM], 1400),
    "y1_s2d64_lr4_adam": ([*S2D64_ADAM, "train.lr=0.008"], 1400),
    "y2_s2d64_crop035_adam": ([*S2D64_ADAM, "augment.params={min_scale: 0.35}"], 1400),
    "y3_s2d64_t01_adam": ([*S2D64_ADAM, "model.temperature=0.1"], 1400),
    "y4_s2d64_dcl_adam": ([*S2D64_ADAM, "model.loss=dcl"], 1400),
    "y5_s2d64_dclw_adam": ([*S2D64_ADAM, "model.loss=dclw"], 1400),
    "y6_s2d64_noise_adam": ([*S2D64_ADAM, "augment.params={noise_p: 0.8}"], 1400),
    "z1_s2d64_multicrop_adam": ([*S2D64_ADAM], 610),
    # larger batches for x3's wall time, planned at 1.2 x (128) and 1.5 x (256) the samples/s of batch 64 (timed
    # in-process); the screens ran at 1.16 x and 1.28 x, so y7 and y8 took 3 % and 16 % longer than x3
    "y7_s2d64_b128_adam": ([*S2D64_ADAM, "train.batch_size=128"], 836),
    "y8_s2d64_b256_adam": ([*S2D64_ADAM, "train.batch_size=256"], 522),
    # a smaller batch for x3's samples: twice the optimiser steps, each with 62 negatives per view instead of 126
    "y10_s2d64_b32_adam": ([*S2D64_ADAM, "train.batch_size=32"], 2800),
    # SimCLR v2's projection head of three layers (Chen et al. 2020); its extra 512 x 512 layer costs ~1 % of a step
    "h1_s2d64_head3_adam": ([*S2D64_ADAM, "model.proj_layers=3"], 1400),
    # progressive resizing: 32 px views (0.4 x the step, timed in-process) for the first 60 % of x3's time, then
    # 64 px: 2,100 + 560 steps
    "p1_s2d64_prog32_adam": ([*S2D64_ADAM], 2660),
    # milder intensity views: half the log-range of the gain, gamma and contrast of the allsky preset
    "j1_s2d64_mildjitter_adam": ([*S2D64_ADAM, "augment.params={brightness: [0.71, 1.41], contrast: [0.85, 1.15], "
                                  "gamma: [0.84, 1.18]}"], 1400),
    # stronger intensity views: 1.5 x the log-range of the gain and gamma of the allsky preset, contrast 0.6-1.4
    "j2_s2d64_strongjitter_adam": ([*S2D64_ADAM, "augment.params={brightness: [0.35, 2.83], contrast: [0.6, 1.4], "
                                    "gamma: [0.59, 1.66]}"], 1400),
    "y9_s2d64_joint_adam": ([*S2D64_ADAM, "model.joint_views=true"], 1400),
    # the debiased contrastive loss (Chuang et al. 2020): class prior 0.1, and with hard negatives (beta 1,
    # Robinson et al. 2021); the loss costs nothing next to the encoder, so x3's steps
    "d1_s2d64_debiased_adam": ([*S2D64_ADAM, "model.loss=debiased", "model.tau_plus=0.1"], 1400),
    # views of 48 px from crops of 45-70 % of the area (about the frame's own resolution), the features from whole
    # 64 px frames as in the recipe: a step at 48 px costs about 0.6 x, so 1.6 x x3's steps in its time
    "c1_s2d48crop_adam": ([*S2D64_ADAM, "augment.params={size: 48, min_scale: 0.45, max_scale: 0.7}"], 2240),
    # NNCLR (Dwibedi et al. 2021): the positive is the nearest of 4,096 earlier projections, temperature 0.1 as
    # the paper; k2 holds each batch back 10 steps before it may serve as a neighbour
    "k1_s2d64_nnclr_adam": ([*S2D64_ADAM, "model.method=nnclr", "model.temperature=0.1",
                             "model.pred_hidden_dim=512"], 1400),
    "k2_s2d64_nnclr_delay_adam": ([*S2D64_ADAM, "model.method=nnclr", "model.temperature=0.1",
                                   "model.pred_hidden_dim=512", "model.nn_delay_steps=10"], 1400),
    # AdamW's weight decay at the 0.05 of recent self-supervised recipes (DINO, MoCo v3) instead of 1e-4
    "e1_s2d64_wd005_adam": ([*S2D64_ADAM, "train.weight_decay=0.05"], 1400),
    # each residual block's last BatchNorm scale started at 0, so that every block starts as the identity
    # (Goyal et al. 2017; torchvision's zero_init_residual)
    "e2_s2d64_zeroinit_adam": ([*S2D64_ADAM], 1400),
    "d2_s2d64_hard_adam": ([*S2D64_ADAM, "model.loss=debiased", "model.tau_plus=0.1",
                            "model.hard_negative_beta=1.0"], 1400),
    # MoCo v2 (a queue of 4,096 keys, key momentum 0.99) for x3's wall time: its step backpropagates one view
    # (0.17 s against SimCLR's 0.25 s in-process), the symmetric loss both views and two key passes (~1.3 x)
    "m1_s2d64_moco_adam": ([*S2D64_ADAM, "model.method=moco"], 2000),
    "m2_s2d64_mocosym_adam": ([*S2D64_ADAM, "model.method=moco", "model.symmetric=true"], 1050),
    # narrower stages (model.widths) for x3's wall time, at the step's speed-up timed in-process on the 2-core AMD
    # machine before the screens: half of every stage (2.5 x), half of the first three (2.4 x), half of the first
    # two (1.8 x); benchmarks/stage_widths.py later gave 2.4, 2.1 and 1.7 x
    "n1_s2d64_half_adam": ([*S2D64_ADAM, "model.widths=[32,64,128,256]", "model.embed_dim=256"], 3500),
    "n2_s2d64_narrow3_adam": ([*S2D64_ADAM, "model.widths=[32,64,128,512]"], 3360),
    "n3_s2d64_narrow2_adam": ([*S2D64_ADAM, "model.widths=[32,64,256,512]"], 2520),
    # no negatives: VICReg (Bardes et al. 2022; 25/25/1) and Barlow Twins (Zbontar et al. 2021; lambda 0.0051)
    # with 1024-wide three-layer heads, for x3's wall time: their step took 1.16 x and 1.19 x x3's in-process
    "r1_s2d64_vicreg_adam": ([*S2D64_ADAM, "model.method=vicreg", "model.proj_hidden_dim=1024",
                              "model.proj_out_dim=1024"], 1200),
    "r2_s2d64_barlow_adam": ([*S2D64_ADAM, "model.method=barlow_twins", "model.proj_hidden_dim=1024",
                              "model.proj_out_dim=1024"], 1200),
    # the per-frame stretch's white point at the 99.9th percentile inside the field of view instead of the 99.5th,
    # so that fewer star and aurora pixels saturate (the 98th lost 2.2 kNN points against the 99.5th at 32 px)
    "s1_s2d64_p999_adam": ([*S2D64_P999_ADAM], 1400),
    # milder crops: at least 80 % of the area (the allsky preset: 60 %)
    "c2_s2d64_crop08_adam": ([*S2D64_ADAM, "augment.params={min_scale: 0.8}"], 1400),
    # stronger crops: down to 40 % of the area
    "c3_s2d64_crop04_adam": ([*S2D64_ADAM, "augment.params={min_scale: 0.4}"], 1400),
    # a wider projection head, as SimCLR's own (hidden as wide as the features or wider; solo-learn's ResNet-18
    # recipes: 2,048 hidden, 256 out), with the recipe's white point; its extra FLOPs are ~2 % of a step
    "g1_s2d64_proj2048_adam": ([*S2D64_P999_ADAM, "model.proj_hidden_dim=2048", "model.proj_out_dim=256"], 1400),
    "g2_s2d64_proj2048o128_adam": ([*S2D64_P999_ADAM, "model.proj_hidden_dim=2048"], 1400),
}
#: variants trained with multi-crop (Caron et al. 2020): name -> (local views, local side px, local crop area range)
MULTICROP: dict[str, tuple[int, int, tuple[float, float]]] = {"z1_s2d64_multicrop_adam": (4, 32, (0.1, 0.35))}
#: variants whose residual blocks start as the identity (each block's last BatchNorm scale at 0)
ZERO_INIT_RESIDUAL = {"e2_s2d64_zeroinit_adam"}
#: variants whose views are smaller in the first steps: name -> (side px, share of the steps)
PROGRESSIVE: dict[str, tuple[int, float]] = {"p1_s2d64_prog32_adam": (32, 2100 / 2660)}
#: variants whose two views come from two frames of the same camera at most this many seconds apart
TEMPORAL_S: dict[str, float] = {"x5_temporal32_adam": 30.0, "x6_temporal_s2d64_adam": 30.0}



def grouped_split(archive) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """(labels, train rows, test rows, group ids) of the benchmark's grouped split; all (N,) or row indices."""
    from spacessl.evaluate.splits import group_ids, grouped_split as split_rows

    b = archive.read(0, archive.n, fields=["label", "source", "time_ns"])
    y = b.meta["label"].astype(np.int64)
    groups = group_ids(np.asarray(b.meta["source"]), b.meta["time_ns"])
    tr, te = split_rows(y, groups)
    return y, tr, te, groups


def quick_knn(x: torch.Tensor, y: torch.Tensor, tr: torch.Tensor, te: torch.Tensor, k: int = 20,
              temperature: float = 0.07) -> float:
    """Weighted cosine kNN accuracy (the evaluation's rule), in torch, for machines without FAISS."""
    x = F.normalize(x.float(), dim=1)
    s, i = (x[te] @ x[tr].T).topk(k, dim=1)
    votes = torch.zeros(len(te), int(y.max()) + 1, device=x.device)
    votes.scatter_add_(1, y[tr][i], (s / temperature).exp())
    return float((votes.argmax(1) == y[te]).float().mean())


def setup(name: str, archive, raw: np.ndarray, device: torch.device):
    """(config, components seeded with 0, every frame preprocessed (N, C, H, W) on ``device``) of one variant."""
    cfg = load_config(None, [*BASE, *VARIANTS[name][0]])
    torch.manual_seed(0)
    comps = build_components(cfg, archive)
    if name in ZERO_INIT_RESIDUAL:
        from torchvision.models.resnet import BasicBlock

        for m in comps.method.encoder.modules():
            if isinstance(m, BasicBlock):
                torch.nn.init.zeros_(m.bn2.weight)
    x_all = torch.cat([comps.preprocess(c) for c in np.array_split(raw, max(1, len(raw) // 512))]).to(device)
    return cfg, comps, x_all


def local_views(augment, size: int, scale: tuple[float, float] | None = None):
    """The global view pipeline with its rotated crop replaced by a small one: (B, C, H, W) -> (B, C, size, size);
    ``scale`` None keeps the crop's area range."""
    from spacessl.augment.base import Compose
    from spacessl.augment.images import RandomRotatedCrop

    steps = [RandomRotatedCrop(size=size, scale=t.scale if scale is None else scale, ratio=t.ratio, degrees=t.degrees,
                               fov_radius=t.fov_radius)
             if isinstance(t, RandomRotatedCrop) else t for t in augment.transforms]
    return Compose(steps)


def multicrop_step(model, x: torch.Tensor, *, augment, local, n_local: int, generator, optimizer, scheduler) -> dict:
    """SimCLR with multi-crop: NT-Xent between the two global views and between each global and each local view,
    averaged over the 1 + 2 * n_local pairs."""
    with torch.no_grad():
        glob = [augment(x, generator=generator) for _ in range(2)]
        loc = [local(x, generator=generator) for _ in range(n_local)]
    zg = [model.project(v) for v in glob]
    zl = model.project(torch.cat(loc)).chunk(n_local)  # the local views in one forward
    pairs = [(zg[0], zg[1])] + [(g, z) for g in zg for z in zl]
    loss = sum(model.criterion(a, b) for a, b in pairs) / len(pairs)
    optimizer.zero_grad(set_to_none=True)
    loss.backward()
    optimizer.step()
    if scheduler is not None:
        scheduler.step()
    return {"loss": loss.detach()}


def train_variant(name: str, archive, raw: np.ndarray, steps: int, device: torch.device,
                  buffer_chunks: int = 0) -> tuple[torch.Tensor, dict]:
    """Train one variant for ``steps`` steps; returns backbone features (N, D) of every frame and facts."""
    cfg, comps, x_all = setup(name, archive, raw, device)
    model = comps.method.to(device)
    opt = build_optimizer(cfg, model.parameters(), global_batch=cfg.train.batch_size)
    sched = build_scheduler(opt, warmup_steps=round(0.05 * steps), total_steps=steps, schedule="cosine")
    gen = torch.Generator(device=device).manual_seed(0)
    pick = torch.Generator().manual_seed(0)
    meta = archive.read(0, archive.n, fields=["source", "time_ns"]).meta if name in TEMPORAL_S else None
    rng = np.random.default_rng(0)
    local = local_views(comps.augment, *MULTICROP[name][1:]) if name in MULTICROP else None
    small_px, small_share = PROGRESSIVE.get(name, (0, 0.0))
    small = local_views(comps.augment, small_px) if small_px else None
    small_steps = round(small_share * steps)
    losses = []
    t0 = time.perf_counter()
    for s in range(steps):
        if buffer_chunks:  # as the archive stream batches: from the frames of `buffer_chunks` random chunks
            cs = archive.chunk_size
            group = torch.randperm(archive.num_chunks, generator=pick)[:buffer_chunks]
            rows = torch.cat([torch.arange(c * cs, min((c + 1) * cs, len(x_all))) for c in group.tolist()])
            idx = rows[torch.randperm(len(rows), generator=pick)[:cfg.train.batch_size]]
        else:
            idx = torch.randint(0, len(x_all), (cfg.train.batch_size,), generator=pick)
        x_pair = None
        if meta is not None:  # the second view from a frame of the same camera up to TEMPORAL_S seconds away
            partner = temporal_partners(meta["source"], meta["time_ns"], TEMPORAL_S[name], rng)
            x_pair = x_all[torch.as_tensor(partner)[idx].to(device)]
        if local is not None:
            out = multicrop_step(model.train(), x_all[idx.to(device)], augment=comps.augment, local=local,
                                 n_local=MULTICROP[name][0], generator=gen, optimizer=opt, scheduler=sched)
        else:
            views = small if s < small_steps else comps.augment
            out = train_step(model.train(), x_all[idx.to(device)], augment=views, generator=gen, optimizer=opt,
                             scheduler=sched, x_pair=x_pair)
        if s % 100 == 0 or s == steps - 1:
            losses.append(round(float(out["loss"]), 3))
    if device.type == "cuda":
        torch.cuda.synchronize()
    seconds = time.perf_counter() - t0
    model.eval()
    with torch.no_grad():
        feats = torch.cat([model.encoder(c) for c in x_all.split(512)])
    return feats, {"steps": steps, "samples": steps * cfg.train.batch_size, "seconds": round(seconds, 1),
                   "losses": losses, "preprocess": str(comps.preprocess)}


def train_supervised(name: str, archive, raw: np.ndarray, steps: int, device: torch.device, y: np.ndarray,
                     tr: np.ndarray, te: np.ndarray) -> tuple[torch.Tensor, dict]:
    """The reference that labels give: the variant's encoder, preprocessing and views trained with cross-entropy
    (a linear head, AdamW at 1e-3 with a one-cycle schedule, one view per frame, batch 64) on the training rows of
    the split only. Returns backbone features (N, D) of every frame and facts with the held-out accuracy."""
    cfg, comps, x_all = setup(name, archive, raw, device)
    encoder = comps.method.encoder.to(device)
    head = torch.nn.Linear(encoder.embed_dim, int(y.max()) + 1).to(device)
    params = [*encoder.parameters(), *head.parameters()]
    opt = torch.optim.AdamW(params, lr=1e-3, weight_decay=1e-4)
    sched = torch.optim.lr_scheduler.OneCycleLR(opt, max_lr=1e-3, total_steps=steps)
    gen = torch.Generator(device=device).manual_seed(0)
    pick = torch.Generator().manual_seed(0)
    labels = torch.as_tensor(y, device=device)
    train_rows = torch.as_tensor(tr)
    t0 = time.perf_counter()
    for _ in range(steps):
        idx = train_rows[torch.randint(0, len(train_rows), (cfg.train.batch_size,), generator=pick)].to(device)
        with torch.no_grad():
            view = comps.augment(x_all[idx], generator=gen)
        loss = F.cross_entropy(head(encoder.train()(view)), labels[idx])
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()
        sched.step()
    seconds = time.perf_counter() - t0
    encoder.eval()
    with torch.no_grad():
        feats = torch.cat([encoder(c) for c in x_all.split(512)])
        pred = head(feats).argmax(1).cpu().numpy()
    return feats, {"steps": steps, "samples": steps * cfg.train.batch_size, "seconds": round(seconds, 1),
                   "supervised_test_acc": round(float(np.mean(pred[te] == y[te])), 4)}


def score(out: Path, y: np.ndarray, tr: np.ndarray, te: np.ndarray, groups: np.ndarray,
          names: list[str]) -> None:
    from spacessl.evaluate.metrics import feature_metrics

    print(f"{'variant':<22} {'kNN':>6} {'linear':>7} {'k-means':>8} {'probe C':>8}")
    for name in names:
        f = out / f"{name}.npy"
        if not f.exists():
            continue
        m = feature_metrics(np.load(f).astype(np.float32), y, tr, te, groups=groups)
        print(f"{name:<22} {m.knn_acc:6.3f} {m.linear_acc:7.3f} {m.kmeans_acc:8.3f} {m.linear_c:8g}", flush=True)


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--archive", default="out/quality/aurora.zarr",
                   help="labelled synthetic all-sky archive; written (6,000 frames, 64 px, seed 0) if missing")
    p.add_argument("--out", default="out/recipes", help="folder for the features and screen.json")
    p.add_argument("--variants", default=None,
                   help=f"comma-separated names or 'all' (default: all on a GPU, v0_base48,v1_stretch48 on a CPU): "
                        f"{', '.join(VARIANTS)}")
    p.add_argument("--scale", type=float, default=None,
                   help="multiply every step count (default 1 on a GPU, 0.1 on a CPU)")
    p.add_argument("--buffer-chunks", type=int, default=0,
                   help="draw each batch from the frames of this many random chunks, as the training loop's archive "
                        "stream does with data.buffer_chunks (default 0: uniformly from the whole archive)")
    p.add_argument("--device", default="auto")
    p.add_argument("--score-only", action="store_true", help="score features saved by an earlier run")
    p.add_argument("--supervised", action="store_true",
                   help="train the variants with the labels of the split's training rows instead (a reference: "
                        "what the same encoder, input and views reach when the classes are given)")
    a = p.parse_args()
    device = torch.device(("cuda" if torch.cuda.is_available() else "cpu") if a.device == "auto" else a.device)
    on_gpu = device.type == "cuda"
    variants = a.variants or ("all" if on_gpu else "v0_base48,v1_stretch48")
    scale = a.scale if a.scale is not None else (1.0 if on_gpu else 0.1)
    names = list(VARIANTS) if variants == "all" else [v.strip() for v in variants.split(",") if v.strip()]
    unknown = [v for v in names if v not in VARIANTS]
    if unknown:
        p.error(f"unknown variants {unknown}; known: {', '.join(VARIANTS)}")
    out = Path(a.out)
    out.mkdir(parents=True, exist_ok=True)
    if not Path(a.archive).exists():
        from spacessl.synth.aurora import write_aurora_archive

        print(f"writing {a.archive} (6,000 synthetic frames, 64 px, seed 0)", flush=True)
        write_aurora_archive(a.archive, n=6000, size=64, seed=0, progress=False)
    archive = open_archive(a.archive)
    y, tr, te, groups = grouped_split(archive)
    if a.score_only:
        score(out, y, tr, te, groups, names)
        return 0
    print(f"{len(names)} variant(s) on {device}, step counts x {scale:g}", flush=True)
    raw = archive.read(0, archive.n, fields=[]).samples
    ty, ttr, tte = (torch.as_tensor(v, device=device) for v in (y, tr, te))
    facts = {}
    saved = []
    for name in names:
        steps = max(10, int(VARIANTS[name][1] * scale))
        if a.supervised:
            saved.append(f"{name}.supervised")
            feats, facts[saved[-1]] = train_supervised(name, archive, raw, steps, device, y, tr, te)
        else:
            saved.append(name)
            feats, facts[name] = train_variant(name, archive, raw, steps, device, a.buffer_chunks)
        facts[saved[-1]]["quick_knn"] = round(quick_knn(feats, ty, ttr, tte), 4)
        np.save(out / f"{saved[-1]}.npy", feats.cpu().numpy().astype(np.float16))
        print(saved[-1], json.dumps(facts[saved[-1]]), flush=True)
    (out / ("supervised.json" if a.supervised else "screen.json")).write_text(json.dumps(facts, indent=1))
    try:
        score(out, y, tr, te, groups, saved)
    except ImportError as exc:
        print(f"not scored here ({exc}); run again with --score-only where FAISS and scikit-learn are installed")
    return 0


if __name__ == "__main__":
    sys.exit(main())
