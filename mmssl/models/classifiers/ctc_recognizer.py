# Copyright (c) mmssl contributors. All rights reserved.
"""CTC speech recognition on a pretrained speech encoder (fairseq
``wav2vec_ctc`` fine-tuning of wav2vec 2.0 / data2vec 2.0).

The batch follows the speech data contract: ``inputs`` is the (B,
T_samples) zero-padded float32 batch of ``mmssl.AudioDataPreprocessor``;
every data sample carries ``num_samples`` (int), and for training
``target_ids`` (LongTensor (L,), ``mmssl.EncodeTranscript``), for
evaluation ``transcript`` (str, read by ``mmssl.WERMetric``).

A data2vec 2.0 pretraining checkpoint loads through the backbone's
``init_cfg`` (the student's weights)::

    backbone=dict(type='mmssl.D2V2AudioEncoder', ...,
                  init_cfg=dict(type='Pretrained', checkpoint='...pth',
                                prefix='backbone.'))

What fine-tuning does, as fairseq's ``base_10h.yaml`` with a data2vec 2.0
model: the conv feature extractor runs without gradient
(``feature_grad_mult=0``, set on the backbone); the whole encoder is
frozen, only the output layer trains, for the first
``freeze_finetune_updates`` updates (the count comes from
``mmssl.NumUpdatesHook``); during training, span masks over time
(``mask_prob=0.65``, ``mask_length=10``) replace frames by small noise and
span masks over channels (``mask_channel_prob=0.5``,
``mask_channel_length=64``) zero channels, both before the positional
convs (data2vec 2.0 fills masked frames with ``N(0, 0.01^2)`` noise where
wav2vec 2.0 learns a mask embedding); then dropout, a Linear to the
vocabulary and CTC (blank 0, ``zero_infinity``), summed over the batch and
divided by the number of clips (``sentence_avg=True``).
"""
from typing import Dict, List, Optional, Union

import torch
import torch.nn as nn
import torch.nn.functional as F
from mmengine.model import BaseModel
from mmengine.structures import BaseDataElement

from mmssl.datasets.char_vocab import CharCTCVocab
from mmssl.registry import MODELS
from mmssl.utils.validation import check_choice, check_float, check_int
from ..utils.ctc import ctc_greedy_decode
from ..utils.span_masking import span_mask

__all__ = ['CTCSpeechRecognizer', 'ctc_loss']

LOSS_AVG = ('sentence', 'token')


def ctc_loss(log_probs: torch.Tensor,
             input_lengths: torch.Tensor,
             targets: List[torch.Tensor],
             blank: int = 0,
             average: str = 'sentence',
             zero_infinity: bool = True) -> torch.Tensor:
    """CTC negative log-likelihood of a batch (fairseq's ``ctc``
    criterion).

    Args:
        log_probs (Tensor): (B, T, V) log-probabilities.
        input_lengths (Tensor): (B, ) valid frames of each row.
        targets (list[Tensor]): B label sequences (no blanks).
        blank (int): Blank id. Defaults to 0.
        average (str): ``'sentence'``: the sum over the batch divided by B
            (``sentence_avg=True``, the fine-tuning recipes);
            ``'token'``: divided by the number of target labels.
        zero_infinity (bool): Infeasible alignments (fewer frames than
            labels need) count 0 instead of inf. Defaults to True.

    Returns:
        Tensor: scalar float32.
    """
    check_choice(average, 'average', 'ctc_loss', LOSS_AVG)
    lengths = torch.tensor([len(t) for t in targets], dtype=torch.long)
    flat = torch.cat([t.reshape(-1).long().cpu() for t in targets])
    total = F.ctc_loss(
        log_probs.float().transpose(0, 1),
        flat.to(log_probs.device),
        input_lengths.long().to(log_probs.device),
        lengths.to(log_probs.device),
        blank=blank,
        reduction='sum',
        zero_infinity=zero_infinity)
    denom = len(targets) if average == 'sentence' else int(lengths.sum())
    return total / max(denom, 1)


