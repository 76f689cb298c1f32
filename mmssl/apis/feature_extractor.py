# Copyright (c) mmssl contributors. All rights reserved.
"""Feature extraction with the backbone of any mmssl model.

mmpretrain's ``FeatureExtractor`` reads the test pipeline of a config
(``test_dataloader.dataset.pipeline``); mmssl's pretraining configs have
none, so it cannot run on them. :class:`MMSSLFeatureExtractor` has the same
call API and works from a pretraining config (or only its checkpoint): it
builds the model, loads the checkpoint's backbone, and derives a test
pipeline from the config when the config has none.

Example:
    >>> from mmssl.apis import MMSSLFeatureExtractor
    >>> extractor = MMSSLFeatureExtractor(
    ...     'configs/mae/mae_vit-tiny-p8_1xb64-coslr-30e_embedded.py',
    ...     'work_dirs/mae/epoch_30.pth')
    >>> feats = extractor(['a.png', 'b.png'], batch_size=2)
    >>> feats[0]['pooled'].shape, [s.shape for s in feats[0]['stages']]
"""
import copy
import os
import os.path as osp
from typing import Callable, Iterator, List, Optional, Sequence, Union

import numpy as np
import torch
from mmcv.image import imread
from mmengine.config import Config
from mmengine.dataset import Compose, default_collate
from mmengine.logging import MMLogger
from mmengine.registry import TRANSFORMS, DefaultScope
from mmengine.runner.checkpoint import _load_checkpoint

from mmssl.evaluation.protocols.eval_data import train_image_size
from mmssl.evaluation.protocols.features import (POOL_MODES, backbone_outputs,
                                                 get_backbone,
                                                 get_data_preprocessor,
                                                 num_extra_tokens,
                                                 pool_features)
from mmssl.evaluation.protocols.loading import load_backbone_from_checkpoint
from mmssl.utils.config import (MMSSL_PREFIX, enable_mmssl_config_prefix,
                                resolve_mmssl_config)
from mmssl.utils.validation import check_choice, check_float, check_int

__all__ = [
    'MMSSLFeatureExtractor', 'derive_test_pipeline', 'config_from_checkpoint'
]

InputType = Union[str, np.ndarray, Sequence[Union[str, np.ndarray]]]

#: where a config may hold its inference pipeline, in order
PIPELINE_KEYS = (('test_dataloader', 'dataset', 'pipeline'),
                 ('test_pipeline', ), ('val_dataloader', 'dataset',
                                       'pipeline'))

#: training-only steps dropped from a config's pipeline
_TRAIN_ONLY = ('LoadImageFromFile', 'MaskGenerator')


def _get(cfg, keys):
    node = cfg
    for key in keys:
        if not isinstance(node, (dict, Config)) or key not in node:
            return None
        node = node[key]
    return node


def _type_name(step: dict) -> str:
    return str(step.get('type', '')).split('.')[-1]


def derive_test_pipeline(cfg: Config,
                         img_size: Optional[int] = None,
                         crop_pct: float = 0.875) -> List[dict]:
    """The inference pipeline of a config, without image loading.

    The config's own (``test_dataloader.dataset.pipeline``,
    ``test_pipeline`` or ``val_dataloader.dataset.pipeline``) when it has
    one; otherwise, as mmpretrain tests ImageNet models,
    ``ResizeEdge(short side = size / crop_pct)``, ``CenterCrop(size)`` and
    ``PackInputs``, where ``size`` is ``img_size`` or the training image
    size of the config (its backbone's ``img_size``, else the crop of its
    train pipeline). Loading (done by the extractor) and mask generators are
    removed; ``PackInputs`` packs no algorithm keys.

    Raises:
        ValueError: when the config has no pipeline and no image size can
            be found, asking for ``img_size``.
    """
    steps = None
    if img_size is None:
        for keys in PIPELINE_KEYS:
            steps = _get(cfg, keys)
            if steps:
                break
    if not steps:
        size = img_size or train_image_size(cfg)
        if size is None:
            raise ValueError(
                'the config has no test pipeline and names no image size '
                '(model.backbone.img_size or a crop in the train pipeline); '
                'pass img_size=... (e.g. 224)')
        check_float(
            crop_pct, 'crop_pct', low=0, high=1, inclusive=(False, True))
        steps = [
            dict(
                type='mmpretrain.ResizeEdge',
                scale=int(round(size / crop_pct)),
                edge='short',
                backend='pillow',
                interpolation='bicubic'),
            dict(type='mmpretrain.CenterCrop', crop_size=size),
            dict(type='mmpretrain.PackInputs')
        ]
    out = []
    for step in copy.deepcopy(list(steps)):
        step = dict(step)
        name = _type_name(step)
        if any(key in name for key in _TRAIN_ONLY):
            continue
        if name == 'PackInputs':
            step.pop('algorithm_keys', None)
        out.append(step)
    return out


