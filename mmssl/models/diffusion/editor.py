# Copyright (c) mmssl contributors. All rights reserved.
"""DiffFashion as registered, config-built mmengine models.

:class:`DiffFashionEditor` owns the class-conditional diffusion model and the
guidance ViT and runs :class:`mmssl.apis.DiffFashion` (the pipeline is not
duplicated here) on garment / reference pairs in ``predict`` mode;
:class:`LabelContrastMaskGenerator` holds the settings of the automatic
garment mask. Both are inference-only: ``loss`` mode raises.
"""
import copy
import logging
from typing import Dict, List, Optional, Sequence, Union

import torch
from mmengine.logging import print_log
from mmengine.model import BaseModel, BaseModule
from mmengine.structures import BaseDataElement

from mmssl.registry import MODELS

__all__ = [
    'DiffFashionEditor', 'LabelContrastMaskGenerator', 'pack_editor_checkpoint'
]


@MODELS.register_module()
class LabelContrastMaskGenerator(BaseModule):
    """Settings of DiffFashion's label-contrast garment mask.

    The mask itself is made by :meth:`mmssl.apis.DiffFashion.make_mask`
    with the UNet of the editor; this module only holds and checks the
    settings and picks the label sets for a garment label.

    Args:
        label_sets (Sequence[Sequence[int]], optional): sets of unrelated
            labels. ``None``: one set of all labels other than the
            garment's. Labels equal to a sample's garment label are dropped
            from the sets for that sample (and then-empty sets too).
        mode (str): ``'mean'`` (average the sets' score maps into one mask,
            one transfer) or ``'per_set'`` (the reference: one mask and one
            transfer per set).
        threshold (float): z-score threshold (reference -0.2).
        mask_index (int): step index of the mask, for 200 steps (64).
        draws (int): noise draws whose score maps are averaged (1 = the
            reference).
        source (str): ``'trajectory'`` (the reference: the clean estimate
            of an unguided run from the start step) or ``'noised'`` (the
            garment noised directly to the mask step), see
            :class:`mmssl.apis.DiffFashion`.
        contrast (str): ``'mean'`` (the reference) or ``'per_label'``.
        smooth (int): odd box filter of the score maps (1 = off).
        clean_kernel (int): opening / closing size (3; 1 = off).
        clip_x0 (bool): clip the clean estimate in the posterior means.
    """

    def __init__(self,
                 label_sets: Optional[Sequence[Sequence[int]]] = None,
                 mode: str = 'mean',
                 threshold: float = -0.2,
                 mask_index: int = 64,
                 draws: int = 1,
                 source: str = 'trajectory',
                 contrast: str = 'mean',
                 smooth: int = 1,
                 clean_kernel: int = 3,
                 clip_x0: bool = False,
                 init_cfg: Optional[dict] = None) -> None:
        super().__init__(init_cfg=init_cfg)
        if mode not in ('mean', 'per_set'):
            raise ValueError("LabelContrastMaskGenerator: mode must be "
                             f"'mean' or 'per_set', got {mode!r}")
        if draws < 1:
            raise ValueError(
                f'LabelContrastMaskGenerator: draws must be >= 1, got '
                f'{draws}')
        if source not in ('trajectory', 'noised'):
            raise ValueError("LabelContrastMaskGenerator: source must be "
                             f"'trajectory' or 'noised', got {source!r}")
        if contrast not in ('mean', 'per_label'):
            raise ValueError("LabelContrastMaskGenerator: contrast must be "
                             f"'mean' or 'per_label', got {contrast!r}")
        for name, k in (('smooth', smooth), ('clean_kernel', clean_kernel)):
            if k > 1 and k % 2 == 0:
                raise ValueError(f'LabelContrastMaskGenerator: {name} must '
                                 f'be odd, got {k}')
        if label_sets is not None and (not label_sets
                                       or any(len(s) == 0
                                              for s in label_sets)):
            raise ValueError('LabelContrastMaskGenerator: label_sets needs '
                             'non-empty sets of labels, or None for "all '
                             'other labels"')
        self.label_sets = None if label_sets is None else [[int(y) for y in s]
                                                           for s in label_sets]
        self.mode = mode
        self.threshold = float(threshold)
        self.mask_index = int(mask_index)
        self.draws = int(draws)
        self.source = source
        self.contrast = contrast
        self.smooth = int(smooth)
        self.clean_kernel = int(clean_kernel)
        self.clip_x0 = bool(clip_x0)

    def pipeline_kwargs(self) -> dict:
        """The :class:`mmssl.apis.DiffFashion` arguments of the mask."""
        return dict(
            mask_mode=self.mode,
            mask_threshold=self.threshold,
            mask_index=self.mask_index,
            mask_draws=self.draws,
            mask_source=self.source,
            mask_contrast=self.contrast,
            mask_smooth=self.smooth,
            mask_clean_kernel=self.clean_kernel,
            clip_x0_mask=self.clip_x0)

    def sets_for(self, garment_label: int,
                 num_classes: int) -> List[List[int]]:
        """The label sets used for a garment of class ``garment_label``."""
        if self.label_sets is None:
            sets = [[y for y in range(num_classes) if y != garment_label]]
        else:
            sets = [[y for y in s if y != garment_label]
                    for s in self.label_sets]
            sets = [s for s in sets if s]
        if not sets:
            raise ValueError(f'no mask label set is left for garment label '
                             f'{garment_label}; add other labels to '
                             'label_sets')
        return sets


