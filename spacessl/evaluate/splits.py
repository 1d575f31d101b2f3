"""Train/test splits for frozen-embedding evaluation.

Neighbouring all-sky frames are 3 s apart and seismic windows overlap, so a random split puts near-copies of
every test sample in the training set and inflates kNN and linear-probe accuracy (published OATH figures use
random splits). The grouped split keeps every group on one side, where a group is one source's observing period:

    group = (source, period)      period = floor((time_utc - boundary_h) / 24 h)

The boundary of a camera-night is the middle of the longest daily gap in the source's own recording times (an
all-sky camera is off around local noon, so its night never straddles two periods); a source that records around
the clock (a seismic station) has no such gap and its periods are UTC days (boundary 00:00).
"""

from __future__ import annotations

from typing import Literal

import numpy as np
from sklearn.model_selection import StratifiedGroupKFold

from spacessl.errors import SpacesslError

NS_PER_HOUR = 3_600_000_000_000
NS_PER_DAY = 24 * NS_PER_HOUR
SPLITS = ("random", "grouped")


class SplitError(SpacesslError):
    """A split cannot be made from the given rows."""


def _day_boundary_hour(time_ns: np.ndarray, min_gap_h: float = 2.0, bins: int = 96) -> float:
    """Hour of day (UTC) at the centre of the longest circular gap in ``time_ns`` (N,), or 0.0 when no gap of at
    least ``min_gap_h`` hours exists (continuous recording → UTC days)."""
    tod = (np.asarray(time_ns, dtype=np.int64) % NS_PER_DAY) / NS_PER_HOUR  # hours in [0, 24)
    occupied = np.zeros(bins, dtype=bool)
    occupied[np.minimum((tod / 24.0 * bins).astype(np.int64), bins - 1)] = True
    if occupied.all() or not occupied.any():
        return 0.0
    start = int(np.argmax(occupied))  # walk the circle from an occupied bin
    best_len, best_start, run = 0, 0, 0
    for step in range(1, bins + 1):
        b = (start + step) % bins
        if not occupied[b]:
            run += 1
            if run > best_len:
                best_len, best_start = run, (b - run + 1) % bins
        else:
            run = 0
    if best_len * 24.0 / bins < min_gap_h:
        return 0.0
    return ((best_start + best_len / 2.0) * 24.0 / bins) % 24.0


def group_ids(source: np.ndarray, time_ns: np.ndarray, *, boundary: Literal["auto"] | float = "auto") -> np.ndarray:
    """Group id (N,) int64 per row: equal ids for the same source in the same observing period.

    Args:
        source: (N,) camera or station names (any hashable dtype).
        time_ns: (N,) int64 UTC times, ns since the epoch.
        boundary: "auto" (per source, see module docstring) or a fixed UTC hour where periods start
            (0 = UTC days; 12 = nights centred on UTC midnight).
    """
    source = np.asarray(source)
    time_ns = np.asarray(time_ns, dtype=np.int64)
    if len(source) != len(time_ns):
        raise SplitError(f"source has {len(source)} rows but time_ns has {len(time_ns)}")
    src_codes, src_inv = np.unique(source, return_inverse=True)
    period = np.empty(len(time_ns), dtype=np.int64)
    for code in range(len(src_codes)):
        rows = src_inv == code
        hour = _day_boundary_hour(time_ns[rows]) if boundary == "auto" else float(boundary)
        period[rows] = (time_ns[rows] - int(hour * NS_PER_HOUR)) // NS_PER_DAY
    _, groups = np.unique(np.stack([src_inv.astype(np.int64), period], axis=1), axis=0, return_inverse=True)
    return groups.reshape(-1).astype(np.int64)


def random_split(labels: np.ndarray, *, test_fraction: float = 0.3, seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    """Stratified random split of rows (N,): returns (train_rows, test_rows) index arrays, sorted."""
    labels = np.asarray(labels)
    if not 0.0 < test_fraction < 1.0:
        raise SplitError(f"test_fraction must lie in (0, 1), got {test_fraction}")
    rng = np.random.default_rng(seed)
    test = []
    for cls in np.unique(labels):
        rows = np.flatnonzero(labels == cls)
        n_test = int(round(test_fraction * len(rows)))
        if len(rows) > 1:
            n_test = min(max(n_test, 1), len(rows) - 1)
        test.append(rng.choice(rows, size=n_test, replace=False))
    test_rows = np.sort(np.concatenate(test)) if test else np.empty(0, np.int64)
    mask = np.zeros(len(labels), dtype=bool)
    mask[test_rows] = True
    return np.flatnonzero(~mask), test_rows


def grouped_split(labels: np.ndarray, groups: np.ndarray, *, test_fraction: float = 0.3,
                  seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    """Split rows so that no group has rows on both sides, class proportions kept as far as groups allow.

    Uses scikit-learn's ``StratifiedGroupKFold`` with ``round(1 / test_fraction)`` folds and takes one fold as the
    test side. Returns (train_rows, test_rows), sorted.
    """
    labels = np.asarray(labels)
    groups = np.asarray(groups)
    if not 0.0 < test_fraction < 1.0:
        raise SplitError(f"test_fraction must lie in (0, 1), got {test_fraction}")
    n_splits = max(2, int(round(1.0 / test_fraction)))
    n_groups = len(np.unique(groups))
    if n_groups < n_splits:
        raise SplitError(f"a grouped split with test fraction {test_fraction} needs at least {n_splits} groups "
                         f"(source × night/day), but the evaluated rows hold {n_groups}; use --split random or "
                         "evaluate more nights/days")
    most = int(np.unique(labels, return_counts=True)[1].max()) if len(labels) else 0
    if most < n_splits:
        raise SplitError(f"a grouped split with test fraction {test_fraction} needs a class with at least {n_splits} "
                         f"rows, but the evaluated rows hold at most {most} of a class; evaluate more rows "
                         "(--max-samples) or use --split random")
    splitter = StratifiedGroupKFold(n_splits=n_splits, shuffle=True, random_state=seed)
    train_rows, test_rows = next(splitter.split(np.zeros(len(labels)), labels, groups))
    return np.sort(train_rows), np.sort(test_rows)


def make_split(kind: str, labels: np.ndarray, *, source: np.ndarray | None = None,
               time_ns: np.ndarray | None = None, test_fraction: float = 0.3,
               seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    """``kind`` "random" or "grouped" (needs ``source`` and ``time_ns``) → (train_rows, test_rows)."""
    if kind == "random":
        return random_split(labels, test_fraction=test_fraction, seed=seed)
    if kind == "grouped":
        if source is None or time_ns is None:
            raise SplitError("a grouped split needs each row's source and time_ns")
        return grouped_split(labels, group_ids(source, time_ns), test_fraction=test_fraction, seed=seed)
    raise SplitError(f"Unknown split {kind!r}. Available splits are: {', '.join(SPLITS)}.")
