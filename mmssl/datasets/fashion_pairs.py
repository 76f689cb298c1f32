# Copyright (c) mmssl contributors. All rights reserved.
"""Garment / reference pairs on the embedded shapes, for DiffFashion tests.

Each garment is an image of the embedded classification split; its
reference (the appearance to transfer) is another image of the same split
of a different class, chosen by a fixed rule, so the pairs are the same on
every machine. The ground-truth garment mask is the visible silhouette of
the image's main shape, re-drawn by the embedded data generator from the
image's seed (the stored image is checked to be the re-drawn one).
"""
import os.path as osp
from typing import Callable, List, Optional, Sequence, Union

import numpy as np
import torch
from mmcv.transforms import BaseTransform
from mmengine import list_from_file
from mmengine.dataset import BaseDataset
from mmengine.structures import BaseDataElement

from mmssl.registry import DATASETS, TRANSFORMS
from mmssl.utils.image_io import load_fashion_image
from mmssl.utils.validation import check_choice, check_int
from .embedded import _rng, ensure_embedded_data, load_embedded_meta
from .embedded_shapes import SHAPE_CLASSES, render_scene, sample_cls_scene

__all__ = [
    'FashionPairDataset', 'LoadFashionPair', 'PackFashionPair',
    'embedded_silhouette'
]


def embedded_silhouette(seed: int, split: str, idx: int, label: int,
                        img_size: int) -> tuple:
    """Re-draw an embedded classification image and its main silhouette.

    Args:
        seed (int): seed of the embedded data set (``meta.json``).
        split (str): ``'train'`` or ``'val'``.
        idx (int): image index in the split.
        label (int): class of the image's main shape.
        img_size (int): side of the embedded images.

    Returns:
        tuple[np.ndarray, np.ndarray]: the image (S, S, 3) uint8 and the
        visible silhouette of the main shape (S, S) bool.
    """
    rng = _rng(seed, 'cls', split, idx)
    objects = sample_cls_scene(rng, label, img_size)
    img, inst, _ = render_scene(rng, objects, img_size)
    k = [i for i, o in enumerate(objects) if o['label'] == label][0]
    return img, inst == k + 1


@DATASETS.register_module()
class FashionPairDataset(BaseDataset):
    """Deterministic garment / reference pairs with true garment masks.

    Garment ``i`` is the ``i``-th image of the split (in the order of
    ``cls/meta/<split>.txt``, where classes cycle), restricted to
    ``garment_classes`` when given; its reference is the first image after
    index ``i + reference_offset`` (cyclically) whose class differs from the
    garment's. Each sample's ``gt_mask`` is the visible silhouette of the
    garment's main shape at the embedded image size.

    Args:
        data_root (str): folder of the embedded data set (made on first
            use, see :func:`mmssl.datasets.make_embedded_data`).
        split (str): ``'train'`` or ``'val'``. Defaults to ``'val'``.
        num_pairs (int, optional): keep the first ``num_pairs`` pairs.
        garment_classes (Sequence[str], optional): class names allowed as
            garments; default all.
        reference_offset (int): see above. Defaults to 1.
        embedded_cfg (dict, optional): arguments of
            :func:`mmssl.datasets.make_embedded_data` the data must have
            (as in :class:`mmssl.EmbeddedClsDataset`).
        check_images (bool): check that each stored garment image equals
            the re-drawn one (catches a data set made by another version of
            the generator). Defaults to True.
        pipeline (Sequence[dict | Callable]): e.g. ``LoadFashionPair`` and
            ``PackFashionPair``.
        **kwargs: other arguments of :class:`mmengine.dataset.BaseDataset`.
    """

    METAINFO = {'classes': SHAPE_CLASSES}

    def __init__(self,
                 data_root: str = 'data/embedded',
                 split: str = 'val',
                 num_pairs: Optional[int] = None,
                 garment_classes: Optional[Sequence[str]] = None,
                 reference_offset: int = 1,
                 embedded_cfg: Optional[dict] = None,
                 check_images: bool = True,
                 pipeline: Sequence[Union[dict, Callable]] = (),
                 **kwargs) -> None:
        name = type(self).__name__
        check_choice(split, 'split', name, ('train', 'val'))
        if num_pairs is not None:
            check_int(num_pairs, 'num_pairs', name)
        unknown = sorted(set(garment_classes or ()) - set(SHAPE_CLASSES))
        if unknown:
            raise ValueError(f'FashionPairDataset: unknown garment_classes '
                             f'{unknown}; known: {list(SHAPE_CLASSES)}')
        self.split = split
        self.num_pairs = num_pairs
        self.garment_classes = garment_classes
        self.reference_offset = int(reference_offset)
        self.check_images = check_images
        ensure_embedded_data(data_root, **(embedded_cfg or {}))
        super().__init__(
            data_root=data_root,
            ann_file=f'cls/meta/{split}.txt',
            pipeline=pipeline,
            **kwargs)

    def load_data_list(self) -> List[dict]:
        """Pairs as dicts: ``garment_path``, ``reference_path``,
        ``garment_label``, ``reference_label``, ``garment_idx``,
        ``reference_idx`` and ``gt_mask`` (S, S) uint8 in {0, 1}."""
        from PIL import Image
        meta = load_embedded_meta(self.data_root)
        if meta is None:
            raise FileNotFoundError(
                f'no embedded data set under {self.data_root!r} (meta.json '
                'missing); make it with mmssl.datasets.make_embedded_data')
        seed, size = meta['params']['seed'], meta['params']['img_size']
        items = []
        for line in list_from_file(self.ann_file):
            if line.strip():
                rel, label = line.strip().rsplit(' ', 1)
                items.append((rel, int(label)))
        if not items:
            raise ValueError(f'{self.ann_file} lists no images')
        allowed = None if self.garment_classes is None else {
            SHAPE_CLASSES.index(c)
            for c in self.garment_classes
        }
        root = osp.join(self.data_root, 'cls', self.split)
        pairs = []
        for i, (rel, label) in enumerate(items):
            if allowed is not None and label not in allowed:
                continue
            ref = None
            for k in range(len(items)):
                j = (i + self.reference_offset + k) % len(items)
                if items[j][1] != label:
                    ref = j
                    break
            if ref is None:
                raise ValueError(f'{self.ann_file}: no image of another '
                                 'class to use as reference')
            idx = int(osp.splitext(rel)[0].rsplit('_', 1)[1])
            img, sil = embedded_silhouette(seed, self.split, idx, label, size)
            path = osp.join(root, rel)
            if self.check_images and not np.array_equal(
                    np.asarray(Image.open(path).convert('RGB')), img):
                raise ValueError(
                    f'{path} is not the image the embedded generator draws '
                    'for it, so its true mask is unknown; remake the data '
                    'set (delete the data_root folder) or pass '
                    'check_images=False')
            pairs.append(
                dict(
                    garment_path=path,
                    reference_path=osp.join(root, items[ref][0]),
                    garment_label=label,
                    reference_label=items[ref][1],
                    garment_idx=idx,
                    reference_idx=ref,
                    gt_mask=sil.astype(np.uint8)))
            if self.num_pairs is not None and len(pairs) >= self.num_pairs:
                break
        if not pairs:
            raise ValueError('FashionPairDataset: no pairs; check '
                             'garment_classes')
        return pairs