@MODELS.register_module()
class DiffFashionEditor(BaseModel):
    """DiffFashion (mask + structure-aware transfer) as an mmengine model.

    ``predict`` takes batches of pairs as packed by
    :class:`mmssl.datasets.PackFashionPair` (inputs (B, 2, 3, S, S):
    garment, reference in [-1, 1]) and returns the data samples with
    ``pred_img`` ((3, S, S), or (K, 3, S, S) with K label sets in
    ``per_set`` mode), ``pred_mask`` ((1, S, S) or (K, 1, S, S); all ones
    without a mask), ``pred_mask_score`` ((S, S) z-scores the mask was
    thresholded from, when it was made automatically) and, when the sample
    has a ``gt_mask``, ``pred_scores``:
    the ViT scores of :func:`mmssl.apis.fashion_metrics` with the guidance
    ViT (``structure_selfsim``, ``structure_selfsim_fg``,
    ``appearance_cls``; means over the K runs).

    Weights: one checkpoint holds both parts (``diffusion.*`` and
    ``vit.*``); make it from separately trained ones with
    :func:`pack_editor_checkpoint` (``tools/model_converters/
    difffashion_editor.py``) and pass it to ``tools/test.py``.

    Args:
        diffusion (dict): config of an ``mmssl.ClassCondDDPM``.
        vit (dict): config of the guidance ViT (an mmpretrain
            ``VisionTransformer`` / ``mmssl.MAEViT`` / ``mmssl.D2V2ViT``);
            its ``img_size`` is the side images are resized to for it.
        mask_generator (dict): config of a
            :class:`LabelContrastMaskGenerator`.
        garment_label (int, optional): label of every garment; ``None``
            takes each sample's ``garment_label`` meta field.
        use_mask (bool): False runs the transfer without a mask.
        on_empty_mask (str): what a sample whose automatic mask is empty
            (any candidate, in ``per_set`` mode) does: ``'error'`` (the
            API's behaviour) stops with :class:`mmssl.apis.MaskError`;
            ``'no_mask'`` logs a warning naming the sample, runs its
            transfer without a mask, reports an all-zero ``pred_mask``
            (a missed garment: IoU 0) and sets ``empty_mask=True``, so an
            evaluation over many pairs goes on.
        seed (int): base seed; sample ``i`` uses ``seed + sample_idx``.
        pipeline (dict, optional): other arguments of
            :class:`mmssl.apis.DiffFashion` (``num_steps``, ``skip``,
            ``sampler``, ``blend_steps``, ``resample``, ``loss_weights``,
            ``colour_matching``, ...).
        data_preprocessor (dict, optional): defaults to mmengine's
            ``BaseDataPreprocessor`` (moves the data to the device).
        init_cfg (dict, optional): mmengine initialisation config.
    """

    def __init__(self,
                 diffusion: dict,
                 vit: dict,
                 mask_generator: dict = dict(
                     type='mmssl.LabelContrastMaskGenerator'),
                 garment_label: Optional[int] = None,
                 use_mask: bool = True,
                 on_empty_mask: str = 'error',
                 seed: int = 0,
                 pipeline: Optional[dict] = None,
                 data_preprocessor: Optional[dict] = None,
                 init_cfg: Optional[dict] = None) -> None:
        super().__init__(
            data_preprocessor=data_preprocessor, init_cfg=init_cfg)
        for name, cfg in (('diffusion', diffusion), ('vit', vit),
                          ('mask_generator', mask_generator)):
            if not isinstance(cfg, dict) or 'type' not in cfg:
                raise ValueError(f'DiffFashionEditor: {name} must be a '
                                 f'config dict with a type, got {cfg!r}')
        pipeline = dict(pipeline or {})
        reserved = {
            'garment_label', 'mask_label_sets', 'scheduler', 'vit_img_size'
        } | set(LabelContrastMaskGenerator().pipeline_kwargs())
        clash = sorted(reserved & set(pipeline))
        if clash:
            raise ValueError(
                f'DiffFashionEditor: pipeline sets {clash}; set the mask '
                'options in mask_generator, the labels with garment_label / '
                'mask_generator.label_sets')
        self.diffusion = MODELS.build(diffusion)
        vit = dict(vit)
        vit.pop('init_cfg', None)
        size = vit.get('img_size', 224)
        self.vit_img_size = size if isinstance(size, int) else size[0]
        self.vit = MODELS.build(vit)
        self.mask_generator = MODELS.build(mask_generator)
        self.garment_label = garment_label
        self.use_mask = use_mask
        if on_empty_mask not in ('error', 'no_mask'):
            raise ValueError("DiffFashionEditor: on_empty_mask must be "
                             f"'error' or 'no_mask', got {on_empty_mask!r}")
        self.on_empty_mask = on_empty_mask
        self.seed = int(seed)
        self.pipeline_cfg = pipeline
        self.num_classes = int(self.diffusion.num_classes)
        if garment_label is not None and not \
                0 <= garment_label < self.num_classes:
            raise ValueError(f'DiffFashionEditor: garment_label '
                             f'{garment_label} outside [0, '
                             f'{self.num_classes})')
        self._pipe = None
        self._check_pipeline()

    def _check_pipeline(self) -> None:
        """Fail at build time on bad pipeline arguments."""
        import inspect

        from mmssl.apis.difffashion import DiffFashion
        known = set(inspect.signature(DiffFashion.__init__).parameters)
        unknown = sorted(set(self.pipeline_cfg) - known)
        if unknown:
            raise ValueError(f'DiffFashionEditor: unknown pipeline '
                             f'arguments {unknown}')

    @property
    def pipe(self):
        """The :class:`mmssl.apis.DiffFashion` run by ``predict`` (made on
        first use, after the weights are loaded)."""
        if self._pipe is None:
            from mmssl.apis.difffashion import DiffFashion
            label = 0 if self.garment_label is None else self.garment_label
            self.__dict__['_pipe'] = DiffFashion(
                self.diffusion.unet,
                self.vit,
                garment_label=label,
                mask_label_sets=self.mask_generator.sets_for(
                    label, self.num_classes),
                scheduler=self.diffusion.scheduler_cfg,
                vit_img_size=self.vit_img_size,
                **self.mask_generator.pipeline_kwargs(),
                **self.pipeline_cfg)
        return self._pipe

    def forward(self,
                inputs: Union[torch.Tensor, Sequence[torch.Tensor]],
                data_samples: Optional[List[BaseDataElement]] = None,
                mode: str = 'predict') -> Union[Dict, List]:
        """Only ``predict`` is supported (DiffFashion is training-free)."""
        if mode == 'loss':
            raise RuntimeError('DiffFashionEditor is training-free: it has '
                               'no loss; train the diffusion model and the '
                               'ViT with their own configs')
        if mode not in ('predict', 'tensor'):
            raise RuntimeError(f'Invalid mode "{mode}"')
        if not isinstance(inputs, torch.Tensor):
            inputs = torch.stack(list(inputs))
        if inputs.dim() != 5 or inputs.shape[1] != 2:
            raise ValueError('DiffFashionEditor takes inputs (B, 2, 3, H, '
                             'W): garment and reference; got '
                             f'{tuple(inputs.shape)}')
        if data_samples is None:
            data_samples = [BaseDataElement() for _ in range(len(inputs))]
        return [
            self._predict_one(pair, ds)
            for pair, ds in zip(inputs.float(), data_samples)
        ]

    def _predict_one(self, pair: torch.Tensor,
                     ds: BaseDataElement) -> BaseDataElement:
        from mmssl.apis.difffashion import MaskError, fashion_metrics
        garment, reference = pair[0:1], pair[1:2]
        label = self.garment_label
        if label is None:
            label = ds.metainfo.get('garment_label')
            if label is None:
                raise KeyError('DiffFashionEditor: the sample has no '
                               "'garment_label' meta field; set the "
                               "model's garment_label")
        pipe = self.pipe
        pipe.set_labels(
            int(label),
            self.mask_generator.sets_for(int(label), self.num_classes))
        seed = self.seed + int(ds.metainfo.get('sample_idx', 0))
        empty = False
        try:
            out = pipe(garment, reference, use_mask=self.use_mask, seed=seed)
        except MaskError as err:
            if self.on_empty_mask == 'error':
                raise
            print_log(
                f'DiffFashionEditor: sample {ds.metainfo.get("sample_idx")} '
                f'({ds.metainfo.get("garment_path", "?")}): {err}; '
                'transfer without a mask, counted as a missed mask',
                logger='current',
                level=logging.WARNING)
            out = pipe(garment, reference, use_mask=False, seed=seed)
            empty = True
        runs = out.get('per_set') or [out]
        masks = [
            torch.zeros_like(garment[:, :1]) if empty else
            r['mask'] if r['mask'] is not None else torch.ones_like(
                garment[:, :1]) for r in runs
        ]
        ds.empty_mask = empty
        results = [r['result'] for r in runs]
        per_set = 'per_set' in out
        ds.pred_img = torch.cat(results) if per_set else results[0][0]
        ds.pred_mask = torch.cat(masks) if per_set else masks[0][0]
        if out.get('score') is not None:
            ds.pred_mask_score = out['score'][0]
        gt = ds.get('gt_mask')
        if gt is not None:
            true_mask = gt.to(garment)[None]
            scores = [
                fashion_metrics(r, garment, reference, m, pipe.extractor,
                                true_mask) for r, m in zip(results, masks)
            ]
            keys = ('structure_selfsim', 'structure_selfsim_fg',
                    'appearance_cls')
            ds.pred_scores = {
                k: float(sum(s[k] for s in scores) / len(scores))
                for k in keys
            }
        return ds


