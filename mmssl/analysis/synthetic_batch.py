# Copyright (c) mmssl contributors. All rights reserved.
"""Synthetic training batches for benchmarks: random inputs shaped and
collated as a config's data loader yields them (images, multi-view images,
token sequences, waveforms), so a step can be timed without the data set."""
import copy
from contextlib import contextmanager
from typing import Callable, Iterator, Optional

import torch
from mmengine.config import Config
from mmengine.registry import FUNCTIONS, DefaultScope

from mmssl.utils.config import default_scope_of

__all__ = ['make_synthetic_batch', 'synthetic_batch_errors']


def _img_size(cfg: Config) -> tuple:
    """(H, W) from ``cfg.model.backbone.img_size``, else
    ``cfg.model.img_size`` (models without a backbone key, such as the
    benchmark peers), else a diffusion UNet's ``sample_size``, default
    224."""
    unet = cfg.model.get('unet') or {}
    size = cfg.model.get('backbone', {}).get(
        'img_size', cfg.model.get('img_size', unet.get('sample_size', 224)))
    if isinstance(size, (tuple, list)):
        return int(size[0]), int(size[1])
    return int(size), int(size)


def _num_classes(cfg: Config) -> Optional[int]:
    """Classes of a classifier (``model.head.num_classes``) or of a
    class-conditional diffusion UNet (``model.unet.num_class_embeds``);
    None for a model without labels."""
    head = cfg.get('model', {}).get('head') or {}
    unet = cfg.get('model', {}).get('unet') or {}
    return head.get('num_classes') or unet.get('num_class_embeds') or None


@contextmanager
def synthetic_batch_errors(name: str) -> Iterator[None]:
    """Turn a model's complaint about a data field that the synthetic batch
    lacks (boxes, captions...: an ``AttributeError`` / ``KeyError``) into a
    ``ValueError`` that names the config and what the batch holds."""
    try:
        yield
    except (AttributeError, KeyError) as err:
        raise ValueError(
            f'{name}: the training step needs a data field that the '
            f'synthetic batch does not make ({type(err).__name__}: {err}). '
            'The benchmark tools make random images (with a random label '
            'for a classifier or a class-conditional UNet, the views and '
            'masks of the config\'s pipeline), token sequences or '
            'waveforms, not boxes or captions; time this config with '
            'tools/train.py, whose log gives the time per iteration') \
            from err


def make_synthetic_batch(cfg: Config, batch_size: int, seed: int = 0) -> dict:
    """A collated batch of random images, as the config's loader yields it
    (random token sequences for text configs: :func:`_text_samples`;
    random waveforms for speech configs: :func:`_audio_samples`).

    ``batch_size`` samples ``dict(inputs=uint8 (3, H, W),
    data_samples=DataSample())``, H and W from ``cfg.model.backbone.img_size``
    (default 224), are collated with ``cfg.train_dataloader.collate_fn``
    (``pseudo_collate`` if unset, as in mmengine's ``Runner``); a classifier
    or a class-conditional UNet (:func:`_num_classes`) gets a random
    ``gt_label`` per image. When
    the pipeline's ``PackInputs`` packs ``algorithm_keys`` (e.g. data2vec 2.0's
    ``mask``, drawn in the data pipeline) or the pipeline makes several
    views of an image (``MultiView``), each random image goes through the
    training pipeline instead (without its loading step), so the samples
    carry them.

    Returns:
        dict: ``inputs`` (B, 3, H, W) uint8 (or a list of (3, H, W) with
        ``pseudo_collate``) and ``data_samples``, a list of B DataSample.
    """
    if _is_text(cfg) or _is_audio(cfg):
        make = _text_samples if _is_text(cfg) else _audio_samples
        return _collate(cfg, make(cfg, batch_size, seed))
    from mmpretrain.structures import DataSample
    height, width = _img_size(cfg)
    gen = torch.Generator().manual_seed(seed)
    images = torch.randint(
        0,
        256, (batch_size, 3, height, width),
        generator=gen,
        dtype=torch.uint8)
    # a classifier gets a random label per image,
    # drawn after the images so that their pixels do not depend on it
    num_classes = _num_classes(cfg)
    labels = torch.randint(
        int(num_classes), (batch_size, ),
        generator=gen).tolist() if num_classes else [None] * batch_size
    pipeline = _pipeline_with_algorithm_keys(cfg)
    if pipeline is None:
        samples = []
        for image, label in zip(images, labels):
            sample = DataSample()
            if label is not None:
                sample.set_gt_label(label)
            samples.append(dict(inputs=image.clone(), data_samples=sample))
    else:
        samples = []
        for image, label in zip(images, labels):
            img = image.permute(1, 2, 0).contiguous().numpy()
            item = dict(
                img=img, img_shape=img.shape[:2], ori_shape=img.shape[:2])
            if label is not None:
                item['gt_label'] = label
            samples.append(pipeline(item))
    return _collate(cfg, samples)


