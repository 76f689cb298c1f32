# Copyright (c) mmssl contributors. All rights reserved.
"""CLIP image and text encoders, built on ``open_clip``.

Why ``open_clip`` and not mmpretrain's CLIP:

* it is maintained, and ships OpenAI's BPE vocabulary inside the package, so
  its :class:`open_clip.tokenizer.SimpleTokenizer` works offline and gives
  OpenAI's token ids (start of text 49406, end of text 49407);
* it rebuilds OpenAI's models (ViT and ModifiedResNet towers, QuickGELU)
  with the key layout of the released ``.pt`` files (TorchScript archives
  or plain state dicts), so the original checkpoints load from local files
  (their weights are read without running any of their code);
* mmpretrain 1.2 keeps CLIP in its multimodal part, whose import needs
  ``transformers < 4.56`` and therefore ``huggingface-hub < 1.0``, which
  current diffusers (hub >= 1.32) refuses; open_clip needs neither.

Nothing here downloads: OpenAI checkpoints are read from a path given by the
user, and a missing file fails with the file name and the address to fetch
it from. The small architectures (``'tiny-rn'``, ``'tiny-vit'``) are for the
embedded shapes data and are trained from scratch by
``configs/clip/clip_tiny-rn_1xb128-150e_embedded.py``.
"""
import copy
import os.path as osp
from functools import lru_cache
from typing import Dict, Optional, Sequence, Union

import torch
import torch.nn as nn
import torch.nn.functional as F

__all__ = [
    'CLIP_ARCHS', 'OPENAI_URLS', 'SOT_TOKEN', 'EOT_TOKEN', 'get_tokenizer',
    'tokenize', 'build_clip', 'load_clip_checkpoint', 'encode_text_embeddings',
    'freeze'
]

#: OpenAI's start / end-of-text token ids.
SOT_TOKEN = 49406
EOT_TOKEN = 49407

#: Where the OpenAI checkpoints are published (never fetched by mmssl).
OPENAI_URLS: Dict[str, str] = {
    'RN50':
    'https://openaipublic.azureedge.net/clip/models/'
    'afeb0e10f9e5a86da6080e35cf09123aca3b358a0c3e3b6c78a7b63bc04b6762/'
    'RN50.pt',
    'ViT-B/16':
    'https://openaipublic.azureedge.net/clip/models/'
    '5806e77cd80f8b59890b7e101eabd078d9fb84e6937f9e85e4ecb61988df416f/'
    'ViT-B-16.pt',
}

#: Architectures: ``embed_dim``, ``vision`` (open_clip ``CLIPVisionCfg``
#: fields; ``layers`` a tuple = ModifiedResNet, an int = ViT), ``text``
#: (``CLIPTextCfg`` fields) and ``quick_gelu``. The OpenAI ones match the
#: released checkpoints; the tiny ones take 32 px images.
CLIP_ARCHS: Dict[str, dict] = {
    'RN50':
    dict(
        embed_dim=1024,
        vision=dict(layers=(3, 4, 6, 3), width=64, image_size=224),
        text=dict(context_length=77, width=512, heads=8, layers=12),
        quick_gelu=True),
    'ViT-B/16':
    dict(
        embed_dim=512,
        vision=dict(layers=12, width=768, patch_size=16, image_size=224),
        text=dict(context_length=77, width=512, heads=8, layers=12),
        quick_gelu=True),
    'tiny-rn':
    dict(
        embed_dim=64,
        vision=dict(
            layers=(1, 1, 1, 1), width=16, head_width=64, image_size=32),
        text=dict(context_length=24, width=64, heads=2, layers=2),
        quick_gelu=False),
    'tiny-vit':
    dict(
        embed_dim=64,
        vision=dict(
            layers=3, width=64, head_width=32, patch_size=4, image_size=32),
        text=dict(context_length=24, width=64, heads=2, layers=2),
        quick_gelu=False),
}


@lru_cache(maxsize=None)
def get_tokenizer():
    """OpenAI's BPE tokenizer (open_clip's copy, offline)."""
    from open_clip.tokenizer import SimpleTokenizer
    return SimpleTokenizer()


