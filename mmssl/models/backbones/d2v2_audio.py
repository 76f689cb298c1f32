# Copyright (c) mmssl contributors. All rights reserved.
"""The speech encoder of data2vec 2.0 (fairseq ``AudioEncoder``).

Raw 16 kHz waveforms (B, T_samples) -> frames (B, T, C) at 50 Hz:

1. local encoder: wav2vec 2.0's conv feature extractor (``[(512, 10, 5)]
   + [(512, 3, 2)] * 4 + [(512, 2, 2)] * 2``, no conv bias; in
   ``'layer_norm'`` mode every conv is followed by a LayerNorm over
   channels and GELU; 400-sample receptive field, 320-sample stride), then
   LayerNorm + Linear to the model width C (``project_features``);
2. positional encoder: ``conv_pos_depth`` blocks of {Conv1d kernel
   ``max(3, conv_pos_width // conv_pos_depth)``, ``conv_pos_groups``
   groups; LayerNorm without affine; GELU} whose output is *added* to the
   frames (for the student it runs on the whole sequence with the masked
   frames zeroed, then only the visible frames are kept);
3. context: LayerNorm, dropout (``prenet_dropout``), then the shared stack
   of post-LN blocks with ALiBi attention biases (``-slope_h * |i - j|``
   times a learned per-head scale, ``use_alibi_encoder=True``,
   ``learned_alibi_scale_per_head=True``), LayerDrop during training; no
   CLS token.

The EMA teacher (``ema_local_encoder=False``) takes the *student's* local
features of the unmasked input (``teacher_input = 'student_embedding'``);
its own positional encoder, context LayerNorm, ALiBi scales and blocks are
EMA copies, and it holds no copy of the conv feature extractor
(``embedding_modules``). The student path computes the local features once
and keeps them for that teacher call, so the conv stack runs once per step,
as in the reference.

Padded batches (fine-tuning) give each clip the same features as the clip
alone: frames past a clip's :meth:`D2V2AudioEncoder.frame_lengths` are
zeroed after every positional conv layer (the reference leaves them in)
and masked as attention keys.
"""
import math
from typing import List, Optional, Sequence, Tuple, Union

import numpy as np
import torch
import torch.nn as nn
import torch.nn.functional as F

from mmssl.registry import MODELS
from mmssl.utils.validation import check_choice, check_float, check_int
from ..utils.channels_last import conv1d_channels_last
from ..utils.masking import gather_tokens, mask_to_ids
from .d2v2_encoder import D2V2EncoderBase
from .d2v2_vit import D2V2Block

__all__ = ['D2V2AudioEncoder', 'alibi_slopes']

#: wav2vec 2.0's conv feature extractor: (channels, kernel, stride).
WAV2VEC2_SPEC = [(512, 10, 5)] + [(512, 3, 2)] * 4 + [(512, 2, 2)] * 2
TINY_SPEC = [(32, 10, 5)] + [(32, 3, 2)] * 4 + [(32, 2, 2)] * 2


def alibi_slopes(num_heads: int) -> torch.Tensor:
    """ALiBi head slopes (fairseq ``get_alibi``; geometric for powers of
    2, interleaved otherwise)."""

    def power_of_2(n):
        start = 2**(-(2**-(math.log2(n) - 3)))
        return [start * start**i for i in range(n)]

    def slopes(n):
        if math.log2(n).is_integer():
            return power_of_2(n)
        closest = 2**math.floor(math.log2(n))
        return power_of_2(closest) + slopes(2 * closest)[0::2][:n - closest]

    return torch.tensor(slopes(num_heads), dtype=torch.float32)


