# Copyright (c) mmssl contributors. All rights reserved.
"""MAE's decoder (mmpretrain's), able to predict the removed patches only.

MAE's loss reads the decoder's output at the removed patches only (75 % of
them), yet mmpretrain's ``MAEPretrainDecoder`` runs its last block, norm and
prediction layer on every token (the CLS and visible ones included). The
last block's keys and values need every token, its queries, output
projection, MLP, norm and prediction do not: :class:`MAEPretrainDecoder`
with ``query_ids`` runs those on the requested tokens only (for MAE ViT-B/16
at 75 % masking, 147 of 197 tokens; about 1.5 % of the step's FLOPs). The
outputs at those tokens are the full forward's, up to rounding (tested
against mmpretrain's forward with the same weights, outputs and
gradients).
"""
from typing import Optional

import torch
from mmpretrain.models.backbones.vision_transformer import \
    TransformerEncoderLayer
from mmpretrain.models.necks import \
    MAEPretrainDecoder as _MMPretrainMAEPretrainDecoder

from mmssl.registry import MODELS
from ..utils.attention import UnbindMultiheadAttention, unbind_qkv_attention
from ..utils.masking import gather_tokens, unshuffle_tokens

__all__ = ['MAEPretrainDecoder', 'encoder_layer_at']


def encoder_layer_at(layer: TransformerEncoderLayer, x: torch.Tensor,
                     ids: torch.Tensor) -> torch.Tensor:
    """An mmpretrain ViT block's output at some tokens only.

    Equal (up to rounding) to ``gather_tokens(layer(x), ids)``: every token
    is a key and a value, only the ``ids`` tokens are queries.

    Args:
        layer (TransformerEncoderLayer): the block; its attention must be an
            :class:`UnbindMultiheadAttention` (see
            :func:`unbind_qkv_attention`).
        x (Tensor): (B, N, C) the block's input.
        ids (Tensor): (B, Q) long, the tokens wanted.

    Returns:
        Tensor: (B, Q, C).
    """
    if not isinstance(layer.attn, UnbindMultiheadAttention):
        raise TypeError(
            f'encoder_layer_at needs an UnbindMultiheadAttention, got '
            f'{type(layer.attn).__name__}; call unbind_qkv_attention(model)')
    h = layer.ln1(x)
    x_q = gather_tokens(x, ids)
    x_q = x_q + layer.attn.forward_queries(gather_tokens(h, ids), h)
    return layer.ffn(layer.ln2(x_q), identity=x_q)


@MODELS.register_module()
class MAEPretrainDecoder(_MMPretrainMAEPretrainDecoder):
    """mmpretrain's MAE decoder, plus predictions at chosen patches only.

    Same arguments, parameters and state-dict keys as
    ``mmpretrain.MAEPretrainDecoder`` (so its checkpoints load as they are);
    its attention modules use mmssl's ``unbind`` split.

    ``forward(x, ids_restore)`` is mmpretrain's: (B, 1 + V, C_enc) encoded
    tokens (CLS first) -> (B, L, p*p*3) predictions for every patch.
    ``forward(x, ids_restore, query_ids)`` returns (B, Q, p*p*3), the
    predictions for the patches ``query_ids`` (B, Q) only (indices into the
    L patches), computing the last block, the norm and the prediction layer
    at those tokens only.
    """

    def __init__(self, *args, **kwargs) -> None:
        super().__init__(*args, **kwargs)
        unbind_qkv_attention(self)

    def forward(self,
                x: torch.Tensor,
                ids_restore: torch.Tensor,
                query_ids: Optional[torch.Tensor] = None) -> torch.Tensor:
        """Decode; see the class docstring for the shapes."""
        if query_ids is None:
            return super().forward(x, ids_restore)
        x = self.decoder_embed(x)
        B, L = ids_restore.shape
        fill = self.mask_token.expand(B, L + 1 - x.shape[1], -1)
        x = torch.cat(
            [x[:, :1, :],
             unshuffle_tokens(x[:, 1:, :], fill, ids_restore)],
            dim=1)
        x = x + self.decoder_pos_embed
        if len(self.decoder_blocks) == 0:
            x = gather_tokens(x, query_ids + 1)
        else:
            for blk in self.decoder_blocks[:-1]:
                x = blk(x)
            x = encoder_layer_at(self.decoder_blocks[-1], x, query_ids + 1)
        return self.decoder_pred(self.decoder_norm(x))