def tokenize(texts: Union[str, Sequence[str]],
             context_length: int = 77) -> torch.Tensor:
    """Token ids of ``texts`` with OpenAI's tokenizer.

    Args:
        texts (str | Sequence[str]): N strings (lower-cased and cleaned by
            the tokenizer).
        context_length (int): L, the padded length. Longer texts are cut
            and end with the end-of-text token. Defaults to 77.

    Returns:
        torch.Tensor: ``(N, L)`` int64 ids: 49406, the text's BPE ids, 49407,
        then zeros.
    """
    if isinstance(texts, str):
        texts = [texts]
    return get_tokenizer()(list(texts), context_length=context_length)


def _arch_cfg(arch: Union[str, dict], **overrides) -> dict:
    if isinstance(arch, str):
        if arch not in CLIP_ARCHS:
            raise KeyError(f'unknown CLIP arch {arch!r}; expected one of '
                           f'{sorted(CLIP_ARCHS)} or a dict with embed_dim, '
                           'vision and text')
        cfg = copy.deepcopy(CLIP_ARCHS[arch])
    else:
        cfg = copy.deepcopy(dict(arch))
    for key in ('vision', 'text'):
        cfg[key].update(overrides.pop(key, {}) or {})
    cfg.update(overrides)
    missing = {'embed_dim', 'vision', 'text'} - set(cfg)
    if missing:
        raise KeyError(f'CLIP arch is missing {sorted(missing)}')
    return cfg


def build_clip(arch: Union[str, dict] = 'tiny-rn',
               checkpoint: Optional[str] = None,
               **overrides) -> nn.Module:
    """Build an ``open_clip.CLIP`` (fp32), optionally with weights.

    Args:
        arch (str | dict): a key of :data:`CLIP_ARCHS` or such a dict.
        checkpoint (str, optional): weights, see
            :func:`load_clip_checkpoint`.
        **overrides: replace arch entries (``vision=dict(...)`` and
            ``text=dict(...)`` update the towers' fields).

    Returns:
        nn.Module: the ``open_clip.CLIP`` model, with ``visual``,
        ``transformer``, ``token_embedding`` ``(V, d)``,
        ``positional_embedding`` ``(L, d)``, ``ln_final``,
        ``text_projection`` ``(d, E)`` and ``logit_scale``.
    """
    from open_clip.model import CLIP, CLIPTextCfg, CLIPVisionCfg
    cfg = _arch_cfg(arch, **overrides)
    model = CLIP(
        cfg['embed_dim'],
        vision_cfg=CLIPVisionCfg(**cfg['vision']),
        text_cfg=CLIPTextCfg(**cfg['text']),
        quick_gelu=cfg.get('quick_gelu', False))
    if checkpoint is not None:
        load_clip_checkpoint(model, checkpoint)
    return model


def _missing_file(path: str) -> FileNotFoundError:
    hints = '; '.join(f'{name}: {url}' for name, url in OPENAI_URLS.items())
    return FileNotFoundError(
        f'CLIP checkpoint {path!r} does not exist. mmssl never downloads '
        f'weights: fetch the OpenAI file yourself ({hints}) and pass its '
        'local path, or give a checkpoint of mmssl.CLIPPretrainer')


def _read_state_dict(path: str) -> dict:
    """State dict of an OpenAI ``.pt`` (TorchScript or plain) or of an
    mmengine checkpoint of :class:`mmssl.CLIPPretrainer` / a CoOp model.

    Nothing of the file runs: TorchScript archives (OpenAI's releases) are
    read by :func:`mmssl.utils.load_torchscript_state_dict`
    (their weights, without ``torch.jit.load``), everything else by
    :func:`mmssl.utils.safe_torch_load` (weights-only).
    """
    from mmssl.utils.checkpoint import checkpoint_format, safe_torch_load
    from mmssl.utils.torchscript_weights import load_torchscript_state_dict
    if not osp.isfile(path):
        raise _missing_file(path)
    if checkpoint_format(path) == 'torchscript':
        ckpt = load_torchscript_state_dict(path)
    else:
        ckpt = safe_torch_load(path, map_location='cpu')
    if isinstance(ckpt, dict) and 'state_dict' in ckpt:
        ckpt = ckpt['state_dict']
    if not isinstance(ckpt, dict):
        raise TypeError(f'{path!r} holds no state dict ({type(ckpt)})')
    for prefix in ('clip.', 'module.'):
        if any(k.startswith(prefix) for k in ckpt):
            ckpt = {
                k[len(prefix):]: v
                for k, v in ckpt.items() if k.startswith(prefix)
            }
    return ckpt


