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


def test_num_extra_tokens_and_default_pool():
    from mmssl.evaluation.protocols import num_extra_tokens

    class WithCls(nn.Module):
        cls_token = nn.Parameter(torch.zeros(1, 1, 2))

    class Distilled(WithCls):
        num_extra_tokens = 2

    assert num_extra_tokens(WithCls()) == 1
    assert num_extra_tokens(Distilled()) == 2
    assert num_extra_tokens(nn.Linear(2, 2)) == 0
    tokens = torch.arange(12, dtype=torch.float).view(2, 3, 2)
    assert torch.equal(pool_features(tokens), tokens.mean(1))


def test_preprocess_images():
    from mmssl.evaluation.protocols import preprocess_images
    images = torch.randint(0, 256, (2, 3, 32, 32), dtype=torch.uint8)
    bare = preprocess_images(nn.Linear(2, 2), images)
    assert bare.dtype == torch.float32 and torch.equal(bare, images.float())
    model = tiny_mae()
    pre = model.data_preprocessor  # BGR -> RGB, then standardised
    expected = (images.flip(1).float() - pre.mean) / pre.std
    torch.testing.assert_close(preprocess_images(model, images), expected)


def test_labels_and_inputs_of_a_batch():
    from mmssl.evaluation.protocols.features import _batch_inputs, _labels_of
    assert _labels_of([]).shape == (0, ) and _labels_of([]).dtype == \
        torch.long
    assert _labels_of(torch.tensor([[1], [0]])).tolist() == [1, 0]
    assert _labels_of([DataSample().set_gt_label(3), 2]).tolist() == [3, 2]
    with pytest.raises(
            ValueError, match=r'one label per image, got '
            r'gt_label=\[1, 2\]'):
        _labels_of([DataSample().set_gt_label([1, 2])])
    views = [torch.zeros(2, 3, 4, 4), torch.ones(2, 3, 4, 4)]
    assert _batch_inputs(views) is views[0]  # the first view
    stacked = _batch_inputs([torch.zeros(3, 4, 4), torch.ones(3, 4, 4)])
    assert stacked.shape == (2, 3, 4, 4) and stacked[1].eq(1).all()


def test_extract_features_device_and_progress(monkeypatch):
    import io

    from mmengine.utils import ProgressBar

    from mmssl.evaluation.protocols import features
    moved, bars = [], []

    class Bar(ProgressBar):

        def __init__(self, task_num):
            super().__init__(task_num, file=io.StringIO())
            bars.append(self)

    class Backbone(nn.Linear):

        def to(self, *args, **kwargs):
            moved.append(args)
            return super().to(*args, **kwargs)

    monkeypatch.setattr(features, 'ProgressBar', Bar)
    data = [dict(inputs=torch.ones(4), data_samples=1)] * 3
    feats, labels = extract_features(
        Backbone(4, 2), loader(data), device='cpu', progress=False)
    assert moved == [('cpu', )] and feats.shape == (3, 2) and not bars
    extract_features(Backbone(4, 2), loader(data))
    assert moved == [('cpu', )]  # device None: not moved
    assert len(bars) == 1 and bars[0].completed == 3  # a progress bar


def test_infer_num_classes():
    data = [dict(inputs=torch.ones(4), data_samples=1)] * 2
    assert infer_num_classes(torch.tensor([0, 4]), torch.tensor([2])) == 5
    assert infer_num_classes(loader(data), torch.tensor([0])) == 1
    assert infer_num_classes(torch.tensor([0, 0])) == 1
    for empty in ((), (torch.zeros(0, dtype=torch.long), loader(data))):
        with pytest.raises(ValueError, match='cannot infer'):
            infer_num_classes(*empty)


