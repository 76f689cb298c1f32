# Copyright (c) mmssl contributors. All rights reserved.
"""Metrics of text models: GLUE scores and MLM / SOP accuracy.

Both read the data samples that the text models return in ``predict``
mode (dicts, as mmengine's evaluator passes them, or ``BaseDataElement``)
and report percentages, as the GLUE leaderboard does (accuracy, F1,
Matthews and Pearson / Spearman correlations times 100). The metric names
carry no prefix unless ``prefix`` is given.
"""
from typing import Any, Dict, List, Optional, Sequence, Union

import numpy as np
from mmengine.evaluator import BaseMetric
from mmengine.structures import BaseDataElement

from mmssl.registry import METRICS
from mmssl.utils.validation import check_choice

__all__ = ['GLUEMetric', 'MLMSOPMetric', 'glue_scores', 'GLUE_METRICS']

GLUE_METRICS = ('accuracy', 'f1', 'matthews', 'pearson', 'spearman')
_REGRESSION = ('pearson', 'spearman')


def _get(sample: Union[dict, BaseDataElement], key: str, owner: str) -> Any:
    if isinstance(sample, BaseDataElement):
        sample = sample.to_dict()
    if key not in sample:
        raise KeyError(f'{owner}: a data sample has no {key!r} (keys: '
                       f'{sorted(sample)}); the model\'s predict() must set '
                       'it (and the data pipeline gt_label / sop_label)')
    value = sample[key]
    if hasattr(value, 'detach'):
        value = value.detach().cpu().numpy()
    return np.asarray(value)


def glue_scores(preds: Sequence, labels: Sequence,
                metrics: Sequence[str]) -> Dict[str, float]:
    """GLUE scores (in %) of predictions against labels.

    Args:
        preds (Sequence): ``(N,)`` predicted labels (classification) or
            values (regression: ``pearson`` / ``spearman``).
        labels (Sequence): ``(N,)`` ground truth.
        metrics (Sequence[str]): names from :data:`GLUE_METRICS`; ``f1`` is
            the F1 of the positive class (label 1), binary tasks only.

    Returns:
        dict[str, float]: name -> score x 100.
    """
    from scipy.stats import pearsonr, spearmanr
    from sklearn.metrics import accuracy_score, f1_score, matthews_corrcoef
    preds, labels = np.asarray(preds), np.asarray(labels)
    out = {}
    for name in metrics:
        if name == 'accuracy':
            value = accuracy_score(labels, preds)
        elif name == 'f1':
            value = f1_score(labels, preds, pos_label=1, average='binary')
        elif name == 'matthews':
            value = matthews_corrcoef(labels, preds)
        elif name == 'pearson':
            value = pearsonr(preds.astype(float), labels.astype(float))[0]
        else:
            value = spearmanr(preds.astype(float), labels.astype(float))[0]
        out[name] = float(value) * 100
    return out


@METRICS.register_module()
class GLUEMetric(BaseMetric):
    """GLUE task metrics: accuracy, F1, Matthews, Pearson / Spearman.

    Classification metrics read ``gt_label`` and ``pred_label``; the
    regression ones (``pearson``, ``spearman``; STS-B) read ``gt_label``
    and ``pred_value``. The usual choices per task: CoLA ``('matthews',)``,
    MRPC / QQP ``('accuracy', 'f1')``, STS-B ``('pearson', 'spearman')``,
    the others ``('accuracy',)``.

    Args:
        scores (Sequence[str]): names from :data:`GLUE_METRICS`.
            Defaults to ``('accuracy',)``. (Not ``metrics``: mmengine's
            Runner takes an evaluator dict with a ``metrics`` key for an
            ``Evaluator`` config.)
        collect_device (str): ``'cpu'`` or ``'gpu'``. Defaults to 'cpu'.
        prefix (str, optional): prefix of the metric names. Defaults to
            none (``'accuracy'``).
    """

    default_prefix: Optional[str] = ''

    def __init__(self,
                 scores: Sequence[str] = ('accuracy', ),
                 collect_device: str = 'cpu',
                 prefix: Optional[str] = None) -> None:
        super().__init__(collect_device=collect_device, prefix=prefix)
        metrics = (scores, ) if isinstance(scores, str) else tuple(scores)
        if not metrics:
            raise ValueError('mmssl.GLUEMetric: scores is empty; choose '
                             f'from {GLUE_METRICS}')
        for name in metrics:
            check_choice(name, 'scores', 'mmssl.GLUEMetric', GLUE_METRICS)
        kinds = {name in _REGRESSION for name in metrics}
        if len(kinds) > 1:
            raise ValueError(
                f'mmssl.GLUEMetric: scores {metrics} mix regression '
                f'({_REGRESSION}) and classification scores; a task is one '
                'or the other')
        self.metrics = metrics
        self.regression = kinds.pop()

    def process(self, data_batch: Any, data_samples: Sequence) -> None:
        owner = 'mmssl.GLUEMetric'
        key = 'pred_value' if self.regression else 'pred_label'
        for sample in data_samples:
            self.results.append((_get(sample, key, owner).reshape(
                ()).item(), _get(sample, 'gt_label', owner).reshape(
                    ()).item()))

    def compute_metrics(self, results: List) -> Dict[str, float]:
        preds = [p for p, _ in results]
        labels = [g for _, g in results]
        return glue_scores(preds, labels, self.metrics)


@METRICS.register_module()
class MLMSOPMetric(BaseMetric):
    """Masked-LM and sentence-order accuracy of a pretraining model.

    Reads ``mlm_correct`` / ``mlm_total`` (ints per sample: correctly
    predicted and real masked positions) and, if present, ``sop_pred`` /
    ``sop_label``. Reports ``mlm_accuracy`` (correct / total over all
    masked positions, x 100) and ``sop_accuracy`` (x 100; absent when the
    model has no SOP head and gives no ``sop_pred``).

    Args:
        collect_device (str): ``'cpu'`` or ``'gpu'``. Defaults to 'cpu'.
        prefix (str, optional): prefix of the metric names. Defaults to
            none.
    """

    default_prefix: Optional[str] = ''

    def process(self, data_batch: Any, data_samples: Sequence) -> None:
        owner = 'mmssl.MLMSOPMetric'
        for sample in data_samples:
            as_dict = sample.to_dict() if isinstance(
                sample, BaseDataElement) else sample
            sop = None
            if 'sop_pred' in as_dict:
                sop = (int(_get(as_dict, 'sop_pred', owner)),
                       int(_get(as_dict, 'sop_label', owner)))
            self.results.append((int(_get(as_dict, 'mlm_correct', owner)),
                                 int(_get(as_dict, 'mlm_total', owner)), sop))

    def compute_metrics(self, results: List) -> Dict[str, float]:
        correct = sum(r[0] for r in results)
        total = sum(r[1] for r in results)
        out = dict(mlm_accuracy=100. * correct / max(total, 1))
        sop = [r[2] for r in results if r[2] is not None]
        if sop:
            out['sop_accuracy'] = 100. * float(
                np.mean([p == g for p, g in sop]))
        return out
