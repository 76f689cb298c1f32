# Copyright (c) mmssl contributors. All rights reserved.
"""Turn a pretraining checkpoint into a backbone checkpoint for transfer.

Pure functions behind ``tools/model_converters/convert_backbone.py``. A
pretraining checkpoint written by the runner holds ``{'meta': ...,
'state_dict': ..., 'optimizer': ..., 'message_hub': ..., ...}``; its
``state_dict`` has the backbone under ``backbone.`` and everything else
(necks, heads, decoders, EMA teachers, momentum encoders) under other
top-level names. Only the backbone is kept. Three backbone architectures
are recognised from their key layout:

``vit`` -- pre-LN ViT in mmpretrain's layout (MAE's ``MAEViT``,
``mmpretrain.VisionTransformer``)::

    cls_token                      (1, 1, C)
    pos_embed                      (1, 1 + N, C)   CLS position first
    patch_embed.projection.{weight,bias}           (C, 3, p, p), (C, )
    layers.{i}.ln1.*               pre-attention LayerNorm
    layers.{i}.attn.qkv.*          (3C, C), (3C, )
    layers.{i}.attn.proj.*         (C, C), (C, )
    layers.{i}.ln2.*               pre-FFN LayerNorm
    layers.{i}.ffn.layers.0.0.*    (F, C), (F, )
    layers.{i}.ffn.layers.1.*      (C, F), (C, )
    ln1.*                          final LayerNorm (``final_norm=True``)
    [pre_norm.*, ln2.*, layers.{i}.attn.gamma1.weight,
     layers.{i}.ffn.gamma2.weight] optional (CLIP pre-norm, the fc norm of
                                   ``out_type='avg_featmap'``, layer scale)

``d2v2-vit`` -- the post-LN ViT of data2vec 2.0 (``mmssl.D2V2ViT``)::

    cls_token, patch_embed.projection.*, ln_pre.* (LayerNorm on the input),
    layers.{i}.attn.qkv.*, layers.{i}.attn.proj.*, layers.{i}.ln1.* (after
    the attention residual), layers.{i}.ffn.layers.{0.0,1}.*,
    layers.{i}.ln2.* (after the FFN residual), [ln_fc.*]; no pos_embed
    (a fixed sin-cos buffer) and no final norm.

``resnet`` -- ResNet with the key names shared by mmpretrain, mmdet, mmseg
and torchvision (SimCLR, DenseCL, MoCo, ...)::

    conv1.weight, bn1.*            7x7 stem (or stem.{0,1,2}.{conv,bn}.*, the
                                   deep stem of mmpretrain's ResNetV1c/d)
    layer{s}.{j}.conv{1,2[,3]}.weight, layer{s}.{j}.bn{1,2[,3]}.*
    layer{s}.0.downsample.{0,1}.*  1x1 conv + BN of the shortcut

Export targets and the written layout (``write`` stores ``{'meta': {...},
'state_dict': {...}}`` atomically):

=============  ===============================================================
``mmpretrain``  ``backbone.`` + the source layout. Load with ``init_cfg=dict(
                type='Pretrained', prefix='backbone.', checkpoint=OUT)`` into
                ``mmpretrain.VisionTransformer`` / ``MAEViT`` (``vit``),
                ``mmssl.D2V2ViT`` (``d2v2-vit``: post-LN, it loads into no
                other class) or ``mmpretrain.ResNet`` (``resnet``).
``mmdet``       the same file. mmdet's ``ResNet`` has mmpretrain's key names
                (a deep stem is renamed to ``stem.{0,1,3,4,6,7}``, mmdet's
                ``ResNetV1d`` layout); ViTs are used in mmdet as
                ``mmpretrain.VisionTransformer`` or ``mmssl.D2V2ViT``.
``mmseg``       ResNet: as ``mmdet``. Use mmseg's ``ResNet`` with
                ``deep_stem=False`` (i.e. ``type='ResNet'``, not the
                ``ResNetV1c`` of most mmseg configs) for a 7x7-stem ResNet;
                a deep-stem checkpoint loads into ``ResNetV1c``.
                ``vit``: mmseg's ``VisionTransformer`` layout (``attn.qkv`` ->
                ``attn.attn.in_proj_*``, ``attn.proj`` ->
                ``attn.attn.out_proj.*``) *without* the ``backbone.`` prefix,
                because mmseg's ``VisionTransformer.init_weights`` reads the
                file itself and ignores ``prefix=`` (a ``prefix='backbone.'``
                in the config is therefore harmless); set ``patch_bias=True``,
                ``final_norm=True`` and ``norm_cfg=dict(type='LN',
                eps=1e-6)``. ``d2v2-vit``: kept as is (with
                prefix); the mmseg config must use ``type='mmssl.D2V2ViT'``
                (``out_type='featmap'``), since a post-LN encoder cannot be
                expressed as mmseg's pre-LN ``VisionTransformer``.
``timm``        a plain timm state dict (no prefix): ``vit`` -> timm's
                ``VisionTransformer`` (``cls_token, pos_embed,
                patch_embed.proj.*, blocks.{i}.norm1/attn.qkv/attn.proj/
                norm2/mlp.fc1/mlp.fc2.*, norm.*``), ``resnet`` -> timm's
                ``ResNet`` (``conv1, bn1, layer*``, no ``fc``); load with
                ``timm.create_model(name, pretrained=False, num_classes=0,
                **kwargs).load_state_dict(sd)`` (``meta['timm_model']``,
                ``meta['timm_kwargs']``). ``d2v2-vit`` has no timm
                equivalent and is refused.
=============  ===============================================================
"""
import os.path as osp
import re
from collections import OrderedDict
from typing import Any, Dict, List, Optional, Tuple

