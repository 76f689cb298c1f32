# Copyright (c) mmssl contributors. All rights reserved.
"""Weights of DiffFashion's two networks: load them, pack them into one.

The class-conditional diffusion model is an ``mmssl.ClassCondDDPM``
(trained with ``tools/train.py`` or converted from guided-diffusion); the
guidance ViT an mmpretrain ``VisionTransformer`` (DINO converted, or the
backbone of an MAE / data2vec checkpoint). A missing file raises
:class:`WeightFileError` with where to get it; weights that do not fit the
model raise ``ValueError`` / ``KeyError`` naming the keys and the fix.
"""
import copy
import os
import os.path as osp
from typing import Optional, Union

import torch
import torch.nn as nn

from mmssl.registry import MODELS
from mmssl.utils.checkpoint import safe_torch_load
from .vit_guidance import vit_input_size

__all__ = [
    'WeightFileError', 'load_diffusion_model', 'load_vit', 'load_vit_weights',
    'pack_editor_checkpoint', 'DEFAULT_VIT_CFG'
]

DDPM_HINT = (
    'Train the small class-conditional model with `python tools/train.py '
    'configs/difffashion/ddpm_unet-tiny_1xb64-10e_embedded32.py`, or convert '
    "guided-diffusion's 256x256_diffusion.pt (https://github.com/openai/"
    'guided-diffusion, "Download pre-trained models") with '
    'tools/model_converters/guided_diffusion_to_diffusers.py.')
VIT_HINT = (
    'Train a small ViT with `python tools/train.py configs/mae/'
    'mae_vit-tiny-p8_1xb64-coslr-30e_embedded.py`, or download DINO ViT-B/8 '
    '(https://dl.fbaipublicfiles.com/dino/dino_vitbase8_pretrain/'
    'dino_vitbase8_pretrain.pth, from https://github.com/facebookresearch/'
    'dino) and convert it with '
    'tools/model_converters/dino_vit_to_mmpretrain.py.')

#: the ViT built without a config: DINO ViT-B/8 at 224 px (mmpretrain)
DEFAULT_VIT_CFG = dict(
    type='mmpretrain.VisionTransformer',
    arch='b',
    img_size=224,
    patch_size=8,
    out_type='raw')


class WeightFileError(FileNotFoundError):
    """A weight (or config) file is missing; the message names where to get
    it."""


def check_weight_file(path: Optional[str], what: str, hint: str) -> str:
    """``path`` if it is a file, else :class:`WeightFileError`."""
    if not path or not osp.isfile(path):
        raise WeightFileError(f'{what} not found: {path!r}. {hint}')
    return path


def _load_diffusion_weights(model: nn.Module, checkpoint: str, built_from: str,
                            fix: str) -> None:
    """Load all of ``model``'s weights from ``checkpoint`` (strict).

    Raises:
        ValueError: missing, unexpected or misshapen weights; the message
            names the file, what the model was built from, ``fix`` and
            mmengine's list of keys.
    """
    from mmengine.runner import load_checkpoint
    try:
        load_checkpoint(
            model,
            checkpoint,
            map_location='cpu',
            strict=True,
            logger='silent')
    except RuntimeError as err:
        raise ValueError(f'the diffusion weights in {checkpoint} do not fit '
                         f'the model of {built_from}; {fix}: {err}') from None


def load_diffusion_model(
        config: Optional[str],
        checkpoint: str,
        device: Union[str, torch.device] = 'cpu') -> nn.Module:
    """Build an ``mmssl.ClassCondDDPM`` and load its weights.

    Args:
        config (str, optional): mmengine config whose ``model`` is a
            ClassCondDDPM; ``None`` takes the model config stored in the
            checkpoint (``meta['model_cfg']`` of converted checkpoints,
            ``meta['cfg']`` of those written by ``tools/train.py``).
        checkpoint (str): a checkpoint written by ``tools/train.py`` or by
            the guided-diffusion converter.
        device (str | torch.device): where to put the model.

    Returns:
        nn.Module: the model in eval mode (``.unet``, ``.scheduler_cfg``).

    Raises:
        WeightFileError: a file is missing (the message says where to get
            the weights).
        ValueError: no config given and none in the checkpoint, or
            weights that do not fit the model.
    """
    from mmengine.config import Config
    check_weight_file(checkpoint, 'diffusion checkpoint', DDPM_HINT)
    if config is None:
        meta = safe_torch_load(
            checkpoint, map_location='cpu').get('meta') or {}
        if 'model_cfg' in meta:  # converted checkpoints
            model_cfg = meta['model_cfg']
        elif isinstance(meta.get('cfg'), str):  # written by the runner
            model_cfg = Config.fromstring(meta['cfg'], '.py').model
        else:
            raise ValueError(f'{checkpoint} holds no model config; pass '
                             'the config of the diffusion model (--config)')
    else:
        check_weight_file(config, 'diffusion config', DDPM_HINT)
        model_cfg = Config.fromfile(config).model
    model = MODELS.build(model_cfg)
    _load_diffusion_weights(
        model, checkpoint, config or 'the config stored in the checkpoint',
        'pass the config the weights were trained with (--config)')
    return model.to(device).eval()


