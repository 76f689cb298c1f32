# Copyright (c) mmssl contributors. All rights reserved.
"""Detection views of the embedded data set (COCO json), for mmdet."""
from typing import Optional

from mmdet.datasets import CocoDataset

from mmssl.registry import DATASETS
from mmssl.utils.validation import check_choice
from .embedded import UNIDET_LABEL_SPACES, ensure_embedded_data
from .embedded_shapes import SHAPE_CLASSES, SHAPE_PALETTE

_SPLITS = ('train', 'val')


def _source_metainfo(source: Optional[str]) -> dict:
    """Classes and palette of the fine label space or of one source."""
    if source is None:
        return dict(classes=SHAPE_CLASSES, palette=list(SHAPE_PALETTE))
    if source not in UNIDET_LABEL_SPACES:
        raise ValueError('EmbeddedCocoDataset: source must be None or one of '
                         f'{tuple(UNIDET_LABEL_SPACES)}, got {source!r}')
    space = UNIDET_LABEL_SPACES[source]
    palette = [
        SHAPE_PALETTE[SHAPE_CLASSES.index(space['to_unified'][name][0])]
        for name in space['classes']
    ]
    return dict(classes=tuple(space['classes']), palette=palette)


@DATASETS.register_module()
class EmbeddedCocoDataset(CocoDataset):
    """The embedded shape scenes as a COCO detection / instance set.

    The data set is written under ``data_root`` on first use (see
    :func:`mmssl.datasets.make_embedded_data`) and read by mmdet's
    :class:`~mmdet.datasets.CocoDataset` unchanged: boxes, RLE instance
    masks, ``iscrowd=0``.

    Args:
        data_root (str): folder of the embedded data set.
            Defaults to ``'data/embedded'``.
        split (str): ``'train'`` or ``'val'``. Defaults to ``'train'``.
        source (str, optional): ``None`` for ``det/`` (the nine fine
            classes), or ``'source_a'`` / ``'source_b'`` for one of the two
            universal-detection sources under ``unidet/``, each with its own
            label space (see :data:`mmssl.datasets.UNIDET_LABEL_SPACES`).
        embedded_cfg (dict, optional): arguments of
            :func:`mmssl.datasets.make_embedded_data` the data must have;
            ``None`` accepts any embedded data set under ``data_root``.
        metainfo (dict, optional): overrides the classes / palette given by
            ``source``.
        **kwargs: other arguments of :class:`mmdet.datasets.CocoDataset`
            (``pipeline``, ``filter_cfg``, ``test_mode`` ...).
    """

    METAINFO = _source_metainfo(None)

    def __init__(self,
                 data_root: str = 'data/embedded',
                 split: str = 'train',
                 source: Optional[str] = None,
                 embedded_cfg: Optional[dict] = None,
                 metainfo: Optional[dict] = None,
                 **kwargs) -> None:
        check_choice(split, 'split', type(self).__name__, _SPLITS)
        base_meta = _source_metainfo(source)
        self.split, self.source = split, source
        ensure_embedded_data(data_root, **(embedded_cfg or {}))
        folder = 'det' if source is None else f'unidet/{source}'
        kwargs.setdefault('ann_file',
                          f'{folder}/annotations/instances_{split}.json')
        kwargs.setdefault('data_prefix', dict(img=f'{folder}/images/{split}/'))
        super().__init__(
            data_root=data_root,
            metainfo=dict(base_meta, **(metainfo or {})),
            **kwargs)