import torch

__all__ = [
    'ARCHS', 'TARGETS', 'ConversionError', 'split_checkpoint', 'describe_keys',
    'extract_prefixed', 'detect_arch', 'arch_info', 'convert_state_dict',
    'convert_checkpoint', 'load_hint', 'check_backbone_state'
]

ARCHS = ('vit', 'd2v2-vit', 'resnet')
TARGETS = ('mmpretrain', 'mmdet', 'mmseg', 'timm')
BACKBONE_PREFIX = 'backbone.'

# Top-level entries of a runner checkpoint that are not weights.
TRAINING_STATE = ('optimizer', 'message_hub', 'param_schedulers',
                  'ema_state_dict', 'scaler', 'amp', 'loops')

EXPECTED_LAYOUT = {
    'vit': ('pre-LN ViT in mmpretrain layout (MAE): cls_token, pos_embed, '
            'patch_embed.projection.*, layers.{i}.ln1/attn.qkv/attn.proj/ln2/'
            'ffn.layers.0.0/ffn.layers.1.*, ln1.*'),
    'd2v2-vit': ('post-LN ViT of data2vec 2.0 (mmssl.D2V2ViT): cls_token, '
                 'patch_embed.projection.*, ln_pre.*, layers.{i}.attn.qkv/'
                 'attn.proj/ln1/ffn.layers.0.0/ffn.layers.1/ln2.*'),
    'resnet': ('ResNet (mmpretrain/mmdet/mmseg names): conv1.* or stem.*, '
               'bn1.*, layer{1-4}.{j}.conv*/bn*/downsample.*'),
}

# Standard ViT widths -> (heads, timm size name).
_VIT_SIZES = {
    192: (3, 'tiny'),
    384: (6, 'small'),
    768: (12, 'base'),
    1024: (16, 'large'),
    1280: (16, 'huge'),
}
_RESNET_DEPTHS = {
    ('basic', (2, 2, 2, 2)): 18,
    ('basic', (3, 4, 6, 3)): 34,
    ('bottleneck', (3, 4, 6, 3)): 50,
    ('bottleneck', (3, 4, 23, 3)): 101,
    ('bottleneck', (3, 8, 36, 3)): 152,
}


class ConversionError(ValueError):
    """The checkpoint cannot be converted as asked (message says why)."""


