# Copyright (c) mmssl contributors. All rights reserved.
"""DiffFashion: reference-based garment appearance transfer by diffusion.

:class:`DiffFashionEditor` is the sampler of Cao et al. (arXiv 2302.06826)
as a registered, inference-only mmengine model:

1. **Garment mask** (:meth:`DiffFashionEditor.make_mask`): run by its
   :class:`~mmssl.models.diffusion.LabelContrastMaskGenerator` with the
   editor's UNet and unguided steps.
2. **Structure-aware transfer** (:meth:`DiffFashionEditor.transfer`):
   sampling starts from the *noised reference* at the start step (the first
   step repeated ``resample`` times with re-noising); during the first
   ``blend_steps`` steps after the start, pixels outside the mask are
   replaced by the *garment* noised to the current step; every step is
   guided by the gradient of the ViT losses of
   :func:`~mmssl.models.diffusion.fashion_guidance_loss` (structure towards
   the garment, appearance towards the reference) taken through the UNet.

DDPM steps are written by hand (the guidance enters the posterior mean,
``mu' = mu - Sigma grad L``, which ``scheduler.step`` cannot take); DDIM
steps add it in epsilon space and use ``DDIMScheduler.step``
(:class:`~mmssl.models.diffusion.RespacedSchedule`).
"""
import logging
from typing import Callable, Dict, List, Optional, Sequence, Union

import torch
import torch.nn as nn
from mmengine.logging import print_log
from mmengine.model import BaseModel
from mmengine.structures import BaseDataElement

from mmssl.evaluation.functional.fashion import fashion_metrics
from mmssl.registry import MODELS
from mmssl.utils.validation import check_choice
from .fashion_ops import (blend_background, colour_match, noise_augment,
                          predict_x0, renoise)
from .mask import MaskError
from .schedule import RespacedSchedule
from .vit_guidance import (ViTFeatureExtractor, check_loss_weights,
                           fashion_guidance_loss, vit_input_size)

__all__ = ['DiffFashionEditor']

#: the keys of ``DiffFashionEditor(schedule=...)``
SCHEDULE_KEYS = ('sampler', 'num_steps', 'skip', 'blend_steps', 'resample',
                 'clip_x0')
#: the keys of ``DiffFashionEditor(guidance=...)``
GUIDANCE_KEYS = ('weights', 'dir_until_index', 'img_size', 'mean', 'std')

Guide = Callable[[torch.Tensor, torch.Tensor, int], torch.Tensor]


