# Copyright (c) mmssl contributors. All rights reserved.
"""DiffFashionEditor as a registered mmengine model: built from a config,
``predict`` on packed pairs, one checkpoint for both networks."""
import os.path as osp
import sys

import pytest
import torch
from mmengine.structures import BaseDataElement

from mmssl.models.diffusion import MaskError, WeightFileError
from mmssl.registry import MODELS
from mmssl.testing.checkpoints import save_as_backbone

sys.path.insert(0, osp.dirname(osp.dirname(osp.abspath(__file__))))
from difffashion_helpers import tiny_ddpm_cfg, tiny_vit_cfg  # noqa: E402


def _cfg(**kw):
    cfg = dict(
        type='mmssl.DiffFashionEditor',
        diffusion=tiny_ddpm_cfg(16),
        vit=tiny_vit_cfg(16),
        mask_generator=dict(type='mmssl.LabelContrastMaskGenerator'),
        schedule=dict(num_steps=10, resample=2))
    cfg.update(kw)
    return cfg


def _build(**kw):
    torch.manual_seed(0)
    return MODELS.build(_cfg(**kw)).eval()


def _batch(n=2):
    g = torch.Generator().manual_seed(1)
    inputs = torch.rand(n, 2, 3, 16, 16, generator=g) * 2 - 1
    samples = []
    for i in range(n):
        gt = torch.zeros(1, 16, 16)
        gt[:, 4:12, 4:12] = 1
        ds = BaseDataElement(metainfo=dict(sample_idx=i, garment_label=i))
        ds.gt_mask = gt
        samples.append(ds)
    return inputs, samples


def test_predict_is_edit_per_sample():
    editor = _build()
    inputs, samples = _batch()
    out = editor(list(inputs), samples, mode='predict')
    for i, ds in enumerate(out):
        assert ds.pred_img.shape == (3, 16, 16)
        assert ds.pred_mask.shape == (1, 16, 16)
        assert set(ds.pred_mask.unique().tolist()) <= {0.0, 1.0}
        assert ds.pred_mask_score.shape == (16, 16)
        assert set(ds.pred_scores) == {
            'structure_selfsim', 'structure_selfsim_fg', 'appearance_cls'
        }
        # the sample's label (all others as the one set) and seed
        assert editor.mask_generator.sets_for(
            i, 4) == [[y for y in range(4) if y != i]]
        ref = editor.edit(inputs[i, :1], inputs[i, 1:], i, seed=i)
        assert torch.allclose(ds.pred_img, ref['result'][0], atol=1e-5)
        assert torch.equal(ds.pred_mask, ref['mask'][0])
    assert editor.vit_img_size == 16


def test_state_dict_holds_each_network_once():
    editor = _build()
    keys = list(editor.state_dict())
    assert keys and all(k.startswith(('diffusion.', 'vit.')) for k in keys)
    assert len(keys) == len(editor.diffusion.state_dict()) + len(
        editor.vit.state_dict())


def test_fixed_label_no_mask_and_modes():
    editor = _build(garment_label=3, use_mask=False)
    inputs, samples = _batch(1)
    ds = editor(inputs, samples)[0]
    assert torch.equal(ds.pred_mask, torch.ones(1, 16, 16))
    with pytest.raises(RuntimeError, match='training-free'):
        editor(inputs, samples, mode='loss')
    with pytest.raises(ValueError, match=r'\(B, 2, 3, H, W\)'):
        editor(inputs[:, 0], samples)
    editor = _build()
    with pytest.raises(KeyError, match='garment_label'):
        editor(inputs, [BaseDataElement()])


