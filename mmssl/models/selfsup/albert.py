# Copyright (c) mmssl contributors. All rights reserved.
"""ALBERT pretraining: masked LM with n-gram masking plus sentence order.

Lan et al., "ALBERT: A Lite BERT for Self-supervised Learning of Language
Representations" (ICLR 2020); reference google-research/albert
``run_pretraining.py``. One step on B sequences of length T with P
prediction slots each::

    encoder (mmssl.AlbertEncoder)      -> (B, T, H) states, (B, H) pooled
    gather the states at mlm_positions -> (B, P, H)
    MLM head (decoder tied to the word embedding) -> (B, P, V) logits
    L = L_MLM + L_SOP, L_MLM = sum w * CE / (sum w + 1e-5),
                       L_SOP = mean CE of the (B, 2) order logits

The batch follows the text data contract: ``inputs`` is the dict of (B, T)
``input_ids`` / ``token_type_ids`` / ``attention_mask`` of
``mmssl.TextDataPreprocessor``; every data sample carries ``mlm_positions``,
``mlm_labels``, ``mlm_weights`` (P each, padded with weight 0) and
``sop_label`` (0 original order, 1 swapped), stacked here.
"""
from typing import Dict, List, Optional, Tuple, Union

import torch
from mmengine.model import BaseModel
from mmengine.structures import BaseDataElement

from mmssl.registry import MODELS
from ..heads.albert_heads import mlm_correct_counts
from ..utils.masking import tensor_check

__all__ = [
    'AlbertPretrainer', 'stack_sample_field', 'unpack_text_inputs',
    'gather_positions', 'build_text_head'
]

TEXT_PREPROCESSOR = dict(type='mmssl.TextDataPreprocessor')


def unpack_text_inputs(
    inputs: Dict[str, torch.Tensor], owner: str
) -> Tuple[torch.Tensor, Optional[torch.Tensor], Optional[torch.Tensor]]:
    """``(input_ids, token_type_ids, attention_mask)`` of a batch, each
    (B, T); the last two may be None."""
    if not isinstance(inputs, dict) or 'input_ids' not in inputs:
        got = (
            sorted(inputs)
            if isinstance(inputs, dict) else type(inputs).__name__)
        raise ValueError(
            f'{owner}: inputs must be a dict with input_ids (B, T) and '
            f'optionally token_type_ids / attention_mask, got {got}; use '
            "data_preprocessor=dict(type='mmssl.TextDataPreprocessor') and "
            "end the pipeline with dict(type='mmssl.PackTextInputs')")
    return (inputs['input_ids'], inputs.get('token_type_ids'),
            inputs.get('attention_mask'))


def stack_sample_field(data_samples: List[BaseDataElement],
                       key: str,
                       owner: str,
                       dtype: torch.dtype,
                       device: torch.device,
                       hint: str = '') -> torch.Tensor:
    """Stack the field ``key`` of every data sample into one tensor.

    Args:
        data_samples (list[BaseDataElement]): the batch's samples.
        key (str): the data field, e.g. ``'mlm_positions'``.
        owner (str): the model, for the message.
        dtype (torch.dtype): dtype of the result.
        device (torch.device): device of the result.
        hint (str): how to produce the field, appended to the error.

    Returns:
        Tensor: (B, *shape of one field).

    Raises:
        ValueError: a sample lacks the field or the shapes differ.
    """
    if not data_samples:
        raise ValueError(f'{owner}: the batch has no data samples; {key} '
                         'comes from them')
    values = []
    for i, sample in enumerate(data_samples):
        value = sample.get(key, None) if sample is not None else None
        if value is None:
            idx = sample.metainfo.get('sample_idx', '?') if sample else '?'
            raise ValueError(f'{owner}: data sample {i} (sample_idx {idx}) '
                             f'has no {key!r}{"; " + hint if hint else ""}')
        values.append(torch.as_tensor(value))
    shapes = {tuple(v.shape) for v in values}
    if len(shapes) > 1:
        raise ValueError(f'{owner}: {key!r} has different shapes in one '
                         f'batch: {sorted(shapes)}; pad it to one length in '
                         'the pipeline')
    return torch.stack(values).to(device=device, dtype=dtype)


def gather_positions(sequence: torch.Tensor,
                     positions: torch.Tensor) -> torch.Tensor:
    """States at given positions: (B, T, H), (B, P) -> (B, P, H)."""
    index = positions[..., None].expand(-1, -1, sequence.shape[-1])
    return sequence.gather(1, index)


