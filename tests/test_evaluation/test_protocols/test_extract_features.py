# Copyright (c) mmssl contributors. All rights reserved.
import pytest
import torch
import torch.nn as nn
from mmengine.dataset import default_collate
from mmpretrain.registry import MODELS
from mmpretrain.structures import DataSample
from torch.utils.data import DataLoader

from mmssl.evaluation.protocols import (build_eval_dataloader,
                                        evaluate_backbone, extract_features,
                                        infer_num_classes,
                                        load_backbone_from_checkpoint,
                                        pool_features)
from mmssl.testing import tiny_mae_cfg

MAE_CFG = tiny_mae_cfg(scope='mmpretrain')


def tiny_mae(seed=0):
    torch.manual_seed(seed)
    model = MODELS.build(MAE_CFG)
    model.init_weights()
    return model


def image_data(num=8, seed=0):
    """In-memory samples as PackInputs makes them: uint8 CHW + DataSample."""
    gen = torch.Generator().manual_seed(seed)
    imgs = torch.randint(
        0, 256, (num, 3, 32, 32), dtype=torch.uint8, generator=gen)
    return [
        dict(inputs=imgs[i], data_samples=DataSample().set_gt_label(i % 2))
        for i in range(num)
    ]


def loader(data, batch_size=3):
    return DataLoader(data, batch_size=batch_size, collate_fn=default_collate)


def test_pool_features_by_hand():
    tokens = torch.arange(2 * 3 * 2, dtype=torch.float).view(2, 3, 2)
    assert torch.equal(pool_features(tokens, 'cls', 1), tokens[:, 0])
    assert torch.equal(
        pool_features(tokens, 'mean', 1), torch.tensor([[3., 4.], [9., 10.]]))
    assert torch.equal(pool_features(tokens, 'auto', 0), tokens.mean(1))
    fmap = torch.ones(2, 4, 3, 3)
    assert torch.equal(pool_features(fmap, 'cls'), torch.ones(2, 4))
    vec = torch.randn(2, 4)
    assert pool_features(vec) is vec
    with pytest.raises(ValueError):
        pool_features(tokens, 'cls', 0)
    with pytest.raises(ValueError):
        pool_features(tokens, 'max', 1)


def test_mae_features_are_unmasked_patch_means():
    model = tiny_mae().train()
    data = image_data(7)
    feats, labels = extract_features(model, loader(data), progress=False)
    assert feats.shape == (7, 32) and labels.tolist() == [0, 1] * 3 + [0]
    assert model.training and model.backbone.training  # mode restored

    # by hand: preprocess, run the backbone unmasked, average patch tokens
    model.eval()
    with torch.no_grad():
        batch = model.data_preprocessor(default_collate(data), False)
        tokens = model.backbone(batch['inputs'], mask=None)[0]
    assert tokens.shape == (7, 17, 32)
    assert torch.allclose(feats, tokens[:, 1:].mean(1), atol=1e-5)
    cls_feats, _ = extract_features(
        model, loader(data), pool='cls', progress=False)
    assert torch.allclose(cls_feats, tokens[:, 0], atol=1e-5)
    # no random masking: a second pass gives the same features
    again, _ = extract_features(model, loader(data), progress=False)
    assert torch.equal(feats, again)


def test_bare_backbone_and_kept_eval_submodules():
    backbone = nn.Sequential(nn.Conv2d(3, 4, 3), nn.BatchNorm2d(4))
    backbone[1].eval()  # e.g. frozen norm layers stay in eval mode
    data = [
        dict(inputs=torch.randn(3, 8, 8), data_samples=torch.tensor(i))
        for i in range(5)
    ]
    feats, labels = extract_features(backbone, loader(data), progress=False)
    assert feats.shape == (5, 4) and labels.tolist() == [0, 1, 2, 3, 4]
    assert backbone.training and not backbone[1].training


def test_build_eval_dataloader_is_sequential_and_leaves_rng_alone():
    data = image_data(5)
    state = torch.get_rng_state()
    dl = build_eval_dataloader(
        dict(
            batch_size=2,
            num_workers=0,
            dataset=data,
            sampler=dict(type='DefaultSampler', shuffle=True)))
    labels = [s.gt_label.item() for b in dl for s in b['data_samples']]
    assert labels == [0, 1, 0, 1, 0]
    assert next(iter(dl))['inputs'].shape == (2, 3, 32, 32)  # stacked
    assert torch.equal(state, torch.get_rng_state())
    assert infer_num_classes(dl, torch.tensor([0, 4])) == 5


def test_load_backbone_from_checkpoint(tmp_path):
    trained = tiny_mae(seed=1)
    full = tmp_path / 'full.pth'
    torch.save(dict(meta=dict(), state_dict=trained.state_dict()), full)
    only_backbone = tmp_path / 'backbone.pth'
    torch.save(trained.backbone.state_dict(), only_backbone)
    wrong = tmp_path / 'wrong.pth'
    torch.save(dict(state_dict=dict(foo=torch.ones(1))), wrong)

    cfg = dict(model=MAE_CFG)
    for ckpt in (full, only_backbone):
        model = load_backbone_from_checkpoint(cfg, str(ckpt))
        assert not model.training
        for key, value in trained.backbone.state_dict().items():
            assert torch.equal(model.backbone.state_dict()[key], value), key
    with pytest.raises(ValueError):
        load_backbone_from_checkpoint(cfg, str(wrong))
    rand = load_backbone_from_checkpoint(cfg, None)
    assert not torch.equal(rand.backbone.cls_token, trained.backbone.cls_token)


def test_evaluate_backbone_all_protocols():
    model = tiny_mae()
    train, val = loader(image_data(8, seed=0)), loader(image_data(4, seed=1))
    before = {k: v.clone() for k, v in model.state_dict().items()}
    results = evaluate_backbone(
        model,
        train,
        val,
        protocols=('knn', 'linear', 'finetune'),
        k=3,
        finetune_cfg=dict(epochs=1),
        progress=False)
    for key in ('knn_top1', 'linear_top1', 'finetune_top1', 'std_mean',
                'std_min', 'effective_rank', 'rank_ratio'):
        assert key in results
    assert results['num_classes'] == 2
    assert 0 <= results['knn_top1'] <= 100
    # the finetune trains a copy: the model itself is unchanged
    for key, value in model.state_dict().items():
        assert torch.equal(value, before[key]), key
    with pytest.raises(ValueError):
        evaluate_backbone(model, train, val, protocols=('svm', ))