def test_per_set_mode_one_transfer_per_mask():
    gen_cfg = dict(
        type='mmssl.LabelContrastMaskGenerator',
        label_sets=[[1], [2, 3]],
        mode='per_set')
    editor = _build(mask_generator=gen_cfg)
    inputs, samples = _batch(1)
    ds = editor(inputs, samples)[0]
    assert ds.pred_img.shape == (2, 3, 16, 16)
    assert ds.pred_mask.shape == (2, 1, 16, 16)
    # the masks are the candidates of the two sets
    cands = editor.make_mask(inputs[0, :1], 0,
                             torch.Generator().manual_seed(0))['candidates']
    for k in range(2):
        assert torch.equal(ds.pred_mask[k, 0], cands[k][0].float())
    # garment label 1 drops set [1]: one run left
    samples[0].set_metainfo(dict(garment_label=1))
    ds = editor(inputs, samples)[0]
    assert ds.pred_img.shape == (1, 3, 16, 16)


def test_build_errors_name_the_option():
    with pytest.raises(ValueError, match='diffusion must be a config'):
        _build(diffusion=dict(unet=dict()))
    with pytest.raises(ValueError, match='unknown schedule'):
        _build(schedule=dict(num_step=3))
    with pytest.raises(TypeError, match='pipeline'):
        _build(pipeline=dict(num_steps=3))
    with pytest.raises(ValueError, match='garment_label'):
        _build(garment_label=7)
    with pytest.raises(ValueError, match='outside'):
        _build(
            mask_generator=dict(
                type='mmssl.LabelContrastMaskGenerator', label_sets=[[1, 9]]))


def test_pack_editor_checkpoint(tmp_path):
    from mmssl.models.diffusion import pack_editor_checkpoint
    torch.manual_seed(3)
    ddpm = MODELS.build(tiny_ddpm_cfg(16))
    vit = MODELS.build(tiny_vit_cfg(16))
    torch.save(dict(state_dict=ddpm.state_dict()), tmp_path / 'ddpm.pth')
    save_as_backbone(vit, str(tmp_path / 'vit.pth'))
    out = str(tmp_path / 'sub' / 'editor.pth')
    info = pack_editor_checkpoint(_cfg(), str(tmp_path / 'ddpm.pth'),
                                  str(tmp_path / 'vit.pth'), out)
    editor = _build()
    state = torch.load(out, weights_only=True)['state_dict']
    assert len(state) == info['num_keys']
    editor.load_state_dict(state, strict=True)
    for k, v in ddpm.state_dict().items():
        assert torch.equal(editor.diffusion.state_dict()[k], v)
    for k, v in vit.state_dict().items():
        assert torch.equal(editor.vit.state_dict()[k], v)
    with pytest.raises(WeightFileError, match='tools/train.py'):
        pack_editor_checkpoint(_cfg(), str(tmp_path / 'none.pth'),
                               str(tmp_path / 'vit.pth'), out)
    with pytest.raises(ValueError, match='DiffFashionEditor'):
        pack_editor_checkpoint(
            tiny_ddpm_cfg(16), str(tmp_path / 'ddpm.pth'),
            str(tmp_path / 'vit.pth'), out)


def test_empty_mask_error_or_no_mask_fallback():
    from mmssl.registry import METRICS
    never = dict(type='mmssl.LabelContrastMaskGenerator', threshold=1e6)
    inputs, samples = _batch(1)
    with pytest.raises(MaskError):
        _build(mask_generator=never)(inputs, samples)
    with pytest.raises(ValueError, match='on_empty_mask'):
        _build(on_empty_mask='skip')
    editor = _build(mask_generator=never, on_empty_mask='no_mask')
    ds = editor(inputs, samples)[0]
    assert ds.empty_mask
    assert torch.equal(ds.pred_mask, torch.zeros(1, 16, 16))
    # the transfer ran without a mask, with the sample's seed
    ref = editor.edit(inputs[0, :1], inputs[0, 1:], 0, use_mask=False, seed=0)
    assert torch.allclose(ds.pred_img, ref['result'][0], atol=1e-5)
    metric = METRICS.build(dict(type='mmssl.FashionTransferMetric'))
    metric.process(dict(inputs=inputs), [ds.to_dict()])
    res = metric.compute_metrics(metric.results)
    assert res['empty_masks'] == 1 and res['mask_iou'] == 0.0