def test_partial_backbone_checkpoint(tmp_path):
    """Backbone weights missing from a checkpoint are reported (and keep
    their initialisation), or refused with strict=True."""
    trained = tiny_mae(seed=1)
    state = {
        f'backbone.{k}': v
        for k, v in trained.backbone.state_dict().items() if k != 'cls_token'
    }
    path = str(tmp_path / 'partial.pth')
    torch.save(dict(state_dict=state), path)
    cfg = dict(model=MAE_CFG)
    model = load_backbone_from_checkpoint(cfg, path)
    assert torch.equal(model.backbone.ln1.weight, trained.backbone.ln1.weight)
    assert not torch.equal(model.backbone.cls_token,
                           trained.backbone.cls_token)
    with pytest.raises(
            ValueError, match=r'lacks backbone weights: '
            r"\['cls_token'\]"):
        load_backbone_from_checkpoint(cfg, path, strict=True)


def test_evaluate_backbone_passes_its_arguments(monkeypatch):
    """The kNN defaults (k 20, temperature 0.07), finetune_cfg and the
    seed reach the protocols; progress bars are on by default."""
    from mmssl.evaluation.protocols import frozen
    calls = {}

    def extract(model, loader, pool, device, progress):
        calls.setdefault('progress', []).append(progress)
        return torch.randn(4, 3), torch.tensor([0, 1, 0, 1])

    def knn(*args):
        calls['knn'] = args[-2:]
        return 50.0

    def finetune(*args, **kwargs):
        calls['finetune'] = kwargs
        return dict(top1=75.0)

    monkeypatch.setattr(frozen, 'extract_features', extract)
    monkeypatch.setattr(frozen, 'knn_accuracy', knn)
    monkeypatch.setattr(frozen, 'finetune_backbone', finetune)
    out = evaluate_backbone(
        None,
        None,
        None,
        protocols=('knn', 'finetune'),
        finetune_cfg=dict(epochs=2, lr=0.5),
        seed=3)
    assert (out['knn_top1'], out['finetune_top1']) == (50.0, 75.0)
    assert calls['knn'] == (20, 0.07)
    assert calls['finetune'] == dict(
        pool='auto', seed=3, device=None, epochs=2, lr=0.5)
    assert calls['progress'] == [True, True]
    evaluate_backbone(None, None, None, protocols=('finetune', ))
    assert calls['finetune']['seed'] == 0


def test_pool_and_forward_edge_cases():
    """Only extra tokens: nothing to average; a list of outputs: the last
    is pooled; a forward without a signature gets no mask argument."""
    from mmssl.evaluation.protocols import forward_backbone
    with pytest.raises(
            ValueError,
            match='no patch tokens to average: 1 '
            'tokens, 1 of them extra'):
        pool_features(torch.ones(2, 1, 3), 'mean', 1)

    class TwoOutputs(nn.Module):

        def forward(self, x, mask='given'):
            assert mask is None  # the unmasked path
            return (x * 0, x + 1)

    x = torch.ones(2, 3)
    assert torch.equal(forward_backbone(TwoOutputs(), x), x + 1)
    relu = nn.Module()
    relu.forward = torch.relu  # a builtin: inspect finds no signature
    assert torch.equal(forward_backbone(relu, -x), torch.zeros(2, 3))


def test_preprocessor_runs_in_test_mode():
    """preprocess_images and extract_features call the model's data
    preprocessor with training=False (no batch augmentation)."""
    from mmssl.evaluation.protocols import preprocess_images
    model = tiny_mae()
    flags = []
    model.data_preprocessor.register_forward_pre_hook(
        lambda module, args: flags.append(args[1]))
    preprocess_images(model, torch.zeros(2, 3, 32, 32, dtype=torch.uint8))
    extract_features(model, loader(image_data(4)), progress=False)
    assert flags == [False, False, False]


def test_bare_model_config(tmp_path):
    """A config that is the model config itself (no ``model`` key)."""
    model = load_backbone_from_checkpoint(MAE_CFG, None)
    assert type(model.backbone).__name__ == 'MAEViT'