def build_text_head(cfg: Dict, defaults: Dict, owner: str, key: str):
    """Build a head config, filling the sizes it leaves out from
    ``defaults`` and refusing ones that disagree with them."""
    if not isinstance(cfg, dict):
        raise ValueError(f'{owner}: {key} must be a config dict, got '
                         f'{type(cfg).__name__}')
    cfg = dict(cfg)
    for name, value in defaults.items():
        if value is None:
            continue
        given = cfg.setdefault(name, value)
        if given is not None and given != value:
            raise ValueError(
                f'{owner}: {key}.{name}={given} does not match the '
                f'backbone ({value}); remove it from {key} to take the '
                "backbone's value")
    return MODELS.build(cfg)


MLM_HINT = ('the pretraining pipeline must mask the tokens (mmssl.'
            'NgramMLMMask) and pack them with dict(type=\'mmssl.'
            'PackTextInputs\')')


@MODELS.register_module()
class AlbertPretrainer(BaseModel):
    """ALBERT pretrainer: MLM with a tied decoder, plus sentence order.

    Args:
        backbone (dict): The encoder, ``dict(type='mmssl.AlbertEncoder',
            ...)``; it needs its pooler (``with_pooler=True``) for SOP.
        mlm_head (dict): ``mmssl.AlbertMLMHead``; ``in_channels``,
            ``embedding_size`` and ``vocab_size`` are taken from the backbone
            when left out. Its decoder is tied (by reference) to
            ``backbone.word_embeddings``. Defaults to
            ``dict(type='mmssl.AlbertMLMHead')``.
        sop_head (dict, optional): ``mmssl.SentenceOrderHead``
            (``in_channels`` from the backbone). None trains MLM only (the
            paper's no-SOP ablation); the data samples then need no
            ``sop_label``. Defaults to
            ``dict(type='mmssl.SentenceOrderHead')``.
        data_preprocessor (dict, optional): Defaults to
            ``dict(type='mmssl.TextDataPreprocessor')``; None takes mmengine's
            ``BaseDataPreprocessor`` (inputs already padded).
        init_cfg (dict, optional): Initialisation of the whole model.
    """

    def __init__(self,
                 backbone: Dict,
                 mlm_head: Dict = dict(type='mmssl.AlbertMLMHead'),
                 sop_head: Optional[Dict] = dict(
                     type='mmssl.SentenceOrderHead'),
                 data_preprocessor: Optional[Dict] = TEXT_PREPROCESSOR,
                 init_cfg: Optional[Dict] = None) -> None:
        super().__init__(
            data_preprocessor=data_preprocessor, init_cfg=init_cfg)
        name = type(self).__name__
        self.backbone = MODELS.build(backbone)
        for attr in ('word_embeddings', 'hidden_size', 'embedding_size',
                     'vocab_size'):
            if not hasattr(self.backbone, attr):
                raise ValueError(
                    f'{name}: the backbone {type(self.backbone).__name__} '
                    f'has no {attr}; use mmssl.AlbertEncoder')
        bb = self.backbone
        self.mlm_head = build_text_head(
            mlm_head,
            dict(
                in_channels=bb.hidden_size,
                embedding_size=bb.embedding_size,
                vocab_size=bb.vocab_size), name, 'mlm_head')
        self.mlm_head.tie_weights(bb.word_embeddings)
        self.sop_head = None
        if sop_head is not None:
            if getattr(bb, 'pooler', None) is None:
                raise ValueError(f'{name}: sop_head needs the pooled output; '
                                 'set backbone.with_pooler=True (or '
                                 'sop_head=None for MLM only)')
            self.sop_head = build_text_head(sop_head,
                                            dict(in_channels=bb.hidden_size),
                                            name, 'sop_head')

    def encode(
        self, inputs: Dict[str, torch.Tensor]
    ) -> Tuple[torch.Tensor, Optional[torch.Tensor]]:
        """(B, T, H) sequence output and (B, H) pooled output."""
        ids, token_types, mask = unpack_text_inputs(inputs,
                                                    type(self).__name__)
        return self.backbone(ids, token_types, mask)

    def _mlm_targets(
        self, data_samples: List[BaseDataElement], seq_len: int,
        device: torch.device
    ) -> Tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """(B, P) positions, labels and weights of the batch."""
        name = type(self).__name__

        def stack(key, dtype):
            return stack_sample_field(data_samples, key, name, dtype, device,
                                      MLM_HINT)

        positions = stack('mlm_positions', torch.long)
        labels = stack('mlm_labels', torch.long)
        weights = stack('mlm_weights', torch.float)
        if not positions.shape == labels.shape == weights.shape:
            raise ValueError(
                f'{name}: mlm_positions {tuple(positions.shape)}, mlm_labels '
                f'{tuple(labels.shape)} and mlm_weights '
                f'{tuple(weights.shape)} must have one shape (B, P)')
        if positions.numel():

            def message() -> str:
                got = 'a position outside' if torch.compiler.is_compiling() \
                    else f'{int(positions.min())}..{int(positions.max())}'
                return (f'{name}: mlm_positions must lie in [0, {seq_len}) '
                        f'(the batch length), got {got}; the masked '
                        'positions must index the packed sequence')

            tensor_check((positions >= 0) & (positions < seq_len), message)
        return positions, labels, weights

    def _sop_labels(self, data_samples, device) -> torch.Tensor:
        return stack_sample_field(
            data_samples, 'sop_label',
            type(self).__name__, torch.long, device,
            'the pretraining data set must give sop_label (or set '
            'sop_head=None for MLM only)')

    def loss(self, inputs: Dict[str, torch.Tensor],
             data_samples: List[BaseDataElement]) -> Dict[str, torch.Tensor]:
        """MLM and SOP losses of a batch.

        Returns:
            dict: ``loss_mlm``, ``mlm_acc`` and, with a SOP head,
            ``loss_sop``, ``sop_acc``. The accuracies are detached (logged,
            not optimised).
        """
        seq, pooled = self.encode(inputs)
        positions, labels, weights = self._mlm_targets(data_samples,
                                                       seq.shape[1],
                                                       seq.device)
        losses = self.mlm_head.loss(
            gather_positions(seq, positions), labels, weights)
        if self.sop_head is not None:
            losses.update(
                self.sop_head.loss(pooled,
                                   self._sop_labels(data_samples, seq.device)))
        return losses

    def predict(self, inputs: Dict[str, torch.Tensor],
                data_samples: List[BaseDataElement]) -> List[BaseDataElement]:
        """MLM / SOP predictions for evaluation (``mmssl.MLMSOPMetric``).

        Returns:
            list[BaseDataElement]: the data samples with ``mlm_correct`` and
            ``mlm_total`` (ints: correct and counted masked tokens) and, with
            a SOP head, ``sop_pred`` (LongTensor[], 0 original, 1 swapped).
        """
        seq, pooled = self.encode(inputs)
        positions, labels, weights = self._mlm_targets(data_samples,
                                                       seq.shape[1],
                                                       seq.device)
        logits = self.mlm_head(gather_positions(seq, positions))
        correct, total = mlm_correct_counts(logits, labels, weights)
        sop_pred = None
        if self.sop_head is not None:
            sop_pred = self.sop_head(pooled).argmax(-1)
        for i, sample in enumerate(data_samples):
            sample.set_data(
                dict(
                    mlm_correct=int(round(float(correct[i]))),
                    mlm_total=int(round(float(total[i])))))
            if sop_pred is not None:
                sample.set_data(dict(sop_pred=sop_pred[i]))
        return data_samples

    def _forward(
        self,
        inputs: Dict[str, torch.Tensor],
        data_samples: Optional[List[BaseDataElement]] = None
    ) -> Dict[str, torch.Tensor]:
        """Raw outputs: ``sequence_output`` (B, T, H), ``pooled_output``
        (B, H), and with data samples ``mlm_logits`` (B, P, V); with a SOP
        head ``sop_logits`` (B, 2)."""
        seq, pooled = self.encode(inputs)
        out = dict(sequence_output=seq, pooled_output=pooled)
        if data_samples:
            positions, _, _ = self._mlm_targets(data_samples, seq.shape[1],
                                                seq.device)
            out['mlm_logits'] = self.mlm_head(gather_positions(seq, positions))
        if self.sop_head is not None:
            out['sop_logits'] = self.sop_head(pooled)
        return out

    def forward(self,
                inputs: Dict[str, torch.Tensor],
                data_samples: Optional[List[BaseDataElement]] = None,
                mode: str = 'tensor') -> Union[Dict, List]:
        """``mode``: ``'loss'`` (dict of losses), ``'predict'`` (data samples
        with predictions) or ``'tensor'`` (dict of raw outputs)."""
        if mode == 'loss':
            return self.loss(inputs, data_samples)
        if mode == 'predict':
            return self.predict(inputs, data_samples)
        if mode == 'tensor':
            return self._forward(inputs, data_samples)
        raise ValueError(f'{type(self).__name__}: invalid mode {mode!r}; '
                         "use 'loss', 'predict' or 'tensor'")
