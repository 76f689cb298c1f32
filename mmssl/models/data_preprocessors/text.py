# Copyright (c) mmssl contributors. All rights reserved.
"""Batching of text items: padding, attention mask, device transfer."""
from typing import List, Optional, Sequence, Union

import torch
from mmengine.model import BaseDataPreprocessor

from mmssl.registry import MODELS
from mmssl.utils.validation import check_int

__all__ = ['TextDataPreprocessor', 'pad_sequences']


def pad_sequences(seqs: Union[torch.Tensor, Sequence[torch.Tensor]],
                  pad_value: int = 0,
                  length: Optional[int] = None,
                  key: str = 'input_ids') -> torch.Tensor:
    """Stack 1-D sequences into ``[B, T]``, right-padded with
    ``pad_value``.

    Args:
        seqs (Tensor | Sequence[Tensor]): ``B`` tensors ``(T_i,)`` or a
            stacked ``[B, T]`` tensor.
        pad_value (int): fill value. Defaults to 0.
        length (int, optional): ``T``; None for the longest ``T_i``.
        key (str): the key of ``seqs``, named in errors.

    Returns:
        Tensor: ``[B, T]`` of the sequences' dtype.

    Raises:
        ValueError: a sequence is longer than ``length`` or not 1-D.
    """
    if isinstance(seqs, torch.Tensor):
        if seqs.dim() != 2:
            raise ValueError(f'TextDataPreprocessor: inputs[{key!r}] must be '
                             f'[B, T], got shape {tuple(seqs.shape)}')
        seqs = list(seqs)
    seqs = [torch.as_tensor(s) for s in seqs]
    if not seqs:
        raise ValueError('TextDataPreprocessor: empty batch')
    for s in seqs:
        if s.dim() != 1:
            raise ValueError(f'TextDataPreprocessor: each inputs[{key!r}] '
                             f'must be 1-D (T,), got shape {tuple(s.shape)}')
    longest = max(len(s) for s in seqs)
    if length is None:
        length = longest
    elif longest > length:
        raise ValueError(
            f'TextDataPreprocessor: an item of {longest} tokens is longer '
            f'than max_length={length}; raise max_length or make the data '
            'set truncate to it (max_seq_length / max_length)')
    out = seqs[0].new_full((len(seqs), length), pad_value)
    for i, s in enumerate(seqs):
        out[i, :len(s)] = s
    return out


@MODELS.register_module()
class TextDataPreprocessor(BaseDataPreprocessor):
    """Pad text items to one length and move the batch to the device.

    Input (after mmengine's ``pseudo_collate`` of
    :class:`mmssl.PackTextInputs` items)::

        {'inputs': dict(input_ids=[LongTensor[T_i]] * B,
                        token_type_ids=[LongTensor[T_i]] * B),
         'data_samples': [BaseDataElement] * B}

    Output (``model.forward(**output)``)::

        {'inputs': dict(input_ids=LongTensor[B, T],
                        token_type_ids=LongTensor[B, T],
                        attention_mask=LongTensor[B, T]),  # 1 real, 0 pad
         'data_samples': [BaseDataElement] * B}             # on the device

    ``T`` is the longest item of the batch, or ``max_length``. Other keys
    of ``inputs`` are padded with 0 as well; a missing ``token_type_ids``
    becomes zeros. Stacked ``[B, T]`` inputs (``default_collate``) are
    accepted.

    Args:
        pad_token_id (int): id used for ``input_ids`` padding.
            Defaults to 0.
        max_length (int, optional): pad every batch to this length; longer
            items raise an error naming ``max_length``. Defaults to None.
        non_blocking (bool): see ``BaseDataPreprocessor``.
    """

    def __init__(self,
                 pad_token_id: int = 0,
                 max_length: Optional[int] = None,
                 non_blocking: bool = False) -> None:
        super().__init__(non_blocking=non_blocking)
        owner = 'mmssl.TextDataPreprocessor'
        self.pad_token_id = check_int(
            pad_token_id, 'pad_token_id', owner, minimum=0)
        self.max_length = None if max_length is None else check_int(
            max_length, 'max_length', owner)

    def forward(self, data: dict, training: bool = False) -> dict:
        if not isinstance(data, dict) or not isinstance(
                data.get('inputs'), dict) or 'input_ids' not in data['inputs']:
            raise ValueError(
                'TextDataPreprocessor: the batch must be {"inputs": '
                'dict(input_ids=..., token_type_ids=...), "data_samples": '
                '[...]} as packed by mmssl.PackTextInputs')
        raw = data['inputs']
        ids = pad_sequences(raw['input_ids'], self.pad_token_id,
                            self.max_length)
        lengths = [len(s) for s in raw['input_ids']]
        mask = torch.zeros_like(ids)
        for i, n in enumerate(lengths):
            mask[i, :n] = 1
        inputs = dict(input_ids=ids)
        for key, value in raw.items():
            if key != 'input_ids':
                inputs[key] = pad_sequences(value, 0, ids.shape[1], key)
        inputs.setdefault('token_type_ids', torch.zeros_like(ids))
        inputs['attention_mask'] = mask
        samples: Optional[List] = data.get('data_samples')
        return self.cast_data(dict(inputs=inputs, data_samples=samples))