def load_vit(config: Optional[str],
             checkpoint: str,
             device: Union[str, torch.device] = 'cpu') -> nn.Module:
    """Load the ViT whose features guide the transfer.

    Args:
        config (str, optional): an mmengine config with ``model.backbone``
            (e.g. the tiny MAE one), or a config whose ``model`` is itself
            a ViT. ``None`` builds :data:`DEFAULT_VIT_CFG` (DINO ViT-B/8,
            the weights of which come from ``dino_vit_to_mmpretrain.py``).
        checkpoint (str): weights; keys may carry ``backbone.``.
        device (str | torch.device): where to put the model.

    Returns:
        nn.Module: the ViT (eval mode); ``img_size_hint`` set to the side
        it expects.

    Raises:
        WeightFileError: a file is missing.
        ValueError / KeyError: the weights do not fit the ViT (see
            :func:`load_vit_weights`).
    """
    from mmengine.config import Config
    check_weight_file(checkpoint, 'ViT checkpoint', VIT_HINT)
    if config is None:
        vit_cfg = dict(DEFAULT_VIT_CFG)
        built_from = ('the default DINO ViT-B/8 (224 px, patch 8), built '
                      'because no ViT config was given; pass the config the '
                      'ViT was trained with (--vit-config)')
    else:
        check_weight_file(config, 'ViT config', VIT_HINT)
        model_cfg = Config.fromfile(config).model
        vit_cfg = dict(model_cfg.get('backbone', model_cfg))
        vit_cfg.pop('init_cfg', None)
        built_from = f'the ViT of {config}'
    vit = MODELS.build(vit_cfg)
    load_vit_weights(vit, checkpoint, built_from)
    vit.img_size_hint = vit_input_size(vit)
    vit.to(device)
    vit.eval()  # mmpretrain ViTs return None from train()
    return vit


def load_vit_weights(vit: nn.Module,
                     checkpoint: str,
                     built_from: Optional[str] = None) -> None:
    """Load ViT weights (keys with or without ``backbone.``) into ``vit``.

    Args:
        vit (nn.Module): the built ViT.
        checkpoint (str): a checkpoint of the ViT or of a model holding it
            as ``backbone``.
        built_from (str, optional): what ``vit`` was built from, for the
            messages.

    Raises:
        WeightFileError: no such file (the message says where to get one).
        ValueError: a weight's shape differs from the ViT's (e.g. the
            weights of another architecture).
        KeyError: weights of the ViT are missing from the file.
    """
    check_weight_file(checkpoint, 'ViT checkpoint', VIT_HINT)
    ckpt = safe_torch_load(checkpoint, map_location='cpu')
    state = ckpt.get('state_dict', ckpt)
    if any(k.startswith('backbone.') for k in state):
        state = {
            k[len('backbone.'):]: v
            for k, v in state.items() if k.startswith('backbone.')
        }
    built_from = built_from or 'the ViT'
    own = vit.state_dict()
    wrong = [(k, tuple(v.shape), tuple(own[k].shape))
             for k, v in state.items()
             if k in own and hasattr(v, 'shape') and v.shape != own[k].shape]
    if wrong:
        shown = ', '.join(f'{k} {a} in the file, {b} in the model'
                          for k, a, b in wrong[:3])
        raise ValueError(f'the ViT weights in {checkpoint} do not fit '
                         f'{built_from}: {shown} ({len(wrong)} in all)')
    missing, _ = vit.load_state_dict(state, strict=False)
    missing = [k for k in missing if not k.startswith('head')]
    if missing:
        raise KeyError(f'{checkpoint} lacks ViT weights {missing[:8]} '
                       f'({len(missing)} in all) of {built_from}. '
                       f'{VIT_HINT}')


def pack_editor_checkpoint(config: Union[str, dict], diffusion_checkpoint: str,
                           vit_checkpoint: str, out: str) -> dict:
    """Write one ``mmssl.DiffFashionEditor`` checkpoint from the weights of
    its diffusion model and its ViT.

    Args:
        config (str | dict): an editor config file (or its ``model``
            dict).
        diffusion_checkpoint (str): ``ClassCondDDPM`` weights (written by
            ``tools/train.py`` or the guided-diffusion converter).
        vit_checkpoint (str): ViT weights (keys with or without
            ``backbone.``).
        out (str): the checkpoint to write (``state_dict`` + ``meta``).

    Returns:
        dict: ``num_keys`` and the sources.

    Raises:
        WeightFileError: a weight file is missing (the message says where
            to get it).
        ValueError: the config does not build a ``DiffFashionEditor``, or
            weights that do not fit its networks.
        KeyError: ViT weights missing from ``vit_checkpoint``.
    """
    from mmengine.config import Config
    check_weight_file(diffusion_checkpoint, 'diffusion checkpoint', DDPM_HINT)
    model_cfg = Config.fromfile(config).model if isinstance(
        config, str) else copy.deepcopy(config)
    if model_cfg.get('type') not in ('mmssl.DiffFashionEditor',
                                     'DiffFashionEditor'):
        raise ValueError(f'{config} does not build a DiffFashionEditor '
                         f'(model.type = {model_cfg.get("type")!r})')
    editor = MODELS.build(model_cfg)
    _load_diffusion_weights(
        editor.diffusion, diffusion_checkpoint, 'the editor config',
        "set the editor config's model.diffusion to the model the weights "
        'were trained with')
    load_vit_weights(
        editor.vit, vit_checkpoint, f'the ViT of the editor config ({config})'
        if isinstance(config, str) else None)
    meta = dict(
        diffusion_checkpoint=osp.basename(diffusion_checkpoint),
        vit_checkpoint=osp.basename(vit_checkpoint))
    if osp.dirname(out):
        os.makedirs(osp.dirname(out), exist_ok=True)
    tmp = out + '.tmp'
    torch.save(dict(state_dict=editor.state_dict(), meta=meta), tmp)
    os.replace(tmp, out)
    return dict(num_keys=len(editor.state_dict()), **meta)
