# Copyright (c) mmssl contributors. All rights reserved.
"""The modality-agnostic encoder of data2vec 2.0.

fairseq's ``Data2VecMultiModel`` runs one stack of post-LN blocks behind a
per-modality feature encoder. :class:`D2V2EncoderBase` is that shared part:
the student path (embed each sample once, repeat it for the M clones, keep
only the visible tokens, run the blocks) and the teacher path (the
pre-residual FFN outputs of the last K blocks on the unmasked input). A
modality subclasses it and gives

* ``token_layout(x)``: the token layout of a batch ((h, w), (L, ), (T, ));
* ``embed(x) -> (tokens (B, N, C), layout)``: the local feature encoder
  (patch embedding + positions, token embedding + positions, conv feature
  extractor + positional conv);
* ``context(tokens) -> (B, E + N', C)``: what runs between the token
  selection and the blocks (extra tokens such as CLS, input LayerNorm,
  dropout); identity by default;
* ``forward_plain(x)``: the unmasked features, formatted for the modality's
  downstream use;

and sets ``self.layers`` (a ``ModuleList`` of blocks returning ``(x, ffn
output)``, e.g. :class:`~mmssl.models.backbones.D2V2Block`),
``embed_dims`` and ``num_layers``.
"""
from typing import Dict, List, Optional, Sequence, Tuple, Union

import torch
from mmpretrain.models.backbones.base_backbone import BaseBackbone

from mmssl.utils.validation import check_int
from ..utils.masking import gather_tokens, mask_to_ids