class _ConvLayer(nn.Module):
    """Conv1d (no bias) -> [LayerNorm over channels | GroupNorm] -> GELU.

    The layer keeps ``nn.Conv1d``'s parameters (checkpoint keys and shapes
    as fairseq's) but takes and returns (B, C, T) views of (B, T, C) memory
    (:func:`~mmssl.models.utils.conv1d_channels_last`): the LayerNorm over
    channels and GELU read contiguous memory and nothing is transposed,
    forward or backward (the same values as ``Conv1d`` on (B, C, T) to
    float rounding).
    """

    def __init__(self, c_in, c_out, kernel, stride, norm, bias):
        super().__init__()
        self.conv = nn.Conv1d(c_in, c_out, kernel, stride=stride, bias=bias)
        nn.init.kaiming_normal_(self.conv.weight)
        self.norm_type = norm
        if norm == 'layer':
            self.norm = nn.LayerNorm(c_out)
        elif norm == 'group':
            self.norm = nn.GroupNorm(c_out, c_out, affine=True)
        else:
            self.norm = None

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """(B, C_in, T) -> (B, C_out, T'), views of (B, T, C) memory."""
        x = conv1d_channels_last(self.conv, x)
        # the norms in float32 at least (fairseq's ``Fp32LayerNorm`` /
        # ``Fp32GroupNorm`` under fp16 / bf16)
        dtype = torch.promote_types(x.dtype, torch.float32)
        if self.norm_type == 'layer':
            x = self.norm(x.to(dtype).movedim(1, -1)).type_as(x)
            return F.gelu(x).movedim(-1, 1)
        if self.norm_type == 'group':
            x = self.norm(x.to(dtype)).type_as(x)
        return F.gelu(x)


