# Copyright (c) mmssl contributors. All rights reserved.
"""Semantic-segmentation view of the embedded data set, for mmseg."""
from typing import Optional

from mmseg.datasets import BaseSegDataset

from mmssl.registry import DATASETS
from mmssl.utils.validation import check_choice
from .embedded import ensure_embedded_data
from .embedded_shapes import SHAPE_CLASSES, SHAPE_PALETTE

_SPLITS = ('train', 'val')


@DATASETS.register_module()
class EmbeddedSegDataset(BaseSegDataset):
    """The embedded shape scenes in mmseg's ``img_dir`` / ``ann_dir`` layout.

    Masks are uint8 PNGs: 0 = background, ``i + 1`` = shape class ``i``, so
    ``classes = ('background', ) + SHAPE_CLASSES`` and
    ``reduce_zero_label=False``. The scenes are those of the detection view.

    Args:
        data_root (str): folder of the embedded data set.
            Defaults to ``'data/embedded'``.
        split (str): ``'train'`` or ``'val'``. Defaults to ``'train'``.
        embedded_cfg (dict, optional): arguments of
            :func:`mmssl.datasets.make_embedded_data` the data must have;
            ``None`` accepts any embedded data set under ``data_root``.
        **kwargs: other arguments of :class:`mmseg.datasets.BaseSegDataset`
            (``pipeline``, ``test_mode`` ...).
    """

    METAINFO = dict(
        classes=('background', ) + SHAPE_CLASSES,
        palette=[[0, 0, 0]] + [list(c) for c in SHAPE_PALETTE])

    def __init__(self,
                 data_root: str = 'data/embedded',
                 split: str = 'train',
                 img_suffix: str = '.png',
                 seg_map_suffix: str = '.png',
                 reduce_zero_label: bool = False,
                 embedded_cfg: Optional[dict] = None,
                 **kwargs) -> None:
        check_choice(split, 'split', type(self).__name__, _SPLITS)
        self.split = split
        ensure_embedded_data(data_root, **(embedded_cfg or {}))
        kwargs.setdefault(
            'data_prefix',
            dict(
                img_path=f'seg/img_dir/{split}',
                seg_map_path=f'seg/ann_dir/{split}'))
        super().__init__(
            data_root=data_root,
            img_suffix=img_suffix,
            seg_map_suffix=seg_map_suffix,
            reduce_zero_label=reduce_zero_label,
            **kwargs)
