# Copyright (c) mmssl contributors. All rights reserved.
"""LabelQualityHook: the GMM quality written into the model's buffer, the
clean/noisy analysis and plots, the GMM error, and exact resume of a tiny
ANM run across quality refreshes (quality and loss history included)."""
import os
import os.path as osp
import pickle
from types import SimpleNamespace

import numpy as np
import pytest
import torch
from mmengine.config import Config
from mmengine.logging import MessageHub, MMLogger
from mmengine.model import BaseModel

import mmssl  # noqa: F401
from mmssl.datasets import NOISY_META_KEYS
from mmssl.engine.hooks import LabelQualityHook
from mmssl.testing import (assert_resume_equals_straight,
                           tiny_pretrain_runner_cfg)

SIDE = 16
C = 3


def write_cifar_format(root, n=30, side=SIDE, seed=0):
    """A CIFAR-format folder whose images hold their class as brightness
    (class c: pixels around 40 + 80 c), for mmssl.CIFARFormatDataset."""
    rng = np.random.RandomState(seed)
    folder = osp.join(root, 'cifar-10-batches-py')
    os.makedirs(folder, exist_ok=True)
    labels = np.arange(n) % C
    imgs = (40 + 80 * labels[:, None] +
            rng.randint(-15, 16, (n, 3 * side * side))).clip(0, 255)
    parts = np.array_split(np.arange(n), 5)
    for k, idx in enumerate(parts, 1):
        with open(osp.join(folder, f'data_batch_{k}'), 'wb') as f:
            pickle.dump(
                dict(
                    data=imgs[idx].astype(np.uint8),
                    labels=labels[idx].tolist()), f)
    with open(osp.join(folder, 'test_batch'), 'wb') as f:
        pickle.dump(
            dict(data=imgs[:6].astype(np.uint8), labels=labels[:6].tolist()),
            f)
    with open(osp.join(folder, 'batches.meta'), 'wb') as f:
        pickle.dump(
            dict(
                label_names=[f'c{i}' for i in range(C)],
                num_vis=3 * side * side), f)
    return root


def noisy_dataset(root, rate=0.4, pipeline=None):
    return dict(
        type='mmssl.NoisyLabelDataset',
        dataset=dict(type='mmssl.CIFARFormatDataset', data_root=root),
        noise_type='symmetric',
        noise_rate=rate,
        exclude_true=True,
        seed=0,
        pipeline=pipeline
        or [dict(type='mmpretrain.PackInputs', meta_keys=NOISY_META_KEYS)])


class BrightnessModel(BaseModel):
    """Predicts the class from the image brightness (so the loss against a
    noisy label is high exactly where the label is wrong), or uniform
    logits with ``flat=True``; has the ANM quality buffer."""

    def __init__(self, n, flat=False):
        super().__init__(
            data_preprocessor=dict(type='mmpretrain.ClsDataPreprocessor'))
        self.flat = flat
        self.num_train_samples = n
        self.warmup_epochs = 1
        self.register_buffer('label_quality', torch.ones(n))
        self.scale = torch.nn.Parameter(torch.tensor(3.))

    def update_label_quality(self, idx, w):
        self.label_quality[torch.as_tensor(idx)] = torch.as_tensor(
            w, dtype=torch.float32)

    def forward(self, inputs, data_samples=None, mode='tensor'):
        assert mode == 'tensor' and not self.training
        if self.flat:
            return torch.zeros(inputs.shape[0], C)
        b = inputs.float().mean((1, 2, 3))
        centres = 40. + 80. * torch.arange(C)
        return -self.scale * (b[:, None] - centres).abs() / 20.


