# Copyright (c) mmssl contributors. All rights reserved.
"""Classification view of the embedded data set, for mmpretrain."""
from typing import Callable, Optional, Sequence, Union

from mmengine import list_from_file
from mmpretrain.datasets import CustomDataset

from mmssl.registry import DATASETS
from mmssl.utils.validation import check_choice
from .embedded import ensure_embedded_data
from .embedded_shapes import SHAPE_CLASSES

_SPLITS = ('train', 'val')


@DATASETS.register_module()
class EmbeddedClsDataset(CustomDataset):
    """The embedded shape images as an ImageNet-style classification set.

    The data set is written under ``data_root`` on first use (see
    :func:`mmssl.datasets.make_embedded_data`), then read from
    ``cls/meta/<split>.txt`` like any :class:`mmpretrain.CustomDataset`;
    only the paths differ from an ImageNet config.

    Args:
        data_root (str): folder of the embedded data set.
            Defaults to ``'data/embedded'``.
        split (str): ``'train'`` or ``'val'``. Defaults to ``'train'``.
        with_label (bool): load the labels; ``False`` gives the same images
            for unlabelled pretraining. Defaults to True.
        pipeline (Sequence[dict | Callable]): transforms of each sample.
        embedded_cfg (dict, optional): arguments of
            :func:`mmssl.datasets.make_embedded_data` (``seed``,
            ``img_size``, ``num_train``, ``num_val``) the data must have;
            ``None`` accepts any embedded data set already under
            ``data_root`` and otherwise makes the default one.
        **kwargs: other arguments of :class:`mmpretrain.CustomDataset`.
    """

    METAINFO = {'classes': SHAPE_CLASSES}

    def __init__(self,
                 data_root: str = 'data/embedded',
                 split: str = 'train',
                 with_label: bool = True,
                 pipeline: Sequence[Union[dict, Callable]] = (),
                 embedded_cfg: Optional[dict] = None,
                 **kwargs) -> None:
        check_choice(split, 'split', type(self).__name__, _SPLITS)
        self.split = split
        ensure_embedded_data(data_root, **(embedded_cfg or {}))
        kwargs.setdefault('data_prefix', f'cls/{split}')
        kwargs.setdefault('ann_file', f'cls/meta/{split}.txt')
        super().__init__(
            data_root=data_root,
            with_label=with_label,
            pipeline=pipeline,
            **kwargs)

    def load_data_list(self) -> list:
        """Read ``<relative path> <label>`` lines; drop the labels when
        ``with_label`` is False."""
        data_list = []
        for line in list_from_file(self.ann_file):
            if not line.strip():
                continue
            rel, label = line.strip().rsplit(' ', 1)
            info = dict(img_path=f'{self.img_prefix}/{rel}')
            if self.with_label:
                info['gt_label'] = int(label)
            data_list.append(info)
        return data_list
