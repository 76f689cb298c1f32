# Copyright (c) mmssl contributors. All rights reserved.
"""Captions of the embedded classification images, for CLIP pretraining.

Each image of the embedded data is a pure function of its seed (see
:mod:`.embedded`), so its scene can be replayed: :func:`describe_cls_image`
re-draws it and reads what the drawing code decided — the main shape, its
colour (named from the mean RGB of its visible pixels), its fill texture
(recorded while the scene is re-rendered), its size and the distractor
shapes. :func:`make_captions` turns that into a few sentences; the data set
draws one of them at random each time an image is loaded.

The descriptions of a split are cached in ``cls/meta/captions_<split>.json``
next to the split's list, keyed by the data set's parameters.
"""
import colorsys
import json
import os
import os.path as osp
import random
from typing import Callable, Dict, List, Optional, Sequence, Union

import numpy as np

from mmssl.registry import DATASETS
from .embedded import _rng, load_embedded_meta
from .embedded_cls import EmbeddedClsDataset
from .embedded_shapes import (SHAPE_CLASSES, TEXTURES, render_scene,
                              sample_cls_scene)

__all__ = [
    'colour_name', 'describe_cls_image', 'make_captions',
    'EmbeddedCaptionDataset'
]

CAPTIONS_VERSION = '1'
_TEXTURE_WORDS = {
    'solid': 'plain',
    'stripes': 'striped',
    'checker': 'checkered',
    'noise': 'noisy',
    'gradient': 'shaded'
}


class _TextureRecorder:
    """Wraps a generator and records the texture draws of ``render_scene``
    (the only ``choice`` with ``p=`` over ``len(TEXTURES)``); every call is
    passed through unchanged, so the scene is drawn exactly as stored."""

    def __init__(self, rng: np.random.Generator) -> None:
        self._rng = rng
        self.textures: List[str] = []

    def __getattr__(self, name):
        return getattr(self._rng, name)

    def choice(self, a, *args, **kwargs):
        out = self._rng.choice(a, *args, **kwargs)
        if kwargs.get('p') is not None and np.ndim(a) == 0 \
                and int(a) == len(TEXTURES):
            self.textures.append(TEXTURES[int(out)])
        return out


def colour_name(rgb: Sequence[float]) -> str:
    """A basic colour word for an RGB triple in [0, 255]."""
    h, s, v = colorsys.rgb_to_hsv(*(float(c) / 255 for c in rgb))
    if v < 0.25:
        return 'black'
    if s < 0.2:
        return 'white' if v > 0.8 else 'gray'
    hue = h * 360
    for bound, name in ((15, 'red'), (45, 'orange'), (70, 'yellow'),
                        (165, 'green'), (200, 'cyan'), (255, 'blue'),
                        (290, 'purple'), (335, 'pink'), (361, 'red')):
        if hue < bound:
            return name
    return 'red'  # pragma: no cover


def describe_cls_image(seed: int, split: str, idx: int, img_size: int) -> dict:
    """Re-draw classification image ``idx`` of ``split`` and describe it.

    Args:
        seed (int): the data set's seed.
        split (str): ``'train'`` or ``'val'``.
        idx (int): the image's index in the split.
        img_size (int): the image side.

    Returns:
        dict: ``label`` (int), ``shape`` (str), ``colour`` (str),
        ``texture`` (str), ``size`` (``'small'``/``'large'``),
        ``distractors`` (list of shape names), ``image`` (the re-drawn
        ``(S, S, 3)`` uint8 RGB array, equal to the stored PNG).
    """
    label = idx % len(SHAPE_CLASSES)
    rng = _TextureRecorder(_rng(seed, 'cls', split, idx))
    objects = sample_cls_scene(rng._rng, label, img_size)
    img, inst, _ = render_scene(rng, objects, img_size)
    main = next(k for k, o in enumerate(objects)
                if o['label'] == label and o['radius'] > 0.2 * img_size)
    visible = inst == main + 1
    pixels = img[visible] if visible.any() else img.reshape(-1, 3)
    mean = pixels.mean(0)
    return dict(
        label=label,
        shape=SHAPE_CLASSES[label],
        colour=colour_name(mean),
        texture=rng.textures[main],
        size='large' if objects[main]['radius'] > 0.35 * img_size else 'small',
        distractors=[
            SHAPE_CLASSES[o['label']] for k, o in enumerate(objects)
            if k != main
        ],
        image=img)