def config_from_checkpoint(checkpoint: str) -> Config:
    """The config a training checkpoint was written with (``meta.cfg``, as
    mmengine's Runner saves it)."""
    ckpt = _load_checkpoint(checkpoint, map_location='cpu')
    text = ckpt.get('meta', {}).get('cfg') if isinstance(ckpt, dict) \
        else None
    if not isinstance(text, str):
        raise ValueError(
            f'{checkpoint} holds no config (meta.cfg): pass the config too, '
            'MMSSLFeatureExtractor(CONFIG, CHECKPOINT)')
    return Config.fromstring(text, '.py')


def _load_config(model: Union[str, dict, Config], checkpoint: Optional[str]):
    if isinstance(model, Config):
        return copy.deepcopy(model), checkpoint
    if isinstance(model, dict):
        return Config(copy.deepcopy(dict(model))), checkpoint
    if not isinstance(model, (str, os.PathLike)):
        raise TypeError('config_or_checkpoint must be a config (path, '
                        f'Config or dict) or a checkpoint, got {type(model)}')
    model = str(model)
    enable_mmssl_config_prefix()
    if model.startswith(MMSSL_PREFIX):
        model = resolve_mmssl_config(model)
    if model.endswith('.py'):
        if not osp.isfile(model):
            raise FileNotFoundError(f'no such config file: {model!r}')
        return Config.fromfile(model), checkpoint
    if not osp.isfile(model):
        raise FileNotFoundError(f'no such config or checkpoint: {model!r}')
    return config_from_checkpoint(model), checkpoint or model


