# Copyright (c) mmssl contributors. All rights reserved.
"""DiffFashionEditor / LabelContrastMaskGenerator: registered wrappers of
mmssl.apis.DiffFashion."""
import os.path as osp
import sys

import pytest
import torch
from mmengine.structures import BaseDataElement

from mmssl.apis import DiffFashion
from mmssl.registry import MODELS

sys.path.insert(0, osp.dirname(osp.dirname(osp.abspath(__file__))))
from difffashion_helpers import tiny_ddpm_cfg, tiny_vit_cfg  # noqa: E402


def _cfg(**kw):
    cfg = dict(
        type='mmssl.DiffFashionEditor',
        diffusion=tiny_ddpm_cfg(16),
        vit=tiny_vit_cfg(16),
        mask_generator=dict(type='mmssl.LabelContrastMaskGenerator'),
        pipeline=dict(num_steps=10, resample=2))
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


def test_predict_wraps_the_api():
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
        # the same as the Python API with the sample's label and seed
        pipe = DiffFashion(
            editor.diffusion.unet,
            editor.vit,
            garment_label=i,
            mask_label_sets=[[y for y in range(4) if y != i]],
            scheduler=editor.diffusion.scheduler_cfg,
            vit_img_size=16,
            num_steps=10,
            resample=2)
        ref = pipe(inputs[i, :1], inputs[i, 1:], seed=i)
        assert torch.allclose(ds.pred_img, ref['result'][0], atol=1e-5)
        assert torch.equal(ds.pred_mask, ref['mask'][0])


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
    pipe = editor.pipe
    cands = pipe.make_mask(inputs[0, :1],
                           torch.Generator().manual_seed(0))['candidates']
    for k in range(2):
        assert torch.equal(ds.pred_mask[k, 0], cands[k][0].float())
    # garment label 1 drops set [1]: one run left
    samples[0].set_metainfo(dict(garment_label=1))
    ds = editor(inputs, samples)[0]
    assert ds.pred_img.shape == (1, 3, 16, 16)


def test_mask_generator_settings_and_errors():
    gen = MODELS.build(
        dict(
            type='mmssl.LabelContrastMaskGenerator', label_sets=[[0, 1], [2]]))
    assert gen.sets_for(1, 4) == [[0], [2]]
    assert gen.sets_for(2, 4) == [[0, 1]]
    assert MODELS.build(dict(
        type='mmssl.LabelContrastMaskGenerator')).sets_for(1, 4) == [[0, 2, 3]]
    with pytest.raises(ValueError, match='no mask label set'):
        MODELS.build(
            dict(type='mmssl.LabelContrastMaskGenerator',
                 label_sets=[[2]])).sets_for(2, 4)
    with pytest.raises(ValueError, match='mode'):
        MODELS.build(dict(type='mmssl.LabelContrastMaskGenerator', mode='max'))
    with pytest.raises(ValueError, match='draws'):
        MODELS.build(dict(type='mmssl.LabelContrastMaskGenerator', draws=0))
    with pytest.raises(ValueError, match='unknown pipeline'):
        _build(pipeline=dict(num_step=3))
    with pytest.raises(ValueError, match='mask_generator'):
        _build(pipeline=dict(mask_threshold=0.))
    with pytest.raises(ValueError, match='garment_label'):
        _build(garment_label=7)


def test_pack_editor_checkpoint(tmp_path):
    from mmssl.models.diffusion import pack_editor_checkpoint
    torch.manual_seed(3)
    ddpm = MODELS.build(tiny_ddpm_cfg(16))
    vit = MODELS.build(tiny_vit_cfg(16))
    torch.save(dict(state_dict=ddpm.state_dict()), tmp_path / 'ddpm.pth')
    torch.save(
        dict(state_dict={
            f'backbone.{k}': v
            for k, v in vit.state_dict().items()
        }), tmp_path / 'vit.pth')
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
    from mmssl.apis import WeightFileError
    with pytest.raises(WeightFileError, match='tools/train.py'):
        pack_editor_checkpoint(_cfg(), str(tmp_path / 'none.pth'),
                               str(tmp_path / 'vit.pth'), out)
    with pytest.raises(ValueError, match='DiffFashionEditor'):
        pack_editor_checkpoint(
            tiny_ddpm_cfg(16), str(tmp_path / 'ddpm.pth'),
            str(tmp_path / 'vit.pth'), out)


def test_empty_mask_error_or_no_mask_fallback():
    from mmssl.apis import MaskError
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
    ref = editor.pipe(inputs[0, :1], inputs[0, 1:], use_mask=False, seed=0)
    assert torch.allclose(ds.pred_img, ref['result'][0], atol=1e-5)
    metric = METRICS.build(dict(type='mmssl.FashionTransferMetric'))
    metric.process(dict(inputs=inputs), [ds.to_dict()])
    res = metric.compute_metrics(metric.results)
    assert res['empty_masks'] == 1 and res['mask_iou'] == 0.0