def make_captions(desc: dict) -> List[str]:
    """Sentences describing one image (all name its main shape).

    Args:
        desc (dict): output of :func:`describe_cls_image`.

    Returns:
        list[str]: 5 captions.
    """
    shape, colour = desc['shape'], desc['colour']
    tex = _TEXTURE_WORDS[desc['texture']]
    caps = [
        f'a photo of a {shape}.',
        f'a {colour} {shape}.',
        f'a {tex} {colour} {shape}.',
        f'a {desc["size"]} {shape}.',
    ]
    if desc['distractors']:
        others = ' and a '.join(desc['distractors'])
        caps.append(f'a {shape} with a small {others}.')
    else:
        caps.append(f'a single {shape} on its own.')
    return caps


def _load_descriptions(root: str, split: str) -> List[dict]:
    meta = load_embedded_meta(root)
    params = meta['params']
    num = meta['counts']['cls'][split]
    path = osp.join(root, 'cls', 'meta', f'captions_{split}.json')
    key = dict(params, captions=CAPTIONS_VERSION)
    try:
        with open(path) as f:
            cached = json.load(f)
        if cached.get('key') == key and len(cached['items']) == num:
            return cached['items']
    except (OSError, ValueError, KeyError):
        pass
    items = []
    for idx in range(num):
        desc = describe_cls_image(params['seed'], split, idx,
                                  params['img_size'])
        desc.pop('image')
        items.append(desc)
    tmp = f'{path}.{os.getpid()}.tmp'
    with open(tmp, 'w') as f:
        json.dump(dict(key=key, items=items), f)
    os.replace(tmp, path)
    return items


@DATASETS.register_module()
class EmbeddedCaptionDataset(EmbeddedClsDataset):
    """Embedded classification images with generated captions.

    Each sample gets ``caption`` (one of :func:`make_captions`, drawn with
    Python's ``random`` when the sample is loaded; ``random_caption=False``
    always gives the first, ``'a photo of a {shape}.'``) and ``captions``
    (all of them) besides ``img_path`` and ``gt_label``. Pack it with
    ``dict(type='PackInputs', algorithm_keys=['caption'])``.

    Args:
        data_root (str): folder of the embedded data set.
        split (str): ``'train'`` or ``'val'``.
        random_caption (bool): draw a caption per load. Defaults to True.
        pipeline (Sequence[dict | Callable]): transforms of each sample.
        embedded_cfg (dict, optional): see :class:`EmbeddedClsDataset`.
        **kwargs: other arguments of :class:`EmbeddedClsDataset`.
    """

    def __init__(self,
                 data_root: str = 'data/embedded',
                 split: str = 'train',
                 random_caption: bool = True,
                 pipeline: Sequence[Union[dict, Callable]] = (),
                 embedded_cfg: Optional[dict] = None,
                 **kwargs) -> None:
        self.random_caption = random_caption
        super().__init__(
            data_root=data_root,
            split=split,
            pipeline=pipeline,
            embedded_cfg=embedded_cfg,
            **kwargs)

    def load_data_list(self) -> list:
        data_list = super().load_data_list()
        descs = _load_descriptions(self.data_root, self.split)
        for info, desc in zip(data_list, descs):
            info['captions'] = make_captions(desc)
            info['description'] = {
                k: v
                for k, v in desc.items() if k != 'label'
            }
        return data_list

    def get_data_info(self, idx: int) -> Dict:
        info = super().get_data_info(idx)
        caps = info['captions']
        info['caption'] = random.choice(caps) if self.random_caption \
            else caps[0]
        return info