def load_clip_checkpoint(model: nn.Module, path: str) -> nn.Module:
    """Load CLIP weights from a local file into ``model`` (kept in fp32).

    Args:
        model (nn.Module): an ``open_clip.CLIP`` of the file's architecture.
        path (str): an OpenAI release (``RN50.pt``, ``ViT-B-16.pt``) or an
            mmengine checkpoint whose ``state_dict`` keys start with
            ``clip.``.

    Returns:
        nn.Module: ``model``.
    """
    state = _read_state_dict(path)
    for key in ('input_resolution', 'context_length', 'vocab_size'):
        state.pop(key, None)
    state = {
        k: v.float() if v.is_floating_point() else v
        for k, v in state.items()
    }
    own = model.state_dict()
    bad = [k for k, v in state.items() if k in own and own[k].shape != v.shape]
    missing = [k for k in own if k not in state]
    if bad or missing:
        raise RuntimeError(
            f'CLIP checkpoint {path!r} does not fit the architecture: '
            f'{len(missing)} missing keys (e.g. {missing[:3]}), shape '
            f'mismatches {[(k, tuple(state[k].shape)) for k in bad[:3]]}')
    model.load_state_dict(state, strict=False)
    return model


def encode_text_embeddings(clip: nn.Module, embeddings: torch.Tensor,
                           token_ids: torch.Tensor) -> torch.Tensor:
    """CLIP's text tower on token *embeddings* instead of token ids.

    Same math as ``open_clip.CLIP.encode_text`` (positional embedding,
    causal transformer, final LayerNorm, the end-of-text position, text
    projection); used by prompt learners whose context vectors are not
    tokens.

    Args:
        clip (nn.Module): an ``open_clip.CLIP``.
        embeddings (torch.Tensor): ``(K, L, d)`` prompt token embeddings.
        token_ids (torch.Tensor): ``(K, L)`` token ids of the same prompts;
            only the end-of-text position (the largest id) is read.

    Returns:
        torch.Tensor: ``(K, E)`` text features (not normalised).
    """
    x = embeddings + clip.positional_embedding.to(embeddings.dtype)
    x = clip.transformer(x, attn_mask=clip.attn_mask)
    x = clip.ln_final(x)
    x = x[torch.arange(x.shape[0], device=x.device), token_ids.argmax(-1)]
    proj = clip.text_projection
    return proj(x) if isinstance(proj, nn.Linear) else x @ proj


def freeze(module: nn.Module) -> nn.Module:
    """Turn off the gradients of every parameter of ``module``."""
    for p in module.parameters():
        p.requires_grad_(False)
    return module


def zero_shot_text_features(clip: nn.Module,
                            class_names: Sequence[str],
                            templates: Union[str, Sequence[str]] = (
                                'a photo of a {}.', ),
                            batch_size: int = 256) -> torch.Tensor:
    """Zero-shot classifier weights with prompt ensembling.

    For each class, every template is filled in (``'_'`` in a name becomes a
    space, as in the prompt learner), encoded and L2-normalised; the T
    features are averaged and normalised again (CLIP's and the NFL
    reference's recipe): ``z_k = normalize(mean_t normalize(f(t_k)))``.

    Args:
        clip (nn.Module): an ``open_clip.CLIP``.
        class_names (Sequence[str]): K names.
        templates (str | Sequence[str]): T templates with one ``{}``, or
            a named set such as ``'openai_imagenet'`` (OpenAI's 80), or a
            list mixing both; see
            :func:`mmssl.models.clip.templates.resolve_templates`.
        batch_size (int): texts encoded at once.

    Returns:
        torch.Tensor: ``(K, E)`` L2-normalised text features.
    """
    from .templates import resolve_templates
    templates = resolve_templates(templates)
    device = clip.positional_embedding.device
    length = clip.positional_embedding.shape[0]
    texts = [
        t.format(str(name).replace('_', ' ')) for name in class_names
        for t in templates
    ]
    ids = tokenize(texts, length)
    feats = torch.cat([
        F.normalize(
            clip.encode_text(ids[i:i + batch_size].to(device)).float(), dim=-1)
        for i in range(0, len(ids), batch_size)
    ])
    feats = feats.view(len(class_names), len(templates), -1).mean(1)
    return F.normalize(feats, dim=-1)


__all__.append('zero_shot_text_features')