def pack_editor_checkpoint(config: Union[str, dict], diffusion_checkpoint: str,
                           vit_checkpoint: str, out: str) -> dict:
    """Write one :class:`DiffFashionEditor` checkpoint from the weights of
    its diffusion model and its ViT.

    Args:
        config (str | dict): an editor config file (or its ``model``
            dict).
        diffusion_checkpoint (str): ``ClassCondDDPM`` weights (written by
            ``tools/train.py`` or the guided-diffusion converter).
        vit_checkpoint (str): ViT weights (keys with or without
            ``backbone.``).
        out (str): the checkpoint to write (``state_dict`` + ``meta``).

    Returns:
        dict: ``num_keys`` and the sources.

    Raises:
        mmssl.apis.WeightFileError: a weight file is missing (the message
            says where to get it).
    """
    import os
    import os.path as osp

    from mmengine.config import Config
    from mmengine.runner import load_checkpoint

    from mmssl.apis.difffashion import (_DDPM_HINT, _check_file,
                                        load_vit_weights)
    _check_file(diffusion_checkpoint, 'diffusion checkpoint', _DDPM_HINT)
    model_cfg = Config.fromfile(config).model if isinstance(
        config, str) else copy.deepcopy(config)
    if model_cfg.get('type') not in ('mmssl.DiffFashionEditor',
                                     'DiffFashionEditor'):
        raise ValueError(f'{config} does not build a DiffFashionEditor '
                         f'(model.type = {model_cfg.get("type")!r})')
    editor = MODELS.build(model_cfg)
    load_checkpoint(
        editor.diffusion,
        diffusion_checkpoint,
        map_location='cpu',
        strict=True,
        logger='silent')
    load_vit_weights(editor.vit, vit_checkpoint)
    meta = dict(
        diffusion_checkpoint=osp.basename(diffusion_checkpoint),
        vit_checkpoint=osp.basename(vit_checkpoint))
    if osp.dirname(out):
        os.makedirs(osp.dirname(out), exist_ok=True)
    tmp = out + '.tmp'
    torch.save(dict(state_dict=editor.state_dict(), meta=meta), tmp)
    os.replace(tmp, out)
    return dict(num_keys=len(editor.state_dict()), **meta)
