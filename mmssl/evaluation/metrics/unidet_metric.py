# Copyright (c) mmssl contributors. All rights reserved.
"""Per-source COCO evaluation of a detector in a unified label space."""
import json
from collections import OrderedDict
from typing import Dict, List, Optional, Sequence

import numpy as np
from mmengine.evaluator import BaseMetric
from mmengine.logging import MMLogger, print_log

from mmssl.registry import METRICS
from mmssl.utils.table import format_table

__all__ = ['UniDetPerSourceMetric', 'unified_to_source_lut']

_KEYS = ('bbox_mAP', 'bbox_mAP_50', 'bbox_mAP_75', 'bbox_mAP_s', 'bbox_mAP_m',
         'bbox_mAP_l')


def unified_to_source_lut(unified_classes: Sequence[str],
                          to_unified: Dict[str, str],
                          source_classes: Sequence[str]) -> np.ndarray:
    """Look-up table from unified labels to a source's labels.

    Args:
        unified_classes (Sequence[str]): the ``C`` unified class names.
        to_unified (dict[str, str]): source class -> unified class.
        source_classes (Sequence[str]): the source's classes in its label
            order.

    Returns:
        np.ndarray: ``(C,)`` int64, the source label of each unified label,
        ``-1`` where the source has no such class (predictions dropped).
    """
    uindex = {name: i for i, name in enumerate(unified_classes)}
    lut = np.full(len(unified_classes), -1, dtype=np.int64)
    for label, name in enumerate(source_classes):
        if name in to_unified:
            lut[uindex[to_unified[name]]] = label
    return lut