@TRANSFORMS.register_module()
class LoadFashionPair(BaseTransform):
    """Read a pair's images at the working size and resize its true mask.

    The images go through :func:`mmssl.utils.image_io.load_fashion_image`
    (grayscale, 16-bit and alpha converted, Lanczos resize); the mask is
    resized by area (a pixel is garment when at least half of it is).

    Adds ``garment`` and ``reference`` ((3, size, size) float tensors in
    [-1, 1]) and turns ``gt_mask`` into a (1, size, size) float tensor in
    {0, 1} when present.

    Args:
        size (int): working side (the UNet's sample size).
    """

    def __init__(self, size: int) -> None:
        self.size = check_int(size, 'size', type(self).__name__, minimum=8)

    def transform(self, results: dict) -> dict:
        for key in ('garment_path', 'reference_path'):
            if key not in results:
                raise KeyError(f'LoadFashionPair needs {key!r} in the '
                               'sample')
        results['garment'] = load_fashion_image(results['garment_path'],
                                                self.size)[0]
        results['reference'] = load_fashion_image(results['reference_path'],
                                                  self.size)[0]
        if results.get('gt_mask') is not None:
            m = torch.as_tensor(
                np.asarray(results['gt_mask']), dtype=torch.float32)[None,
                                                                     None]
            m = torch.nn.functional.interpolate(
                m, (self.size, self.size), mode='area')
            results['gt_mask'] = (m[0] >= 0.5).float()
        return results

    def __repr__(self) -> str:
        return f'{self.__class__.__name__}(size={self.size})'


@TRANSFORMS.register_module()
class PackFashionPair(BaseTransform):
    """Pack a loaded pair for :class:`mmssl.DiffFashionEditor`.

    Returns ``inputs``: a (2, 3, S, S) tensor (garment, reference) in
    [-1, 1], and ``data_samples``: a ``BaseDataElement`` with ``gt_mask``
    (1, S, S) when known and the meta keys below.

    Args:
        meta_keys (Sequence[str]): keys copied into the data sample's
            metainfo when present.
    """

    def __init__(
        self,
        meta_keys: Sequence[str] = ('sample_idx', 'garment_path',
                                    'reference_path', 'garment_label',
                                    'reference_label')
    ) -> None:
        self.meta_keys = tuple(meta_keys)

    def transform(self, results: dict) -> dict:
        for key in ('garment', 'reference'):
            if key not in results:
                raise KeyError(f'PackFashionPair needs {key!r}; put '
                               'LoadFashionPair before it in the pipeline')
        sample = BaseDataElement(
            metainfo={k: results[k]
                      for k in self.meta_keys if k in results})
        if isinstance(results.get('gt_mask'), torch.Tensor):
            sample.gt_mask = results['gt_mask']
        return dict(
            inputs=torch.stack([results['garment'], results['reference']]),
            data_samples=sample)

    def __repr__(self) -> str:
        return f'{self.__class__.__name__}(meta_keys={self.meta_keys})'
