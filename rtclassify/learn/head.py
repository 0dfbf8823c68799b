"""A small head for a new tag: L2-regularized logistic regression on the embedding, numpy only.

:func:`fit_head` fits ``p = sigmoid(embedding @ weight + bias)`` on positive
and negative embeddings:

* features are standardized (per-dimension mean and standard deviation of the
  training rows); the standardization is folded back into ``weight`` and
  ``bias``, so the head runs on raw embeddings;
* the two classes weigh the same in the loss whatever their sizes;
* the loss (weighted mean log-loss + ``l2/2 * |w|^2``, bias unpenalized) is
  minimized by Newton's method with a backtracking line search (a few
  iterations; strictly convex for ``l2 > 0``, so the solution is unique; the
  Hessian is formed in single precision, the gradient and loss in double);
* the L2 strength is chosen among :data:`L2_GRID` by cross-validation (at
  most four folds; in each fold the strengths are fitted from the strongest
  down, each starting from the previous solution) over the examples (rows of one example never sit on both sides of a split; with a
  single positive example its two halves are the folds), scored by the
  pooled out-of-fold ROC-AUC (ties go to the stronger regularization);
* the ``on`` threshold comes from the out-of-fold probabilities: 0.5 when
  it is among the cuts with the best balanced accuracy (within 0.005),
  otherwise the middle (in logit space) of the best cut range nearest to
  0.5; clipped to [0.05, 0.95]. ``off = on * off_ratio`` gives the decoder's
  hysteresis.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

from ..errors import ParameterError

__all__ = ["LinearHead", "fit_head", "fit_logistic", "roc_auc", "fold_ids", "L2_GRID", "single_thread_blas"]

#: the range an ``on`` threshold is clipped to
ON_RANGE = (0.05, 0.95)
#: L2 strengths tried by cross-validation (on standardized features, class-balanced mean loss).
L2_GRID = (1e-3, 1e-2, 1e-1, 1.0)


def single_thread_blas():
    """A context that limits BLAS/LAPACK to one thread (with threadpoolctl when it is installed).

    The head's linear algebra is small (a few thousand rows, about a hundred
    columns): on a loaded machine a multi-threaded BLAS spends far longer
    waiting for its threads than computing (10-20x here). Without
    threadpoolctl the context does nothing.
    """
    try:
        from threadpoolctl import threadpool_limits
    except ImportError:
        import contextlib

        return contextlib.nullcontext()
    return threadpool_limits(limits=1, user_api="blas")


def _sigmoid(z: np.ndarray) -> np.ndarray:
    return 0.5 * (1.0 + np.tanh(0.5 * z))


def roc_auc(y: np.ndarray, score: np.ndarray) -> float:
    """Area under the ROC curve (ties count one half); NaN when one class is missing.

    Parameters
    ----------
    y : ndarray of bool or 0/1, shape (n,)
    score : ndarray, shape (n,)
    """
    y = np.asarray(y).astype(bool)
    s = np.asarray(score, np.float64)
    n_pos = int(y.sum())
    n_neg = len(y) - n_pos
    if n_pos == 0 or n_neg == 0:
        return float("nan")
    order = np.argsort(s, kind="mergesort")
    ranks = np.empty(len(s), np.float64)
    ss = s[order]
    # average ranks over ties
    edges = np.flatnonzero(np.diff(ss)) + 1
    starts = np.concatenate([[0], edges])
    ends = np.concatenate([edges, [len(ss)]])
    avg = (starts + ends + 1) / 2.0
    ranks[order] = np.repeat(avg, ends - starts)
    return float((ranks[y].sum() - n_pos * (n_pos + 1) / 2.0) / (n_pos * n_neg))


def fit_logistic(X: np.ndarray, y: np.ndarray, sample_weight: np.ndarray, l2: float, init=None,
                 max_iter: int = 30, tol: float = 1e-8) -> np.ndarray:
    """Weighted L2 logistic regression by Newton's method.

    Parameters
    ----------
    X : ndarray, float64, shape (n, D)
        Features (standardize them first).
    y : ndarray, shape (n,)
        Targets in {0, 1}.
    sample_weight : ndarray, shape (n,)
        Non-negative row weights (the loss is their weighted sum).
    l2 : float
        Penalty ``l2/2 * |w|^2`` on the weights (not the bias).
    init : ndarray, shape (D + 1,), optional
        Starting point (weights then bias).

    Returns
    -------
    ndarray, float64, shape (D + 1,)
        Weights, then the bias.
    """
    n, D = X.shape
    A = np.concatenate([X, np.ones((n, 1))], axis=1)
    # The Hessian in single precision, as B.T @ B (numpy computes that as a symmetric rank-k update, half the
    # products): 2.8x faster on 11 000 rows of 900 columns. The gradient, the loss and the solve stay in double,
    # so the optimum is the same (an inexact Hessian only changes the path; the heads agreed to 4e-8 in logit).
    A32 = A.astype(np.float32)
    reg = np.full(D + 1, float(l2))
    reg[-1] = 0.0
    theta = np.zeros(D + 1) if init is None else np.array(init, np.float64)
    y = np.asarray(y, np.float64)
    s = np.asarray(sample_weight, np.float64)

    def loss(t):
        z = A @ t
        # log(1 + exp(-z)) for y=1, log(1 + exp(z)) for y=0, computed stably
        ll = np.logaddexp(0.0, z) - y * z
        return float(s @ ll + 0.5 * np.sum(reg * t * t))

    f = loss(theta)
    for _ in range(max_iter):
        p = _sigmoid(A @ theta)
        g = A.T @ (s * (p - y)) + reg * theta
        B = A32 * np.sqrt(s * p * (1.0 - p)).astype(np.float32)[:, None]
        H = (B.T @ B).astype(np.float64)
        H[np.diag_indices_from(H)] += reg + 1e-10
        try:
            step = np.linalg.solve(H, g)
        except np.linalg.LinAlgError:
            step = np.linalg.lstsq(H, g, rcond=None)[0]
        dec = float(g @ step)
        if dec / 2.0 <= tol:
            break
        t = 1.0
        while True:
            cand = theta - t * step
            fc = loss(cand)
            if fc <= f - 0.25 * t * dec or t < 1e-8:
                break
            t *= 0.5
        theta, f = cand, fc
    return theta


def fold_ids(groups: np.ndarray, n_folds: int, seed: int = 0) -> np.ndarray:
    """Assign each row to a fold so that every group (example) lies in one fold.

    Parameters
    ----------
    groups : ndarray of int, shape (n,)
    n_folds : int

    Returns
    -------
    ndarray of int, shape (n,)
    """
    uniq = np.unique(groups)
    rng = np.random.default_rng(seed)
    order = rng.permutation(len(uniq))
    fold_of = {int(uniq[j]): i % n_folds for i, j in enumerate(order)}
    return np.array([fold_of[int(g)] for g in groups], np.int64)


def _logit(v: np.ndarray) -> np.ndarray:
    v = np.clip(np.asarray(v, np.float64), 1e-7, 1 - 1e-7)
    return np.log(v / (1 - v))


def _best_threshold(y: np.ndarray, p: np.ndarray, tolerance: float = 0.005) -> tuple[float, float]:
    """(threshold, balanced accuracy) of probabilities ``p`` for labels ``y``.

    The cuts between consecutive distinct probabilities whose balanced accuracy
    is within ``tolerance`` of the best are candidates. When 0.5 (the decision
    point of a class-balanced logistic regression) lies in a candidate range it
    is kept; otherwise the threshold is the middle, in logit space, of the
    candidate range nearest to 0.5 (a range open towards 0 or 1 extends two
    logit units beyond the data).
    """
    y = y.astype(bool)
    n_pos, n_neg = int(y.sum()), int((~y).sum())
    order = np.argsort(p, kind="mergesort")
    ps, ys = np.asarray(p, np.float64)[order], y[order]
    # cut i: rows i.. (sorted) are called positive
    tp = n_pos - np.concatenate([[0], np.cumsum(ys)])
    tn = np.concatenate([[0], np.cumsum(~ys)])
    bacc = 0.5 * (tp / n_pos + tn / n_neg)
    valid = np.ones(len(ps) + 1, bool)
    valid[1:-1] = ps[1:] > ps[:-1]
    bacc = np.where(valid, bacc, -1.0)
    lz = _logit(ps)
    lower = np.concatenate([[lz[0] - 2.0], lz])     # logit just below cut i
    upper = np.concatenate([lz, [lz[-1] + 2.0]])    # logit just above cut i
    cand = np.flatnonzero(bacc >= float(bacc.max()) - tolerance)
    inside = cand[(lower[cand] < 0.0) & (upper[cand] > 0.0)]
    if len(inside):
        i = int(inside[np.argmax(bacc[inside])])
        return 0.5, float(bacc[i])
    dist = np.minimum(np.abs(lower[cand]), np.abs(upper[cand]))
    i = int(cand[int(np.argmin(dist))])
    mid = 0.5 * (lower[i] + upper[i])
    return float(_sigmoid(np.array(mid))), float(bacc[i])


@dataclass
class LinearHead:
    """A fitted head: ``p = sigmoid(embedding @ weight + bias)``.

    Attributes
    ----------
    weight : ndarray, float64, shape (D,)
        On raw (unstandardized) embeddings.
    bias : float
    on, off : float
        Decoder thresholds (hysteresis).
    info : dict
        ``l2``, ``cv_roc_auc`` (pooled out-of-fold ROC-AUC of the chosen
        strength), ``cv_balanced_accuracy`` at ``on``, ``cv_folds``, ``l2_scores``
        (``{l2: auc}``), ``n_positive``, ``n_negative`` (rows).
    """

    weight: np.ndarray
    bias: float
    on: float
    off: float
    info: dict = field(default_factory=dict)

    def logit(self, X: np.ndarray) -> np.ndarray:
        """Logits, shape (n,), of embeddings (n, D)."""
        return np.asarray(X, np.float64) @ self.weight + self.bias

    def predict_proba(self, X: np.ndarray) -> np.ndarray:
        """Probabilities, shape (n,), of embeddings (n, D)."""
        return _sigmoid(self.logit(X))


def fit_head(X_pos: np.ndarray, X_neg: np.ndarray, groups_pos: np.ndarray | None = None,
             groups_neg: np.ndarray | None = None, l2: float | None = None, off_ratio: float = 0.7,
             max_folds: int = 4, seed: int = 0, kinds_pos=None, kinds_neg=None) -> LinearHead:
    """Fit a :class:`LinearHead` (see the module notes).

    Parameters
    ----------
    X_pos : ndarray, shape (n_pos, D)
        Embeddings of positive windows.
    X_neg : ndarray, shape (n_neg, D)
        Embeddings of negative windows.
    groups_pos, groups_neg : ndarray of int, optional
        Example of each row (for the cross-validation folds); default: one
        group per row. A positive row of a negative group is left out of
        the cross-validation (neither trained on nor scored there) and is
        in the final fit.
    l2 : float, optional
        A fixed L2 strength (skips the search; the threshold is still chosen
        by cross-validation).
    off_ratio : float
        ``off = on * off_ratio``, in (0, 1].
    max_folds : int
        Most cross-validation folds.
    seed : int
        Fold assignment seed.
    kinds_pos, kinds_neg : sequence of str, optional
        What each row is (the positives' ``"examples"``, ``"shifted"`` or ``"mixed"`` copies, the negatives'
        ``"yours"`` or ``"generic"``): the head's info then also holds the cross-validated ROC-AUC of each
        kind of positive against each kind of negative (``cv_roc_auc_by_kind``, keys ``"POS/NEG"``) and the
        share of each kind of negative the on threshold takes in cross-validation (``cv_on_share_by_kind``).
        The pooled figure can hide a tag that cannot tell the examples from the user's negatives behind easy
        rows (mixed copies against clean negatives, the generic negatives).

    Returns
    -------
    LinearHead

    Raises
    ------
    ParameterError
        No rows in a class, mismatched dimensions or non-finite embeddings.
    """
    with single_thread_blas():
        return _fit_head(X_pos, X_neg, groups_pos, groups_neg, l2, off_ratio, max_folds, seed,
                         None if kinds_pos is None else np.asarray(kinds_pos, str),
                         None if kinds_neg is None else np.asarray(kinds_neg, str))


def _by_kind(y, oof, kinds, on) -> tuple[dict, dict]:
    """Cross-validated ROC-AUC of each kind of positive against each kind of negative (rows scored out of fold),
    and the share of each kind of negative at or above ``on``."""
    ok = ~np.isnan(oof)
    auc, share = {}, {}
    pos_kinds = sorted(set(kinds[(y == 1) & ok]))
    neg_kinds = sorted(set(kinds[(y == 0) & ok]))
    for nk in neg_kinds:
        neg = (y == 0) & ok & (kinds == nk)
        share[nk] = round(float(np.mean(oof[neg] >= on)), 5)
        for pk in pos_kinds:
            pos = (y == 1) & ok & (kinds == pk)
            rows = pos | neg
            auc[f"{pk}/{nk}"] = round(float(roc_auc(y[rows], oof[rows])), 5)
    return auc, share


def _fit_head(X_pos, X_neg, groups_pos, groups_neg, l2, off_ratio, max_folds, seed, kinds_pos=None,
              kinds_neg=None) -> LinearHead:
    X_pos = np.asarray(X_pos, np.float64)
    X_neg = np.asarray(X_neg, np.float64)
    if X_pos.ndim != 2 or X_neg.ndim != 2 or X_pos.shape[1] != X_neg.shape[1]:
        raise ParameterError(f"embeddings must be (n, D) with the same D; got {X_pos.shape} and {X_neg.shape}")
    if len(X_pos) == 0:
        raise ParameterError("positives: no sounding window to learn from")
    if len(X_neg) == 0:
        raise ParameterError("negatives: no window to learn from")
    if not (np.all(np.isfinite(X_pos)) and np.all(np.isfinite(X_neg))):
        raise ParameterError("embeddings hold NaN or infinite values")
    if not 0.0 < off_ratio <= 1.0:
        raise ParameterError(f"off_ratio must be in (0, 1] (got {off_ratio})")
    if (kinds_pos is not None and len(kinds_pos) != len(X_pos)) or \
            (kinds_neg is not None and len(kinds_neg) != len(X_neg)):
        raise ParameterError(f"kinds_pos / kinds_neg must give one kind per row ({len(X_pos)} / {len(X_neg)}); got "
                             f"{None if kinds_pos is None else len(kinds_pos)} / "
                             f"{None if kinds_neg is None else len(kinds_neg)}")
    gp = np.arange(len(X_pos)) if groups_pos is None else np.asarray(groups_pos, np.int64)
    gn = np.arange(len(X_neg)) if groups_neg is None else np.asarray(groups_neg, np.int64)
    X = np.concatenate([X_pos, X_neg])
    y = np.concatenate([np.ones(len(X_pos)), np.zeros(len(X_neg))])
    w = np.concatenate([np.full(len(X_pos), 0.5 / len(X_pos)), np.full(len(X_neg), 0.5 / len(X_neg))])
    mu = X.mean(axis=0)
    sd = X.std(axis=0)
    sd = np.where(sd > 1e-6 * max(1.0, float(sd.max(initial=0.0))), sd, 1.0)
    Z = (X - mu) / sd

    # folds: positives by example (one example: its two halves), negatives by example; fold -1: not in the
    # cross-validation
    cv = gp >= 0
    n_pos_groups = len(np.unique(gp[cv]))
    fp = np.full(len(X_pos), -1, np.int64)
    if n_pos_groups >= 2:
        k = int(min(max_folds, n_pos_groups))
        fp[cv] = fold_ids(gp[cv], k, seed)
    else:
        k = 2
        fp[cv] = (np.arange(int(cv.sum())) >= cv.sum() / 2).astype(np.int64)
    if len(np.unique(gn)) >= k:
        fn = fold_ids(gn, k, seed + 1)
    else:
        fn = (np.arange(len(X_neg)) * k // max(1, len(X_neg))).astype(np.int64)
    folds = np.concatenate([fp, fn])
    in_cv = folds >= 0
    usable = [f for f in range(k) if (y[folds == f] == 1).any() and (y[folds == f] == 0).any()
              and (y[in_cv & (folds != f)] == 1).any() and (y[in_cv & (folds != f)] == 0).any()]

    grid = (float(l2),) if l2 is not None else tuple(sorted(L2_GRID, reverse=True))
    oof_by_l2 = {lam: np.full(len(y), np.nan) for lam in grid}
    last_theta = {}
    for f in usable:
        tr, te = in_cv & (folds != f), folds == f
        wt = w[tr].copy()
        wt[y[tr] == 1] *= 0.5 / wt[y[tr] == 1].sum()
        wt[y[tr] == 0] *= 0.5 / wt[y[tr] == 0].sum()
        theta = None
        for lam in grid:  # strongest first; each fit starts from the previous solution
            theta = fit_logistic(Z[tr], y[tr], wt, lam, init=theta)
            oof_by_l2[lam][te] = _sigmoid(Z[te] @ theta[:-1] + theta[-1])
            last_theta[lam] = theta
    scores = {}
    for lam in grid:
        ok = ~np.isnan(oof_by_l2[lam])
        scores[lam] = roc_auc(y[ok], oof_by_l2[lam][ok]) if ok.any() else float("nan")
    finite = {lam: s for lam, s in scores.items() if np.isfinite(s)}
    if finite:
        best_auc = max(finite.values())
        best_l2 = max(lam for lam, s in finite.items() if s >= best_auc - 1e-4)
    else:
        best_l2 = grid[len(grid) // 2]
    oof = oof_by_l2[best_l2]
    ok = ~np.isnan(oof)
    if ok.any() and len(np.unique(y[ok])) == 2:
        on, bacc = _best_threshold(y[ok], oof[ok])
    else:
        on, bacc = 0.5, float("nan")
    clipped = not ON_RANGE[0] <= on <= ON_RANGE[1]
    on = float(np.clip(on, *ON_RANGE))
    theta = fit_logistic(Z, y, w, best_l2, init=last_theta.get(best_l2))
    weight = theta[:-1] / sd
    bias = float(theta[-1] - np.sum(theta[:-1] * mu / sd))
    info = {
        "model": "logistic regression (L2, class-balanced, Newton)",
        "l2": best_l2,
        "l2_scores": {str(k_): (None if not np.isfinite(v) else round(float(v), 5)) for k_, v in scores.items()},
        "cv_roc_auc": None if not np.isfinite(scores[best_l2]) else float(scores[best_l2]),
        "cv_balanced_accuracy": None if not np.isfinite(bacc) else float(bacc),
        "cv_folds": len(usable),
        "threshold_clipped": bool(clipped),
        "n_positive": int(len(X_pos)),
        "n_negative": int(len(X_neg)),
    }
    if kinds_pos is not None and kinds_neg is not None and ok.any():
        info["cv_roc_auc_by_kind"], info["cv_on_share_by_kind"] = _by_kind(
            y, oof, np.concatenate([kinds_pos, kinds_neg]), on)
    return LinearHead(weight=weight, bias=bias, on=on, off=float(on * off_ratio), info=info)
