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


#: two label sets, one transfer per set
PER_SET = dict(
    type='mmssl.LabelContrastMaskGenerator',
    label_sets=[[1], [2, 3]],
    mode='per_set')


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


def test_frozen_networks_and_vit_input():
    """Both networks are frozen; the ViT sees its own input size (its
    patch embedding's, mmpretrain's 224 when the config names none) and
    the ImageNet normalisation unless ``guidance`` sets others."""
    editor = _build()
    assert not any(p.requires_grad for p in editor.parameters())
    assert not editor.diffusion.training
    ext = editor.extractor
    assert ext.img_size == editor.vit_img_size == 16
    torch.testing.assert_close(ext.mean.flatten(),
                               torch.tensor([0.485, 0.456, 0.406]))
    torch.testing.assert_close(ext.std.flatten(),
                               torch.tensor([0.229, 0.224, 0.225]))
    vit = tiny_vit_cfg(16)
    del vit['img_size']
    vit['patch_size'] = 56
    editor = _build(
        vit=vit, guidance=dict(mean=(0.5, 0.5, 0.5), std=(0.25, 0.5, 1.)))
    assert editor.vit_img_size == editor.extractor.img_size == 224
    torch.testing.assert_close(editor.extractor.mean.flatten(),
                               torch.full((3, ), 0.5))
    torch.testing.assert_close(editor.extractor.std.flatten(),
                               torch.tensor([0.25, 0.5, 1.]))
    assert _build(guidance=dict(img_size=32)).extractor.img_size == 32


def test_fixed_label_no_mask_and_modes():
    editor = _build(garment_label=3, use_mask=False)
    inputs, samples = _batch(1)
    ds = editor(inputs, samples)[0]
    assert torch.equal(ds.pred_mask, torch.ones(1, 16, 16))
    with pytest.raises(RuntimeError, match='training-free'):
        editor(inputs, samples, mode='loss')
    for bad in (inputs[:, 0], torch.cat([inputs, inputs[:, :1]], 1)):
        with pytest.raises(ValueError, match=r'\(B, 2, 3, H, W\)'):
            editor(bad, samples)
    editor = _build()
    with pytest.raises(KeyError, match='garment_label'):
        editor(inputs, [BaseDataElement()])


def test_per_set_mode_one_transfer_per_mask():
    editor = _build(mask_generator=PER_SET)
    inputs, samples = _batch(1)
    ds = editor(inputs, samples)[0]
    assert ds.pred_img.shape == (2, 3, 16, 16)
    assert ds.pred_mask.shape == (2, 1, 16, 16)
    # the masks are the candidates of the two sets
    cands = editor.make_mask(inputs[0, :1], 0,
                             torch.Generator().manual_seed(0))['candidates']
    for k in range(2):
        assert torch.equal(ds.pred_mask[k, 0], cands[k][0].float())
    # the scores are the means over the runs
    from mmssl.evaluation.functional.fashion import fashion_metrics
    runs = [
        fashion_metrics(ds.pred_img[k:k + 1], inputs[:1, 0], inputs[:1, 1],
                        ds.pred_mask[k:k + 1], editor.extractor,
                        samples[0].gt_mask[None]) for k in range(2)
    ]
    assert runs[0]['appearance_cls'] != runs[1]['appearance_cls']
    for key, value in ds.pred_scores.items():
        assert value == pytest.approx((runs[0][key] + runs[1][key]) / 2)
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
    for bad in (4, -1):  # 4 classes
        with pytest.raises(ValueError, match=rf'garment_label {bad} outside'):
            _build(garment_label=bad)
    assert _build(garment_label=3).garment_label == 3
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
    # packing again into the same folder overwrites
    pack_editor_checkpoint(_cfg(), str(tmp_path / 'ddpm.pth'),
                           str(tmp_path / 'vit.pth'), out)
    # a diffusion checkpoint that lacks a weight is refused
    partial = dict(ddpm.state_dict())
    partial.pop(next(iter(partial)))
    torch.save(dict(state_dict=partial), tmp_path / 'partial.pth')
    with pytest.raises(
            ValueError,
            match=r'(?s)partial.pth do not fit.*model.diffusion.*conv_in'):
        pack_editor_checkpoint(_cfg(), str(tmp_path / 'partial.pth'),
                               str(tmp_path / 'vit.pth'), out)


