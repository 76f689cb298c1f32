# Copyright (c) mmssl contributors. All rights reserved.
"""Supervised classification with a positional label as auxiliary loss."""
from typing import Dict, List, Optional

import torch
from mmpretrain.models.classifiers import ImageClassifier
from mmpretrain.structures import DataSample

from mmssl.registry import MODELS


@MODELS.register_module()
class PosLabelClassifier(ImageClassifier):
    """``ImageClassifier`` plus an APL or RPL head on the backbone tokens.

    Training loss: ``loss_cls`` of the class head (on the neck's pooled
    features, as in any mmpretrain classifier) plus ``loss_pos`` of the
    positional head (already weighted by its ``loss_weight``, 0.5 in the
    paper) on the token map ``backbone(x)[pos_input]``. Prediction and
    testing are the plain classifier's; the positional head is only used in
    training.

    Args:
        backbone (dict): a backbone whose outputs are ``(B, C, h, w)`` maps
            and that reports their grid (``mmssl.PosLabelViT`` with
            ``out_type='featmap'``, ``mmssl.PosLabelSwin``).
        pos_head (dict, optional): ``mmssl.AbsPosLabelHead`` or
            ``mmssl.RelPosLabelHead``; its ``grid_size`` must equal the
            grid of the output it reads, its ``in_channels`` that output's
            channels. None gives the plain classifier (the baseline of the
            same config).
        pos_input (int): which backbone output the positional head reads
            (index into the outputs tuple, i.e. into
            ``backbone.out_indices``). Defaults to -1 (the last).
        **kwargs: the other arguments of ``mmpretrain.ImageClassifier``
            (``neck=dict(type='GlobalAveragePooling')`` pools the maps for
            the class head).
    """

    def __init__(self,
                 backbone: dict,
                 pos_head: Optional[dict] = None,
                 pos_input: int = -1,
                 **kwargs) -> None:
        super().__init__(backbone=backbone, **kwargs)
        owner = type(self).__name__
        self.pos_input = pos_input
        self.pos_head = None
        if pos_head is None:
            return
        self.pos_head = MODELS.build(pos_head)
        outs = getattr(self.backbone, 'out_indices', [None])
        n = len(outs)
        if isinstance(pos_input, bool) or not isinstance(
                pos_input, int) or not -n <= pos_input < n:
            raise ValueError(
                f'{owner}: model.pos_input={pos_input!r} must index the '
                f'{n} backbone outputs (model.backbone.out_indices='
                f'{list(outs)}): an int in [{-n}, {n - 1}]')
        if not hasattr(self.backbone, 'token_grid'):
            raise ValueError(
                f'{owner}: model.backbone ({type(self.backbone).__name__}) '
                'does not report its token grid; use mmssl.PosLabelViT or '
                'mmssl.PosLabelSwin')
        grid = tuple(self.backbone.token_grid(pos_input))
        if tuple(self.pos_head.grid_size) != grid:
            raise ValueError(
                f'{owner}: model.pos_head.grid_size='
                f'{tuple(self.pos_head.grid_size)} gives '
                f'{self.pos_head.num_classes} classes, but the backbone '
                f'output it reads (model.pos_input={pos_input}) is a '
                f'{grid[0]}x{grid[1]} token grid; set '
                f'model.pos_head.grid_size={grid}')
        channels = self._output_channels(pos_input)
        if channels is not None and channels != self.pos_head.in_channels:
            raise ValueError(
                f'{owner}: model.pos_head.in_channels='
                f'{self.pos_head.in_channels}, but the backbone output it '
                f'reads has {channels} channels; set '
                f'model.pos_head.in_channels={channels}')

    def _output_channels(self, index: int) -> Optional[int]:
        """Channels of backbone output ``index``, where the backbone says."""
        features = getattr(self.backbone, 'num_features', None)
        if features is not None:  # Swin: per stage
            return features[self.backbone.out_indices[index]]
        return getattr(self.backbone, 'embed_dims', None)

    @property
    def with_pos_head(self) -> bool:
        return self.pos_head is not None

    @staticmethod
    def map_to_tokens(feature_map: torch.Tensor) -> torch.Tensor:
        """(B, C, h, w) map -> (B, h*w, C) tokens in row-major order."""
        if feature_map.dim() != 4:
            raise ValueError(
                'PosLabelClassifier: the positional head reads a (B, C, h, '
                f'w) backbone output, got {tuple(feature_map.shape)}; use '
                "out_type='featmap' for mmssl.PosLabelViT")
        return feature_map.flatten(2).transpose(1, 2)

    def loss(self, inputs: torch.Tensor,
             data_samples: List[DataSample]) -> Dict[str, torch.Tensor]:
        """Class loss (+ weighted positional loss) of one batch.

        Args:
            inputs (Tensor): (B, 3, H, W).
            data_samples (list[DataSample]): the labels.

        Returns:
            dict: ``loss_cls`` of the class head (its ``loss``, renamed),
            ``loss_pos`` and ``acc_pos`` with a positional head.
        """
        outs = self.backbone(inputs)
        feats = self.neck(outs) if self.with_neck else outs
        # mmengine logs the sum of all ``loss*`` terms as ``loss``, so the
        # class head's ``loss`` is renamed to keep it visible in the log
        losses = {
            ('loss_cls' if k == 'loss' else k): v
            for k, v in self.head.loss(feats, data_samples).items()
        }
        if self.with_pos_head:
            tokens = self.map_to_tokens(outs[self.pos_input])
            losses.update(self.pos_head.loss(tokens))
        return losses
