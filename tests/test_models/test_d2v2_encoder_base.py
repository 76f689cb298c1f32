# Copyright (c) mmssl contributors. All rights reserved.
"""What the three data2vec 2.0 encoders share through D2V2EncoderBase: the
arch names and dicts, and the student's clone layout and mask check."""
import pytest
import torch

from mmssl.models.backbones import (D2V2AudioEncoder, D2V2EncoderBase,
                                    D2V2TextEncoder, D2V2ViT)

ARCH = dict(embed_dims=16, num_layers=1, num_heads=2, feedforward_channels=32)


def _vit():
    return D2V2ViT(arch=ARCH, img_size=16, patch_size=8)


def _text():
    return D2V2TextEncoder(arch=ARCH, vocab_size=20, max_position=8)


def _audio():
    return D2V2AudioEncoder(
        arch=ARCH,
        feature_encoder_spec=[(8, 10, 5)] + [(8, 3, 2)] * 2,
        conv_pos_groups=2)


BUILDERS = dict(vit=_vit, text=_text, audio=_audio)


@pytest.mark.parametrize('name', sorted(BUILDERS))
def test_arch_names_in_any_case_give_a_copy_of_the_zoo_entry(name):
    enc = BUILDERS[name]()
    assert isinstance(enc, D2V2EncoderBase)
    zoo = type(enc).arch_zoo
    for spelling in ('base', 'BASE', 'Base'):
        cfg = enc._parse_arch(spelling)
        assert cfg == zoo['base']
        cfg['embed_dims'] = -1  # a copy: the class's table is untouched
        assert zoo['base']['embed_dims'] == 768
    with pytest.raises(
            ValueError,
            match=r"arch='giant' is unknown; choose "
            r"from \[.*'base'.*\] or give a dict"):
        enc._parse_arch('giant')
    given = dict(ARCH, extra=1)
    cfg = enc._parse_arch(given)
    assert cfg == given and cfg is not given
    for bad in (dict(embed_dims=16, num_layers=1, num_heads=2), [16, 1, 2]):
        with pytest.raises(
                ValueError,
                match=r"needs the keys \['embed_dims', 'feedforward_channels'"
                r", 'num_heads', 'num_layers'\]"):
            enc._parse_arch(bad)


def test_clone_tokens_repeats_each_sample_for_its_adjacent_clones():
    enc = _vit()
    x = torch.randn(2, 3, 16, 16)
    tokens = torch.arange(2 * 4 * 16, dtype=torch.float).view(2, 4, 16)
    mask = torch.zeros(6, 2, 2, dtype=torch.uint8)  # (B * M, *layout)
    mask[:, 0, 0] = 1
    out, flat = enc._clone_tokens(x, mask, 3, tokens)
    assert out.shape == (6, 4, 16)
    for row in range(6):
        assert torch.equal(out[row], tokens[row // 3])
    assert flat.dtype == torch.bool and flat.shape == (6, 4)
    assert torch.equal(flat[:, 0], torch.ones(6, dtype=torch.bool))
    # without tokens, the encoder embeds x itself
    embedded, _ = enc.embed(x)
    out, _ = enc._clone_tokens(x, mask, 3)
    assert torch.equal(out, embedded.repeat_interleave(3, dim=0))
    # one clone: the tokens themselves
    out, _ = enc._clone_tokens(x, mask[:2], 1, tokens)
    assert out is tokens


@pytest.mark.parametrize('name,unit,n', [('vit', 'tokens', 4),
                                         ('audio', 'frames', 19)])
def test_a_mask_that_does_not_fit_names_samples_clones_and_unit(name, unit, n):
    enc = BUILDERS[name]()
    x = torch.randn(2, 3, 16, 16) if name == 'vit' else torch.randn(2, 400)
    tokens, _ = enc.embed(x)
    assert tokens.shape[1] == n
    mask = torch.zeros(4, n, dtype=torch.bool)  # 2 clones, 3 asked for
    with pytest.raises(
            ValueError,
            match=rf'mask of shape \(4, {n}\) does not fit 2 samples x 3 '
            rf'clones of {n} {unit}$'):
        enc(x, mask=mask, num_clones=3)