def fake_runner(tmp_path, model, root, epoch=1):
    visual = SimpleNamespace(scalars={})
    visual.add_scalars = lambda d, step, file_path: visual.scalars.update(d)
    cfg = Config(
        dict(
            train_dataloader=dict(
                batch_size=7,
                num_workers=0,
                sampler=dict(type='DefaultSampler', shuffle=True),
                dataset=noisy_dataset(
                    root,
                    pipeline=[
                        dict(type='RandomFlip', prob=0.5),
                        dict(type='PackInputs', meta_keys=NOISY_META_KEYS)
                    ])),
            test_pipeline=[dict(type='PackInputs',
                                meta_keys=NOISY_META_KEYS)]))
    from mmengine.registry import DefaultScope
    DefaultScope.get_instance(
        f'lq_{id(model)}_{epoch}', scope_name='mmpretrain')
    return SimpleNamespace(
        model=model,
        cfg=cfg,
        epoch=epoch,
        iter=10,
        work_dir=str(tmp_path),
        timestamp='t',
        message_hub=MessageHub.get_instance(f'lq_{id(model)}_{epoch}'),
        logger=MMLogger.get_current_instance(),
        visualizer=visual,
        train_dataloader=SimpleNamespace(dataset=list(range(30))))


def test_hook_writes_quality_and_separates_clean_from_noisy(tmp_path):
    root = write_cifar_format(str(tmp_path / 'data'))
    model = BrightnessModel(30).eval()
    runner = fake_runner(tmp_path, model, root)
    hook = LabelQualityHook(batch_size=4)
    hook.before_train(runner)
    assert hook.start_epoch == 1  # the model's warm-up
    runner.epoch = 0
    hook.before_train_epoch(runner)  # still warming up: nothing
    assert torch.equal(model.label_quality, torch.ones(30))
    runner.epoch = 1
    hook.before_train_epoch(runner)
    assert not model.training  # the train mode is restored
    ds = hook._loader.dataset
    noisy = torch.from_numpy(ds.noisy_mask)
    assert 0 < int(noisy.sum()) < 30
    q = model.label_quality
    assert q[~noisy].min() > 0.9 and q[noisy].max() < 0.1
    scalars = runner.visualizer.scalars
    assert scalars['quality/auroc'] > 0.9
    assert scalars['quality/mean_clean'] > 0.9
    assert scalars['quality/mean_noisy'] < 0.1
    assert scalars['quality/noise_rate'] == pytest.approx(
        float(noisy.float().mean()))
    hub = runner.message_hub.get_scalar('quality/auroc').current()
    assert hub == scalars['quality/auroc']
    assert osp.isfile(tmp_path / 'label_quality' / 'epoch_2.png')
    # the history goes through a checkpoint
    ckpt = {}
    hook.before_save_checkpoint(runner, ckpt)
    other = LabelQualityHook()
    other.after_load_checkpoint(runner, ckpt)
    assert other.history_epochs == [1]
    assert torch.equal(other.history[0], hook.history[0])


def test_gmm_that_cannot_fit_names_the_epoch(tmp_path):
    root = write_cifar_format(str(tmp_path / 'data'))
    model = BrightnessModel(30, flat=True).eval()
    runner = fake_runner(tmp_path, model, root, epoch=2)
    hook = LabelQualityHook(save_plots=False)
    hook.before_train(runner)
    with pytest.raises(ValueError, match=r'at epoch 3 .*all losses are equal'):
        hook.before_train_epoch(runner)


def test_hook_checks_the_model_and_the_data(tmp_path):
    root = write_cifar_format(str(tmp_path / 'data'))
    runner = fake_runner(tmp_path, BrightnessModel(31), root)
    with pytest.raises(ValueError, match='set model.num_train_samples=30'):
        LabelQualityHook().before_train(runner)
    runner = fake_runner(tmp_path, BrightnessModel(30), root)
    with pytest.raises(ValueError, match='start_epoch=2 differs'):
        LabelQualityHook(start_epoch=2).before_train(runner)
    runner.cfg.pop('test_pipeline')
    with pytest.raises(ValueError, match='test_pipeline'):
        LabelQualityHook().before_train(runner)


