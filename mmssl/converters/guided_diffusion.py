# Copyright (c) mmssl contributors. All rights reserved.
"""guided-diffusion (ADM) UNet weights -> diffusers ``UNet2DModel``.

The converter behind ``tools/model_converters/guided_diffusion_to_diffusers.py``.
The class-conditional ImageNet 256 model of openai/guided-diffusion
(:data:`GD_URL`) is the denoiser of DiffFashion; :func:`classcond_ddpm_cfg`
is the ``mmssl.ClassCondDDPM`` config that loads the converted weights.

Key layout (``UNetModel`` with ``resblock_updown=True``,
``use_scale_shift_norm=True``, legacy attention order):

===============================================  =====================================
guided-diffusion                                 diffusers
===============================================  =====================================
``time_embed.{0,2}``                             ``time_embedding.linear_{1,2}``
``label_emb``                                    ``class_embedding``
``input_blocks.0.0``                             ``conv_in``
``input_blocks.k.0`` (ResBlock)                  ``down_blocks.i.resnets.j``
``input_blocks.k.1`` (AttentionBlock)            ``down_blocks.i.attentions.j``
``input_blocks.k.0`` (ResBlock, down)            ``down_blocks.i.downsamplers.0``
``middle_block.{0,1,2}``                         ``mid_block.resnets.0/attentions.0/resnets.1``
``output_blocks.k.0`` / ``.1``                   ``up_blocks.i.resnets.j`` / ``attentions.j``
``output_blocks.k.{1|2}`` (ResBlock, up)         ``up_blocks.i.upsamplers.0``
``out.{0,2}``                                    ``conv_norm_out`` / ``conv_out``
ResBlock ``in_layers.{0,2}``                     ``norm1`` / ``conv1``
ResBlock ``emb_layers.1`` / ``out_layers.{0,3}`` ``time_emb_proj`` / ``norm2`` / ``conv2``
ResBlock ``skip_connection``                     ``conv_shortcut``
Attention ``norm`` / ``proj_out``                ``group_norm`` / ``to_out.0``
Attention ``qkv`` (heads x [q, k, v] rows)       ``to_q`` / ``to_k`` / ``to_v``
===============================================  =====================================

1x1 ``Conv1d`` weights of the attention become ``Linear`` weights. Only the
``resblock_updown=True`` layout (the ImageNet 256 / 512 models) is mapped.
"""
from collections import OrderedDict
from typing import Dict, Iterator, List, Tuple

GD_URL = ('https://openaipublic.blob.core.windows.net/diffusion/jul-2021/'
          '256x256_diffusion.pt')

#: guided-diffusion's ImageNet 256x256 class-conditional model.
ARCHS = {
    'imagenet256-cond':
    dict(
        image_size=256,
        in_channels=3,
        model_channels=256,
        out_channels=6,
        num_res_blocks=2,
        attention_resolutions=(8, 16, 32),  # as downsampling rates ds
        channel_mult=(1, 1, 2, 2, 4, 4),
        num_head_channels=64,
        num_classes=1000),
}

_RES = [('in_layers.0', 'norm1'), ('in_layers.2', 'conv1'),
        ('emb_layers.1', 'time_emb_proj'), ('out_layers.0', 'norm2'),
        ('out_layers.3', 'conv2'), ('skip_connection', 'conv_shortcut')]


