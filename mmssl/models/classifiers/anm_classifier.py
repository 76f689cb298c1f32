# Copyright (c) mmssl contributors. All rights reserved.
"""Learning with noisy labels by adversarial noisy masking (ANM / SANM, Tu et
al., CVPR 2023) on a single quality-weighted classifier."""
from typing import Dict, List, Optional

import torch
import torch.nn.functional as F
from mmengine.dist import get_dist_info
from mmengine.logging import MessageHub
from mmpretrain.models.classifiers import ImageClassifier
from mmpretrain.structures import DataSample

from mmssl.models.necks.mask_reconstruction_decoder import reconstruction_loss
from mmssl.registry import MODELS
from mmssl.utils.validation import check_float, check_int

__all__ = ['ANMClassifier', 'sharpen', 'refine_targets']


def sharpen(probs: torch.Tensor, temperature: float = 0.5) -> torch.Tensor:
    """MixMatch sharpening: ``p^(1/T) / sum_c p_c^(1/T)`` per row."""
    p = probs.clamp(min=0).pow(1. / temperature)
    return p / p.sum(1, keepdim=True).clamp(min=1e-12)


def refine_targets(onehot: torch.Tensor,
                   probs: torch.Tensor,
                   quality: torch.Tensor,
                   temperature: Optional[float] = 0.5) -> torch.Tensor:
    """DivideMix's label refinement of a labeled sample (spec step 3).

    ``y' = w * onehot(y) + (1 - w) * p``, then :func:`sharpen` with
    ``temperature`` (None skips it).

    Args:
        onehot (Tensor): (B, C) one-hot noisy labels.
        probs (Tensor): (B, C) the network's (detached) softmax.
        quality (Tensor): (B,) label quality ``w`` in [0, 1].
        temperature (float, optional): sharpening temperature.

    Returns:
        Tensor: (B, C) rows that sum to 1.
    """
    w = quality.to(probs.dtype).view(-1, 1)
    target = w * onehot.to(probs.dtype) + (1 - w) * probs
    return target if temperature is None else sharpen(target, temperature)