def test_vit_weights_missing_extra_and_mismatched(tmp_path):
    """ViT weights: extra entries are ignored, a missing ViT weight is
    refused by name (a classification head may be absent), mismatched
    shapes are listed (three of them, and their count)."""
    from mmssl.models.diffusion import load_vit_weights
    torch.manual_seed(0)
    vit = MODELS.build(tiny_vit_cfg(16))
    state = dict(vit.state_dict())
    extra = dict(state, **{'decoder.weight': torch.ones(2)})
    torch.save(dict(state_dict=extra), tmp_path / 'extra.pth')
    other = MODELS.build(tiny_vit_cfg(16))
    load_vit_weights(other, str(tmp_path / 'extra.pth'))
    for k, v in state.items():
        assert torch.equal(other.state_dict()[k], v)
    state.pop('ln1.weight')
    torch.save(dict(state_dict=state), tmp_path / 'missing.pth')
    with pytest.raises(KeyError, match=r"lacks ViT weights \['ln1.weight'\]"):
        load_vit_weights(other, str(tmp_path / 'missing.pth'))
    wide = MODELS.build(
        dict(
            tiny_vit_cfg(16),
            arch=dict(
                embed_dims=48,
                num_layers=2,
                num_heads=2,
                feedforward_channels=64)))
    with pytest.raises(ValueError) as err:
        load_vit_weights(wide, str(tmp_path / 'extra.pth'))
    message = str(err.value)
    total = sum(1 for k, v in vit.state_dict().items()
                if v.shape != wide.state_dict()[k].shape)
    assert message.count('in the file') == 3 and total > 3
    assert message.endswith(f'({total} in all)')


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


def test_eps_splits_a_learned_variance_output():
    """A 6-channel UNet (guided-diffusion's learn_sigma): the first three
    channels are the noise estimate, the last three the variance output;
    the UNet sees the step's training timestep and the labels."""
    from types import SimpleNamespace

    class SixChannels(torch.nn.Module):

        def __init__(self):
            super().__init__()
            self.config = SimpleNamespace(num_class_embeds=4, sample_size=16)
            self.seen = None

        def forward(self, x, t, class_labels):
            self.seen = (t, class_labels)
            out = torch.cat([x, 10 + x],
                            1) * (1 + class_labels.view(-1, 1, 1, 1))
            return SimpleNamespace(sample=out)

    editor = _build()
    editor.diffusion.unet = SixChannels()
    x = torch.rand(2, 3, 16, 16)
    eps, var = editor.eps(x, 3, torch.tensor([1, 2]))
    scale = torch.tensor([2., 3.]).view(2, 1, 1, 1)
    torch.testing.assert_close(eps, x * scale)
    torch.testing.assert_close(var, (10 + x) * scale)
    t, y = editor.diffusion.unet.seen
    assert t.tolist() == [editor.schedule.t_at(3)] * 2 and y.tolist() == [1, 2]
    eps, var = editor.eps(x, 3, 0)
    torch.testing.assert_close(eps, x)
    assert editor.diffusion.unet.seen[1].tolist() == [0, 0]


def test_seeds_of_predict_and_edit():
    """``predict`` seeds sample ``i`` with ``seed + sample_idx`` (0 without
    one); ``edit`` defaults to seed 0."""
    editor = _build(seed=5, use_mask=False)
    inputs, _ = _batch(1)
    garment, reference = inputs[:, 0], inputs[:, 1]
    ds = editor(inputs, [BaseDataElement(metainfo=dict(garment_label=2))])[0]
    ref = editor.edit(garment, reference, 2, seed=5)
    torch.testing.assert_close(ds.pred_img, ref['result'][0])
    other = editor.edit(garment, reference, 2, seed=6)['result'][0]
    assert not torch.allclose(ds.pred_img, other)
    torch.testing.assert_close(
        editor.edit(garment, reference, 2)['result'],
        editor.edit(garment, reference, 2, seed=0)['result'])
    assert not torch.allclose(
        editor.edit(garment, reference, 2)['result'],
        editor.edit(garment, reference, 2, seed=1)['result'])


def test_per_set_masks_of_a_batch():
    editor = _build(mask_generator=PER_SET)
    inputs, _ = _batch(2)
    out = editor.edit(inputs[:, 0], inputs[:, 1], 0, seed=0)
    for k, run in enumerate(out['per_set']):
        assert run['mask'].shape == (2, 1, 16, 16)
        assert run['result'].shape == (2, 3, 16, 16)
        assert torch.equal(run['mask'][:, 0], out['candidates'][k].float())
