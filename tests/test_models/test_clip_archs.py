# Copyright (c) mmssl contributors. All rights reserved.
"""The CLIP architectures: OpenAI's are open_clip's configs of the released
weights (QuickGELU), the tiny ones are pinned by their parameter counts; a
checkpoint of another architecture does not fit."""
import open_clip
import pytest
import torch

from mmssl.models.clip.clip_model import (CLIP_ARCHS, build_clip,
                                          load_clip_checkpoint)


def _plain(cfg):
    """A config with lists as tuples and unset (None) fields dropped."""
    return {
        k: tuple(v) if isinstance(v, list) else v
        for k, v in cfg.items() if v is not None
    }


@pytest.mark.parametrize('name, reference',
                         [('RN50', 'RN50-quickgelu'),
                          ('ViT-B/16', 'ViT-B-16-quickgelu')])
def test_openai_archs_are_those_of_the_released_weights(name, reference):
    ref = open_clip.get_model_config(reference)
    arch = CLIP_ARCHS[name]
    assert arch['embed_dim'] == ref['embed_dim']
    assert arch['quick_gelu'] is ref['quick_gelu'] is True
    assert _plain(arch['vision']) == _plain(ref['vision_cfg'])
    text = dict(ref['text_cfg'])
    assert text.pop('vocab_size') == 49408  # open_clip's default
    assert arch['text'] == text


@pytest.mark.parametrize('name, params, image_heads',
                         [('tiny-rn', 4595673, 8), ('tiny-vit', 3429441, 2)])
def test_tiny_archs(name, params, image_heads):
    """64-d embeddings of 32 px images and 24-token texts, plain GELU; the
    parameter count pins every width and depth (the token embedding,
    49408 x 64, is most of it)."""
    model = build_clip(name)
    assert sum(p.numel() for p in model.parameters()) == params
    assert model.context_length == 24
    assert tuple(model.text_projection.shape) == (64, 64)
    assert type(model.transformer.resblocks[0].mlp.gelu).__name__ == 'GELU'
    # attention heads: 64 (ResNet pooling) or 32 (ViT) channels wide in the
    # image tower, 2 in the text tower
    visual = model.visual
    pool = getattr(visual, 'attnpool', None)
    heads = pool.num_heads if pool is not None else \
        visual.transformer.resblocks[0].attn.num_heads
    assert heads == image_heads
    assert model.transformer.resblocks[0].attn.num_heads == 2


def test_an_arch_dict_without_quick_gelu_uses_gelu():
    arch = {
        k: v
        for k, v in CLIP_ARCHS['tiny-rn'].items() if k != 'quick_gelu'
    }
    model = build_clip(arch)
    assert type(model.transformer.resblocks[0].mlp.gelu).__name__ == 'GELU'


def test_a_checkpoint_with_a_missing_key_or_another_shape_does_not_fit(
        tmp_path):
    model = build_clip('tiny-vit')
    state = model.state_dict()
    missing = dict(state)
    missing.pop('ln_final.weight')
    reshaped = dict(state, text_projection=torch.zeros(64, 32))
    for name, ckpt, found in (('missing', missing, '1 missing keys'),
                              ('reshaped', reshaped, 'text_projection')):
        path = str(tmp_path / f'{name}.pth')
        torch.save(
            dict(state_dict={
                f'clip.{k}': v
                for k, v in ckpt.items()
            }), path)
        with pytest.raises(RuntimeError, match=f'does not fit.*{found}'):
            load_clip_checkpoint(build_clip('tiny-vit'), path)