# --------------------------------------------------------------------------
# reading
# --------------------------------------------------------------------------
def split_checkpoint(checkpoint: Any) -> Tuple[Dict[str, Any], dict, list]:
    """Split a loaded checkpoint into weights, meta and training state.

    Args:
        checkpoint (dict): ``{'state_dict': ..., 'meta': ..., ...}`` as the
            runner writes it, ``{'model': ...}`` or a bare state dict.

    Returns:
        tuple: ``(state_dict, meta, dropped_entries)``; a leading
        ``module.`` (DDP) is stripped from the keys, and
        ``dropped_entries`` names the non-weight entries (``optimizer``,
        ``message_hub``, ...).
    """
    if not isinstance(checkpoint, dict):
        raise ConversionError(f'the checkpoint holds a '
                              f'{type(checkpoint).__name__}, not a dict')
    meta = checkpoint.get('meta') if isinstance(checkpoint.get('meta'),
                                                dict) else {}
    state_dict = checkpoint
    for key in ('state_dict', 'model'):
        if isinstance(checkpoint.get(key), dict):
            state_dict = checkpoint[key]
            break
    dropped = [k for k in checkpoint if k in TRAINING_STATE]
    if state_dict is checkpoint:
        state_dict = {
            k: v
            for k, v in checkpoint.items()
            if k not in TRAINING_STATE and k != 'meta'
        }
    state_dict = OrderedDict((re.sub(r'^module\.', '', k), v)
                             for k, v in state_dict.items()
                             if isinstance(v, torch.Tensor))
    return state_dict, meta, dropped


def describe_keys(keys, limit: int = 12) -> str:
    """Short summary of a key set: ``cls_token, layers.0-11.* (144), ...``.

    Keys are grouped by their first component; numbered children of a
    group are collapsed to a range.
    """
    groups: Dict[str, List[str]] = OrderedDict()
    for key in keys:
        groups.setdefault(key.split('.', 1)[0], []).append(key)
    parts = []
    for top, members in groups.items():
        if members == [top]:
            parts.append(top)
            continue
        idx = sorted({
            int(m.split('.')[1])
            for m in members
            if len(m.split('.')) > 2 and m.split('.')[1].isdigit()
        })
        name = f'{top}.{idx[0]}-{idx[-1]}.*' if len(idx) > 1 else f'{top}.*'
        parts.append(f'{name} ({len(members)})')
    text = ', '.join(parts[:limit])
    if len(parts) > limit:
        text += f', ... ({len(parts) - limit} more groups)'
    return text or 'no weights'


def extract_prefixed(
        state_dict: Dict[str, Any],
        prefix: str = BACKBONE_PREFIX) -> Tuple['OrderedDict', Dict[str, int]]:
    """Keep the weights under ``prefix`` (stripped); count the others.

    Args:
        state_dict (dict): Full model state dict.
        prefix (str): e.g. ``'backbone.'``; a missing final dot is added.

    Returns:
        tuple: ``(kept, dropped)`` with ``dropped`` the number of weights per
        top-level name (``{'neck': 20, 'teacher': 54}``).
    """
    if not prefix.endswith('.'):
        prefix += '.'
    kept: 'OrderedDict' = OrderedDict()
    dropped: Dict[str, int] = OrderedDict()
    for key, value in state_dict.items():
        if key.startswith(prefix):
            kept[key[len(prefix):]] = value
        else:
            top = key.split('.', 1)[0]
            dropped[top] = dropped.get(top, 0) + 1
    return kept, dropped


# --------------------------------------------------------------------------
# architecture
# --------------------------------------------------------------------------
def detect_arch(state_dict: Dict[str, Any]) -> Optional[str]:
    """The architecture of a backbone state dict (keys without prefix).

    Returns:
        str | None: ``'vit'``, ``'d2v2-vit'``, ``'resnet'`` or None.
    """
    keys = set(state_dict)
    if 'layers.0.attn.qkv.weight' in keys and ('patch_embed.projection.weight'
                                               in keys):
        return 'd2v2-vit' if 'ln_pre.weight' in keys else 'vit'
    if 'layer1.0.conv1.weight' in keys and ('conv1.weight' in keys
                                            or 'stem.0.conv.weight' in keys):
        return 'resnet'
    return None


def _num_indexed(state_dict, pattern: str) -> int:
    found = {
        int(m.group(1))
        for m in (re.match(pattern, k) for k in state_dict) if m
    }
    return max(found) + 1 if found else 0