@METRICS.register_module()
class UniDetPerSourceMetric(BaseMetric):
    """COCO box mAP per source data set of a unified-label-space detector.

    Each prediction is mapped back from the unified space to the classes of
    the source its image comes from (unified classes that source does not
    have are dropped) and evaluated with mmdet's ``CocoMetric`` against the
    source's own annotation file (its own category ids). Every image must
    carry its source name: data sets ``mmssl.UnifiedCocoDataset`` /
    ``mmssl.EmbeddedUniDetDataset`` record it, and ``PackDetInputs`` must
    list ``'source'`` in ``meta_keys``.

    Args:
        label_space (str): the ``label_space.json`` of the unified space.
        sources (dict[str, str]): source name -> its COCO annotation file
            in the source's own label space (the ground truth).
        classwise (bool): per-class tables of mmdet's ``CocoMetric``.
            Defaults to False.
        proposal_nums (Sequence[int]): as ``CocoMetric``.
            Defaults to (100, 300, 1000).
        collect_device (str): ``'cpu'`` or ``'gpu'``. Defaults to 'cpu'.
        prefix (str, optional): prefix of the metric names; the names are
            ``<source>/bbox_mAP`` ... and ``mean/bbox_mAP`` (the mean over
            the sources). Defaults to None.
    """

    default_prefix: Optional[str] = None

    def __init__(self,
                 label_space: str,
                 sources: Dict[str, str],
                 classwise: bool = False,
                 proposal_nums: Sequence[int] = (100, 300, 1000),
                 collect_device: str = 'cpu',
                 prefix: Optional[str] = None) -> None:
        super().__init__(collect_device=collect_device, prefix=prefix)
        if not sources:
            raise ValueError('UniDetPerSourceMetric: sources is empty')
        self.label_space_file = label_space
        self.source_files = dict(sources)
        self.classwise = classwise
        self.proposal_nums = tuple(proposal_nums)
        self._ready = False

    def _setup(self) -> None:
        """Read the label space and the sources' ground truth (lazily: a
        data set may write the label space when the loop builds it)."""
        from mmdet.evaluation import CocoMetric
        with open(self.label_space_file) as f:
            space = json.load(f)
        self.unified_classes = list(space['classes'])
        self.luts, self.metrics, self.source_classes = {}, {}, {}
        for src, ann_file in self.source_files.items():
            if src not in space['sources']:
                raise ValueError(
                    f'UniDetPerSourceMetric: source {src!r} is not in the '
                    f'label space (sources: {list(space["sources"])})')
            metric = CocoMetric(
                ann_file=ann_file,
                metric='bbox',
                classwise=self.classwise,
                proposal_nums=self.proposal_nums)
            cats = sorted(
                metric._coco_api.dataset['categories'], key=lambda c: c['id'])
            classes = [c['name'] for c in cats]
            metric.dataset_meta = dict(classes=classes)
            self.metrics[src] = metric
            self.source_classes[src] = classes
            self.luts[src] = unified_to_source_lut(
                self.unified_classes, space['sources'][src]['to_unified'],
                classes)
        self._ready = True

    def process(self, data_batch: dict, data_samples: Sequence[dict]) -> None:
        """Map each image's predictions to its source's classes.

        Args:
            data_batch (dict): the batch (unused).
            data_samples (Sequence[dict]): ``DetDataSample`` dicts with
                ``pred_instances`` (``bboxes (K, 4)``, ``scores (K,)``,
                ``labels (K,)`` unified labels), ``img_id``, ``ori_shape``
                and ``source``.
        """
        if not self._ready:
            self._setup()
        for sample in data_samples:
            src = sample.get('source')
            if src is None:
                raise KeyError(
                    "UniDetPerSourceMetric: a data sample has no 'source'; "
                    "use mmssl.UnifiedCocoDataset and add 'source' to the "
                    'meta_keys of PackDetInputs')
            if src not in self.luts:
                raise KeyError(f'UniDetPerSourceMetric: image of source '
                               f'{src!r}, but sources are '
                               f'{list(self.luts)}')
            pred = sample['pred_instances']
            labels = pred['labels'].cpu().numpy()
            mapped = self.luts[src][labels]
            keep = mapped >= 0
            result = dict(
                img_id=sample['img_id'],
                bboxes=pred['bboxes'].cpu().numpy()[keep],
                scores=pred['scores'].cpu().numpy()[keep],
                labels=mapped[keep],
                dropped=int((~keep).sum()))
            gt = dict(
                width=sample['ori_shape'][1],
                height=sample['ori_shape'][0],
                img_id=sample['img_id'])
            self.results.append((src, gt, result))

    def compute_metrics(self, results: List[tuple]) -> Dict[str, float]:
        """COCO mAP of each source, printed as one table.

        Args:
            results (list[tuple]): ``(source, gt, result)`` per image.

        Returns:
            dict[str, float]: ``<source>/bbox_mAP``, ``..._50``, ``..._75``,
            ``..._s/m/l`` per source and ``mean/bbox_mAP`` over sources.
        """
        if not self._ready:
            self._setup()
        logger = MMLogger.get_current_instance()
        out: Dict[str, float] = OrderedDict()
        rows = []
        for src, metric in self.metrics.items():
            items = [(gt, res) for s, gt, res in results if s == src]
            if not items:
                print_log(
                    f'UniDetPerSourceMetric: no image of {src!r} was '
                    'evaluated', logger)
                continue
            metric.img_ids = sorted({gt['img_id'] for gt, _ in items})
            metric.cat_ids = None
            vals = metric.compute_metrics([(gt, {
                k: v
                for k, v in res.items() if k != 'dropped'
            }) for gt, res in items])
            row = dict(
                images=len(items),
                dropped=sum(res['dropped'] for _, res in items),
                boxes=sum(len(res['labels']) for _, res in items))
            for key in _KEYS:
                if key in vals:
                    out[f'{src}/{key}'] = vals[key]
                    row[key] = vals[key]
            rows.append((src, row))
        maps = [r['bbox_mAP'] for _, r in rows if 'bbox_mAP' in r]
        if maps:
            out['mean/bbox_mAP'] = float(np.mean(maps))
        table = format_table(
            rows, [('images', 'images', 'd'), ('boxes', 'boxes', 'd'),
                   ('dropped', 'dropped', 'd'), ('bbox_mAP', 'mAP', '.3f'),
                   ('bbox_mAP_50', 'mAP_50', '.3f'),
                   ('bbox_mAP_75', 'mAP_75', '.3f'),
                   ('bbox_mAP_s', 'mAP_s', '.3f'),
                   ('bbox_mAP_m', 'mAP_m', '.3f'),
                   ('bbox_mAP_l', 'mAP_l', '.3f')],
            first='source')
        print_log(
            'Per-source COCO box mAP (predictions mapped back from the '
            'unified label space; "dropped" = boxes of classes the '
            'source does not have):\n' + table, logger)
        return out
