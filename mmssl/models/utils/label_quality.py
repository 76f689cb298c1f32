# Copyright (c) mmssl contributors. All rights reserved.
"""Label quality from per-sample losses (DivideMix's co-divide step) and its
evaluation against the known clean labels."""
import warnings
from typing import Union

import numpy as np
import torch

from mmssl.utils.validation import check_float, check_int

__all__ = ['normalise_losses', 'gmm_label_quality', 'auroc']

ArrayLike = Union[np.ndarray, torch.Tensor, list, tuple]


def _numpy(x: ArrayLike) -> np.ndarray:
    if isinstance(x, torch.Tensor):
        x = x.detach().cpu().numpy()
    return np.asarray(x, dtype=np.float64)


def normalise_losses(losses: ArrayLike) -> np.ndarray:
    """Min-max normalise per-sample losses to [0, 1].

    Args:
        losses: (N,) losses of one epoch, or (T, N) losses of T epochs: each
            row is normalised on its own and the rows are averaged (the
            reference's 90%-noise variant averages the last 5 epochs).

    Returns:
        np.ndarray: (N,) float64 in [0, 1].

    Raises:
        ValueError: fewer than 2 samples, non-finite values, or a row whose
            losses are all equal (nothing to separate).
    """
    x = _numpy(losses)
    if x.ndim == 1:
        x = x[None]
    if x.ndim != 2:
        raise ValueError('gmm_label_quality: losses must be (N,) or (T, N), '
                         f'got shape {x.shape}')
    if x.shape[1] < 2:
        raise ValueError('gmm_label_quality: cannot fit a 2-component '
                         f'mixture to {x.shape[1]} sample(s); need >= 2')
    bad = ~np.isfinite(x)
    if bad.any():
        raise ValueError(f'gmm_label_quality: {int(bad.sum())} loss values '
                         'are NaN or infinite')
    lo = x.min(1, keepdims=True)
    span = x.max(1, keepdims=True) - lo
    if (span <= 0).any():
        raise ValueError('gmm_label_quality: all losses are equal '
                         f'({float(lo.flat[0])!r}); the mixture cannot '
                         'separate clean from noisy samples')
    return ((x - lo) / span).mean(0)


def gmm_label_quality(losses: ArrayLike,
                      max_iter: int = 10,
                      tol: float = 1e-2,
                      reg_covar: float = 5e-4,
                      seed: int = 0) -> np.ndarray:
    """Clean probability of each sample from its loss (DivideMix).

    The losses are min-max normalised (:func:`normalise_losses`), a
    2-component ``sklearn.mixture.GaussianMixture`` is fitted to them and
    the quality is the posterior of the low-mean component. The defaults
    are DivideMix's; with ``max_iter=10`` the fit may stop before
    convergence by design, so sklearn's ``ConvergenceWarning`` is silenced.

    Args:
        losses: (N,) per-sample losses (e.g. cross-entropy against the
            noisy labels in eval mode), or (T, N) to average T epochs.
        max_iter (int): EM iterations. Defaults to 10.
        tol (float): EM tolerance. Defaults to 1e-2.
        reg_covar (float): added to the variances. Defaults to 5e-4.
        seed (int): ``random_state`` of the mixture. Defaults to 0.

    Returns:
        np.ndarray: (N,) float64 quality ``w`` in [0, 1].

    Raises:
        ValueError: the losses cannot be fitted (see
            :func:`normalise_losses`).
    """
    from sklearn.exceptions import ConvergenceWarning
    from sklearn.mixture import GaussianMixture
    owner = 'gmm_label_quality'
    check_int(max_iter, 'max_iter', owner)
    check_float(tol, 'tol', owner, low=0., inclusive=(False, True))
    check_float(reg_covar, 'reg_covar', owner, low=0.)
    x = normalise_losses(losses).reshape(-1, 1)
    gmm = GaussianMixture(
        n_components=2,
        max_iter=max_iter,
        tol=tol,
        reg_covar=reg_covar,
        random_state=seed)
    with warnings.catch_warnings():
        warnings.simplefilter('ignore', ConvergenceWarning)
        gmm.fit(x)
    prob = gmm.predict_proba(x)
    return prob[:, int(gmm.means_.argmin())].astype(np.float64)


def auroc(scores: ArrayLike, is_clean: ArrayLike) -> float:
    """Area under the ROC curve of ``scores`` for telling clean samples.

    Args:
        scores: (N,) higher = more likely clean (e.g. the quality ``w``).
        is_clean: (N,) bool, True where the training label is correct.

    Returns:
        float: AUROC in [0, 1] (``sklearn.metrics.roc_auc_score``).

    Raises:
        ValueError: the lengths differ or ``is_clean`` has only one class.
    """
    from sklearn.metrics import roc_auc_score
    s = _numpy(scores).reshape(-1)
    y = np.asarray(is_clean.detach().cpu() if isinstance(
        is_clean, torch.Tensor) else is_clean).astype(bool).reshape(-1)
    if s.shape != y.shape:
        raise ValueError(f'auroc: scores and is_clean differ in length '
                         f'({s.size} vs {y.size})')
    if y.all() or not y.any():
        raise ValueError('auroc: is_clean must contain both clean and noisy '
                         'samples; AUROC is undefined otherwise')
    return float(roc_auc_score(y, s))
