# Copyright (c) mmssl contributors. All rights reserved.
"""MMSSLFeatureExtractor: mmpretrain's FeatureExtractor API on mmssl
pretraining configs, which have no test pipeline."""
import os.path as osp

import numpy as np
import pytest
import torch
from mmengine.config import Config
from mmengine.dataset import Compose
from mmengine.registry import MODELS, TRANSFORMS, DefaultScope

from mmssl.apis.feature_extractor import (MMSSLFeatureExtractor,
                                          derive_test_pipeline)
from mmssl.testing import tiny_mae_cfg, tiny_simclr_cfg, write_random_images

ROOT = osp.join(osp.dirname(__file__), '..', '..')
MAE_TINY = osp.join(ROOT, 'configs', 'mae',
                    'mae_vit-tiny-p8_1xb64-coslr-30e_embedded.py')


def _simclr_cfg():
    """Tiny SimCLR with a train pipeline (its crop names the image size)."""
    return dict(
        default_scope='mmpretrain',
        model=tiny_simclr_cfg(),
        train_dataloader=dict(
            dataset=dict(pipeline=[
                dict(type='LoadImageFromFile'),
                dict(type='RandomResizedCrop', scale=32),
                dict(type='PackInputs')
            ])))


def _mae_cfg():
    return dict(default_scope='mmpretrain', model=tiny_mae_cfg(img_size=32))


def _trained_checkpoint(cfg: dict, path: str) -> torch.nn.Module:
    """A freshly built model with perturbed weights (so that features tell
    them from a new initialisation), saved as a Runner would (with
    ``meta.cfg``)."""
    with DefaultScope.overwrite_default_scope('mmpretrain'):
        model = MODELS.build(cfg['model'])
    model.init_weights()
    g = torch.Generator().manual_seed(1)
    with torch.no_grad():
        for p in model.parameters():
            p.add_(torch.randn(p.shape, generator=g) * 0.05)
    torch.save(
        dict(
            state_dict=model.state_dict(),
            meta=dict(cfg=Config(cfg).pretty_text)), path)
    return model.eval()


def _expected(model, images):
    """The backbone on the model's own preprocessing of (N, H, W, 3) BGR
    uint8 images, unmasked."""
    batch = torch.from_numpy(np.stack(images)).permute(0, 3, 1, 2)
    with torch.no_grad():
        inputs = model.data_preprocessor(
            dict(inputs=batch, data_samples=None), False)['inputs']
        outs = model.backbone(
            inputs, mask=None) if hasattr(
                model.backbone, 'mask_ratio') else model.backbone(inputs)
    return inputs, outs


def _mean_patch_tokens(tokens):  # (1 + L, C): CLS first
    return tokens[1:].mean(0)


def _global_average(feature_map):  # (C, h, w)
    return feature_map.mean((1, 2))


@pytest.mark.parametrize('make_cfg,pool', [(_mae_cfg, _mean_patch_tokens),
                                           (_simclr_cfg, _global_average)])
def test_features_equal_the_backbone_on_the_same_input(tmp_path, make_cfg,
                                                       pool):
    cfg = make_cfg()
    ckpt = str(tmp_path / 'epoch_1.pth')
    model = _trained_checkpoint(cfg, ckpt)
    rng = np.random.RandomState(0)
    images = [
        rng.randint(0, 255, (32, 32, 3), dtype=np.uint8) for _ in range(3)
    ]
    # crop_pct=1 at the training size: the derived pipeline keeps the image
    extractor = MMSSLFeatureExtractor(cfg, ckpt, crop_pct=1.0)
    feats = extractor(images, batch_size=2)
    assert len(feats) == 3
    _, outs = _expected(model, images)
    for i, feat in enumerate(feats):
        assert len(feat['stages']) == len(outs)
        for got, want in zip(feat['stages'], outs):
            torch.testing.assert_close(got, want[i], atol=1e-5, rtol=1e-5)
        torch.testing.assert_close(
            feat['pooled'], pool(outs[-1][i]), atol=1e-5, rtol=1e-5)
    # the checkpoint was loaded: a new initialisation gives other features
    fresh = MMSSLFeatureExtractor(cfg, crop_pct=1.0)(images[:1])[0]
    assert not torch.allclose(fresh['pooled'], feats[0]['pooled'])


