# Copyright (c) mmssl contributors. All rights reserved.
"""Contrastive image-text pretraining of a CLIP, with zero-shot prediction."""
from typing import Dict, List, Optional, Sequence, Union

import torch
import torch.nn.functional as F
from mmengine.model import BaseModel

from mmssl.registry import MODELS
from .clip_model import build_clip, tokenize, zero_shot_text_features
from .templates import resolve_templates

__all__ = ['CLIPPretrainer', 'clip_contrastive_loss']


def clip_contrastive_loss(image_feats: torch.Tensor, text_feats: torch.Tensor,
                          logit_scale: torch.Tensor) -> torch.Tensor:
    """CLIP's symmetric InfoNCE loss.

    Args:
        image_feats (torch.Tensor): ``(N, E)`` L2-normalised image features.
        text_feats (torch.Tensor): ``(N, E)`` L2-normalised text features;
            row ``i`` is the caption of image ``i``.
        logit_scale (torch.Tensor): scalar log temperature (``exp`` is taken).

    Returns:
        torch.Tensor: scalar, the mean of the image-to-text and
        text-to-image cross-entropies.
    """
    logits = logit_scale.exp() * image_feats @ text_feats.t()
    target = torch.arange(len(logits), device=logits.device)
    return (F.cross_entropy(logits, target) +
            F.cross_entropy(logits.t(), target)) / 2


@MODELS.register_module()
class CLIPPretrainer(BaseModel):
    """A CLIP trained from scratch on images and their captions.

    ``loss`` mode takes the captions from ``data_samples[i].caption`` (see
    :class:`mmssl.EmbeddedCaptionDataset`); ``predict`` mode is zero-shot
    classification over ``class_names`` with the prompt ensemble
    ``templates`` and returns mmpretrain ``DataSample`` objects with
    ``pred_score`` and ``pred_label``, so mmpretrain's ``Accuracy`` reads
    them. The CLIP is ``self.clip``, so checkpoint keys start with ``clip.``
    (what :func:`mmssl.models.clip.load_clip_checkpoint` strips).

    Args:
        arch (str | dict): CLIP architecture (see ``CLIP_ARCHS``).
            Defaults to ``'tiny-rn'``.
        class_names (Sequence[str], optional): names for zero-shot
            prediction.
        templates (str | Sequence[str]): zero-shot prompt templates, each
            with one ``{}``; ``'openai_imagenet'`` stands for OpenAI's 80
            ImageNet templates (see
            :func:`mmssl.models.clip.templates.resolve_templates`).
            Defaults to ``('a photo of a {}.', )``.
        max_logit_scale (float): the learned temperature is clamped to
            ``log(max_logit_scale)`` (CLIP uses 100).
        arch_overrides (dict, optional): extra arguments of
            :func:`build_clip`.
        data_preprocessor (dict, optional): e.g.
            ``mmpretrain.ClsDataPreprocessor`` with CLIP's mean/std.
        init_cfg (dict, optional): initialisation config.
    """

    def __init__(self,
                 arch: Union[str, dict] = 'tiny-rn',
                 class_names: Optional[Sequence[str]] = None,
                 templates: Union[str, Sequence[str]] = ('a photo of a {}.', ),
                 max_logit_scale: float = 100.,
                 arch_overrides: Optional[dict] = None,
                 data_preprocessor: Optional[dict] = None,
                 init_cfg: Optional[dict] = None) -> None:
        super().__init__(
            data_preprocessor=data_preprocessor, init_cfg=init_cfg)
        self.clip = build_clip(arch, **(arch_overrides or {}))
        self.class_names = list(class_names) if class_names else None
        self.templates = resolve_templates(templates)
        self.max_log_scale = float(torch.tensor(max_logit_scale).log())
        self.context_length = self.clip.positional_embedding.shape[0]

    def forward(self,
                inputs: torch.Tensor,
                data_samples: Optional[List] = None,
                mode: str = 'tensor'):
        """``inputs``: ``(N, 3, H, W)`` images; see the class docs."""
        if mode == 'loss':
            return self.loss(inputs, data_samples)
        if mode == 'predict':
            return self.predict(inputs, data_samples)
        if mode == 'tensor':
            return self.clip.encode_image(inputs, normalize=True)
        raise RuntimeError(f'Invalid mode "{mode}".')

    def loss(self, inputs: torch.Tensor,
             data_samples: List) -> Dict[str, torch.Tensor]:
        """Contrastive loss of the images and ``data_samples[i].caption``."""
        ids = tokenize([ds.caption for ds in data_samples],
                       self.context_length).to(inputs.device)
        with torch.no_grad():
            self.clip.logit_scale.clamp_(0, self.max_log_scale)
        img = self.clip.encode_image(inputs, normalize=True)
        txt = self.clip.encode_text(ids, normalize=True)
        loss = clip_contrastive_loss(img, txt, self.clip.logit_scale)
        return dict(
            loss=loss, logit_scale=self.clip.logit_scale.detach().exp())

    @torch.no_grad()
    def predict(self,
                inputs: torch.Tensor,
                data_samples: Optional[List] = None) -> List:
        """Zero-shot scores ``(N, K)`` into ``pred_score``/``pred_label``."""
        from mmpretrain.structures import DataSample
        if not self.class_names:
            raise ValueError('mmssl.CLIPPretrainer needs class_names for '
                             'predict mode (zero-shot classification)')
        text = zero_shot_text_features(self.clip, self.class_names,
                                       self.templates)
        img = self.clip.encode_image(inputs, normalize=True)
        scores = (100. * img @ text.t()).softmax(-1)
        if data_samples is None:
            data_samples = [DataSample() for _ in range(len(inputs))]
        for ds, score in zip(data_samples, scores):
            ds.set_pred_score(score).set_pred_label(score.argmax())
        return data_samples