class MMSSLFeatureExtractor:
    """Per-image features of the backbone of an mmssl model.

    The call API of mmpretrain's ``FeatureExtractor``: ``extractor(inputs,
    batch_size=1)`` on an image path, an array (HWC, BGR as ``mmcv.imread``
    reads it), a folder of images or a list of those, returning one result
    per image in input order.

    Args:
        config_or_checkpoint (str | Config | dict): A config (path,
            ``'mmssl::<folder>/<file>.py'``, ``Config`` or dict with
            ``model``) or a training checkpoint whose ``meta.cfg`` holds its
            config (mmengine's Runner writes it).
        checkpoint (str, optional): Weights for the backbone: a training
            checkpoint (``backbone.*`` keys are used; necks, heads, decoders
            and teachers are ignored) or a backbone-only state dict. None
            with a config keeps the initialisation. Defaults to None.
        device (str | torch.device): Defaults to ``'cpu'``.
        pool (str): How ``pooled`` is made from the last output: ``'auto'``
            / ``'mean'`` (mean of the patch tokens, global average of a
            feature map) or ``'cls'``. Defaults to ``'auto'``.
        img_size (int, optional): Image size of the derived pipeline; when
            given, it is used even if the config has a test pipeline.
        crop_pct (float): Centre-crop fraction of the derived pipeline.
            Defaults to 0.875 (ResizeEdge 256 + CenterCrop 224).

    Each result is a dict:

    - ``pooled`` (Tensor): (C, ) the pooled last output.
    - ``stages`` (tuple[Tensor]): the backbone's outputs for this image, one
      per ``out_indices`` entry, as the backbone returns them (tokens (L, C)
      of a ViT, feature maps (C, h, w) of a ResNet).
    """

    def __init__(self,
                 config_or_checkpoint: Union[str, dict, Config],
                 checkpoint: Optional[str] = None,
                 device: Union[str, torch.device] = 'cpu',
                 pool: str = 'auto',
                 img_size: Optional[int] = None,
                 crop_pct: float = 0.875) -> None:
        check_choice(pool, 'pool', type(self).__name__, POOL_MODES)
        cfg, checkpoint = _load_config(config_or_checkpoint, checkpoint)
        if 'model' not in cfg:
            raise ValueError('the config has no `model` to build')
        import mmssl.datasets.transforms  # noqa: F401  (registers)
        import mmssl.models  # noqa: F401  (registers)
        self.config = cfg
        self.scope = cfg.get('default_scope', None) or 'mmpretrain'
        logger = MMLogger.get_current_instance()
        level = logger.level
        logger.setLevel('WARNING')  # no per-parameter initialisation report
        try:
            with DefaultScope.overwrite_default_scope(self.scope):
                self.model = load_backbone_from_checkpoint(
                    cfg, checkpoint, device=device)
        finally:
            logger.setLevel(level)
        with DefaultScope.overwrite_default_scope(self.scope):
            self.pipeline_cfg = derive_test_pipeline(cfg, img_size, crop_pct)
            self.pipeline = self._init_pipeline(self.pipeline_cfg)
        self.backbone = get_backbone(self.model)
        self.data_preprocessor = get_data_preprocessor(self.model)
        self.pool = pool
        self.device = torch.device(device)

    def _init_pipeline(self, steps: List[dict]) -> Callable:
        return Compose([TRANSFORMS.build(step) for step in steps])

    # --------------------------------------------------------------- inputs
    @staticmethod
    def _inputs_to_list(inputs: InputType) -> list:
        if isinstance(inputs, (str, os.PathLike)) and osp.isdir(inputs):
            from mmssl.datasets.unlabeled_folder import IMG_EXTENSIONS
            return [
                osp.join(inputs, name) for name in sorted(os.listdir(inputs))
                if name.lower().endswith(IMG_EXTENSIONS)
            ]
        if isinstance(inputs, (list, tuple)):
            return list(inputs)
        return [inputs]

    def _load(self, item) -> dict:
        img = imread(str(item) if isinstance(item, os.PathLike) else item)
        if img is None:
            raise ValueError(f'failed to read image {item!r}')
        return dict(img=img, img_shape=img.shape[:2], ori_shape=img.shape[:2])

    def preprocess(self, inputs: list, batch_size: int = 1) -> Iterator:
        """Collated batches of the pipeline's outputs."""
        check_int(batch_size, 'batch_size', type(self).__name__)
        with DefaultScope.overwrite_default_scope(self.scope):
            for start in range(0, len(inputs), batch_size):
                chunk = inputs[start:start + batch_size]
                yield default_collate(
                    [self.pipeline(self._load(item)) for item in chunk])

    # -------------------------------------------------------------- forward
    @torch.no_grad()
    def forward(self, data: dict) -> List[dict]:
        """Features of one collated batch, one dict per image."""
        if self.data_preprocessor is not None:
            inputs = self.data_preprocessor(data, False)['inputs']
        else:
            inputs = data['inputs']
        if isinstance(inputs, (list, tuple)):  # views: the first one
            inputs = inputs[0]
        inputs = inputs.float()
        inputs = inputs.to(self.device)
        outs = backbone_outputs(self.backbone, inputs)
        stages = tuple(outs) if isinstance(outs, (list, tuple)) else (outs, )
        last = stages[-1]
        while isinstance(last, (list, tuple)):
            last = last[-1]
        pooled = pool_features(last, self.pool,
                               num_extra_tokens(self.backbone))
        return [
            dict(
                pooled=pooled[i].cpu(),
                stages=tuple(_index(s, i) for s in stages))
            for i in range(inputs.shape[0])
        ]

    def __call__(self, inputs: InputType, batch_size: int = 1) -> List[dict]:
        """Features of every input image, in input order.

        Args:
            inputs (str | array | list): An image path or array (HWC, BGR),
                a folder of images, or a list of paths / arrays.
            batch_size (int): Images per forward pass. Defaults to 1.

        Returns:
            list[dict]: Per image ``pooled`` (C, ) and ``stages`` (the
            backbone's outputs for that image).
        """
        self.model.eval()
        results = []
        for data in self.preprocess(
                self._inputs_to_list(inputs), batch_size=batch_size):
            results.extend(self.forward(data))
        return results


def _index(feats, i: int):
    if isinstance(feats, torch.Tensor):
        return feats[i].cpu()
    return type(feats)(_index(f, i) for f in feats)
