"""Linear probe: multinomial logistic regression on standardised frozen embeddings.

The usual frozen-feature protocol (SimCLR, Chen et al. 2020, §B.6; the SpaceSSL paper's SimCLR + linear probe on
OATH): the encoder stays fixed, features are standardised with the training rows' mean and std, and an
L2-regularised logistic regression (scikit-learn, L-BFGS) is fit on the training rows only. As in SimCLR's
protocol, the regularisation is chosen on held-out data: :func:`select_c` scores each inverse strength C of a
log-spaced grid by cross-validation inside the training rows, with folds that keep groups (camera-nights,
station-days) whole when the groups are given, so that the choice never sees the test rows nor near-copies of its
own validation rows.
"""

from __future__ import annotations

import warnings
from collections.abc import Sequence

import numpy as np
from sklearn.exceptions import ConvergenceWarning
from sklearn.linear_model import LogisticRegression
from sklearn.model_selection import StratifiedGroupKFold, StratifiedKFold
from sklearn.pipeline import make_pipeline
from sklearn.preprocessing import StandardScaler

#: inverse L2 strengths tried by :func:`select_c`, strongest regularisation first
C_GRID: tuple[float, ...] = (1e-4, 1e-3, 1e-2, 1e-1, 1.0, 10.0)
#: C used when no validation folds can be made (too few rows, classes or groups)
DEFAULT_C = 1.0
#: validation folds of :func:`select_c`
SELECT_FOLDS = 3


def linear_probe(train_x: np.ndarray, train_y: np.ndarray, test_x: np.ndarray, test_y: np.ndarray, *,
                 c: float = DEFAULT_C, max_iter: int = 1000, seed: int = 0) -> tuple[float, np.ndarray]:
    """Fit on (train_x (Nt, D), train_y (Nt,)), score on (test_x (Nq, D), test_y (Nq,)).

    Args:
        c: inverse L2 regularisation strength of the logistic regression (see :func:`select_c`).
        max_iter: L-BFGS iterations (a non-converged fit is still scored; the warning is silenced).
    Returns:
        (accuracy, predictions (Nq,) int64). With a single training class every query gets that class.
    """
    train_y = np.asarray(train_y, dtype=np.int64)
    test_y = np.asarray(test_y, dtype=np.int64)
    if len(test_y) == 0:
        return float("nan"), np.empty(0, np.int64)
    classes = np.unique(train_y)
    if len(classes) < 2:
        pred = np.full(len(test_y), classes[0] if len(classes) else -1, dtype=np.int64)
        return float(np.mean(pred == test_y)), pred
    model = make_pipeline(StandardScaler(),
                          LogisticRegression(C=c, max_iter=max_iter, random_state=seed))
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ConvergenceWarning)
        model.fit(np.asarray(train_x, dtype=np.float32), train_y)
    pred = model.predict(np.asarray(test_x, dtype=np.float32)).astype(np.int64)
    return float(np.mean(pred == test_y)), pred


def select_c(x: np.ndarray, y: np.ndarray, *, groups: np.ndarray | None = None, cs: Sequence[float] = C_GRID,
             folds: int = SELECT_FOLDS, max_iter: int = 1000, seed: int = 0) -> tuple[float, dict[float, float]]:
    """The C of ``cs`` with the best mean validation accuracy over ``folds`` folds of the training rows.

    Args:
        x: (N, D) training features; y: (N,) int labels.
        groups: (N,) group ids: folds keep each group on one side (``StratifiedGroupKFold``); None: stratified
            folds of single rows.
        cs: candidate inverse strengths; ties go to the smaller C (the stronger regularisation).
        folds: validation folds (fewer when there are fewer groups).
    Returns:
        (C, {C: mean validation accuracy}); (``DEFAULT_C``, {}) when no fold has two classes on its fitting side
        or there are fewer than two groups.
    """
    x = np.asarray(x, dtype=np.float32)
    y = np.asarray(y, dtype=np.int64)
    n_groups = len(np.unique(groups)) if groups is not None else len(y)
    _, counts = np.unique(y, return_counts=True)
    n_splits = min(folds, n_groups, int(counts.max()) if len(counts) else 0)
    if len(counts) < 2 or n_splits < 2:
        return DEFAULT_C, {}
    cs = sorted(float(c) for c in cs)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # sparse classes in a fold, non-converged fits at large C
        scores: dict[float, list[float]] = {c: [] for c in cs}
        for fit_rows, val_rows in validation_folds(y, groups, n_splits, seed=seed):
            if len(np.unique(y[fit_rows])) < 2 or len(val_rows) == 0:
                continue
            scaler = StandardScaler().fit(x[fit_rows])
            xf, xv = scaler.transform(x[fit_rows]), scaler.transform(x[val_rows])
            model = LogisticRegression(max_iter=max_iter, random_state=seed, warm_start=True)
            for c in cs:  # strongest regularisation first, each fit started from the last solution
                model.set_params(C=c).fit(xf, y[fit_rows])
                scores[c].append(float(np.mean(model.predict(xv) == y[val_rows])))
    mean = {c: float(np.mean(v)) for c, v in scores.items() if v}
    if not mean:
        return DEFAULT_C, {}
    best = max(mean.values())
    return min(c for c, v in mean.items() if v >= best - 1e-12), mean


def validation_folds(y: np.ndarray, groups: np.ndarray | None, n_splits: int, *,
                     seed: int = 0) -> list[tuple[np.ndarray, np.ndarray]]:
    """``n_splits`` (fit rows, validation rows) index pairs over rows (N,), class proportions kept as far as the
    groups allow; with ``groups`` (N,) no group has rows on both sides of a pair."""
    y = np.asarray(y)
    rows = np.zeros((len(y), 1))
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # a class with fewer rows than folds
        if groups is not None:
            return list(StratifiedGroupKFold(n_splits, shuffle=True, random_state=seed).split(rows, y, groups))
        return list(StratifiedKFold(n_splits, shuffle=True, random_state=seed).split(rows, y))