def _tiny_anm(num_train):
    return dict(
        type='mmssl.ANMClassifier',
        data_preprocessor=dict(
            type='mmpretrain.ClsDataPreprocessor',
            num_classes=C,
            mean=[127.5] * 3,
            std=[64.] * 3),
        backbone=dict(
            type='mmpretrain.ResNet_CIFAR',
            depth=18,
            stem_channels=4,
            base_channels=4,
            out_indices=(3, )),
        neck=dict(type='mmpretrain.GlobalAveragePooling'),
        head=dict(
            type='mmpretrain.LinearClsHead', num_classes=C, in_channels=32),
        masking=dict(type='mmssl.AdversarialNoisyMasking'),
        decoder=dict(
            type='mmssl.MaskReconstructionDecoder',
            in_channels=32,
            channels=(8, 3),
            kernel_sizes=(4, 2),
            strides=(4, 2),
            out_size=SIDE),
        num_train_samples=num_train,
        warmup_epochs=1)


def test_resume_across_quality_refreshes_is_exact(tmp_path):
    root = write_cifar_format(str(tmp_path / 'data'), n=20)
    test_pipeline = [dict(type='PackInputs', meta_keys=NOISY_META_KEYS)]
    hooks = [
        dict(
            type='mmssl.LabelQualityHook',
            pipeline=test_pipeline,
            batch_size=10,
            average_last=2)
    ]

    def make(work_dir, epochs, ckpt):
        cfg = tiny_pretrain_runner_cfg(
            _tiny_anm(20),
            work_dir,
            root,
            epochs,
            custom_hooks=hooks,
            resume_from=ckpt)
        cfg['train_dataloader']['dataset'] = noisy_dataset(
            root,
            pipeline=[
                dict(type='RandomCrop', crop_size=SIDE, padding=2),
                dict(type='RandomFlip', prob=0.5),
                dict(type='PackInputs', meta_keys=NOISY_META_KEYS)
            ])
        return Config(cfg)

    straight, resumed, raw = assert_resume_equals_straight(make, str(tmp_path))
    # the epoch-2 checkpoint holds one refresh (before epoch 2)
    assert raw['label_quality_hook']['epochs'] == [1]
    assert int(raw['state_dict']['quality_refreshes']) == 1
    assert int(straight['quality_refreshes']) == 3  # epochs 2, 3, 4
    assert not torch.equal(straight['label_quality'], torch.ones(20))
    assert int(straight['mask_steps']) > 0
    a = torch.load(tmp_path / 'a' / 'epoch_4.pth', weights_only=True)
    c = torch.load(tmp_path / 'c' / 'epoch_4.pth', weights_only=True)
    ha, hc = a['label_quality_hook'], c['label_quality_hook']
    assert ha['epochs'] == hc['epochs'] == [2, 3]  # average_last=2
    assert torch.equal(ha['history'], hc['history'])


def test_defaults_are_divide_mix_settings():
    hook = LabelQualityHook()
    assert hook.interval == 1 and hook.start_epoch is None
    assert hook.gmm == dict(max_iter=10, tol=1e-2, reg_covar=5e-4)
    assert hook.average_last == 1 and hook.seed == 0
    assert hook.save_plots and hook.plot_dir == 'label_quality'
    assert LabelQualityHook(start_epoch=0).start_epoch == 0
    with pytest.raises(ValueError, match='start_epoch'):
        LabelQualityHook(start_epoch=-1)


def test_refresh_epochs_follow_start_and_interval(tmp_path, monkeypatch):
    root = write_cifar_format(str(tmp_path / 'data'))
    model = BrightnessModel(30).eval()
    runner = fake_runner(tmp_path, model, root)
    hook = LabelQualityHook(interval=3)
    hook.before_train(runner)
    refreshed = []
    monkeypatch.setattr(hook, 'refresh',
                        lambda runner, epoch: refreshed.append(epoch))
    for epoch in range(9):
        runner.epoch = epoch
        hook.before_train_epoch(runner)
    assert refreshed == [1, 4, 7]


def test_model_without_warmup_needs_start_epoch(tmp_path):
    root = write_cifar_format(str(tmp_path / 'data'))
    model = BrightnessModel(30)
    del model.warmup_epochs
    runner = fake_runner(tmp_path, model, root)
    with pytest.raises(
            ValueError,
            match='start_epoch is needed for a model '
            'without warmup_epochs'):
        LabelQualityHook().before_train(runner)
    hook = LabelQualityHook(start_epoch=2)
    hook.before_train(runner)
    assert hook.start_epoch == 2


