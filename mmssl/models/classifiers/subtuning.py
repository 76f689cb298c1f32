# Copyright (c) mmssl contributors. All rights reserved.
"""SubTuning: finetune a chosen subset of backbone blocks plus the head
("Less is More: Selective Layer Finetuning with SubTuning", Kaplun et al.,
arXiv 2302.06354)."""
import copy
from typing import List, Optional, Sequence, Tuple

import torch
import torch.nn as nn
from mmengine.logging import print_log
from mmpretrain.models.classifiers import ImageClassifier
from torch.nn.modules.batchnorm import _BatchNorm

from mmssl.models.utils.subtuning import in_blocks, resolve_blocks
from mmssl.registry import MODELS


@MODELS.register_module()
class SubTuningClassifier(ImageClassifier):
    """``ImageClassifier`` that trains only the named backbone blocks, the
    neck and the head.

    Everything else in the backbone gets ``requires_grad=False`` when the
    model is built, and :meth:`train` keeps it in eval mode: BatchNorm
    layers of frozen blocks use and keep their running statistics, dropout
    and drop-path are off there (spec section 2, step 4). The neck and the
    head are the task's new top and are always trained.

    A subclass rather than a wrapper: configs, checkpoints and tools stay
    those of a plain mmpretrain classifier (keys ``backbone.*``,
    ``head.*``; ``init_cfg`` / ``load_from`` of pretrained backbones,
    ``tools/test.py``, mmpretrain's inferencers), so only ``type`` and
    ``trainable_blocks`` change in a finetuning config, and a SubTuning
    checkpoint loads into the plain classifier.

    The optimizer: mmengine's ``DefaultOptimWrapperConstructor`` passes
    ``model.parameters()`` to the optimizer when ``paramwise_cfg`` is empty.
    Frozen parameters never get a gradient, and torch's optimizers (SGD,
    Adam, AdamW, ...) skip parameters without one, so they are neither
    updated (weight decay included) nor given optimizer state. With any
    ``paramwise_cfg`` (e.g. ``norm_decay_mult=0.``) the constructor leaves
    them out of the parameter groups altogether (one warning line each).

    Siamese (``siamese=True``, the reference code's early ``use_frozen_bb``
    option): the model also holds ``frozen_backbone``, a copy of the
    backbone that never trains (no gradient, always in eval mode), and the
    head reads ``[h_S(x); h_frozen(x)]``: for each backbone output, the
    tuned and the frozen features concatenated along the channels (dim 1;
    the last dim for ViT's ``out_type='raw'`` token sequences), so a
    ``GlobalAveragePooling`` neck and a head with ``in_channels=2F`` follow
    (a head with ``F`` fails on the first forward). The copy is taken from
    the backbone in :meth:`init_weights`, that is after the pretrained
    weights are loaded; it is in the ``state_dict`` (keys
    ``frozen_backbone.*``), so checkpoints (``load_from``, ``--resume``,
    ``tools/test.py``) carry it, and a Siamese checkpoint does not load into
    the plain classifier.

    Args:
        backbone (dict): The backbone config (mmpretrain ``ResNet``,
            ``VisionTransformer`` or any other). Its ``frozen_stages`` must
            stay at -1: ``trainable_blocks`` decides what trains.
        trainable_blocks (list[str]): Backbone blocks to finetune, by their
            module path in the backbone (``'layer4.2'``, ``'layer3'``,
            ``'layers.11'``; a leading ``'backbone.'`` is optional; see
            :func:`mmssl.models.utils.block_names`). ``[]`` trains only the
            head (linear probing, the start of the greedy search); all
            blocks is full finetuning.
        siamese (bool): Keep a frozen copy of the backbone and give the
            head the concatenation of both features (head ``in_channels``
            twice the backbone's). Defaults to False.
        **kwargs: the other arguments of mmpretrain ``ImageClassifier``
            (``neck``, ``head``, ``train_cfg``, ``data_preprocessor``,
            ``init_cfg``, ``pretrained``).

    Raises:
        ValueError: ``trainable_blocks`` missing or not a list of valid
            block names (the message lists the valid ones), ``siamese`` not
            a bool, no head, the backbone's ``frozen_stages`` set, or
            nothing left to train.
    """

    def __init__(self,
                 backbone: dict,
                 trainable_blocks: Optional[Sequence[str]] = None,
                 siamese: bool = False,
                 **kwargs) -> None:
        super().__init__(backbone=backbone, **kwargs)
        owner = type(self).__name__
        if not isinstance(siamese, bool):
            raise ValueError(
                f'{owner}: model.siamese must be True or False, got '
                f'{siamese!r}')
        if trainable_blocks is None:
            raise ValueError(
                f'{owner}: model.trainable_blocks is required: a list of '
                "backbone block names such as ['layer4.2'] or "
                "['layers.11'] ([] trains the head only)")
        if not self.with_head:
            raise ValueError(f'{owner}: model.head is required; SubTuning '
                             'trains the named blocks plus a head')
        frozen_stages = getattr(self.backbone, 'frozen_stages', -1)
        if frozen_stages != -1:
            raise ValueError(
                f'{owner}: model.backbone.frozen_stages={frozen_stages} '
                'would freeze blocks on its own; remove it (leave -1), '
                'model.trainable_blocks decides what trains')
        self.trainable_blocks: List[str] = resolve_blocks(
            self.backbone, trainable_blocks, 'model.trainable_blocks', owner)
        for name, param in self.backbone.named_parameters():
            param.requires_grad_(in_blocks(name, self.trainable_blocks))
        self.siamese = siamese
        if siamese:
            self.frozen_backbone = copy.deepcopy(self.backbone)
            self.frozen_backbone.requires_grad_(False)
            # filled from the backbone by init_weights, not by its own
            # init_cfg (no second read of the pretrained checkpoint)
            self.frozen_backbone._is_init = True
        if not any(p.requires_grad for p in self.parameters()):
            raise ValueError(
                f'{owner}: nothing to train: model.trainable_blocks=[] and '
                'the neck and head have no parameters; name blocks in '
                'model.trainable_blocks or give the head a layer')
        print_log(
            f'{owner}: training backbone blocks {self.trainable_blocks} '
            f'plus the neck and head; {self.num_trainable()} of '
            f'{sum(p.numel() for p in self.parameters())} parameters' +
            (' (with the frozen Siamese copy of the backbone)'
             if siamese else ''),
            logger='current')

    def init_weights(self) -> None:
        """Initialise the weights (the backbone's ``init_cfg``, e.g. the
        pretrained checkpoint); with ``siamese=True`` then copy the backbone
        into ``frozen_backbone``.

        The copy is taken on the first call only, so a repeated call does
        not overwrite the frozen copy with a tuned backbone.
        """
        first = not self.is_init
        super().init_weights()
        if self.siamese and first:
            self.sync_frozen_backbone()

    @torch.no_grad()
    def sync_frozen_backbone(self) -> None:
        """Copy the backbone's parameters and buffers into
        ``frozen_backbone`` (``siamese=True`` only)."""
        if not self.siamese:
            raise ValueError(f'{type(self).__name__}: there is no frozen '
                             'backbone copy without siamese=True')
        self.frozen_backbone.load_state_dict(self.backbone.state_dict())

    def extract_feat(self, inputs: torch.Tensor, stage: str = 'neck'):
        """Extract features; see mmpretrain ``ImageClassifier``.

        With ``siamese=True`` the backbone stage is, for each output index,
        the concatenation of the tuned and the frozen backbone's features
        (:meth:`siamese_features`); the neck and head run on it.
        """
        if not self.siamese:
            return super().extract_feat(inputs, stage)
        assert stage in ['backbone', 'neck', 'pre_logits'], \
            (f'Invalid output stage "{stage}", please choose from '
             '"backbone", "neck" and "pre_logits"')
        x = self.siamese_features(inputs)
        if stage == 'backbone':
            return x
        if self.with_neck:
            x = self.neck(x)
        if stage == 'neck':
            return x
        assert self.with_head and hasattr(self.head, 'pre_logits'), \
            "No head or the head doesn't implement `pre_logits` method."
        return self.head.pre_logits(x)

    def siamese_features(self, inputs: torch.Tensor) -> Tuple[torch.Tensor]:
        """``[h_S(x); h_frozen(x)]`` per backbone output.

        The frozen copy runs without gradient (it is in eval mode, see
        :meth:`train`).

        Args:
            inputs (Tensor): The images, (B, 3, H, W).

        Returns:
            tuple[Tensor]: one tensor per backbone output, the tuned
            features first, concatenated along dim 1 ((B, 2C) or
            (B, 2C, H, W)), or along the last dim for token sequences of
            ViT's ``out_type='raw'`` ((B, N, 2C)).
        """
        tuned = self.backbone(inputs)
        with torch.no_grad():
            frozen = self.frozen_backbone(inputs)
        if isinstance(tuned, torch.Tensor):
            tuned, frozen = (tuned, ), (frozen, )
        dim = -1 if getattr(self.backbone, 'out_type', None) == 'raw' else 1
        return tuple(torch.cat([a, b], dim=dim) for a, b in zip(tuned, frozen))

    def frozen_modules(self) -> List[nn.Module]:
        """The backbone's direct children and block items that are frozen
        (outside ``trainable_blocks`` and not containing one of them), and
        the Siamese ``frozen_backbone`` when there is one."""
        modules = []
        for name, child in self.backbone.named_children():
            if in_blocks(name, self.trainable_blocks):
                continue
            if not any(
                    b.startswith(name + '.') for b in self.trainable_blocks):
                modules.append(child)
                continue
            modules += [
                item for item_name, item in child.named_children()
                if not in_blocks(f'{name}.{item_name}', self.trainable_blocks)
            ]
        if self.siamese:
            modules.append(self.frozen_backbone)
        return modules

    def num_trainable(self) -> int:
        """Number of trainable parameter values (neck and head included)."""
        return sum(p.numel() for p in self.parameters() if p.requires_grad)

    def train(self, mode: bool = True) -> 'SubTuningClassifier':
        """Set the mode; frozen backbone modules stay in eval mode.

        The backbone's own rule still applies on top (``norm_eval=True``
        puts every BatchNorm in eval mode, trained blocks included).
        """
        super().train(mode)
        if mode:
            for module in self.frozen_modules():
                module.eval()
            if getattr(self.backbone, 'norm_eval', False):
                for module in self.backbone.modules():
                    if isinstance(module, _BatchNorm):
                        module.eval()
        return self
