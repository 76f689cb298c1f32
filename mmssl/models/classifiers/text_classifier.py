# Copyright (c) mmssl contributors. All rights reserved.
"""GLUE-format sentence / sentence-pair classification and regression on a
pretrained text encoder (ALBERT's ``run_classifier.py`` fine-tuning).

The batch follows the text data contract: ``inputs`` is the dict of (B, T)
``input_ids`` / ``token_type_ids`` / ``attention_mask`` of
``mmssl.TextDataPreprocessor``; every data sample carries ``gt_label``
(LongTensor[] class id, or FloatTensor[] value for regression).

A pretrained encoder loads through the backbone's ``init_cfg``, from an
``mmssl.AlbertPretrainer`` checkpoint (or a converted public one, see
``tools/model_converters/albert_to_mmssl.py``)::

    backbone=dict(type='mmssl.AlbertEncoder', ...,
                  init_cfg=dict(type='Pretrained', checkpoint='...pth',
                                prefix='backbone.'))
"""
from typing import Dict, List, Optional, Union

import torch
from mmengine.model import BaseModel
from mmengine.structures import BaseDataElement

from mmssl.registry import MODELS
from ..selfsup.albert import (TEXT_PREPROCESSOR, build_text_head,
                              stack_sample_field, unpack_text_inputs)

__all__ = ['TextClassifier']


@MODELS.register_module()
class TextClassifier(BaseModel):
    """Text classifier / regressor: encoder + :class:`mmssl.TextClsHead`.

    Args:
        backbone (dict): The encoder, e.g. ``mmssl.AlbertEncoder`` with
            ``with_pooler=True``; called as ``backbone(input_ids,
            token_type_ids, attention_mask) -> (sequence, pooled)``.
        head (dict): ``mmssl.TextClsHead``; ``in_channels`` is taken from the
            backbone's ``hidden_size`` when left out.
        data_preprocessor (dict, optional): Defaults to
            ``dict(type='mmssl.TextDataPreprocessor')``; None takes mmengine's
            ``BaseDataPreprocessor`` (inputs already padded).
        init_cfg (dict, optional): Initialisation of the whole model.
    """

    def __init__(self,
                 backbone: Dict,
                 head: Dict,
                 data_preprocessor: Optional[Dict] = TEXT_PREPROCESSOR,
                 init_cfg: Optional[Dict] = None) -> None:
        super().__init__(
            data_preprocessor=data_preprocessor, init_cfg=init_cfg)
        name = type(self).__name__
        self.backbone = MODELS.build(backbone)
        hidden = getattr(self.backbone, 'hidden_size', None)
        if getattr(self.backbone, 'pooler', None) is None:
            raise ValueError(f'{name}: the head reads the pooled [CLS] '
                             'output; set backbone.with_pooler=True')
        self.head = build_text_head(head, dict(in_channels=hidden), name,
                                    'head')

    @property
    def regression(self) -> bool:
        """Whether the head regresses one value."""
        return self.head.regression

    def extract_feat(self, inputs: Dict[str, torch.Tensor]) -> torch.Tensor:
        """(B, H) pooled output of the batch."""
        ids, token_types, mask = unpack_text_inputs(inputs,
                                                    type(self).__name__)
        return self.backbone(ids, token_types, mask)[1]

    def _targets(self, data_samples: List[BaseDataElement],
                 device: torch.device) -> torch.Tensor:
        dtype = torch.float if self.regression else torch.long
        return stack_sample_field(
            data_samples, 'gt_label',
            type(self).__name__, dtype, device,
            'the fine-tuning data set must give gt_label')

    def loss(self, inputs: Dict[str, torch.Tensor],
             data_samples: List[BaseDataElement]) -> Dict[str, torch.Tensor]:
        """``loss`` (CE or MSE) and, for classification, ``accuracy``
        (detached)."""
        pooled = self.extract_feat(inputs)
        return self.head.loss(pooled, self._targets(data_samples,
                                                    pooled.device))

    def predict(
        self,
        inputs: Dict[str, torch.Tensor],
        data_samples: Optional[List[BaseDataElement]] = None
    ) -> List[BaseDataElement]:
        """Predictions, one data sample per row.

        Returns:
            list[BaseDataElement]: the given data samples (new ones when
            None) with ``pred_score`` (FloatTensor[C], softmax) and
            ``pred_label`` (LongTensor[]) for classification, or
            ``pred_value`` (FloatTensor[]) for regression.
        """
        out = self.head.predict(self.extract_feat(inputs))
        if data_samples is None:
            data_samples = [BaseDataElement() for _ in range(len(out))]
        for sample, row in zip(data_samples, out):
            if self.regression:
                sample.set_data(dict(pred_value=row))
            else:
                sample.set_data(dict(pred_score=row, pred_label=row.argmax()))
        return data_samples

    def forward(self,
                inputs: Dict[str, torch.Tensor],
                data_samples: Optional[List[BaseDataElement]] = None,
                mode: str = 'tensor') -> Union[Dict, List, torch.Tensor]:
        """``mode``: ``'loss'``, ``'predict'`` or ``'tensor'`` (the (B, C)
        head output, (B, 1) for regression)."""
        if mode == 'loss':
            return self.loss(inputs, data_samples)
        if mode == 'predict':
            return self.predict(inputs, data_samples)
        if mode == 'tensor':
            return self.head(self.extract_feat(inputs))
        raise ValueError(f'{type(self).__name__}: invalid mode {mode!r}; '
                         "use 'loss', 'predict' or 'tensor'")