def test_derived_loader_needs_a_dataset_config(tmp_path):
    root = write_cifar_format(str(tmp_path / 'data'))
    runner = fake_runner(tmp_path, BrightnessModel(30), root)
    runner.cfg.train_dataloader = dict(batch_size=2)
    with pytest.raises(
            ValueError, match='train_dataloader, which must be a '
            'config dict'):
        LabelQualityHook().before_train(runner)


def test_quality_pass_reads_unaugmented_batches(tmp_path):
    """A data preprocessor that mixes batches in training mode changes
    nothing: the pass runs it in test mode."""
    root = write_cifar_format(str(tmp_path / 'data'))
    quality = []
    for augments in (None, dict(augments=dict(type='Mixup', alpha=1.))):
        model = BrightnessModel(30).eval()
        model.data_preprocessor.batch_augments = None
        model.data_preprocessor.to_onehot = True  # what Mixup needs
        model.data_preprocessor.num_classes = C
        if augments is not None:
            from mmpretrain.models.utils import RandomBatchAugment
            model.data_preprocessor.batch_augments = RandomBatchAugment(
                **augments)
        runner = fake_runner(tmp_path, model, root)
        hook = LabelQualityHook(save_plots=False)
        hook.before_train(runner)
        quality.append(hook.refresh(runner, 1))
    np.testing.assert_array_equal(quality[0], quality[1])


@pytest.mark.parametrize('bad', [5, -1])
def test_sample_idx_outside_the_set(tmp_path, bad):
    from mmpretrain.structures import DataSample
    model = BrightnessModel(5).eval()
    samples = [
        DataSample(metainfo=dict(sample_idx=i)).set_gt_label(0)
        for i in (0, bad)
    ]
    batch = dict(
        inputs=[torch.zeros(3, SIDE, SIDE, dtype=torch.uint8)] * 2,
        data_samples=samples)
    hook = LabelQualityHook()
    hook._loader = type('Loader', (), {
        'dataset': range(5),
        '__iter__': lambda self: iter([batch])
    })()
    with pytest.raises(
            IndexError, match=f'sample_idx {bad} outside '
            'the 5 items'):
        hook._losses(model)


def test_unknown_clean_labels_give_the_plain_metrics(tmp_path):
    root = write_cifar_format(str(tmp_path / 'data'))
    model = BrightnessModel(30).eval()
    runner = fake_runner(tmp_path, model, root)
    # PackInputs' default meta keys drop gt_label_clean
    hook = LabelQualityHook(pipeline=[dict(type='PackInputs')])
    hook.before_train(runner)
    w = hook.refresh(runner, 1)
    assert set(
        runner.visualizer.scalars) == {'quality/mean', 'quality/selected'}
    assert runner.visualizer.scalars['quality/selected'] == pytest.approx(
        float((w > 0.5).mean()))


def _result():
    """Six samples: clean labels known for all but the fifth; the third and
    the fourth are noisy; w = 0.5 is not selected."""
    w = np.array([0.9, 0.5, 0.8, 0.2, 0.1, 0.7])
    result = dict(
        loss=torch.tensor([0.1, 0.7, 0.2, 2.0, 1.5, 0.3]),
        noisy=torch.tensor([0, 1, 2, 0, 1, 2]),
        clean=torch.tensor([0, 1, 1, 2, -1, 2]))
    return w, result