def _collate(cfg: Config, samples: list) -> dict:
    """``samples`` collated by ``cfg.train_dataloader.collate_fn``
    (``pseudo_collate`` if unset, as in mmengine's ``Runner``; the
    ``_scope_`` key of inherited configs dropped)."""
    collate_cfg = copy.deepcopy(
        cfg.get('train_dataloader', {}).get('collate_fn',
                                            dict(type='pseudo_collate')))
    collate_cfg.pop('_scope_', None)
    collate_fn = FUNCTIONS.get(collate_cfg.pop('type'))
    return collate_fn(samples, **collate_cfg)


def _is_text(cfg: Config) -> bool:
    """Whether the config trains on token sequences (mmssl's text path)."""
    model = cfg.get('model', {})
    pre = model.get('data_preprocessor') or {}
    backbone = model.get('backbone') or {}
    return str(pre.get('type', '')).endswith('TextDataPreprocessor') or \
        str(backbone.get('type', '')).endswith('TextEncoder')


def _is_audio(cfg: Config) -> bool:
    """Whether the config trains on waveforms (mmssl's speech path)."""
    backbone = cfg.get('model', {}).get('backbone') or {}
    return str(backbone.get('type', '')).endswith('AudioEncoder')


def _audio_samples(cfg: Config, batch_size: int, seed: int) -> list:
    """Random 16 kHz waveforms, packed, of the pipeline's crop (or 1 s)."""
    from mmssl.datasets.transforms.audio import PackAudioInputs
    length = 16000
    for step in cfg.train_dataloader.dataset.get('pipeline', []):
        if str(step.get('type', '')).endswith('RandomAudioCrop'):
            length = int(step['max_samples'])
    gen, pack = torch.Generator().manual_seed(seed), PackAudioInputs()
    return [
        pack(dict(audio=torch.randn(length, generator=gen).numpy()))
        for _ in range(batch_size)
    ]


def _text_samples(cfg: Config, batch_size: int, seed: int) -> list:
    """``batch_size`` random token sequences through the config's training
    pipeline (``NgramMLMMask``, ``PackTextInputs``...): full length
    (``max_seq_length`` / ``max_length`` / ``tokens_per_sample`` of the data
    set, else the
    backbone's ``max_position``), ``[CLS] a [SEP] b [SEP]``, every token a
    word start, a random SOP label and, for a classifier (a head with
    ``num_classes`` or ``regression``), a random label."""
    from mmengine.dataset import Compose
    dataset = cfg.train_dataloader.dataset
    backbone = cfg.model.backbone
    length = dataset.get('max_seq_length') or dataset.get('max_length') or \
        dataset.get('tokens_per_sample') or backbone.get('max_position', 128)
    head = cfg.model.get('head') or {}
    gen = torch.Generator().manual_seed(seed)
    with DefaultScope.overwrite_default_scope(default_scope_of(cfg)):
        pipeline = Compose(copy.deepcopy(dataset.get('pipeline', [])))
    samples = []
    for i in range(batch_size):
        ids = torch.randint(5, backbone.vocab_size, (length, ), generator=gen)
        ids[0], ids[length // 2], ids[-1] = 2, 3, 3  # [CLS] a [SEP] b [SEP]
        types = torch.zeros(length, dtype=torch.long)
        types[length // 2 + 1:] = 1
        item = dict(
            input_ids=ids.numpy(),
            token_type_ids=types.numpy(),
            word_starts=torch.ones(length, dtype=torch.bool).numpy(),
            sop_label=int(torch.randint(2, (1, ), generator=gen)),
            sample_idx=i)
        if head.get('num_classes') or head.get('regression'):
            item['gt_label'] = float(torch.rand(1, generator=gen)) \
                if head.get('regression') else \
                int(torch.randint(head.num_classes, (1, ), generator=gen))
        samples.append(pipeline(item))
    return samples


def _pipeline_with_algorithm_keys(cfg: Config) -> Optional[Callable]:
    """The training pipeline without its loading step, if its ``PackInputs``
    packs ``algorithm_keys`` or it makes several views (``MultiView``:
    SimCLR, DenseCL); else None."""
    dataset = cfg.get('train_dataloader', {}).get('dataset', {}) or {}
    steps = [
        s for s in dataset.get('pipeline', []) or []
        if 'LoadImage' not in str(s.get('type', ''))
    ]
    if not any(
        ('PackInputs' in str(s.get('type', '')) and s.get('algorithm_keys'))
            or 'MultiView' in str(s.get('type', '')) for s in steps):
        return None
    from mmengine.dataset import Compose
    with DefaultScope.overwrite_default_scope(default_scope_of(cfg)):
        return Compose(copy.deepcopy(steps))
