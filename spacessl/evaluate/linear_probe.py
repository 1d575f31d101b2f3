"""Linear probe: multinomial logistic regression on standardised frozen embeddings.

The usual frozen-feature protocol (SimCLR, Chen et al. 2020, §B.6; the SpaceSSL paper's SimCLR + linear probe on
OATH): the encoder stays fixed, features are standardised with the training rows' mean and std, and an
L2-regularised logistic regression (scikit-learn, L-BFGS) is fit on the training rows only.
"""

from __future__ import annotations

import warnings

import numpy as np
from sklearn.exceptions import ConvergenceWarning
from sklearn.linear_model import LogisticRegression
from sklearn.pipeline import make_pipeline
from sklearn.preprocessing import StandardScaler


def linear_probe(train_x: np.ndarray, train_y: np.ndarray, test_x: np.ndarray, test_y: np.ndarray, *,
                 c: float = 1.0, max_iter: int = 1000, seed: int = 0) -> tuple[float, np.ndarray]:
    """Fit on (train_x (Nt, D), train_y (Nt,)), score on (test_x (Nq, D), test_y (Nq,)).

    Args:
        c: inverse L2 regularisation strength of the logistic regression.
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