@MODELS.register_module()
class D2V2AudioEncoder(D2V2EncoderBase):
    """data2vec 2.0 speech encoder on raw waveforms (B, T_samples).

    The speech modality of :class:`~mmssl.models.backbones.D2V2EncoderBase`
    (see the module docstring); ``mmssl.Data2VecV2`` pretrains it with
    ``mmssl.SpanMasker`` masks and ``mmssl.D2V2ConvDecoder1d``, and
    ``mmssl.CTCSpeechRecognizer`` fine-tunes it.

    Args:
        arch (str | dict): ``'base'`` (768 wide, 12 blocks, 12 heads, FFN
            3072, the wav2vec 2.0 conv stack), ``'tiny'`` (64 wide, 4
            blocks, 4 heads, FFN 256, 32-channel conv stack with the same
            kernels and strides), or a dict with ``embed_dims``,
            ``num_layers``, ``num_heads``, ``feedforward_channels`` and
            optionally ``feature_encoder_spec``. Defaults to ``'base'``.
        feature_encoder_spec (list, optional): (channels, kernel, stride)
            of each conv layer; None takes the arch's.
        extractor_mode (str): ``'layer_norm'`` (data2vec 2.0) or
            ``'default'`` (GroupNorm after the first conv only, wav2vec 2.0
            base). Defaults to ``'layer_norm'``.
        conv_bias (bool): Bias in the feature convs. Defaults to False.
        conv_pos_depth (int): Positional conv layers. Defaults to 5.
        conv_pos_width (int): Total positional kernel width; each layer has
            kernel ``max(3, width // depth)``. Defaults to 95.
        conv_pos_groups (int): Groups of the positional convs.
            Defaults to 16.
        conv_pos_pre_ln (bool): LayerNorm before them. Defaults to False.
        use_alibi (bool): ALiBi attention biases. Defaults to True.
        alibi_scale (float): Initial per-head scale. Defaults to 1.
        learned_alibi_scale (bool): Train the scales. Defaults to True.
        drop_rate (float): Dropout after the attention projection and the
            FFN (``encoder_dropout`` / ``post_mlp_drop``). Defaults to 0.1.
        attn_drop_rate (float): Attention dropout. Defaults to 0.1.
        ffn_drop_rate (float): Dropout inside the FFN
            (``activation_dropout``). Defaults to 0.
        context_dropout (float): Dropout after the context LayerNorm
            (``prenet_dropout``). Defaults to 0.1.
        layerdrop (float): Probability of skipping a block while training
            the student. Defaults to 0.05.
        drop_path_rate (float): Stochastic depth. Defaults to 0.
        norm_eps (float): Block LayerNorm epsilon. Defaults to 1e-5.
        feature_grad_mult (float): Gradient scale of the conv feature
            extractor; 0 runs it without gradient (fine-tuning). Defaults
            to 1.
        mask_noise_std (float): Std of the noise put at time-masked frames
            in fine-tuning. Defaults to 0.01.
        init_cfg (dict, optional): e.g. ``dict(type='Pretrained',
            checkpoint=..., prefix='backbone.')``.
    """

    arch_zoo = {
        'base':
        dict(
            embed_dims=768,
            num_layers=12,
            num_heads=12,
            feedforward_channels=3072,
            feature_encoder_spec=WAV2VEC2_SPEC),
        'tiny':
        dict(
            embed_dims=64,
            num_layers=4,
            num_heads=4,
            feedforward_channels=256,
            feature_encoder_spec=TINY_SPEC),
    }
    teacher_input = 'student_embedding'
    embedding_modules = ('feature_extractor', 'feature_norm', 'feature_proj')
    EXTRACTOR_MODES = ('layer_norm', 'default')

    def __init__(self,
                 arch: Union[str, dict] = 'base',
                 feature_encoder_spec: Optional[Sequence] = None,
                 extractor_mode: str = 'layer_norm',
                 conv_bias: bool = False,
                 conv_pos_depth: int = 5,
                 conv_pos_width: int = 95,
                 conv_pos_groups: int = 16,
                 conv_pos_pre_ln: bool = False,
                 use_alibi: bool = True,
                 alibi_scale: float = 1.,
                 learned_alibi_scale: bool = True,
                 drop_rate: float = 0.1,
                 attn_drop_rate: float = 0.1,
                 ffn_drop_rate: float = 0.,
                 context_dropout: float = 0.1,
                 layerdrop: float = 0.05,
                 drop_path_rate: float = 0.,
                 norm_eps: float = 1e-5,
                 feature_grad_mult: float = 1.,
                 mask_noise_std: float = 0.01,
                 init_cfg: Optional[dict] = None) -> None:
        super().__init__(init_cfg=init_cfg)
        name = type(self).__name__
        cfg = self._parse_arch(arch)
        spec = feature_encoder_spec or cfg.get('feature_encoder_spec',
                                               WAV2VEC2_SPEC)
        self.spec = [tuple(int(v) for v in layer) for layer in spec]
        if not self.spec or any(len(s) != 3 or min(s) < 1 for s in self.spec):
            raise ValueError(f'{name}: feature_encoder_spec must be a list '
                             f'of (channels, kernel, stride), got {spec!r}')
        self.embed_dims = C = cfg['embed_dims']
        self.num_layers = cfg['num_layers']
        self.num_heads = cfg['num_heads']
        if C % self.num_heads or C % conv_pos_groups:
            raise ValueError(
                f'{name}: embed_dims={C} must be divisible by num_heads='
                f'{self.num_heads} and conv_pos_groups={conv_pos_groups}')
        check_choice(extractor_mode, 'model.backbone.extractor_mode', name,
                     self.EXTRACTOR_MODES)
        for key, value in (('layerdrop', layerdrop), ('drop_rate', drop_rate),
                           ('attn_drop_rate', attn_drop_rate),
                           ('context_dropout', context_dropout)):
            check_float(value, f'model.backbone.{key}', name, 0, 1,
                        (True, False))
        self.feature_grad_mult = check_float(
            feature_grad_mult, 'model.backbone.feature_grad_mult', name, 0)
        self.mask_noise_std = check_float(mask_noise_std,
                                          'model.backbone.mask_noise_std',
                                          name, 0)
        self.layerdrop = float(layerdrop)
        self.use_alibi = bool(use_alibi)

        layers, c_in = [], 1
        for i, (c_out, k, s) in enumerate(self.spec):
            norm = 'layer' if extractor_mode == 'layer_norm' else (
                'group' if i == 0 else None)
            layers.append(_ConvLayer(c_in, c_out, k, s, norm, conv_bias))
            c_in = c_out
        self.feature_extractor = nn.ModuleList(layers)
        self.feature_norm = nn.LayerNorm(c_in)
        self.feature_proj = nn.Linear(c_in, C)

        depth = check_int(conv_pos_depth, 'model.backbone.conv_pos_depth',
                          name)
        self.pos_kernel = k = max(3, conv_pos_width // depth)
        self.pos_pre_ln = nn.LayerNorm(C) if conv_pos_pre_ln else None
        self.pos_convs = nn.ModuleList([
            nn.Conv1d(C, C, k, padding=k // 2, groups=conv_pos_groups)
            for _ in range(depth)
        ])

        self.alibi_scale = None
        if self.use_alibi:
            self.alibi_scale = nn.Parameter(
                torch.full((1, self.num_heads, 1, 1), float(alibi_scale)),
                requires_grad=learned_alibi_scale)
            self.register_buffer(
                'alibi_slopes', alibi_slopes(self.num_heads), persistent=False)
        self.ln_pre = nn.LayerNorm(C, eps=norm_eps)
        self.drop_after_pos = nn.Dropout(context_dropout)
        dpr = np.linspace(0, drop_path_rate, self.num_layers)
        self.layers = nn.ModuleList([
            D2V2Block(
                C,
                self.num_heads,
                cfg['feedforward_channels'],
                drop_rate=drop_rate,
                attn_drop_rate=attn_drop_rate,
                ffn_drop_rate=ffn_drop_rate,
                drop_path_rate=float(dpr[i]),
                norm_eps=norm_eps) for i in range(self.num_layers)
        ])
        for m in self.layers.modules():  # fairseq init_bert_params
            if isinstance(m, nn.Linear):
                nn.init.normal_(m.weight, std=0.02)
                if m.bias is not None:
                    nn.init.zeros_(m.bias)

    # ------------------------------------------------------------ lengths
    @property
    def receptive_field(self) -> int:
        """Samples seen by one output frame (400 for wav2vec 2.0)."""
        field, jump = 1, 1
        for _, k, s in self.spec:
            field += (k - 1) * jump
            jump *= s
        return field

    def frame_lengths(self, num_samples):
        """Frames of the conv stack for waveforms of ``num_samples``.

        ``L <- floor((L - kernel) / stride) + 1`` per layer (fairseq's
        ``_get_feat_extract_output_lengths``; 0 for clips shorter than the
        receptive field).

        Args:
            num_samples (int | Tensor): Lengths in samples.

        Returns:
            int | Tensor: Frames (long tensor for a tensor input).
        """
        if isinstance(num_samples, torch.Tensor):
            out = num_samples.long()
            for _, k, s in self.spec:
                out = torch.div(out - k, s, rounding_mode='floor') + 1
            return out.clamp(min=0)
        out = int(num_samples)
        for _, k, s in self.spec:
            out = (out - k) // s + 1
        return max(out, 0)

    def check_samples(self, num_samples: int, what: str = 'a clip') -> None:
        """Refuse audio shorter than the receptive field, naming the fix."""
        if num_samples < self.receptive_field:
            raise ValueError(
                f'{what} has {num_samples} samples, fewer than the '
                f'{self.receptive_field}-sample receptive field of the conv '
                f'feature extractor of {type(self).__name__} (it yields no '
                f'frame); drop short clips in the data set, e.g. '
                f'SpeechDataset(min_samples={self.receptive_field}) (or more '
                'for useful context), or pad them')

    def token_layout(self, x: torch.Tensor) -> Tuple[int]:
        """(T, ) frames of a (B, T_samples) batch."""
        if x.dim() != 2:
            raise ValueError(f'{type(self).__name__} takes waveforms (B, '
                             f'T_samples), got shape {tuple(x.shape)}')
        self.check_samples(x.shape[-1], 'the batch')
        return (self.frame_lengths(x.shape[-1]), )

    # ------------------------------------------------------------ parts
    def local_features(self, wave: torch.Tensor) -> torch.Tensor:
        """(B, T_samples) -> (B, T, C_conv) conv features."""
        self.token_layout(wave)
        with torch.set_grad_enabled(torch.is_grad_enabled()
                                    and self.feature_grad_mult > 0):
            # (B, 1, T) as a view of (B, T, 1) memory, strides written out:
            # with one channel the layout is ambiguous and the first conv
            # would otherwise write (B, C, T)
            B, T = wave.shape
            x = wave.contiguous().as_strided((B, 1, T), (T, 1, 1))
            for layer in self.feature_extractor:
                x = layer(x)
            x = x.transpose(1, 2)
        if 0 < self.feature_grad_mult < 1 and x.requires_grad:
            m = self.feature_grad_mult
            x = x * m + x.detach() * (1 - m)  # GradMultiply
        return x

    def embed(self, x: torch.Tensor) -> Tuple[torch.Tensor, Tuple[int]]:
        """Local features projected to C: (B, T_samples) -> (B, T, C), (T,).

        ``mmssl.Data2VecV2`` computes them once per step and hands them to
        the student's masked path and to the teacher.
        """
        feats = self.local_features(x)
        tokens = self.feature_proj(self.feature_norm(feats.to(x.dtype)))
        return tokens, (tokens.shape[1], )

    def positions(self,
                  x: torch.Tensor,
                  padding_mask: Optional[torch.Tensor] = None) -> torch.Tensor:
        """The positional conv stack's output (B, T, C) for frames (B, T,
        C); padded frames (True in ``padding_mask``) are zeroed at every
        layer's input."""
        keep = None if padding_mask is None else \
            (~padding_mask).unsqueeze(1).to(x.dtype)
        if self.pos_pre_ln is not None:
            x = self.pos_pre_ln(x)
        x = x.transpose(1, 2)
        for conv in self.pos_convs:
            if keep is not None:
                x = x * keep
            x = conv1d_channels_last(conv, x)
            if self.pos_kernel % 2 == 0:
                x = x[..., :-1]
            x = F.gelu(F.layer_norm(x.transpose(1, 2), x.shape[1:2]))
            x = x.transpose(1, 2)
        return x.transpose(1, 2)

    def context(self, x: torch.Tensor) -> torch.Tensor:
        """Context LayerNorm and dropout (no extra tokens)."""
        return self.drop_after_pos(self.ln_pre(x))

    def alibi(self, pos: torch.Tensor, dtype) -> Optional[torch.Tensor]:
        """Scaled ALiBi biases (R, H, N, N) between frame indices ``pos``
        (R, N) (the visible frames of each row, or all)."""
        if not self.use_alibi:
            return None
        dist = (pos[:, :, None] - pos[:, None, :]).abs().to(torch.float32)
        slopes = self.alibi_slopes.to(pos.device)[None, :, None, None]
        scale = self.alibi_scale.clamp(min=0).float()
        return (-dist[:, None] * slopes * scale).to(dtype)

    def run_blocks(self,
                   x: torch.Tensor,
                   bias: Optional[torch.Tensor],
                   padding_mask: Optional[torch.Tensor] = None,
                   keep_ffn_from: Optional[int] = None):
        """The block stack; returns the output and, from block
        ``keep_ffn_from`` on, the FFN outputs (then every block runs; else
        LayerDrop skips blocks while training)."""
        ffn = []
        drop = self.training and self.layerdrop > 0 and keep_ffn_from is None
        for i, layer in enumerate(self.layers):
            if drop and torch.rand(()).item() < self.layerdrop:
                continue
            x, t = layer(x, padding_mask, bias)
            if keep_ffn_from is not None and i >= keep_ffn_from:
                ffn.append(t)
        return x, ffn

    # ------------------------------------------------------------ paths
    def forward(self,
                x: torch.Tensor,
                mask: Optional[torch.Tensor] = None,
                num_clones: int = 1,
                tokens: Optional[torch.Tensor] = None,
                num_keep: Optional[int] = None):
        """Student path on the visible frames when ``mask`` is given (see
        :meth:`D2V2EncoderBase.forward`), else :meth:`forward_plain`.

        The positional convs see the whole sequence with the masked frames
        zeroed (fairseq ``encoder_zero_mask``); only the visible frames go
        on, with the ALiBi biases of their true positions.
        """
        if mask is None or mask is False:
            return self.forward_plain(x)
        tokens, mask = self._clone_tokens(x, mask, num_clones, tokens,
                                          'frames')
        ids_keep, ids_restore = mask_to_ids(mask, num_keep)
        pos = self.positions(tokens * (~mask).unsqueeze(-1).to(tokens.dtype))
        x = self.context(
            gather_tokens(tokens, ids_keep) + gather_tokens(pos, ids_keep))
        x, _ = self.run_blocks(x, self.alibi(ids_keep, x.dtype))
        return x, mask, ids_restore

    def forward_targets(self,
                        x: torch.Tensor,
                        num_layers: int,
                        embedded: bool = False) -> List[torch.Tensor]:
        """Teacher path: FFN outputs (B, T, C) of the last ``num_layers``
        blocks on the whole input (see
        :meth:`D2V2EncoderBase.forward_targets`)."""
        check_int(
            num_layers,
            'num_layers',
            type(self).__name__,
            maximum=self.num_layers)
        tokens = x if embedded else self.embed(x)[0]
        x = self.context(tokens + self.positions(tokens))
        pos = torch.arange(x.shape[1], device=x.device).expand(x.shape[0], -1)
        _, outs = self.run_blocks(x, self.alibi(pos, x.dtype), None,
                                  self.num_layers - num_layers)
        return outs

    def padding_mask(self, frame_lengths: Optional[torch.Tensor],
                     frames: int) -> Optional[torch.Tensor]:
        """(B, T) bool, True past each clip's frames; None if none is
        padded."""
        if frame_lengths is None:
            return None
        lengths = torch.as_tensor(frame_lengths).long()
        pad = torch.arange(frames, device=lengths.device)[None] >= \
            lengths[:, None]
        return pad if pad.any() else None

    def forward_plain(
            self,
            x: torch.Tensor,
            frame_lengths: Optional[torch.Tensor] = None,
            time_mask: Optional[torch.Tensor] = None,
            channel_mask: Optional[torch.Tensor] = None
    ) -> Tuple[torch.Tensor]:
        """Frame features of whole (padded) waveforms (fine-tuning).

        Args:
            x (Tensor): (B, T_samples) zero-padded waveforms.
            frame_lengths (Tensor, optional): (B, ) valid frames of each
                clip (:meth:`frame_lengths` of their sample counts); None:
                no padding.
            time_mask (Tensor, optional): (B, T) bool, frames replaced by
                ``N(0, mask_noise_std^2)`` noise (fine-tuning time masks).
            channel_mask (Tensor, optional): (B, C) bool, channels zeroed
                at every frame (fine-tuning channel masks).

        Returns:
            tuple[Tensor]: ``(features (B, T, C), )``, the last block's
            output (rows past ``frame_lengths`` are meaningless).
        """
        tokens, (frames, ) = self.embed(x)
        pad = self.padding_mask(
            None if frame_lengths is None else frame_lengths.to(x.device),
            frames)
        if time_mask is not None:
            noise = torch.randn_like(tokens) * self.mask_noise_std
            tokens = torch.where(
                time_mask.to(x.device)[..., None], noise, tokens)
        if channel_mask is not None:
            tokens = tokens * (~channel_mask.to(x.device))[:, None].to(
                tokens.dtype)
        h = self.context(tokens + self.positions(tokens, pad))
        pos = torch.arange(frames, device=x.device).expand(x.shape[0], -1)
        h, _ = self.run_blocks(h, self.alibi(pos, h.dtype), pad)
        return (h, )