def _check_keys(name: str, cfg: Optional[dict], known: Sequence[str]) -> dict:
    cfg = dict(cfg or {})
    unknown = sorted(set(cfg) - set(known))
    if unknown:
        raise ValueError(f'DiffFashionEditor: unknown {name} options '
                         f'{unknown}; known: {list(known)}')
    return cfg


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
    has a ``gt_mask``, ``pred_scores``: the ViT scores of
    :func:`mmssl.evaluation.functional.fashion_metrics` with the guidance
    ViT (``structure_selfsim``, ``structure_selfsim_fg``,
    ``appearance_cls``; means over the K runs). From Python,
    :meth:`edit` runs one batch of garments of one class.

    Weights: one checkpoint holds both networks (``diffusion.*`` and
    ``vit.*``); make it from separately trained ones with
    :func:`mmssl.models.diffusion.pack_editor_checkpoint`
    (``tools/model_converters/difffashion_editor.py``).

    Args:
        diffusion (dict | nn.Module): config of an ``mmssl.ClassCondDDPM``,
            or a built model with ``unet`` (a diffusers ``UNet2DModel``
            with ``num_class_embeds``; 3 output channels, or 6 = epsilon +
            learned variance) and optionally ``scheduler_cfg``.
        vit (dict | nn.Module): the guidance ViT (mmpretrain
            ``VisionTransformer`` / ``mmssl.MAEViT`` / ``mmssl.D2V2ViT``),
            as a config or built.
        schedule (dict, optional): the sampler, see
            :class:`~mmssl.models.diffusion.RespacedSchedule`:
            ``sampler`` ('ddpm'), ``num_steps`` (200), and, counted for 200
            steps and scaled with ``num_steps``, ``skip`` (80),
            ``blend_steps`` (35); ``resample`` (10), ``clip_x0`` (True).
        mask_generator (dict | LabelContrastMaskGenerator): the garment
            mask: label sets, mode, threshold, mask step, draws, source,
            contrast, smoothing, cleaning.
        guidance (dict, optional): ``weights`` (dict, keys of
            :data:`~mmssl.models.diffusion.DEFAULT_LOSS_WEIGHTS`; missing
            keys take the reference's), ``dir_until_index`` (the
            divergence term acts while the step index is above this, of
            200 and scaled: 100 as the reference's ``--diff_iter``, i.e. 28
            of the 129 guided calls of the reference schedule; a negative
            value keeps it on throughout), ``img_size`` (ViT input side;
            default the ViT's own, see
            :func:`~mmssl.models.diffusion.vit_input_size`), ``mean`` /
            ``std`` (ViT input normalisation of [0, 1] images; ImageNet).
        colour_matching (bool): match the result's colours to the reference
            inside the mask (the reference code uses MKL; here per-channel
            mean and std, :func:`~mmssl.models.diffusion.colour_match`).
        garment_label (int, optional): label of every garment; ``None``
            takes each sample's ``garment_label`` meta field (or the
            argument of :meth:`edit`).
        use_mask (bool): False runs the transfer without a mask.
        on_empty_mask (str): what a sample whose automatic mask is empty
            (any candidate, in ``per_set`` mode) does in ``predict``:
            ``'error'`` stops with :class:`MaskError`; ``'no_mask'`` logs a
            warning naming the sample, runs its transfer without a mask,
            reports an all-zero ``pred_mask`` (a missed garment: IoU 0) and
            sets ``empty_mask=True``, so an evaluation over many pairs goes
            on.
        seed (int): base seed; sample ``i`` of ``predict`` uses ``seed +
            sample_idx``.
        data_preprocessor (dict, optional): defaults to mmengine's
            ``BaseDataPreprocessor`` (moves the data to the device).
        init_cfg (dict, optional): mmengine initialisation config.
    """

    def __init__(self,
                 diffusion: Union[dict, nn.Module],
                 vit: Union[dict, nn.Module],
                 schedule: Optional[dict] = None,
                 mask_generator: Union[dict, nn.Module] = dict(
                     type='mmssl.LabelContrastMaskGenerator'),
                 guidance: Optional[dict] = None,
                 colour_matching: bool = True,
                 garment_label: Optional[int] = None,
                 use_mask: bool = True,
                 on_empty_mask: str = 'error',
                 seed: int = 0,
                 data_preprocessor: Optional[dict] = None,
                 init_cfg: Optional[dict] = None) -> None:
        super().__init__(
            data_preprocessor=data_preprocessor, init_cfg=init_cfg)
        for name, cfg in (('diffusion', diffusion), ('vit', vit),
                          ('mask_generator', mask_generator)):
            if not isinstance(cfg, nn.Module) and not (isinstance(cfg, dict)
                                                       and 'type' in cfg):
                raise ValueError(f'DiffFashionEditor: {name} must be a '
                                 f'config dict with a type, got {cfg!r}')
        schedule = _check_keys('schedule', schedule, SCHEDULE_KEYS)
        guidance = _check_keys('guidance', guidance, GUIDANCE_KEYS)
        check_choice(on_empty_mask, 'on_empty_mask', 'DiffFashionEditor',
                     ('error', 'no_mask'))
        self.loss_weights = check_loss_weights(guidance.get('weights'))
        self.dir_until_index = int(guidance.get('dir_until_index', 100))

        self.diffusion = diffusion if isinstance(
            diffusion, nn.Module) else MODELS.build(diffusion)
        unet = getattr(self.diffusion, 'unet', None)
        num_classes = getattr(
            getattr(unet, 'config', None), 'num_class_embeds', None)
        if not num_classes:
            raise ValueError('DiffFashionEditor needs a class-conditional '
                             'UNet (diffusion.unet with num_class_embeds)')
        self.num_classes = int(num_classes)
        if isinstance(vit, nn.Module):
            self.vit = vit
        else:
            vit = dict(vit)
            vit.pop('init_cfg', None)
            self.vit = MODELS.build(vit)
        self.vit_img_size = int(
            guidance.get('img_size') or vit_input_size(self.vit))
        self.mask_generator = mask_generator if isinstance(
            mask_generator, nn.Module) else MODELS.build(mask_generator)
        self.mask_generator.check_labels(self.num_classes)
        self.diffusion.requires_grad_(False).eval()
        # the extractor freezes the ViT
        self.extractor = ViTFeatureExtractor(
            self.vit, self.vit_img_size,
            **{k: guidance[k]
               for k in ('mean', 'std') if k in guidance})
        self.schedule = RespacedSchedule(
            getattr(self.diffusion, 'scheduler_cfg', None), **schedule)
        self.colour_matching = bool(colour_matching)
        if garment_label is not None:
            self._check_label(garment_label)
        self.garment_label = garment_label
        self.use_mask = bool(use_mask)
        self.on_empty_mask = on_empty_mask
        self.seed = int(seed)

    @property
    def unet(self) -> nn.Module:
        """The class-conditional denoiser."""
        return self.diffusion.unet

    def _check_label(self, label) -> int:
        if label is None:
            raise ValueError('DiffFashionEditor: no garment label; pass one '
                             "or set the model's garment_label")
        if not 0 <= int(label) < self.num_classes:
            raise ValueError(f'DiffFashionEditor: garment_label {label} '
                             f'outside [0, {self.num_classes}) of the '
                             'diffusion model')
        return int(label)

    def _label(self, label: Optional[int]) -> int:
        return self._check_label(self.garment_label if label is
                                 None else label)

    # -- one step ---------------------------------------------------------
    def eps(self, x: torch.Tensor, i: int,
            label: Union[int, torch.Tensor]) -> tuple:
        """UNet output at step ``i``.

        Args:
            x (Tensor): (B, 3, H, W).
            i (int): step index.
            label (int | Tensor): one label, or (B,) per-image labels.

        Returns:
            tuple: the noise estimate (B, 3, H, W) and the learned-variance
            output (B, 3, H, W) or None.
        """
        t = torch.full((x.shape[0], ),
                       self.schedule.t_at(i),
                       dtype=torch.long,
                       device=x.device)
        if isinstance(label, torch.Tensor):
            y = label.to(device=x.device, dtype=torch.long)
        else:
            y = torch.full((x.shape[0], ),
                           int(label),
                           dtype=torch.long,
                           device=x.device)
        out = self.unet(x, t, class_labels=y).sample
        if out.shape[1] == 2 * x.shape[1]:
            return out[:, :x.shape[1]], out[:, x.shape[1]:]
        return out, None

    def step(self,
             x: torch.Tensor,
             i: int,
             garment_label: int,
             generator: Optional[torch.Generator] = None,
             guide: Optional[Guide] = None) -> tuple:
        """One (guided) denoising step from index ``i`` to ``i - 1``.

        The guidance energy sees the noise-augmented estimate
        ``sqrt(1 - a_t) x0 + (1 - sqrt(1 - a_t)) x_t`` (the reference's
        ``--use_noise_aug_all``); its gradient w.r.t. ``x_t`` is taken
        through the UNet.

        Args:
            x (Tensor): (B, 3, H, W) sample at step ``i``.
            i (int): step index.
            garment_label (int): the class the UNet is conditioned on.
            generator (torch.Generator, optional): for the noise.
            guide (callable, optional): ``guide(x_in, x0, i) -> loss``.

        Returns:
            tuple: the sample at ``i - 1`` (B, 3, H, W) and the clean
            estimate x0 (B, 3, H, W), both detached.
        """
        grad = None
        with torch.enable_grad():
            x_req = x.detach().requires_grad_(guide is not None)
            eps, var = self.eps(x_req, i, garment_label)
            if guide is not None:
                a_t = self.schedule.alpha(i)
                x0 = predict_x0(x_req, eps, a_t)
                loss = guide(noise_augment(x0, x_req, a_t), x0, i)
                if loss.requires_grad:
                    grad = torch.autograd.grad(loss, x_req)[0]
        noise = torch.randn(x.shape, generator=generator).to(x)
        return self.schedule.step(x.detach(), i, eps.detach(),
                                  None if var is None else var.detach(), grad,
                                  noise)

    def resampled_step(self,
                       x: torch.Tensor,
                       i: int,
                       garment_label: int,
                       generator: Optional[torch.Generator] = None,
                       guide: Optional[Guide] = None,
                       progress: Optional[Callable[[], None]] = None) -> tuple:
        """Step ``i``; at the start step it runs ``resample`` times, the
        result re-noised back to step ``i`` in between with ``beta`` of
        step ``i`` (RePaint; the reference code takes the beta of index
        ``i - 1``, a difference of about 1% at index 119 of 200).

        Returns:
            tuple: ``x`` at step ``i - 1`` and the last clean estimate,
            both (B, 3, H, W).
        """
        reps = self.schedule.resample if i == self.schedule.start else 1
        for r in range(reps):
            x_next, x0 = self.step(x, i, garment_label, generator, guide)
            if progress:
                progress()
            if r < reps - 1:
                noise = torch.randn(x.shape, generator=generator)
                x = renoise(x_next, self.schedule.beta(i), noise.to(x))
        return x_next, x0

    # -- A. mask ------------------------------------------------------------
    def make_mask(self,
                  garment: torch.Tensor,
                  garment_label: Optional[int] = None,
                  generator: Optional[torch.Generator] = None,
                  progress: Optional[Callable[[], None]] = None) -> dict:
        """The automatic garment mask (see
        :meth:`LabelContrastMaskGenerator.generate`).

        Args:
            garment (Tensor): (B, 3, H, W) garment images in [-1, 1].
            garment_label (int, optional): defaults to ``garment_label``.
            generator (torch.Generator, optional): for the noise.
            progress (callable, optional): called once per model step.
        """
        return self.mask_generator.generate(self, garment,
                                            self._label(garment_label),
                                            generator, progress)

    # -- B. transfer --------------------------------------------------------
    def transfer(self,
                 garment: torch.Tensor,
                 reference: torch.Tensor,
                 mask: Optional[torch.Tensor] = None,
                 garment_label: Optional[int] = None,
                 generator: Optional[torch.Generator] = None,
                 progress: Optional[Callable[[], None]] = None,
                 return_losses: bool = False) -> dict:
        """Structure-preserving, ViT-guided sampling.

        The structure target is the garment, the appearance target the
        reference. The divergence term compares the [CLS] of each step's
        guidance input with that of the previous call (for the first call:
        the garment image, as the reference code's ``self.prev``); it acts
        while the step index is above ``dir_until_index`` (scaled).

        Args:
            garment (Tensor): (B, 3, H, W) garment images in [-1, 1].
            reference (Tensor): (B, 3, H, W) appearance references.
            mask (Tensor, optional): (B, 1, H, W), 1 = garment; ``None``
                runs without blending and with an unmasked [CLS] term.
            garment_label (int, optional): defaults to ``garment_label``.
            generator (torch.Generator, optional): for the noise.
            progress (callable, optional): called once per model step.
            return_losses (bool): also return the guidance terms of each
                call.

        Returns:
            dict: ``result`` (B, 3, H, W) in [-1, 1] (colour-matched when
            enabled), ``raw`` (B, 3, H, W) before colour matching and, with
            ``return_losses``, ``losses``: one dict per guided call with the
            step index ``i`` and the weighted terms (floats).
        """
        if garment.shape != reference.shape:
            raise ValueError('garment and reference must have the same '
                             f'shape, got {tuple(garment.shape)} and '
                             f'{tuple(reference.shape)}')
        label = self._label(garment_label)
        s = self.schedule
        with torch.no_grad():
            g_keys, g_cls = self.extractor(garment)
            _, r_cls = self.extractor(reference)
        dir_above = s.scale(self.dir_until_index) \
            if self.dir_until_index >= 0 else -1
        state = dict(prev_cls=g_cls)
        log: List[Dict[str, float]] = []

        def guide(x_in, x0, i):
            prev = state['prev_cls'] if i > dir_above else None
            total, terms, cls = fashion_guidance_loss(self.extractor, x_in, x0,
                                                      g_keys, r_cls, reference,
                                                      mask, prev,
                                                      self.loss_weights)
            state['prev_cls'] = cls
            if return_losses:
                log.append(
                    dict(
                        i=i,
                        **{
                            k: float(v.detach())
                            for k, v in terms.items()
                        }))
            return total

        active = any(self.loss_weights.values())
        x = s.add_noise(reference, s.start, generator)
        x0 = reference
        for i in range(s.start, -1, -1):
            x, x0 = self.resampled_step(x, i, label, generator,
                                        guide if active else None, progress)
            if mask is not None and s.blends(i):
                # the garment noised to the step's own timestep (as the
                # reference code, not to the one of i - 1)
                x = blend_background(x, mask,
                                     s.add_noise(garment, i, generator))
        raw = x0.clamp(-1, 1)
        result = colour_match(raw, reference, mask) \
            if self.colour_matching else raw
        out = dict(result=result, raw=raw)
        if return_losses:
            out['losses'] = log
        return out

    def num_model_steps(self,
                        with_mask: bool = True,
                        garment_label: Optional[int] = None) -> int:
        """Denoising steps of :meth:`edit` (for progress bars)."""
        s, gen = self.schedule, self.mask_generator
        transfer = s.start + s.resample
        if not with_mask:
            return transfer
        if gen.mode == 'per_set':
            transfer *= len(
                gen.sets_for(self._label(garment_label), self.num_classes))
        return transfer + gen.num_model_steps(self)

    @torch.no_grad()
    def edit(self,
             garment: torch.Tensor,
             reference: torch.Tensor,
             garment_label: Optional[int] = None,
             mask: Optional[torch.Tensor] = None,
             use_mask: Optional[bool] = None,
             seed: Optional[int] = 0,
             progress: Optional[Callable[[], None]] = None) -> dict:
        """Mask (unless given or disabled), then transfer.

        With ``mask_generator.mode='per_set'`` and an automatic mask, the
        transfer runs once per label set's mask, as the reference code
        does; each run starts from the same generator state, so the runs
        differ only by their masks.

        Args:
            garment (Tensor): (B, 3, H, W) in [-1, 1].
            reference (Tensor): (B, 3, H, W) in [-1, 1].
            garment_label (int, optional): defaults to ``garment_label``.
            mask (Tensor, optional): (B, 1, H, W) given mask.
            use_mask (bool, optional): False runs the transfer without a
                mask; defaults to ``use_mask``.
            seed (int, optional): seed of the sampling noise.
            progress (callable, optional): called once per model step.

        Returns:
            dict: ``result`` and ``raw`` (B, 3, H, W), ``mask`` (B, 1, H, W)
            or None, and ``score`` (B, H, W) when the mask was made here.
            In ``per_set`` mode ``result``, ``raw`` and ``mask`` are those
            of the first set and ``per_set`` lists one dict (``mask``,
            ``result``, ``raw``) per label set.
        """
        label = self._label(garment_label)
        use_mask = self.use_mask if use_mask is None else use_mask
        gen = torch.Generator().manual_seed(seed) if seed is not None \
            else None
        out: dict = dict(mask=None)
        if use_mask and mask is None:
            out.update(self.make_mask(garment, label, gen, progress))
            if self.mask_generator.mode == 'per_set':
                state = gen.get_state() if gen is not None else None
                runs = []
                for cand in out['candidates']:
                    if state is not None:
                        gen.set_state(state)
                    m = cand.unsqueeze(1).float()
                    runs.append(
                        dict(
                            mask=m,
                            **self.transfer(garment, reference, m, label, gen,
                                            progress)))
                out.update(runs[0])
                out['per_set'] = runs
                return out
        elif use_mask:
            if not (mask > 0).flatten(1).any(1).all():
                raise MaskError('the given garment mask is empty')
            out['mask'] = mask
        out.update(
            self.transfer(garment, reference, out['mask'], label, gen,
                          progress))
        return out

    # -- mmengine model interface -------------------------------------------
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
        garment, reference = pair[0:1], pair[1:2]
        label = self.garment_label
        if label is None:
            label = ds.metainfo.get('garment_label')
            if label is None:
                raise KeyError('DiffFashionEditor: the sample has no '
                               "'garment_label' meta field; set the "
                               "model's garment_label")
        seed = self.seed + int(ds.metainfo.get('sample_idx', 0))
        empty = False
        try:
            out = self.edit(garment, reference, int(label), seed=seed)
        except MaskError as err:
            if self.on_empty_mask == 'error':
                raise
            print_log(
                f'DiffFashionEditor: sample {ds.metainfo.get("sample_idx")} '
                f'({ds.metainfo.get("garment_path", "?")}): {err}; '
                'transfer without a mask, counted as a missed mask',
                logger='current',
                level=logging.WARNING)
            out = self.edit(
                garment, reference, int(label), use_mask=False, seed=seed)
            empty = True
        runs = out.get('per_set') or [out]
        masks = [
            torch.zeros_like(garment[:, :1]) if empty else r['mask']
            if r['mask'] is not None else torch.ones_like(garment[:, :1])
            for r in runs
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
                fashion_metrics(r, garment, reference, m, self.extractor,
                                true_mask) for r, m in zip(results, masks)
            ]
            keys = ('structure_selfsim', 'structure_selfsim_fg',
                    'appearance_cls')
            ds.pred_scores = {
                k: float(sum(s[k] for s in scores) / len(scores))
                for k in keys
            }
        return ds