def arch_info(state_dict: Dict[str, Any], arch: str) -> dict:
    """Hyper-parameters read off a backbone state dict.

    Args:
        state_dict (dict): Backbone weights without prefix.
        arch (str): One of :data:`ARCHS`.

    Returns:
        dict: for ViTs ``embed_dims, num_layers, patch_size, in_channels,
        feedforward_channels, num_patches, img_size, final_norm, num_heads``
        (``num_heads`` is guessed from the width, None if non-standard);
        for ResNets ``depth, block, stage_blocks, stem_channels,
        base_channels, deep_stem, avg_down``.
    """
    if arch in ('vit', 'd2v2-vit'):
        proj = state_dict['patch_embed.projection.weight']
        embed = int(proj.shape[0])
        info = dict(
            embed_dims=embed,
            num_layers=_num_indexed(state_dict, r'^layers\.(\d+)\.'),
            patch_size=int(proj.shape[-1]),
            in_channels=int(proj.shape[1]),
            feedforward_channels=int(
                state_dict['layers.0.ffn.layers.0.0.weight'].shape[0])
            if 'layers.0.ffn.layers.0.0.weight' in state_dict else None,
            num_heads=_VIT_SIZES.get(embed, (None, ))[0])
        pos = state_dict.get('pos_embed')
        if pos is not None:
            info['num_patches'] = int(pos.shape[1]) - 1
            side = int(round(info['num_patches']**0.5))
            if side * side == info['num_patches']:
                info['img_size'] = side * info['patch_size']
        if arch == 'vit':
            info['final_norm'] = 'ln1.weight' in state_dict
        return info
    if arch == 'resnet':
        block = 'bottleneck' if 'layer1.0.conv3.weight' in state_dict \
            else 'basic'
        stages = tuple(
            _num_indexed(state_dict, rf'^layer{s}\.(\d+)\.')
            for s in range(1, 5))
        stages = tuple(s for s in stages if s)
        deep = 'stem.0.conv.weight' in state_dict
        stem = state_dict['stem.2.conv.weight' if deep else 'conv1.weight']
        return dict(
            depth=_RESNET_DEPTHS.get((block, stages)),
            block=block,
            stage_blocks=stages,
            stem_channels=int(stem.shape[0]),
            base_channels=int(state_dict['layer1.0.conv1.weight'].shape[0]),
            deep_stem=deep,
            avg_down=any(
                re.match(r'^layer\d\.0\.downsample\.2\.', k)
                for k in state_dict))
    raise ConversionError(f'unknown architecture {arch!r}; choose from '
                          f'{ARCHS}')


def _arch_error(state_dict, wanted: Optional[str], found: Optional[str],
                where: str) -> ConversionError:
    expected = [wanted] if wanted else list(ARCHS)
    lines = [
        f'{where}: ' +
        (f'found a {found!r} backbone, expected {wanted!r}'
         if found else 'the backbone weights are no known architecture')
    ]
    lines.append(f'  found:    {describe_keys(state_dict)}')
    for name in expected:
        lines.append(f'  expected {name}: {EXPECTED_LAYOUT[name]}')
    if found and wanted:
        lines.append(f'  (pass --arch {found} or --arch auto)')
    return ConversionError('\n'.join(lines))


# --------------------------------------------------------------------------
# key layouts
# --------------------------------------------------------------------------
_TIMM_VIT_BLOCK = [
    ('ln1.', 'norm1.'),
    ('attn.qkv.', 'attn.qkv.'),
    ('attn.proj.', 'attn.proj.'),
    ('attn.gamma1.weight', 'ls1.gamma'),
    ('ln2.', 'norm2.'),
    ('ffn.layers.0.0.', 'mlp.fc1.'),
    ('ffn.layers.1.', 'mlp.fc2.'),
    ('ffn.gamma2.weight', 'ls2.gamma'),
]
_TIMM_VIT_TOP = {
    'cls_token': 'cls_token',
    'pos_embed': 'pos_embed',
    'patch_embed.projection.weight': 'patch_embed.proj.weight',
    'patch_embed.projection.bias': 'patch_embed.proj.bias',
    'pre_norm.weight': 'norm_pre.weight',
    'pre_norm.bias': 'norm_pre.bias',
    'ln1.weight': 'norm.weight',
    'ln1.bias': 'norm.bias',
    'ln2.weight': 'fc_norm.weight',
    'ln2.bias': 'fc_norm.bias',
}