@MODELS.register_module()
class CTCSpeechRecognizer(BaseModel):
    """Speech encoder + dropout + Linear to characters, trained with CTC.

    Args:
        backbone (dict): The encoder, ``mmssl.D2V2AudioEncoder`` (called
            as ``forward_plain(wave, frame_lengths, time_mask,
            channel_mask) -> (features (B, T, C), )``).
        vocab (str | dict | CharCTCVocab, optional): The output characters
            (:class:`mmssl.CharCTCVocab`; blank 0). Defaults to None, the
            default vocabulary (blank, ``|``, A-Z, ').
        final_dropout (float): Dropout before the output layer. Defaults
            to 0.
        mask_prob (float): Time-mask span-start probability while
            training; 0 disables. Defaults to 0.65.
        mask_length (int): Time-mask span length. Defaults to 10.
        mask_channel_prob (float): Channel-mask span-start probability;
            0 disables. Defaults to 0.5.
        mask_channel_length (int): Channel-mask span length. Defaults to 64.
        freeze_finetune_updates (int): Updates during which only the output
            layer trains (needs ``mmssl.NumUpdatesHook``). Defaults to 0.
        loss_avg (str): ``'sentence'`` or ``'token'`` (see
            :func:`ctc_loss`). Defaults to ``'sentence'``.
        zero_infinity (bool): Defaults to True.
        data_preprocessor (dict, optional): Defaults to
            ``dict(type='mmssl.AudioDataPreprocessor')``.
        init_cfg (dict, optional): Initialisation of the whole model.
    """

    def __init__(self,
                 backbone: dict,
                 vocab: Union[None, str, dict, CharCTCVocab] = None,
                 final_dropout: float = 0.,
                 mask_prob: float = 0.65,
                 mask_length: int = 10,
                 mask_channel_prob: float = 0.5,
                 mask_channel_length: int = 64,
                 freeze_finetune_updates: int = 0,
                 loss_avg: str = 'sentence',
                 zero_infinity: bool = True,
                 data_preprocessor: Optional[dict] = dict(
                     type='mmssl.AudioDataPreprocessor'),
                 init_cfg: Optional[dict] = None) -> None:
        super().__init__(
            data_preprocessor=data_preprocessor, init_cfg=init_cfg)
        name = type(self).__name__
        self.vocab = CharCTCVocab.build(vocab)
        self.backbone = MODELS.build(backbone)
        for attr in ('frame_lengths', 'forward_plain', 'embed_dims'):
            if not hasattr(self.backbone, attr):
                raise TypeError(f'{name}: the backbone needs `{attr}` (a '
                                'speech encoder such as '
                                'mmssl.D2V2AudioEncoder)')
        for key, value in (('final_dropout', final_dropout),
                           ('mask_prob', mask_prob), ('mask_channel_prob',
                                                      mask_channel_prob)):
            check_float(value, f'model.{key}', name, 0, 1, (True, False))
        self.mask_prob = float(mask_prob)
        self.mask_length = check_int(mask_length, 'model.mask_length', name)
        self.mask_channel_prob = float(mask_channel_prob)
        self.mask_channel_length = check_int(mask_channel_length,
                                             'model.mask_channel_length', name)
        self.freeze_finetune_updates = check_int(
            freeze_finetune_updates,
            'model.freeze_finetune_updates',
            name,
            minimum=0)
        self.loss_avg = check_choice(loss_avg, 'model.loss_avg', name,
                                     LOSS_AVG)
        self.zero_infinity = bool(zero_infinity)
        #: optimizer updates so far (set by mmssl.NumUpdatesHook)
        self.num_updates: Optional[int] = None
        self.final_dropout = nn.Dropout(final_dropout)
        self.head = nn.Linear(self.backbone.embed_dims, len(self.vocab))
        nn.init.xavier_uniform_(self.head.weight)  # fairseq Linear
        nn.init.zeros_(self.head.bias)

    def set_num_updates(self, num_updates: int) -> None:
        """Optimizer updates made so far (``mmssl.NumUpdatesHook``)."""
        self.num_updates = int(num_updates)

    @property
    def encoder_frozen(self) -> bool:
        """Whether this training step leaves the encoder unchanged."""
        if self.freeze_finetune_updates == 0:
            return False
        if self.num_updates is None:
            raise RuntimeError(
                f'{type(self).__name__}: freeze_finetune_updates='
                f'{self.freeze_finetune_updates} needs the update count; '
                "add dict(type='mmssl.NumUpdatesHook') to custom_hooks "
                '(or set model.freeze_finetune_updates=0)')
        return self.num_updates < self.freeze_finetune_updates

    # ---------------------------------------------------------------- parts
    def frame_lengths(self, inputs: torch.Tensor,
                      data_samples: Optional[List]) -> torch.Tensor:
        """(B, ) valid frames of each clip, from ``num_samples``."""
        if data_samples is None or any(
                getattr(s, 'num_samples', None) is None for s in data_samples):
            samples = [inputs.shape[-1]] * inputs.shape[0]
        else:
            samples = [int(s.num_samples) for s in data_samples]
        for i, n in enumerate(samples):
            path = None if data_samples is None else \
                data_samples[i].metainfo.get('audio_path')
            self.backbone.check_samples(
                n, f'audio file {path!r}' if path else f'clip {i}')
        return self.backbone.frame_lengths(
            torch.tensor(samples, device=inputs.device))

    def _masks(self, lengths: torch.Tensor, frames: int):
        """Training-time span masks: time (B, T) (data2vec 2.0's
        ``min_masks=1``) and channel (B, C) (``min_masks=0``), or None."""
        time_mask = channel_mask = None
        if self.training and self.mask_prob > 0:
            time_mask = span_mask(lengths.tolist(), frames, self.mask_prob,
                                  self.mask_length, 1)
        if self.training and self.mask_channel_prob > 0:
            C = self.backbone.embed_dims
            channel_mask = span_mask([C] * len(lengths), C,
                                     self.mask_channel_prob,
                                     self.mask_channel_length, 0)
        return time_mask, channel_mask

    def extract_feat(self,
                     inputs: torch.Tensor,
                     data_samples: Optional[List] = None):
        """(B, T, C) encoder features and (B, ) frame lengths."""
        lengths = self.frame_lengths(inputs, data_samples)
        frames = self.backbone.frame_lengths(inputs.shape[-1])
        time_mask, channel_mask = self._masks(lengths.cpu(), frames)
        frozen = self.training and self.encoder_frozen
        with torch.set_grad_enabled(torch.is_grad_enabled() and not frozen):
            feats = self.backbone.forward_plain(inputs, lengths, time_mask,
                                                channel_mask)[0]
        return feats, lengths

    def logits(self,
               inputs: torch.Tensor,
               data_samples: Optional[List] = None):
        """(B, T, V) output scores and (B, ) frame lengths."""
        feats, lengths = self.extract_feat(inputs, data_samples)
        return self.head(self.final_dropout(feats)), lengths

    # ---------------------------------------------------------------- modes
    def loss(self, inputs: torch.Tensor,
             data_samples: List[BaseDataElement]) -> Dict[str, torch.Tensor]:
        """``loss``: CTC of the batch (see :func:`ctc_loss`)."""
        targets = []
        for i, s in enumerate(data_samples or []):
            t = getattr(s, 'target_ids', None)
            if t is None:
                raise ValueError(
                    f'{type(self).__name__}: data sample {i} has no '
                    'target_ids; add mmssl.EncodeTranscript to the training '
                    'pipeline (before mmssl.PackAudioInputs)')
            targets.append(torch.as_tensor(t))
        if len(targets) != inputs.shape[0]:
            raise ValueError(f'{len(targets)} data samples for a batch of '
                             f'{inputs.shape[0]} clips')
        logits, lengths = self.logits(inputs, data_samples)
        log_probs = F.log_softmax(logits.float(), dim=-1)
        loss = ctc_loss(log_probs, lengths, targets, self.vocab.blank_id,
                        self.loss_avg, self.zero_infinity)
        return dict(loss=loss)

    def predict(
        self,
        inputs: torch.Tensor,
        data_samples: Optional[List[BaseDataElement]] = None
    ) -> List[BaseDataElement]:
        """Greedy CTC decoding: each data sample gets ``pred_ids`` (list of
        ids, no blanks) and ``pred_text`` (str)."""
        logits, lengths = self.logits(inputs, data_samples)
        decoded = ctc_greedy_decode(logits, lengths, self.vocab.blank_id)
        if data_samples is None:
            data_samples = [BaseDataElement() for _ in decoded]
        for sample, ids in zip(data_samples, decoded):
            sample.set_field(ids, 'pred_ids')
            sample.set_field(self.vocab.decode(ids), 'pred_text', dtype=str)
        return data_samples

    def forward(self,
                inputs: torch.Tensor,
                data_samples: Optional[List[BaseDataElement]] = None,
                mode: str = 'tensor'):
        """``mode``: ``'loss'``, ``'predict'`` or ``'tensor'`` (the (B, T,
        V) scores)."""
        if mode == 'loss':
            return self.loss(inputs, data_samples)
        if mode == 'predict':
            return self.predict(inputs, data_samples)
        if mode == 'tensor':
            return self.logits(inputs, data_samples)[0]
        raise ValueError(f'{type(self).__name__}: invalid mode {mode!r}; '
                         "use 'loss', 'predict' or 'tensor'")