def test_checkpoint_alone_and_other_image_sizes(tmp_path):
    """The config comes from the checkpoint's meta; images of another size
    go through the derived ResizeEdge + CenterCrop (as mmpretrain tests
    ImageNet models) before the same backbone."""
    cfg = _mae_cfg()
    ckpt = str(tmp_path / 'epoch_1.pth')
    model = _trained_checkpoint(cfg, ckpt)
    extractor = MMSSLFeatureExtractor(ckpt)
    assert [s['type'] for s in extractor.pipeline_cfg] == [
        'mmpretrain.ResizeEdge', 'mmpretrain.CenterCrop',
        'mmpretrain.PackInputs'
    ]
    assert extractor.pipeline_cfg[0]['scale'] == round(32 / 0.875)
    rng = np.random.RandomState(1)
    images = [
        rng.randint(0, 255, (40, 52, 3), dtype=np.uint8) for _ in range(2)
    ]
    with DefaultScope.overwrite_default_scope('mmpretrain'):
        pipe = Compose([TRANSFORMS.build(t) for t in extractor.pipeline_cfg])
    cropped = [
        pipe(dict(img=img))['inputs'].permute(1, 2, 0).numpy()
        for img in images
    ]
    assert cropped[0].shape == (32, 32, 3)
    _, outs = _expected(model, cropped)
    feats = extractor(images, batch_size=2)
    for i in range(2):
        torch.testing.assert_close(
            feats[i]['stages'][-1], outs[-1][i], atol=1e-5, rtol=1e-5)


def test_real_config_on_a_folder_of_images(tmp_path):
    """An mmssl pretraining config (no test pipeline) on image files."""
    folder = tmp_path / 'imgs'
    folder.mkdir()
    write_random_images(str(folder), num=3, size=70)
    extractor = MMSSLFeatureExtractor(MAE_TINY)
    assert extractor.pipeline_cfg[1] == dict(
        type='mmpretrain.CenterCrop', crop_size=64)
    feats = extractor(str(folder), batch_size=2)
    assert len(feats) == 3
    assert feats[0]['pooled'].shape == (192, )
    assert feats[0]['stages'][-1].shape == (1 + 64, 192)
    one = extractor(str(folder / '001.png'))[0]
    torch.testing.assert_close(one['pooled'], feats[1]['pooled'])


def test_config_test_pipeline_is_used_without_loading_and_masks():
    cfg = Config(
        dict(
            model=tiny_mae_cfg(),
            test_dataloader=dict(
                dataset=dict(pipeline=[
                    dict(type='LoadImageFromFile'),
                    dict(type='Resize', scale=32),
                    dict(type='mmssl.RandomMaskGenerator', input_size=4),
                    dict(type='PackInputs', algorithm_keys=['mask'])
                ]))))
    assert derive_test_pipeline(cfg) == [
        dict(type='Resize', scale=32),
        dict(type='PackInputs')
    ]
    # img_size wins over the config's pipeline
    assert derive_test_pipeline(
        cfg, img_size=48)[1] == dict(
            type='mmpretrain.CenterCrop', crop_size=48)


def test_clear_errors(tmp_path):
    with pytest.raises(ValueError, match='img_size'):
        MMSSLFeatureExtractor(
            dict(default_scope='mmpretrain', model=tiny_simclr_cfg()))
    bare = str(tmp_path / 'bare.pth')
    torch.save(dict(state_dict={}), bare)
    with pytest.raises(ValueError, match='CONFIG, CHECKPOINT'):
        MMSSLFeatureExtractor(bare)
    with pytest.raises(FileNotFoundError):
        MMSSLFeatureExtractor(str(tmp_path / 'missing.py'))
    with pytest.raises(ValueError, match='pool'):
        MMSSLFeatureExtractor(_mae_cfg(), pool='max')


def test_several_stages_pool_the_last_one():
    """A backbone with two outputs: both are returned per image, the pooled
    feature is the global average of the last; one image a batch by
    default; a config without a default scope is read in mmpretrain's."""
    model = tiny_simclr_cfg()
    model['backbone']['out_indices'] = (2, 3)
    extractor = MMSSLFeatureExtractor(
        dict(model=model), img_size=32, crop_pct=1.0)
    assert extractor.scope == 'mmpretrain'
    images = [
        np.random.RandomState(i).randint(0, 255, (32, 32, 3), np.uint8)
        for i in range(3)
    ]
    batches = list(extractor.preprocess(images))
    assert [b['inputs'].shape[0] for b in batches] == [1, 1, 1]
    feat = extractor(images[:1])[0]
    assert [s.shape for s in feat['stages']] == [(32, 2, 2), (64, 1, 1)]
    torch.testing.assert_close(feat['pooled'], feat['stages'][1].mean((1, 2)))


@pytest.mark.parametrize('crop_pct', [0., 1.5])
def test_crop_fraction_outside_0_to_1_is_refused(crop_pct):
    with pytest.raises(ValueError, match='crop_pct'):
        derive_test_pipeline(Config(_mae_cfg()), crop_pct=crop_pct)