def test_metrics_by_hand():
    w, result = _result()
    metrics = LabelQualityHook._metrics(w, result)
    assert metrics == pytest.approx({
        'quality/mean': 3.2 / 6,
        'quality/selected': 0.5,
        'quality/noise_rate': 0.4,
        'quality/mean_clean': 0.7,
        'quality/mean_noisy': 0.5,
        'quality/auroc': 4 / 6,  # clean above noisy in 4 of 6 pairs
    })
    result['clean'] = result['noisy'].clone()  # every label clean
    assert set(LabelQualityHook._metrics(w, result)) == {
        'quality/mean', 'quality/selected', 'quality/noise_rate',
        'quality/mean_clean'
    }
    result['clean'] = (result['noisy'] + 1) % 3  # every label noisy
    metrics = LabelQualityHook._metrics(w, result)
    assert 'quality/mean_clean' not in metrics
    assert 'quality/auroc' not in metrics
    assert metrics['quality/mean_noisy'] == pytest.approx(3.2 / 6)


def test_plot_groups_clean_and_noisy_samples(tmp_path, monkeypatch):
    from matplotlib.axes import Axes
    from PIL import Image
    drawn, axes = [], []
    hist = Axes.hist

    def record(self, values, *args, label=None, **kwargs):
        drawn.append((label, sorted(round(float(v), 3) for v in values)))
        counts, bins, patches = hist(
            self, values, *args, label=label, **kwargs)
        axes.append((self, bins, counts.sum() == len(values)))
        return counts, bins, patches

    monkeypatch.setattr(Axes, 'hist', record)
    w, result = _result()
    path = LabelQualityHook.plot(result, w, str(tmp_path / 'p' / 'a.png'), 0)
    assert Image.open(path).size == (720, 256)  # 9 x 3.2 inches at 80 dpi
    assert drawn == [('clean labels', [0.1, 0.3, 0.7]),
                     ('noisy labels', [0.2, 2.0]),
                     ('clean labels', [0.5, 0.7, 0.9]),
                     ('noisy labels', [0.2, 0.8])]
    assert [ax.get_xlabel() for ax, _, _ in axes
            ] == ['cross-entropy'] * 2 + ['label quality w'] * 2
    assert len(axes[0][0].figure.axes) == 2
    # 40 bins over all samples' values, no sample left out
    for (_, bins, all_in), low, high in zip(axes, (0.1, 0.1, 0.1, 0.1),
                                            (2.0, 2.0, 0.9, 0.9)):
        assert len(bins) == 41 and all_in
        assert bins[0] == pytest.approx(low, abs=1e-6)
        assert 0 < bins[-1] - high < 1e-6
    drawn.clear()
    result['clean'][:] = -1
    LabelQualityHook.plot(result, w, str(tmp_path / 'p' / 'b.png'), 0)
    assert [(label, len(v)) for label, v in drawn] == [('all samples', 6)] * 2


def test_refresh_without_before_train(tmp_path):
    root = write_cifar_format(str(tmp_path / 'data'))
    model = BrightnessModel(30).eval()
    runner = fake_runner(tmp_path, model, root)
    hook = LabelQualityHook(save_plots=False)
    w = hook.refresh(runner, 1)  # builds its loader first
    assert hook.start_epoch == 1 and w.shape == (30, )
    assert torch.equal(model.label_quality, torch.as_tensor(w).float())


def _broadcast_losses(x):
    """Rank 0 has the losses, the others None; everyone gets rank 0's."""
    from mmengine.dist import get_rank
    hook = LabelQualityHook()
    hook._loader = SimpleNamespace(dataset=range(4))
    w, result = _result()
    result = {k: v[:4] for k, v in result.items()}
    out = hook._broadcast(result if get_rank() == 0 else None,
                          torch.nn.Linear(1, 1))
    return {k: v.double() for k, v in out.items()}


def test_losses_are_broadcast_from_rank_0():
    from mmssl.testing.dist import run_distributed
    out = run_distributed(_broadcast_losses, [torch.zeros(2, 1)])
    _, result = _result()
    for key, value in result.items():
        assert torch.equal(out[key], value[:4].double()), key


def test_checkpoint_before_any_refresh():
    ckpt = {}
    LabelQualityHook().before_save_checkpoint(None, ckpt)
    assert ckpt['label_quality_hook']['history'].numel() == 0
    hook = LabelQualityHook()
    hook.after_load_checkpoint(None, ckpt)
    assert hook.history == [] and hook.history_epochs == []