class D2V2EncoderBase(BaseBackbone):
    """Shared student / teacher paths of the data2vec 2.0 encoders.

    Attributes:
        num_extra_tokens (int): Tokens ``context`` puts before the sequence
            (1 for the image CLS token, 0 for text and speech).
        teacher_input (str): ``'raw'``: the teacher embeds the raw input
            itself (images, speech); ``'student_embedding'``: the teacher's
            blocks take the student's ``embed`` of the unmasked input
            (text: the reference's EMA covers the blocks only).
        embedding_modules (tuple[str]): The submodules ``embed`` runs; with
            ``teacher_input = 'student_embedding'`` the EMA teacher holds no
            copy of them.
    """

    num_extra_tokens = 0
    teacher_input = 'raw'
    embedding_modules: Tuple[str, ...] = ()
    arch_zoo: Dict[str, dict] = {}

    def _parse_arch(self, arch: Union[str, dict]) -> dict:
        """A copy of ``arch_zoo[arch]`` (names in any case), or of the
        ``arch`` dict after checking it has the four sizes."""
        if isinstance(arch, str):
            key = arch.lower()
            if key not in self.arch_zoo:
                raise ValueError(
                    f'model.backbone.arch={arch!r} is unknown; choose from '
                    f'{sorted(self.arch_zoo)} or give a dict')
            return dict(self.arch_zoo[key])
        needed = {
            'embed_dims', 'num_layers', 'num_heads', 'feedforward_channels'
        }
        if not isinstance(arch, dict) or not needed <= set(arch):
            raise ValueError(f'model.backbone.arch as a dict needs the keys '
                             f'{sorted(needed)}, got {arch!r}')
        return dict(arch)

    def init_weights(self) -> None:
        """Load ``init_cfg`` (e.g. pretrained weights) if given; each
        modality's reference initialisation is applied at construction, so
        without ``init_cfg`` nothing is drawn again."""
        if self.init_cfg is not None:
            super().init_weights()

    def train(self, mode: bool = True) -> 'D2V2EncoderBase':
        """As ``nn.Module.train`` (mmpretrain's ``BaseBackbone.train``
        returns None)."""
        super().train(mode)
        return self

    # ------------------------------------------------------- modality hooks
    def token_layout(self, x: torch.Tensor) -> Tuple[int, ...]:
        """Token layout of a batch; its product is N."""
        raise NotImplementedError

    def embed(self, x: torch.Tensor) -> Tuple[torch.Tensor, tuple]:
        """Local features: (B, ...) input -> (B, N, C) tokens, layout."""
        raise NotImplementedError

    def context(self, x: torch.Tensor) -> torch.Tensor:
        """(B, N', C) selected tokens -> (B, E + N', C) block input."""
        return x

    def forward_plain(self, x: torch.Tensor):
        """Features of the unmasked input (modality-specific format)."""
        raise NotImplementedError

    # ------------------------------------------------------- shared paths
    def forward(self,
                x: torch.Tensor,
                mask: Optional[torch.Tensor] = None,
                num_clones: int = 1,
                tokens: Optional[torch.Tensor] = None,
                num_keep: Optional[int] = None):
        """Encode, only the visible tokens when ``mask`` is given.

        Args:
            x (Tensor): A batch of B inputs.
            mask (Tensor, optional): (B * num_clones, N) or (B * num_clones,
                *layout) bool, True = removed; clones of one sample are
                adjacent (sample b owns rows ``b * num_clones ... +
                num_clones - 1``). Every row must leave the same number V of
                visible tokens. None (or False) gives the plain features.
            num_clones (int): Masked copies M per sample. Defaults to 1.
            tokens (Tensor, optional): (B, N, C) ``embed(x)`` already
                computed this step (shared with the teacher); embedded
                here if None.
            num_keep (int, optional): V, when the caller has counted it
                (static sizes for ``torch.compile``); read from ``mask``
                if None.

        Returns:
            With a mask, a tuple ``(latent, mask, ids_restore)``: latent
            (B * M, E + V, C) (extra tokens first), mask (B * M, N) bool,
            ids_restore (B * M, N) long. Without one, :meth:`forward_plain`.
        """
        if mask is None or mask is False:
            return self.forward_plain(x)
        tokens, mask = self._clone_tokens(x, mask, num_clones, tokens)
        ids_keep, ids_restore = mask_to_ids(mask, num_keep)
        x = self.context(gather_tokens(tokens, ids_keep))
        for layer in self.layers:
            x, _ = layer(x)
        return x, mask, ids_restore

    def _clone_tokens(
            self,
            x: torch.Tensor,
            mask: torch.Tensor,
            num_clones: int,
            tokens: Optional[torch.Tensor] = None,
            unit: str = 'tokens') -> Tuple[torch.Tensor, torch.Tensor]:
        """The student's tokens, each sample repeated for its clones.

        Args:
            x (Tensor): A batch of B inputs (embedded if ``tokens`` is None).
            mask (Tensor): (B * M, N) or (B * M, *layout), True = removed.
            num_clones (int): M.
            tokens (Tensor, optional): (B, N, C) ``embed(x)``.
            unit (str): What a token is, for the error message.

        Returns:
            tuple: tokens (B * M, N, C) (sample b's clones adjacent), mask
            (B * M, N) bool on the tokens' device.

        Raises:
            ValueError: ``mask`` is not (B * M, N).
        """
        if tokens is None:
            tokens, _ = self.embed(x)
        B, N, _ = tokens.shape
        mask = mask.flatten(1).to(tokens.device).bool()
        if mask.shape != (B * num_clones, N):
            raise ValueError(
                f'mask of shape {tuple(mask.shape)} does not fit {B} samples '
                f'x {num_clones} clones of {N} {unit}')
        if num_clones > 1:
            tokens = tokens.repeat_interleave(num_clones, dim=0)
        return tokens, mask

    def forward_targets(self,
                        x: torch.Tensor,
                        num_layers: int,
                        embedded: bool = False) -> List[torch.Tensor]:
        """Teacher path: FFN outputs of the last ``num_layers`` blocks.

        Runs the whole (unmasked) input and records each block's FFN output
        before the residual add and the block's final LayerNorm, without the
        extra tokens (fairseq's ``ffn_targets``).

        Args:
            x (Tensor): The inputs, or with ``embedded`` their (B, N, C)
                embedding (the student's, for ``teacher_input =
                'student_embedding'``).
            num_layers (int): K, how many of the last blocks to return.
            embedded (bool): ``x`` is already embedded. Defaults to False.

        Returns:
            list[Tensor]: K tensors (B, N, C), shallowest first.
        """
        check_int(
            num_layers,
            'num_layers',
            type(self).__name__,
            maximum=self.num_layers)
        tokens = x if embedded else self.embed(x)[0]
        x = self.context(tokens)
        first = self.num_layers - num_layers
        outs = []
        for i, layer in enumerate(self.layers):
            x, t = layer(x)
            if i >= first:
                outs.append(t[:, self.num_extra_tokens:])
        return outs

    def blocks_forward(self, x: torch.Tensor,
                       out_indices: Sequence[int]) -> List[torch.Tensor]:
        """Run the blocks on a block input, keeping the listed outputs."""
        outs = []
        for i, layer in enumerate(self.layers):
            x, _ = layer(x)
            if i in out_indices:
                outs.append(x)
        return outs


__all__ = ['D2V2EncoderBase']
