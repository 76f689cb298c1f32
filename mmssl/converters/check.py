# Copyright (c) mmssl contributors. All rights reserved.
"""Checking exported backbone weights against the model they are for."""
from typing import Any, Dict, Optional

import torch

from .arch import arch_info, detect_arch
from .checkpoint import (BACKBONE_PREFIX, ConversionError, describe_keys,
                         extract_prefixed)

__all__ = ['check_backbone_state']


def _summary(state_dict: Dict[str, Any]) -> str:
    arch = detect_arch(state_dict)
    if arch is None:
        return f'unknown architecture ({describe_keys(state_dict)})'
    info = arch_info(state_dict, arch)
    keep = ('embed_dims', 'num_layers', 'patch_size',
            'feedforward_channels') if 'vit' in arch else ('depth', 'block',
                                                           'stage_blocks',
                                                           'stem_channels',
                                                           'base_channels',
                                                           'deep_stem')
    return f'{arch} (' + ', '.join(f'{k}={info.get(k)}' for k in keep) + ')'


def check_backbone_state(state_dict: Dict[str, Any],
                         backbone: torch.nn.Module,
                         prefix: Optional[str] = BACKBONE_PREFIX) -> None:
    """Check that exported weights fit ``backbone`` exactly.

    Args:
        state_dict (dict): The exported state dict (or a whole loaded
            checkpoint with ``state_dict``).
        backbone (nn.Module): The backbone to load it into.
        prefix (str, optional): Stripped from the keys first when present.

    Raises:
        ConversionError: missing, unexpected or differently shaped weights;
            the message names the architecture and sizes found in the file
            and expected by the model (e.g. ``embed_dims 32`` vs ``48``) and
            lists the first offending keys with both shapes.
    """
    if isinstance(state_dict.get('state_dict'), dict):
        state_dict = state_dict['state_dict']
    if prefix and any(k.startswith(prefix) for k in state_dict):
        state_dict, _ = extract_prefixed(state_dict, prefix)
    own = backbone.state_dict()
    missing = [
        k for k in own
        if k not in state_dict and not k.endswith('num_batches_tracked')
    ]
    unexpected = [k for k in state_dict if k not in own]
    shapes = [(k, tuple(state_dict[k].shape), tuple(own[k].shape)) for k in own
              if k in state_dict and state_dict[k].shape != own[k].shape]
    if not (missing or unexpected or shapes):
        return
    lines = [
        f'the weights do not fit {type(backbone).__name__}:',
        f'  found in the checkpoint: {_summary(state_dict)}',
        f'  expected by the model:   {_summary(own)}'
    ]
    if shapes:
        lines.append(f'  {len(shapes)} weights of another shape: ' +
                     ', '.join(f'{k!r} checkpoint {a} vs model {b}'
                               for k, a, b in shapes[:5]))
    if missing:
        lines.append(f'  {len(missing)} missing: {describe_keys(missing)}')
    if unexpected:
        lines.append(
            f'  {len(unexpected)} unexpected: {describe_keys(unexpected)}')
    raise ConversionError('\n'.join(lines))