def vit_to_timm(state_dict: Dict[str, Any]) -> 'OrderedDict':
    """mmpretrain ViT keys -> timm ``VisionTransformer`` keys.

    Raises:
        ConversionError: some keys have no timm name (listed).
    """
    out: 'OrderedDict' = OrderedDict()
    unknown = []
    for key, value in state_dict.items():
        new = _TIMM_VIT_TOP.get(key)
        match = re.match(r'^layers\.(\d+)\.(.+)$', key)
        if new is None and match:
            idx, rest = match.groups()
            for old, repl in _TIMM_VIT_BLOCK:
                if rest.startswith(old):
                    new = f'blocks.{idx}.{repl}{rest[len(old):]}'
                    break
        if new is None:
            unknown.append(key)
        else:
            out[new] = value
    if unknown:
        raise ConversionError(f'{len(unknown)} ViT weights have no timm name: '
                              f'{describe_keys(unknown)}')
    return out


def vit_to_mmseg(state_dict: Dict[str, Any]) -> 'OrderedDict':
    """mmpretrain ViT keys -> mmseg ``VisionTransformer`` keys."""
    out: 'OrderedDict' = OrderedDict()
    for key, value in state_dict.items():
        key = re.sub(r'^(layers\.\d+\.attn)\.qkv\.(weight|bias)$',
                     r'\1.attn.in_proj_\2', key)
        key = re.sub(r'^(layers\.\d+\.attn)\.proj\.', r'\1.attn.out_proj.',
                     key)
        out[key] = value
    return out


# mmpretrain deep stem (ConvModules) -> mmdet/mmseg (Sequential) and timm.
_DEEP_STEM_MMDET = {
    'stem.0.conv.': 'stem.0.',
    'stem.0.bn.': 'stem.1.',
    'stem.1.conv.': 'stem.3.',
    'stem.1.bn.': 'stem.4.',
    'stem.2.conv.': 'stem.6.',
    'stem.2.bn.': 'stem.7.',
}
_DEEP_STEM_TIMM = {
    'stem.0.conv.': 'conv1.0.',
    'stem.0.bn.': 'conv1.1.',
    'stem.1.conv.': 'conv1.3.',
    'stem.1.bn.': 'conv1.4.',
    'stem.2.conv.': 'conv1.6.',
    'stem.2.bn.': 'bn1.',
}


def _rename_prefixes(state_dict, table) -> 'OrderedDict':
    out: 'OrderedDict' = OrderedDict()
    for key, value in state_dict.items():
        for old, new in table.items():
            if key.startswith(old):
                key = new + key[len(old):]
                break
        out[key] = value
    return out


def resnet_to_timm(state_dict: Dict[str, Any], info: dict) -> 'OrderedDict':
    """mmpretrain ResNet keys -> timm ``ResNet`` keys (no ``fc``).

    Plain 7x7 stems and mmpretrain's deep stem (timm ``stem_type='deep'``)
    are supported; the average-pool shortcut of ResNetV1d is not.
    """
    if info['avg_down']:
        raise ConversionError(
            'a ResNet with average-pool shortcuts (ResNetV1d, '
            'downsample.{0,1,2}) has a different shortcut layout in timm; '
            'export it for mmpretrain/mmdet/mmseg instead')
    if not info['deep_stem'] and info['stem_channels'] != 64:
        raise ConversionError(
            f'timm ResNets have a 64-channel 7x7 stem, this one has '
            f'{info["stem_channels"]} channels (conv1.weight '
            f'{tuple(state_dict["conv1.weight"].shape)})')
    return _rename_prefixes(state_dict, _DEEP_STEM_TIMM) \
        if info['deep_stem'] else OrderedDict(state_dict)


def _timm_has(name: str) -> bool:
    try:
        import timm
    except ImportError:
        return True
    return timm.is_model(name)