@MODELS.register_module()
class ANMClassifier(ImageClassifier):
    """``ImageClassifier`` trained on noisy labels with adversarial noisy
    masking, label refinement and masked-image reconstruction.

    The model keeps the label quality ``w`` of every training sample in the
    buffer ``label_quality`` (``num_train_samples`` entries, initialised to
    1, read by the ``sample_idx`` of each data sample), which
    :class:`mmssl.LabelQualityHook` refreshes from a GMM on the per-sample
    losses; being a buffer, it is in every checkpoint and ``--resume``
    restores it. Until the first refresh (the warm-up, ``warmup_epochs``
    epochs) the loss is plain cross-entropy on the noisy labels, exactly
    mmpretrain's ``ImageClassifier`` (plus the optional confidence penalty
    that DivideMix adds for asymmetric noise). Afterwards, per batch:

    1. the clean view goes through the backbone: logits ``z`` and the
       feature map ``F = backbone(x)[mask_feature_index]``;
    2. refined target (``refine_labels``): ``y' = sharpen(w * onehot(y) +
       (1 - w) * softmax(z).detach(), T)``; else ``onehot(y)``;
    3. ``loss_cls``: soft cross-entropy of ``z`` on ``y'``;
    4. :class:`mmssl.AdversarialNoisyMasking` erases a rectangle at the
       maximum (and minimum) of the activation map of ``F.detach()``; its
       ratio ``rho = U(base) + coef * (1 - w)`` grows as ``w`` falls, and
       the target is softened by ``rho`` (``y_soft``);
    5. ``loss_mask``: ``loss_mask_weight`` x soft cross-entropy of the
       masked views on ``y_soft`` (mean over all masked rows);
    6. ``loss_rec`` (with a ``decoder``): ``loss_rec_weight`` x the sum over
       the masked views of the MSE between the decoder output of their
       feature map and the unmasked (normalised) image;
    7. ``loss_prior``: ``loss_prior_weight`` x DivideMix's prior penalty
       ``sum_c pi_c log(pi_c / mean_p_c)``, ``pi`` uniform and ``mean_p``
       the mean softmax over the clean and masked rows of the batch; it
       keeps the refined (self-predicted) targets from collapsing onto a
       few classes.

    With ``masking=None`` the model is the plain classifier (and
    ``decoder`` must be None). The logits are the head's raw outputs; the
    reference's softmax-then-(log-)softmax is not reproduced.

    Random draws (ratios, aspects, fill values) come from torch's global
    CPU generator, which mmengine's ``randomness`` seeds and mmssl's
    ``RandomStateHook`` saves in checkpoints. With ``mask_seed`` they come
    instead from a generator seeded by ``(mask_seed, rank, step)``, the
    step being the buffer ``mask_steps``, so the stream also resumes
    exactly and differs between processes.

    Args:
        backbone (dict): e.g. mmpretrain ``ResNet_CIFAR`` / ``ResNet``.
        neck (dict, optional): e.g. ``GlobalAveragePooling``.
        head (dict, optional): a head with ``num_classes`` whose forward
            gives logits (``LinearClsHead``).
        masking (dict, optional): ``mmssl.AdversarialNoisyMasking`` config;
            None switches ANM off.
        decoder (dict, optional): ``mmssl.MaskReconstructionDecoder``
            config; None drops the reconstruction loss.
        loss_rec_weight (float): weight of the reconstruction MSE (per
            masked view). Defaults to 0.02.
        loss_mask_weight (float): weight of the masked views' loss.
            Defaults to 1.0.
        loss_prior_weight (float): weight of the prior penalty. Defaults to
            1.0 (DivideMix's); 0 drops it.
        num_train_samples (int, optional): length of the training set, the
            size of ``label_quality``; needed with ``masking``.
        warmup_epochs (int): epochs of plain cross-entropy before the first
            quality refresh; :class:`mmssl.LabelQualityHook` starts then.
            Defaults to 10.
        refine_labels (bool): refine the targets by the quality. Defaults
            to True.
        sharpen_temperature (float): ``T`` of the sharpening. Defaults to
            0.5.
        mask_feature_index (int): which backbone output is the activation
            and reconstruction feature map. Defaults to -1 (the last).
        mask_seed (int, optional): seed of the masking draws (see above).
        warmup_conf_penalty (float): weight of DivideMix's confidence
            penalty ``mean sum_c p_c log p_c`` during the warm-up (1.0 for
            asymmetric noise in DivideMix). Defaults to 0.
        soft_loss (dict): the soft cross-entropy. Defaults to mmpretrain's
            ``CrossEntropyLoss(use_soft=True)``.
        **kwargs: other arguments of mmpretrain's ``ImageClassifier``.
    """

    def __init__(self,
                 backbone: dict,
                 neck: Optional[dict] = None,
                 head: Optional[dict] = None,
                 masking: Optional[dict] = None,
                 decoder: Optional[dict] = None,
                 loss_rec_weight: float = 0.02,
                 loss_mask_weight: float = 1.0,
                 loss_prior_weight: float = 1.0,
                 num_train_samples: Optional[int] = None,
                 warmup_epochs: int = 10,
                 refine_labels: bool = True,
                 sharpen_temperature: float = 0.5,
                 mask_feature_index: int = -1,
                 mask_seed: Optional[int] = None,
                 warmup_conf_penalty: float = 0.,
                 soft_loss: Optional[dict] = None,
                 **kwargs) -> None:
        super().__init__(backbone=backbone, neck=neck, head=head, **kwargs)
        name = type(self).__name__
        self.loss_rec_weight = check_float(
            loss_rec_weight, 'model.loss_rec_weight', name, low=0.)
        self.loss_mask_weight = check_float(
            loss_mask_weight, 'model.loss_mask_weight', name, low=0.)
        self.loss_prior_weight = check_float(
            loss_prior_weight, 'model.loss_prior_weight', name, low=0.)
        self.warmup_epochs = check_int(
            warmup_epochs, 'model.warmup_epochs', name, minimum=0)
        self.refine_labels = bool(refine_labels)
        self.sharpen_temperature = check_float(
            sharpen_temperature,
            'model.sharpen_temperature',
            name,
            low=0.,
            inclusive=False)
        self.warmup_conf_penalty = check_float(
            warmup_conf_penalty, 'model.warmup_conf_penalty', name, low=0.)
        outs = getattr(self.backbone, 'out_indices', [None])
        n = len(outs)
        if isinstance(mask_feature_index, bool) or not isinstance(
                mask_feature_index, int) or not -n <= mask_feature_index < n:
            raise ValueError(
                f'{name}: model.mask_feature_index={mask_feature_index!r} '
                f'must index the {n} backbone outputs (model.backbone.'
                f'out_indices={list(outs)}): an int in [{-n}, {n - 1}]')
        self.mask_feature_index = mask_feature_index
        self.mask_seed = None if mask_seed is None else check_int(
            mask_seed, 'model.mask_seed', name, minimum=0)
        if masking is None and decoder is not None:
            raise ValueError(f'{name}: model.decoder needs model.masking (the '
                             'decoder reconstructs the masked views)')
        self.masking = None if masking is None else MODELS.build(masking)
        self.decoder = None
        if decoder is not None:
            # built without advancing the global RNG: the backbone and head
            # are then initialised as in the plain classifier of the same
            # seed, and the warm-up is the baseline's run
            with torch.random.fork_rng(devices=[]):
                self.decoder = MODELS.build(decoder)
        self.soft_loss = MODELS.build(
            soft_loss
            or dict(type='mmpretrain.CrossEntropyLoss', use_soft=True))
        if self.masking is not None:
            if num_train_samples is None:
                raise ValueError(
                    f'{name}: model.num_train_samples is needed with '
                    'model.masking: set it to the length of the training '
                    'set (the size of the per-sample label-quality buffer)')
            if getattr(self.data_preprocessor, 'batch_augments',
                       None) is not None:
                raise ValueError(
                    f'{name}: batch augments (model.train_cfg.augments, e.g. '
                    'Mixup) replace the labels by mixed scores; ANM needs '
                    'the noisy labels, remove the augments')
            if getattr(self.head, 'num_classes', None) is None:
                raise ValueError(f'{name}: model.head must have num_classes')
        size = 0 if num_train_samples is None else check_int(
            num_train_samples, 'model.num_train_samples', name)
        self.num_train_samples = size
        self.register_buffer('label_quality', torch.ones(size))
        self.register_buffer('quality_refreshes',
                             torch.zeros((), dtype=torch.long))
        self.register_buffer('mask_steps', torch.zeros((), dtype=torch.long))

    # -- the per-sample label quality -----------------------------------------

    @property
    def anm_active(self) -> bool:
        """Whether the ANM losses are used: masking is set and the quality
        was refreshed at least once (the warm-up is over)."""
        return self.masking is not None and int(self.quality_refreshes) > 0

    def _check_indices(self, idx: torch.Tensor) -> None:
        n = self.num_train_samples
        if idx.numel() and (int(idx.min()) < 0 or int(idx.max()) >= n):
            bad = int(idx.max()) if int(idx.max()) >= n else int(idx.min())
            raise IndexError(
                f'{type(self).__name__}: sample_idx {bad} is outside the '
                f'label-quality buffer of model.num_train_samples={n}; set '
                'model.num_train_samples to the length of the training set '
                '(len(train_dataloader.dataset))')

    def sample_indices(self, data_samples: List[DataSample]) -> torch.Tensor:
        """(B,) long ``sample_idx`` of the data samples, checked against the
        buffer."""
        try:
            idx = [int(ds.metainfo['sample_idx']) for ds in data_samples]
        except KeyError:
            raise KeyError(
                f"{type(self).__name__}: a data sample has no 'sample_idx' "
                'in its metainfo; keep it in PackInputs(meta_keys=...) '
                '(mmssl.datasets.NOISY_META_KEYS does)') from None
        out = torch.tensor(idx, dtype=torch.long)
        self._check_indices(out)
        return out.to(self.label_quality.device)

    def quality_of(self, data_samples: List[DataSample]) -> torch.Tensor:
        """(B,) label quality of the data samples."""
        return self.label_quality[self.sample_indices(data_samples)]

    @torch.no_grad()
    def update_label_quality(self, indices, quality) -> None:
        """Write ``quality`` at ``indices`` of the buffer and count the
        refresh (called by :class:`mmssl.LabelQualityHook`)."""
        idx = torch.as_tensor(indices, dtype=torch.long).reshape(-1)
        q = torch.as_tensor(quality, dtype=torch.float32).reshape(-1)
        if idx.numel() != q.numel():
            raise ValueError(f'{type(self).__name__}: {idx.numel()} indices '
                             f'but {q.numel()} quality values')
        self._check_indices(idx)
        if q.numel() and (not torch.isfinite(q).all() or q.min() < 0
                          or q.max() > 1):
            raise ValueError(f'{type(self).__name__}: label quality must be '
                             'finite and in [0, 1]')
        dev = self.label_quality.device
        self.label_quality[idx.to(dev)] = q.to(dev, self.label_quality.dtype)
        self.quality_refreshes += 1

    # -- losses ---------------------------------------------------------------

    def _check_schedule(self) -> None:
        """Fail when the warm-up is over but no quality was ever written
        (the hook is missing from the config)."""
        if self.masking is None or not self.training:
            return
        hub = MessageHub.get_current_instance()
        epoch = hub.get_info('epoch')
        if hub.get_info('loop_stage') != 'train' or epoch is None:
            return
        if int(epoch) >= self.warmup_epochs:
            raise RuntimeError(
                f'{type(self).__name__}: epoch {int(epoch) + 1} is past the '
                f'warm-up (model.warmup_epochs={self.warmup_epochs}) but '
                'the label quality was never refreshed; add '
                "dict(type='mmssl.LabelQualityHook') to custom_hooks")

    def _generator(self) -> Optional[torch.Generator]:
        if self.mask_seed is None:
            return None
        rank, _ = get_dist_info()
        seed = (self.mask_seed * 1000003 + rank * 7919 +
                int(self.mask_steps) * 104729) % (2**63 - 1)
        return torch.Generator().manual_seed(seed)

    def _warmup_loss(
            self, inputs: torch.Tensor,
            data_samples: List[DataSample]) -> Dict[str, torch.Tensor]:
        feats = self.extract_feat(inputs)
        losses = {
            ('loss_cls' if k == 'loss' else k): v
            for k, v in self.head.loss(feats, data_samples).items()
        }
        if self.warmup_conf_penalty > 0:
            p = F.softmax(self.head(feats), dim=1)
            losses['loss_penalty'] = self.warmup_conf_penalty * (
                p * torch.log(p.clamp(min=1e-12))).sum(1).mean()
        return losses

    def _classify(self, outs: tuple) -> torch.Tensor:
        feats = self.neck(outs) if self.with_neck else outs
        return self.head(feats)

    def loss(self, inputs: torch.Tensor,
             data_samples: List[DataSample]) -> Dict[str, torch.Tensor]:
        """Losses of one batch (see the class docstring).

        Returns:
            dict: ``loss_cls`` (+ ``loss_penalty``) during the warm-up or
            without masking; afterwards ``loss_cls``, ``loss_mask``,
            ``loss_rec`` (with a decoder), ``loss_prior``, and the logged
            ``quality`` (mean ``w``) and ``rho`` (mean masking ratio).
        """
        if not self.anm_active:
            self._check_schedule()
            return self._warmup_loss(inputs, data_samples)
        B = inputs.shape[0]
        num_classes = self.head.num_classes
        outs = self.backbone(inputs)
        fmap = outs[self.mask_feature_index]
        logits = self._classify(outs)
        labels = torch.cat([ds.gt_label
                            for ds in data_samples]).to(logits.device)
        onehot = F.one_hot(labels.long(), num_classes).to(logits.dtype)
        w = self.quality_of(data_samples).to(logits.dtype)
        with torch.no_grad():
            if self.refine_labels:
                target = refine_targets(onehot, F.softmax(logits.detach(), 1),
                                        w, self.sharpen_temperature)
            else:
                target = onehot
        losses = dict(loss_cls=self.soft_loss(logits, target, avg_factor=B))
        anm = self.masking(
            inputs,
            fmap.detach(),
            w.detach(),
            targets=target,
            generator=self._generator())
        self.mask_steps += 1
        views = [anm.images[loc] for loc in self.masking.locations]
        m_outs = self.backbone(torch.cat(views))
        m_logits = self._classify(m_outs)
        soft = anm.targets.repeat(len(views), 1)
        losses['loss_mask'] = self.loss_mask_weight * self.soft_loss(
            m_logits, soft, avg_factor=m_logits.shape[0])
        if self.decoder is not None:
            rec = self.decoder(m_outs[self.mask_feature_index],
                               tuple(inputs.shape[-2:]))
            losses['loss_rec'] = self.loss_rec_weight * sum(
                reconstruction_loss(r, inputs) for r in rec.split(B))
        if self.loss_prior_weight > 0:
            mean_p = torch.cat([F.softmax(logits, 1),
                                F.softmax(m_logits, 1)]).mean(0)
            prior = torch.full_like(mean_p, 1. / num_classes)
            losses['loss_prior'] = self.loss_prior_weight * (
                prior * torch.log(prior / mean_p.clamp(min=1e-12))).sum()
        losses['quality'] = w.mean().detach()
        losses['rho'] = anm.rho.mean().detach()
        return losses
