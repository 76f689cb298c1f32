# Copyright (c) mmssl contributors. All rights reserved.
"""Mini-ImageNet as a 100-class classification set (not few-shot)."""
import os.path as osp
from typing import Callable, List, Sequence, Union

from mmengine import list_from_file
from mmpretrain.datasets import CustomDataset

from mmssl.registry import DATASETS
from mmssl.utils.validation import check_choice

__all__ = ['MiniImageNet', 'MINI_IMAGENET_CLASSES']

# The 100 ImageNet classes of Mini-ImageNet (Vinyals et al., 2016, with the
# class list of Ravi & Larochelle, 2017: their 64 train + 16 val + 20 test
# classes together), sorted; label i is the i-th WordNet id.
MINI_IMAGENET_CLASSES = (
    'n01532829', 'n01558993', 'n01704323', 'n01749939', 'n01770081',
    'n01843383', 'n01855672', 'n01910747', 'n01930112', 'n01981276',
    'n02074367', 'n02089867', 'n02091244', 'n02091831', 'n02099601',
    'n02101006', 'n02105505', 'n02108089', 'n02108551', 'n02108915',
    'n02110063', 'n02110341', 'n02111277', 'n02113712', 'n02114548',
    'n02116738', 'n02120079', 'n02129165', 'n02138441', 'n02165456',
    'n02174001', 'n02219486', 'n02443484', 'n02457408', 'n02606052',
    'n02687172', 'n02747177', 'n02795169', 'n02823428', 'n02871525',
    'n02950826', 'n02966193', 'n02971356', 'n02981792', 'n03017168',
    'n03047690', 'n03062245', 'n03075370', 'n03127925', 'n03146219',
    'n03207743', 'n03220513', 'n03272010', 'n03337140', 'n03347037',
    'n03400231', 'n03417042', 'n03476684', 'n03527444', 'n03535780',
    'n03544143', 'n03584254', 'n03676483', 'n03770439', 'n03773504',
    'n03775546', 'n03838899', 'n03854065', 'n03888605', 'n03908618',
    'n03924679', 'n03980874', 'n03998194', 'n04067472', 'n04146614',
    'n04149813', 'n04243546', 'n04251144', 'n04258138', 'n04275548',
    'n04296562', 'n04389033', 'n04418357', 'n04435653', 'n04443257',
    'n04509417', 'n04515003', 'n04522168', 'n04596742', 'n04604644',
    'n04612504', 'n06794110', 'n07584110', 'n07613480', 'n07697537',
    'n07747607', 'n09246464', 'n09256479', 'n13054560', 'n13133613')

_SPLITS = ('train', 'val', 'test')

_LAYOUT = """\
data/mini-imagenet/
├── images/              # data_prefix: any tree of image files, e.g.
│   ├── n01532829/       #   images/<wnid>/<file>.JPEG (ImageNet train files)
│   └── ...              #   or the flat images/n0153282900000005.jpg
└── meta/
    ├── train.txt        # ann_file: '<path under images/> <label>' lines,
    └── val.txt          #   label = index of the wnid in the sorted list"""