def _timm_model(arch: str, info: dict) -> Tuple[Optional[str], dict]:
    """timm model name and ``create_model`` kwargs for an exported backbone."""
    if arch == 'vit':
        heads, size = _VIT_SIZES.get(info['embed_dims'], (None, None))
        kwargs = dict(
            embed_dim=info['embed_dims'],
            depth=info['num_layers'],
            patch_size=info['patch_size'],
            mlp_ratio=(info['feedforward_channels'] or 4 * info['embed_dims'])
            / info['embed_dims'])
        if heads:
            kwargs['num_heads'] = heads
        if 'img_size' in info:
            kwargs['img_size'] = info['img_size']
        name = None
        if size:
            name = f'vit_{size}_patch{info["patch_size"]}_' \
                f'{info.get("img_size", 224)}'
        if name is None or not _timm_has(name):
            name = 'vit_base_patch16_224'  # the kwargs set every size
        return name, kwargs
    depth = info['depth']
    name = f'resnet{depth}' if depth else None
    if not name:
        name = 'resnet50' if info['block'] == 'bottleneck' else 'resnet18'
    kwargs = {}
    if info['stage_blocks'] != {
            'resnet18': (2, 2, 2, 2),
            'resnet50': (3, 4, 6, 3)
    }.get(name, info['stage_blocks']):
        kwargs['layers'] = list(info['stage_blocks'])
    base = info['base_channels']
    if base != 64:
        kwargs['channels'] = [base * 2**i for i in range(4)]
    if info['deep_stem']:
        kwargs.update(stem_type='deep', stem_width=info['stem_channels'] // 2)
    return name, kwargs


# --------------------------------------------------------------------------
# conversion
# --------------------------------------------------------------------------
def convert_state_dict(
        checkpoint: Any,
        target: str = 'mmpretrain',
        arch: str = 'auto',
        prefix: str = BACKBONE_PREFIX,
        allow_unknown: bool = False) -> Tuple['OrderedDict', dict]:
    """Convert a loaded pretraining checkpoint for ``target``.

    Args:
        checkpoint (dict): A loaded checkpoint (see
            :func:`split_checkpoint`).
        target (str): One of :data:`TARGETS`. Defaults to ``'mmpretrain'``.
        arch (str): ``'auto'`` or one of :data:`ARCHS`; a given arch that
            differs from the detected one is an error.
        prefix (str): Where the backbone sits in the source state dict.
            Defaults to ``'backbone.'``. A state dict with no key under it
            but whose own keys form a known backbone is taken as it is.
        allow_unknown (bool): Copy the weights under ``prefix`` even when
            they are no known architecture (``mmpretrain`` / ``mmdet``
            targets only). Defaults to False.

    Returns:
        tuple: ``(state_dict, info)``. ``state_dict`` is what goes into the
        file (keys with ``backbone.``, except for the ``timm`` target and
        the mmseg ``VisionTransformer`` layout, see the module docstring);
        ``info`` holds ``arch``, ``target``, ``arch_info``,
        ``num_tensors``, ``dropped`` (weights per dropped group),
        ``dropped_entries`` (training state), ``prefixed`` and, for timm,
        ``timm_model`` / ``timm_kwargs``, and ``notes``.

    Raises:
        ConversionError: no backbone weights, another architecture than
            ``arch``, or a target that cannot express the architecture.
    """
    if target not in TARGETS:
        raise ConversionError(f'target must be one of {TARGETS}, got '
                              f'{target!r}')
    if arch != 'auto' and arch not in ARCHS:
        raise ConversionError(f"arch must be 'auto' or one of {ARCHS}, got "
                              f'{arch!r}')
    if not prefix.endswith('.'):
        prefix += '.'
    state_dict, meta, dropped_entries = split_checkpoint(checkpoint)
    backbone, dropped = extract_prefixed(state_dict, prefix)
    notes: List[str] = []
    if not backbone:
        if detect_arch(state_dict) is not None:
            backbone, dropped = OrderedDict(state_dict), OrderedDict()
            notes.append(f'the source has no {prefix!r} keys; its keys form '
                         'a backbone and are used as they are')
        else:
            lines = [
                f'no backbone weights: no key starts with {prefix!r}',
                f'  found:    {describe_keys(state_dict)}',
                f'  expected: {prefix}<backbone key> with one of'
            ]
            lines += [f'    {k}: {v}' for k, v in EXPECTED_LAYOUT.items()]
            others = [t + '.' for t in dropped if t + '.' != prefix]
            if others:
                lines.append('  if the backbone sits under another name, '
                             'pass it as --prefix (one of '
                             f'{", ".join(map(repr, others))})')
            raise ConversionError('\n'.join(lines))
    found = detect_arch(backbone)
    if found is None and not (allow_unknown and target in
                              ('mmpretrain', 'mmdet') and arch == 'auto'):
        raise _arch_error(backbone, None if arch == 'auto' else arch, None,
                          f'the weights under {prefix!r}')
    if arch != 'auto' and found != arch:
        raise _arch_error(backbone, arch, found,
                          f'the weights under {prefix!r}')
    info = dict(
        arch=found or 'unknown',
        target=target,
        source_prefix=prefix,
        arch_info=arch_info(backbone, found) if found else {},
        dropped=dict(dropped),
        dropped_entries=dropped_entries,
        notes=notes,
        source_meta={
            k: meta[k]
            for k in ('epoch', 'iter', 'mmengine_version', 'dataset_meta',
                      'experiment_name', 'seed') if k in meta
        })

    if found in ('vit', 'd2v2-vit') and info['arch_info']['num_heads'] \
            is None:
        notes.append(
            f'num_heads is not stored in the weights and embed_dims='
            f'{info["arch_info"]["embed_dims"]} is no standard width: set '
            'it as in the pretraining config')
    out = backbone
    prefixed = True
    if found == 'resnet' and target in ('mmdet', 'mmseg') and \
            info['arch_info']['deep_stem']:
        out = _rename_prefixes(backbone, _DEEP_STEM_MMDET)
    elif found == 'vit' and target == 'mmseg':
        out = vit_to_mmseg(backbone)
        prefixed = False
        notes.append(
            "mmseg's VisionTransformer layout, keys without 'backbone.': "
            "mmseg's VisionTransformer.init_weights ignores prefix= and "
            'reads the keys as they are; set patch_bias=True, '
            "final_norm=True and norm_cfg=dict(type='LN', eps=1e-6) (mmseg's "
            'default eps is 1e-5)')
    elif found == 'd2v2-vit' and target in ('mmseg', 'mmdet'):
        notes.append('data2vec 2.0 is a post-LN ViT: it loads only into '
                     f"type='mmssl.D2V2ViT' (out_type='featmap' in {target} "
                     "configs), not into mmseg's / mmpretrain's pre-LN "
                     'VisionTransformer')
    elif found == 'd2v2-vit':
        notes.append('data2vec 2.0 is a post-LN ViT: it loads only into '
                     "type='mmssl.D2V2ViT'")
    if target == 'timm':
        if found == 'd2v2-vit':
            raise ConversionError(
                'data2vec 2.0 (d2v2-vit) cannot be exported to timm: its '
                'blocks are post-LN (LayerNorm after each residual add, a '
                'LayerNorm on the input, no final norm) while timm\'s '
                'VisionTransformer is pre-LN, so no timm ViT computes the '
                'same features. Export with --to mmpretrain and load it '
                "with type='mmssl.D2V2ViT'")
        if found == 'vit':
            out = vit_to_timm(backbone)
        else:
            out = resnet_to_timm(backbone, info['arch_info'])
        name, kwargs = _timm_model(found, info['arch_info'])
        info['timm_model'], info['timm_kwargs'] = name, kwargs
        prefixed = False
    if prefixed:
        out = OrderedDict((BACKBONE_PREFIX + k, v) for k, v in out.items())
    info['prefixed'] = prefixed
    info['num_tensors'] = len(out)
    return out, info


def load_hint(info: dict, path: str = 'OUT') -> str:
    """How to load a converted file, for the CLI and ``meta['load']``."""
    arch, target = info['arch'], info['target']
    pretrained = (f"init_cfg=dict(type='Pretrained', prefix='backbone.', "
                  f"checkpoint='{path}')")
    if target == 'timm':
        kwargs = ''.join(f', {k}={v!r}'
                         for k, v in info.get('timm_kwargs', {}).items())
        return (f"timm.create_model('{info.get('timm_model')}', "
                f'pretrained=False, num_classes=0{kwargs})'
                f".load_state_dict(torch.load('{path}')['state_dict'])")
    if arch == 'd2v2-vit':
        return (f"backbone=dict(type='mmssl.D2V2ViT', ..., {pretrained}) "
                f'(custom_imports mmssl.models; post-LN, no other class)')
    if arch == 'vit':
        if target == 'mmseg':
            return ("backbone=dict(type='VisionTransformer', patch_bias=True,"
                    " final_norm=True, norm_cfg=dict(type='LN', eps=1e-6), "
                    f'..., {pretrained}) (mmseg ignores prefix=; the keys '
                    'carry none)')
        return f"backbone=dict(type='mmpretrain.VisionTransformer', ..., " \
            f'{pretrained})'
    if arch == 'resnet':
        ainfo = info.get('arch_info', {})
        deep, avg = ainfo.get('deep_stem'), ainfo.get('avg_down')
        if target == 'mmpretrain':
            kind = 'ResNetV1d' if avg else 'ResNetV1c' if deep else 'ResNet'
            return f"backbone=dict(type='mmpretrain.{kind}', ..., " \
                f'{pretrained})'
        extra = f', deep_stem={bool(deep)}' + (', avg_down=True'
                                               if avg else '')
        return f"backbone=dict(type='ResNet'{extra}, ..., {pretrained}) " \
            f'({target} ResNet)'
    return f'backbone=dict(..., {pretrained})'


def convert_checkpoint(src: str,
                       dst: str,
                       target: str = 'mmpretrain',
                       arch: str = 'auto',
                       prefix: str = BACKBONE_PREFIX,
                       allow_unknown: bool = False,
                       converted_by: str = 'mmssl.apis.convert') -> dict:
    """Load ``src``, convert it for ``target`` and write ``dst`` atomically.

    The source goes through mmengine's ``_load_checkpoint`` (mmssl's
    weights-only loader for local files). ``dst`` receives ``{'meta':
    {...}, 'state_dict': {...}}``; ``meta`` records ``source``, ``arch``,
    ``target``, ``arch_info``, ``dropped``, ``num_tensors``, ``load`` (how
    to load it), ``notes``, the source's ``epoch`` / ``iter`` (as
    ``source_epoch`` ...), and for timm ``timm_model`` / ``timm_kwargs``.

    Args:
        src (str): Source checkpoint (path or URL).
        dst (str): Output path.
        target, arch, prefix, allow_unknown: see :func:`convert_state_dict`.
        converted_by (str): Recorded in ``meta``.

    Returns:
        dict: the ``info`` of :func:`convert_state_dict` plus ``meta``.
    """
    from mmengine.runner.checkpoint import _load_checkpoint

    from mmssl.utils import atomic_save_checkpoint
    from mmssl.version import __version__
    if '://' not in src and not osp.isfile(src):
        raise ConversionError(f'checkpoint file {src!r} does not exist')
    checkpoint = _load_checkpoint(src, map_location='cpu')
    state_dict, info = convert_state_dict(checkpoint, target, arch, prefix,
                                          allow_unknown)
    meta = dict(
        source=osp.abspath(src) if '://' not in src else src,
        arch=info['arch'],
        target=target,
        arch_info=info['arch_info'],
        prefix=BACKBONE_PREFIX if info['prefixed'] else '',
        num_tensors=info['num_tensors'],
        dropped=info['dropped'],
        dropped_entries=info['dropped_entries'],
        notes=info['notes'],
        load=load_hint(info, dst),
        converted_by=converted_by,
        mmssl_version=__version__)
    for key in ('timm_model', 'timm_kwargs'):
        if key in info:
            meta[key] = info[key]
    for key, value in info['source_meta'].items():
        meta[f'source_{key}'] = value
    atomic_save_checkpoint(dict(meta=meta, state_dict=state_dict), dst)
    info['meta'] = meta
    return info


# --------------------------------------------------------------------------
# checking an export against a model
# --------------------------------------------------------------------------
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

    def _summary(sd):
        arch = detect_arch(sd)
        if arch is None:
            return f'unknown architecture ({describe_keys(sd)})'
        info = arch_info(sd, arch)
        keep = ('embed_dims', 'num_layers', 'patch_size',
                'feedforward_channels') if 'vit' in arch else ('depth',
                                                               'block',
                                                               'stage_blocks',
                                                               'stem_channels',
                                                               'base_channels',
                                                               'deep_stem')
        return f'{arch} (' + ', '.join(f'{k}={info.get(k)}'
                                       for k in keep) + ')'

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