def _walk(cfg: dict) -> Iterator[Tuple[str, str, str, int, int]]:
    """(guided prefix, diffusers prefix, kind, in_ch, out_ch) per module,
    following ``UNetModel.__init__`` (kind: res, attn, conv, norm, linear,
    emb)."""
    C = cfg['model_channels']
    mult = cfg['channel_mult']
    nres = cfg['num_res_blocks']
    attn = set(cfg['attention_resolutions'])
    E = 4 * C
    yield 'time_embed.0', 'time_embedding.linear_1', 'linear', C, E
    yield 'time_embed.2', 'time_embedding.linear_2', 'linear', E, E
    if cfg.get('num_classes'):
        yield 'label_emb', 'class_embedding', 'emb', cfg['num_classes'], E
    yield 'input_blocks.0.0', 'conv_in', 'conv3', cfg['in_channels'], C
    chans = [C]
    ch, ds, k = C, 1, 1
    for level, m in enumerate(mult):
        for j in range(nres):
            yield (f'input_blocks.{k}.0', f'down_blocks.{level}.resnets.{j}',
                   'res', ch, m * C)
            ch = m * C
            if ds in attn:
                yield (f'input_blocks.{k}.1',
                       f'down_blocks.{level}.attentions.{j}', 'attn', ch, ch)
            chans.append(ch)
            k += 1
        if level != len(mult) - 1:
            yield (f'input_blocks.{k}.0',
                   f'down_blocks.{level}.downsamplers.0', 'res', ch, ch)
            chans.append(ch)
            ds *= 2
            k += 1
    yield 'middle_block.0', 'mid_block.resnets.0', 'res', ch, ch
    yield 'middle_block.1', 'mid_block.attentions.0', 'attn', ch, ch
    yield 'middle_block.2', 'mid_block.resnets.1', 'res', ch, ch
    k = 0
    for up, (level, m) in enumerate(list(enumerate(mult))[::-1]):
        for j in range(nres + 1):
            skip = chans.pop()
            yield (f'output_blocks.{k}.0', f'up_blocks.{up}.resnets.{j}',
                   'res', ch + skip, m * C)
            ch = m * C
            idx = 1
            if ds in attn:
                yield (f'output_blocks.{k}.1',
                       f'up_blocks.{up}.attentions.{j}', 'attn', ch, ch)
                idx = 2
            if level and j == nres:
                yield (f'output_blocks.{k}.{idx}',
                       f'up_blocks.{up}.upsamplers.0', 'res', ch, ch)
                ds //= 2
            k += 1
    yield 'out.0', 'conv_norm_out', 'norm', ch, ch
    yield 'out.2', 'conv_out', 'conv3', ch, cfg['out_channels']


def guided_diffusion_shapes(cfg: dict) -> 'OrderedDict[str, tuple]':
    """Every guided-diffusion key of ``cfg`` with its tensor shape."""
    E = 4 * cfg['model_channels']
    out: 'OrderedDict[str, tuple]' = OrderedDict()
    for gd, _, kind, i, o in _walk(cfg):
        if kind == 'linear':
            out[f'{gd}.weight'], out[f'{gd}.bias'] = (o, i), (o, )
        elif kind == 'emb':
            out[f'{gd}.weight'] = (i, o)
        elif kind == 'conv3':
            out[f'{gd}.weight'], out[f'{gd}.bias'] = (o, i, 3, 3), (o, )
        elif kind == 'norm':
            out[f'{gd}.weight'], out[f'{gd}.bias'] = (i, ), (i, )
        elif kind == 'attn':
            out[f'{gd}.norm.weight'], out[f'{gd}.norm.bias'] = (i, ), (i, )
            out[f'{gd}.qkv.weight'] = (3 * i, i, 1)
            out[f'{gd}.qkv.bias'] = (3 * i, )
            out[f'{gd}.proj_out.weight'] = (i, i, 1)
            out[f'{gd}.proj_out.bias'] = (i, )
        else:  # res
            out[f'{gd}.in_layers.0.weight'] = (i, )
            out[f'{gd}.in_layers.0.bias'] = (i, )
            out[f'{gd}.in_layers.2.weight'] = (o, i, 3, 3)
            out[f'{gd}.in_layers.2.bias'] = (o, )
            out[f'{gd}.emb_layers.1.weight'] = (2 * o, E)
            out[f'{gd}.emb_layers.1.bias'] = (2 * o, )
            out[f'{gd}.out_layers.0.weight'] = (o, )
            out[f'{gd}.out_layers.0.bias'] = (o, )
            out[f'{gd}.out_layers.3.weight'] = (o, o, 3, 3)
            out[f'{gd}.out_layers.3.bias'] = (o, )
            if i != o:
                out[f'{gd}.skip_connection.weight'] = (o, i, 1, 1)
                out[f'{gd}.skip_connection.bias'] = (o, )
    return out


