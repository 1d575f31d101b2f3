"""`spacessl index build E.zarr --out IDX/ [--kind K] [--memory-budget 8GB] [--recall-target 0.95] [--workers N]
[--overwrite]`, `spacessl index add IDX/ E2.zarr`, `spacessl index info IDX/`."""

from __future__ import annotations

import argparse
from typing import Any

from spacessl.index.plan import KINDS


def add_build_arguments(p: argparse.ArgumentParser) -> None:
    """Options of `index build` (shared with jobs/index.py)."""
    p.add_argument("embeddings", help="embeddings store written by `spacessl embed` (E.zarr)")
    p.add_argument("--out", required=True, help="index folder to write")
    p.add_argument("--kind", choices=KINDS, default="auto",
                   help="index type (default auto: exact below 10^4, IVF-Flat while the vectors fit the budget, "
                        "OPQ + IVF-PQ beyond)")
    p.add_argument("--memory-budget", default="8GB", help="memory the index may take, e.g. 8GB, 512MiB (default 8GB)")
    p.add_argument("--recall-target", type=float, default=0.95,
                   help="recall@10 against exact search that tuning must reach (default 0.95)")
    p.add_argument("--workers", type=int, default=None, help="shards added in parallel (default min(CPUs, 8))")
    p.add_argument("--shard-rows", type=int, default=None,
                   help="vectors per index shard, rounded to whole embeddings shards (default 1048576)")
    p.add_argument("--overwrite", action="store_true", help="replace an existing index")
    p.add_argument("--no-progress", action="store_true", help="no progress bar")


def add_add_arguments(p: argparse.ArgumentParser) -> None:
    """Options of `index add` (shared with jobs/index.py)."""
    p.add_argument("index", help="index folder built by `spacessl index build`")
    p.add_argument("embeddings", help="embeddings store of the grown archive, same model")
    p.add_argument("--workers", type=int, default=None, help="shards added in parallel (default min(CPUs, 8))")
    p.add_argument("--no-progress", action="store_true", help="no progress bar")


def _params(p: dict[str, Any]) -> str:
    return ", ".join(f"{k}={v}" for k, v in p.items()) or "exact"


def format_build(m: dict[str, Any]) -> str:
    """The plan's reason, the tuning curve, recall@10 and latency of a finished build."""
    t = m["tuning"]
    lines = [f"index {m['n']} vectors of dimension {m['dim']} in {len(m['shards'])} shards: "
             f"{m['kind']} ({m['factory']})"
             + (f" + {m['plan']['refine']} re-ranking" if m["plan"].get("refine") else ""),
             f"  why: {m['plan']['reason']}",
             f"  tuning ({t['queries']} queries, {t['scoring']}):"]
    for c in t["curve"]:
        shown = {k: v for k, v in c.items() if k not in ("recall_at_10", "lower_bound", "batch_ms_per_query")}
        lines.append(f"    {_params(shown):36s} recall@10 {c['recall_at_10']:.4f} (>= {c['lower_bound']:.4f})  "
                     f"{c['batch_ms_per_query']:.3f} ms/query in a batch")
    met = "met" if t["met_target"] else "NOT met (best setting kept)"
    lines += [f"  search parameters: {_params(t['search_params'])}",
              f"  recall@10 {t['recall_at_10']:.4f} (95% lower bound {t['recall_lower_bound']:.4f}); target "
              f"{t['target']} {met}",
              f"  latency {t['latency_ms']:.2f} ms per single query (median), {t['batch_qps']:.0f} queries/s "
              "in a batch",
              f"  built in {m['build_seconds']['total']:.1f} s (train {m['build_seconds']['train']:.1f} s, add "
              f"{m['build_seconds']['add']:.1f} s, tune {m['build_seconds']['tune']:.1f} s)"]
    return "\n".join(lines)


def run_build(args: argparse.Namespace) -> int:
    from spacessl.index.build import build_index

    manifest = build_index(args.embeddings, args.out, kind=args.kind, memory_budget=args.memory_budget,
                           recall_target=args.recall_target, overwrite=args.overwrite, workers=args.workers,
                           progress=not args.no_progress, shard_rows=args.shard_rows)
    print(format_build(manifest))
    print(f"written to {args.out}")
    return 0


def run_add(args: argparse.Namespace) -> int:
    from spacessl.index.build import add_to_index

    m = add_to_index(args.index, args.embeddings, workers=args.workers, progress=not args.no_progress)
    last = m["added"][-1]
    print(f"{args.index}: {last['n_before']} -> {last['n_after']} vectors; shards written: {last['shards'] or 'none'}"
          f"; search parameters kept: {_params(m.get('search_params') or {})}")
    return 0


def run_info(args: argparse.Namespace) -> int:
    from spacessl.index.plan import IndexPlan
    from spacessl.index.search import ShardedIndex

    index = ShardedIndex.open(args.index)
    m = index.manifest
    plan = IndexPlan.from_dict(m["plan"])
    opened = {s["opened"] for s in index.info()["shards"]}
    print(f"{args.index}: {m['n']} vectors of dimension {m['dim']}, {m['kind']} ({m['factory']}"
          + (f" + {plan.refine}" if plan.refine else "") + f"), {m['metric']}, distance {m['distance']}")
    print(f"  shards: {len(m['shards'])}, opened {', '.join(sorted(opened))}; ~{plan.index_bytes(m['n']) / 1e6:.1f} MB "
          f"({plan.bytes_per_vector:g} B per vector)")
    print(f"  model {m.get('model_uri')}, embeddings {m['embeddings_url']}, archive {m.get('archive_url')}")
    t = m.get("tuning") or {}
    if t:
        print(f"  search parameters {_params(m.get('search_params') or {})}: recall@10 {t['recall_at_10']}, "
              f"latency {t['latency_ms']} ms (measured at build, {m['created']})")
    for a in m.get("added", []):
        print(f"  added {a['n_before']} -> {a['n_after']} from {a['embeddings_url']} ({a.get('at', '')})")
    index.close()
    return 0


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("index", help="build, grow and describe sharded FAISS indexes of embeddings",
                       description="Sharded FAISS similarity indexes over an embeddings store.")
    cmds = p.add_subparsers(dest="index_command", required=True, metavar="SUBCOMMAND")
    b = cmds.add_parser("build", help="build (or resume building) an index, tuned to a recall target",
                        description="Choose the index type from N, D and the memory budget, train it once, add every "
                                    "shard in parallel, tune nprobe/efSearch to the recall target. Rerun the same "
                                    "command after an interruption: finished shards are kept.")
    add_build_arguments(b)
    b.set_defaults(func=run_build)
    a = cmds.add_parser("add", help="append the new shards of a grown archive's embeddings (no retraining)")
    add_add_arguments(a)
    a.set_defaults(func=run_add)
    i = cmds.add_parser("info", help="describe an index")
    i.add_argument("index", help="index folder")
    i.set_defaults(func=run_info)