@DATASETS.register_module()
class MiniImageNet(CustomDataset):
    """Mini-ImageNet as a plain 100-class classification set.

    The positional-label paper trains ViT / Swin from scratch on
    Mini-ImageNet at 224 px and reports top-1 on a held-out part of the same
    100 classes, i.e. it uses the 100 classes x 600 images of Vinyals et
    al. (2016) as a small ImageNet, not the class-disjoint few-shot split of
    Ravi & Larochelle. The authors do not publish their split files. The
    usual 100-class split (used by class-incremental work and by mmssl's
    configs) takes all 600 images of each class, 500 for training and 100
    for validation: 50,000 / 10,000 images.

    Expected layout (``data_root`` defaults to ``data/mini-imagenet``)::

        data/mini-imagenet/
        ├── images/              # data_prefix
        │   ├── n01532829/       # images/<wnid>/<file>.JPEG, or the flat
        │   └── ...              # images/n0153282900000005.jpg
        └── meta/
            ├── train.txt        # ann_file of split='train'
            └── val.txt          # ann_file of split='val'

    Each split file has one ``<relative path> <label>`` line per image;
    the path is relative to ``data_root/images`` and the label is the index
    of the image's WordNet id in :data:`MINI_IMAGENET_CLASSES` (the 100
    wnids sorted, as an image-folder loader numbers them)::

        n01532829/n01532829_10011.JPEG 0
        n13133613/n13133613_9977.JPEG 99

    Where the files come from: the image list of Mini-ImageNet is the
    ``train.csv`` / ``val.csv`` / ``test.csv`` of Ravi & Larochelle
    (twitter-research/meta-learning-lstm, ``data/miniImagenet``; rows
    ``filename,wnid``, 600 per class, 100 classes in all). Merge the three
    files, number the wnids as above, and write the first 500 rows of each
    class to ``meta/train.txt`` and the other 100 to ``meta/val.txt``. The
    images are either the 84x84 files those CSVs name (upsampled to 224 by
    the pipeline) or the full-size ImageNet training images of the same
    classes; state which one you used with your results.

    Args:
        data_root (str): root folder of the data set.
            Defaults to ``'data/mini-imagenet'``.
        split (str): ``'train'``, ``'val'`` or ``'test'``; chooses the
            default ``ann_file`` ``meta/<split>.txt``. Defaults to
            ``'train'``.
        pipeline (Sequence[dict | Callable]): transforms of each sample.
        **kwargs: other arguments of :class:`mmpretrain.CustomDataset`
            (``ann_file``, ``data_prefix`` — default ``'images'`` —, both
            relative to ``data_root``; ``classes`` / ``metainfo`` to rename
            the classes; labels must then lie in ``[0, len(classes))``).

    Raises:
        FileNotFoundError: ``data_root``, the image folder or the split
            file does not exist (when the data are loaded).
        ValueError: a line of the split file is not ``<path> <label>`` with
            an integer label in ``[0, 100)``.
    """

    METAINFO = {'classes': MINI_IMAGENET_CLASSES}

    def __init__(self,
                 data_root: str = 'data/mini-imagenet',
                 split: str = 'train',
                 pipeline: Sequence[Union[dict, Callable]] = (),
                 **kwargs) -> None:
        check_choice(split, 'split', type(self).__name__, _SPLITS)
        self.split = split
        kwargs.setdefault('data_prefix', 'images')
        kwargs.setdefault('ann_file', f'meta/{split}.txt')
        if not kwargs['ann_file']:
            raise ValueError(
                f'{type(self).__name__}: ann_file is empty; it must name a '
                "split file of '<relative path> <label>' lines (default "
                f"'meta/{split}.txt' under data_root)")
        super().__init__(data_root=data_root, pipeline=pipeline, **kwargs)

    def _how_to_fix(self) -> str:
        return ('Lay the data out as\n' + _LAYOUT + '\nor point the dataset '
                'config (train_dataloader.dataset / val_dataloader.dataset) '
                'at it with data_root=..., data_prefix=..., ann_file=...; '
                'see the mmssl.MiniImageNet docstring for how to make the '
                'split files.')

    def _check_paths(self) -> None:
        """Raise a clear error when a folder or the split file is missing."""
        owner = type(self).__name__
        root = self.data_root
        if root and not osp.isdir(root):
            raise FileNotFoundError(
                f"{owner}: data_root='{root}' does not exist or is not a "
                f'folder. {self._how_to_fix()}')
        if not osp.isdir(self.img_prefix):
            raise FileNotFoundError(
                f"{owner}: the image folder '{self.img_prefix}' (data_root "
                f'+ data_prefix) does not exist. {self._how_to_fix()}')
        if not osp.isfile(self.ann_file):
            raise FileNotFoundError(
                f"{owner}: the split file ann_file='{self.ann_file}' of "
                f"split='{self.split}' does not exist. {self._how_to_fix()}")

    def load_data_list(self) -> List[dict]:
        """Read the ``<relative path> <label>`` lines of ``ann_file``,
        checking every line (blank lines are skipped)."""
        self._check_paths()
        owner = type(self).__name__
        num_classes = len(self.CLASSES)
        data_list = []
        for lineno, line in enumerate(list_from_file(self.ann_file), 1):
            if not line.strip():
                continue
            where = f"{owner}: line {lineno} of '{self.ann_file}'"
            fields = line.strip().rsplit(maxsplit=1)
            if len(fields) != 2:
                raise ValueError(
                    f'{where} is malformed: {line.strip()!r}; every line '
                    "must be '<path relative to data_prefix> <label>', e.g. "
                    "'n01532829/n01532829_10011.JPEG 0'")
            rel, label = fields
            try:
                gt_label = int(label)
            except ValueError:
                raise ValueError(
                    f'{where} is malformed: {line.strip()!r}; the label '
                    f'{label!r} is not an integer (labels are class indices '
                    f'0..{num_classes - 1}, not WordNet ids)') from None
            if not 0 <= gt_label < num_classes:
                raise ValueError(
                    f'{where}: label {gt_label} is out of range for '
                    f'{num_classes} classes; labels must be in '
                    f'[0, {num_classes - 1}] (the index of the wnid in '
                    'mmssl.datasets.MINI_IMAGENET_CLASSES). Fix the split '
                    'file, or set the classes of the dataset config if it '
                    'is a different class list.')
            info = dict(img_path=osp.join(self.img_prefix, rel))
            if self.with_label:
                info['gt_label'] = gt_label
            data_list.append(info)
        if not data_list:
            raise ValueError(
                f"{owner}: the split file '{self.ann_file}' lists no "
                f'images. {self._how_to_fix()}')
        return data_list