def diffusers_config(cfg: dict) -> dict:
    """``UNet2DModel`` arguments equivalent to a guided-diffusion config."""
    attn = set(cfg['attention_resolutions'])
    n = len(cfg['channel_mult'])
    has_attn = [2**level in attn for level in range(n)]
    return dict(
        sample_size=cfg['image_size'],
        in_channels=cfg['in_channels'],
        out_channels=cfg['out_channels'],
        block_out_channels=tuple(m * cfg['model_channels']
                                 for m in cfg['channel_mult']),
        layers_per_block=cfg['num_res_blocks'],
        down_block_types=tuple(
            'AttnDownBlock2D' if a else 'ResnetDownsampleBlock2D'
            for a in has_attn),
        up_block_types=tuple('AttnUpBlock2D' if a else 'ResnetUpsampleBlock2D'
                             for a in has_attn[::-1]),
        downsample_type='resnet',
        upsample_type='resnet',
        attention_head_dim=cfg['num_head_channels'],
        norm_num_groups=cfg.get('norm_num_groups', 32),
        # the mid-block attention has no GroupNorm with scale-shift unless
        # its groups are given explicitly
        attn_norm_num_groups=cfg.get('norm_num_groups', 32),
        resnet_time_scale_shift='scale_shift',
        flip_sin_to_cos=True,
        freq_shift=0,
        num_class_embeds=cfg.get('num_classes'))


def _split_qkv(w, heads: int) -> List:
    """Legacy order: rows are heads x (q, k, v) x head_dim."""
    C = w.shape[1] if w.dim() > 1 else w.shape[0] // 3
    hd = C // heads
    w = w.reshape(heads, 3, hd, *w.shape[1:])
    return [w[:, i].reshape(C, *w.shape[3:]) for i in range(3)]


def convert_guided_diffusion(state_dict: Dict, cfg: dict) -> 'OrderedDict':
    """Rename (and reshape) guided-diffusion UNet weights for diffusers.

    Args:
        state_dict (dict): ``UNetModel`` weights.
        cfg (dict): the model's configuration (see :data:`ARCHS`).

    Returns:
        OrderedDict: ``UNet2DModel`` weights (no prefix).

    Raises:
        KeyError: expected keys are missing or unexpected keys are left
            (both listed).
    """
    expected = guided_diffusion_shapes(cfg)
    missing = [k for k in expected if k not in state_dict]
    extra = [k for k in state_dict if k not in expected]
    bad = [
        k for k in expected
        if k in state_dict and tuple(state_dict[k].shape) != expected[k]
    ]
    if missing or extra or bad:
        raise KeyError(
            f'the checkpoint does not fit the guided-diffusion layout: '
            f'{len(missing)} missing {missing[:5]}, {len(extra)} unexpected '
            f'{extra[:5]}, {len(bad)} of another shape {bad[:5]}')
    out: 'OrderedDict' = OrderedDict()
    for gd, df, kind, i, o in _walk(cfg):
        if kind in ('linear', 'conv3', 'norm'):
            out[f'{df}.weight'] = state_dict[f'{gd}.weight']
            out[f'{df}.bias'] = state_dict[f'{gd}.bias']
        elif kind == 'emb':
            out[f'{df}.weight'] = state_dict[f'{gd}.weight']
        elif kind == 'attn':
            heads = i // cfg['num_head_channels']
            out[f'{df}.group_norm.weight'] = state_dict[f'{gd}.norm.weight']
            out[f'{df}.group_norm.bias'] = state_dict[f'{gd}.norm.bias']
            ws = _split_qkv(state_dict[f'{gd}.qkv.weight'][..., 0], heads)
            bs = _split_qkv(state_dict[f'{gd}.qkv.bias'], heads)
            for name, w, b in zip(('to_q', 'to_k', 'to_v'), ws, bs):
                out[f'{df}.{name}.weight'] = w.contiguous()
                out[f'{df}.{name}.bias'] = b.contiguous()
            out[f'{df}.to_out.0.weight'] = \
                state_dict[f'{gd}.proj_out.weight'][..., 0]
            out[f'{df}.to_out.0.bias'] = state_dict[f'{gd}.proj_out.bias']
        else:
            for old, new in _RES:
                for p in ('weight', 'bias'):
                    if f'{gd}.{old}.{p}' in state_dict:
                        out[f'{df}.{new}.{p}'] = state_dict[f'{gd}.{old}.{p}']
    return out


def classcond_ddpm_cfg(cfg: dict) -> dict:
    """The ``mmssl.ClassCondDDPM`` config of converted weights.

    The UNet is :func:`diffusers_config` of ``cfg``; the noise schedule is
    guided-diffusion's linear one (1000 steps, beta 1e-4 to 0.02). The
    converted weights load into it under the ``unet.`` prefix.
    """
    return dict(
        type='mmssl.ClassCondDDPM',
        unet=diffusers_config(cfg),
        scheduler=dict(
            num_train_timesteps=1000,
            beta_schedule='linear',
            beta_start=1e-4,
            beta_end=0.02))
