# Copyright (c) mmssl contributors. All rights reserved.
"""SubTuning through mmengine's Runner on the tiny embedded config, from a
pretraining checkpoint loaded by the backbone's ``Pretrained`` init: frozen
weights and BN statistics stay those of the checkpoint bit for bit, exact
resume, the Siamese copy in checkpoints, and SubTuning beating the linear
probe it starts from."""
import copy
import os
import os.path as osp

import numpy as np
import pytest
import torch
from mmengine.config import Config
from mmengine.registry import init_default_scope
from mmengine.runner import Runner
from PIL import Image
from torch.nn.modules.batchnorm import _BatchNorm

from mmssl.datasets import make_embedded_data
from mmssl.models.utils import in_blocks
from mmssl.registry import MODELS
from mmssl.testing import assert_resume_equals_straight
from mmssl.testing.resume import own_experiment_name

ROOT = osp.dirname(osp.dirname(osp.dirname(osp.abspath(__file__))))
CONFIGS = osp.join(ROOT, 'configs', 'subtuning')
SUBTUNING = osp.join(
    CONFIGS, 'subtuning_resnet18-tiny-simclr_1xb64-coslr-10e_embedded.py')
LINEAR_PROBE = osp.join(
    CONFIGS, 'linear-probe_resnet18-tiny-simclr_1xb64-coslr-10e_embedded.py')
PRETRAIN = osp.join(ROOT, 'configs', 'simclr',
                    'simclr_resnet18-tiny_1xb64-coslr-30e_embedded.py')


@pytest.fixture(scope='module')
def embedded_root(tmp_path_factory):
    """72 training images (8 per class) and 36 validation images."""
    root = str(tmp_path_factory.mktemp('embedded'))
    make_embedded_data(root, num_train=72, num_val=36)
    return root


@pytest.fixture(scope='module')
def pretrained(tmp_path_factory):
    """A SimCLR checkpoint of the tiny config (backbone and projection
    neck), randomly initialised; the BN layers get random affine weights
    and running statistics, so that nothing in it equals a fresh
    initialisation."""
    cfg = Config.fromfile(PRETRAIN)
    init_default_scope('mmpretrain')
    torch.manual_seed(123)
    model = MODELS.build(cfg.model)
    model.init_weights()
    with torch.no_grad():
        for bn in model.backbone.modules():
            if isinstance(bn, _BatchNorm):
                bn.weight.add_(torch.randn_like(bn.weight) * 0.1)
                bn.bias.add_(torch.randn_like(bn.bias) * 0.1)
                bn.running_mean.normal_(0, 0.1)
                bn.running_var.uniform_(0.5, 1.5)
                bn.num_batches_tracked.fill_(100)
    path = str(tmp_path_factory.mktemp('simclr') / 'epoch_30.pth')
    state = {k: v.clone() for k, v in model.state_dict().items()}
    torch.save(dict(state_dict=state, meta=dict(epoch=30)), path)
    return path, {
        k[len('backbone.'):]: v
        for k, v in state.items() if k.startswith('backbone.')
    }


def _cfg(path,
         work_dir,
         ckpt,
         data_root,
         max_epochs,
         total_epochs=None,
         **model):
    """The config at ``path`` on the small data, batch 8, no validation,
    a checkpoint every epoch, the frozen-module check on."""
    cfg = Config.fromfile(path)
    cfg.work_dir = str(work_dir)
    cfg.log_level = 'WARNING'
    cfg.model.backbone.init_cfg.checkpoint = ckpt
    cfg.model.update(model)
    loader = cfg.train_dataloader
    loader.dataset.dataset.data_root = data_root
    loader.dataset.fraction = 0.5  # 4 images per class
    loader.batch_size = 8
    loader.num_workers = 0
    loader.persistent_workers = False
    for key in ('val_dataloader', 'val_evaluator', 'val_cfg',
                'test_dataloader', 'test_evaluator', 'test_cfg'):
        cfg[key] = None
    cfg.train_cfg = dict(by_epoch=True, max_epochs=max_epochs)
    # the schedule spans total_epochs whatever max_epochs (without `end`
    # mmengine ends it at max_epochs)
    total_epochs = total_epochs or max_epochs
    cfg.param_scheduler[0].update(T_max=total_epochs, end=total_epochs)
    cfg.default_hooks.checkpoint = dict(type='CheckpointHook', interval=1)
    cfg.default_hooks.logger = dict(type='LoggerHook', interval=100)
    cfg.custom_hooks = [dict(type='mmssl.FrozenModuleCheckHook')]
    return own_experiment_name(cfg)


def _with_val(cfg, data_root):
    """Validate (after the last epoch) and test on the embedded validation
    images."""
    base = Config.fromfile(SUBTUNING)
    for key in ('val_dataloader', 'test_dataloader'):
        loader = copy.deepcopy(base[key])
        loader.dataset.data_root = data_root
        loader.num_workers = 0
        cfg[key] = loader
    for key in ('val_evaluator', 'test_evaluator', 'val_cfg', 'test_cfg'):
        cfg[key] = copy.deepcopy(base[key])
    cfg.train_cfg.val_interval = cfg.train_cfg.max_epochs
    return cfg


def _val_top1(runner):
    """The top-1 accuracy of the validation after the last epoch."""
    return runner.message_hub.get_scalar('val/accuracy/top1').current()


def _state(runner):
    return {
        k: v.detach().clone()
        for k, v in runner.model.state_dict().items()
    }


def test_frozen_part_is_the_pretraining_checkpoint(tmp_path, pretrained,
                                                   embedded_root):
    ckpt, backbone = pretrained
    runner = Runner.from_cfg(
        _cfg(
            SUBTUNING,
            tmp_path,
            ckpt,
            embedded_root,
            max_epochs=2,
            trainable_blocks=['layer4.1']))
    runner.train()  # 2 epochs x 5 iterations, checked by the hook
    model = runner.model
    blocks = model.trainable_blocks
    assert blocks == ['layer4.1']
    state = _state(runner)
    frozen = [k for k in backbone if not in_blocks(k, blocks)]
    tuned = [k for k in backbone if in_blocks(k, blocks)]
    assert len(frozen) > 100 and len(tuned) == 12
    for key in frozen:  # parameters and buffers
        assert torch.equal(state[f'backbone.{key}'], backbone[key]), key
    # the frozen BN kept its statistics and counter (eval mode)
    assert model.backbone.layer4[0].bn2.num_batches_tracked.item() == 100
    for key in tuned:
        assert not torch.equal(state[f'backbone.{key}'], backbone[key]), key
    assert model.backbone.layer4[1].bn1.num_batches_tracked.item() == 110
    # the epoch-2 checkpoint holds the same frozen values
    saved = torch.load(
        osp.join(str(tmp_path), 'epoch_2.pth'), weights_only=False)
    for key in frozen:
        assert torch.equal(saved['state_dict'][f'backbone.{key}'],
                           backbone[key]), key
    # optimizer state for the trainable parameters only
    trainable = [p for p in model.parameters() if p.requires_grad]
    assert len(trainable) == 6 + 2  # layer4.1 convs and BNs, head fc
    optimizer = runner.optim_wrapper.optimizer
    assert {id(p) for p in optimizer.state} == {id(p) for p in trainable}
    assert len(saved['optimizer']['state']) == len(trainable)


def test_resume_equals_straight(tmp_path, pretrained, embedded_root):
    ckpt, _ = pretrained

    def make(work_dir, max_epochs, resume_from):
        cfg = _cfg(
            SUBTUNING,
            work_dir,
            ckpt,
            embedded_root,
            max_epochs=max_epochs,
            total_epochs=4,
            trainable_blocks=['layer4.1'])
        # 2 images per class: 3 iterations per epoch
        cfg.train_dataloader.dataset.fraction = 0.25
        if resume_from:
            cfg.resume = True
            cfg.load_from = resume_from
        return cfg

    straight, _, _ = assert_resume_equals_straight(make, str(tmp_path))
    # frozen blocks still at the pretrained values after the resumed run
    _, backbone = pretrained
    assert torch.equal(straight['backbone.layer2.0.conv1.weight'],
                       backbone['layer2.0.conv1.weight'])


def test_siamese_copy_is_pretrained_and_in_checkpoints(tmp_path, pretrained,
                                                       embedded_root):
    ckpt, backbone = pretrained
    cfg = _with_val(
        _cfg(
            SUBTUNING,
            tmp_path / 'train',
            ckpt,
            embedded_root,
            max_epochs=1,
            siamese=True,
            head=dict(in_channels=512)), embedded_root)
    runner = Runner.from_cfg(cfg)
    runner.train()
    top1 = _val_top1(runner)
    state = _state(runner)
    # the copy is the pretraining checkpoint, tuned block included
    for key, value in backbone.items():
        assert torch.equal(state[f'frozen_backbone.{key}'], value), key
    assert not torch.equal(state['backbone.layer4.1.conv1.weight'],
                           backbone['layer4.1.conv1.weight'])
    # tools/test.py: a fresh runner that loads the checkpoint (the
    # backbone's init_cfg points nowhere) gives the same predictions
    test_cfg = copy.deepcopy(cfg)
    test_cfg.work_dir = str(tmp_path / 'test')
    test_cfg.model.backbone.init_cfg = None
    test_cfg.load_from = str(tmp_path / 'train' / 'epoch_1.pth')
    tester = Runner.from_cfg(own_experiment_name(test_cfg))
    assert tester.test() == {'accuracy/top1': top1}
    for key, value in tester.model.state_dict().items():
        assert torch.equal(value, state[key]), key


# ------------------------------------------------------------------------
# SubTuning vs the linear probe it starts from
# ------------------------------------------------------------------------
QUADRANTS = ('top-left', 'top-right', 'bottom-left', 'bottom-right')
COLOURS = ((220, 40, 40), (40, 200, 40), (40, 60, 220), (230, 220, 40))


def _write_quadrant_images(root, split, num, seed, size=32):
    """``num`` images of a square (6-12 px, one of 4 colours) on a noisy
    grey background, labelled by the quadrant it lies in."""
    rng = np.random.RandomState(seed)
    os.makedirs(osp.join(root, split))
    half, lines = size // 2, []
    for i in range(num):
        img = rng.randint(60, 180) + rng.randint(-20, 20, 3) + \
            rng.randn(size, size, 3) * 10
        side, quadrant = rng.randint(6, 13), rng.randint(4)
        x = rng.randint(0, half - side) + quadrant % 2 * half
        y = rng.randint(0, half - side) + quadrant // 2 * half
        colour = np.array(COLOURS[rng.randint(4)]) + rng.randint(-25, 25, 3)
        img[y:y + side, x:x + side] = colour
        Image.fromarray(np.clip(img, 0, 255).astype(np.uint8)).save(
            osp.join(root, split, f'{i:04d}.png'))
        lines.append(f'{i:04d}.png {quadrant}\n')
    with open(osp.join(root, f'{split}.txt'), 'w') as f:
        f.writelines(lines)


@pytest.fixture(scope='module')
def quadrant_root(tmp_path_factory):
    """400 training and 200 validation images of 32 px."""
    root = str(tmp_path_factory.mktemp('quadrants'))
    _write_quadrant_images(root, 'train', 400, seed=0)
    _write_quadrant_images(root, 'val', 200, seed=1)
    return root


def _quadrant_top1(path, work_dir, data_root, seed=0, **model):
    """Train the config at ``path`` from random init on the quadrant images
    (6 epochs of 13 iterations, AdamW lr 1e-2, cosine); the validation
    top-1 accuracy."""
    cfg = Config.fromfile(path)
    cfg.work_dir = str(work_dir)
    cfg.log_level = 'WARNING'
    cfg.model.backbone.init_cfg = None
    cfg.model.head.num_classes = len(QUADRANTS)
    cfg.model.update(model)
    cfg.optim_wrapper.optimizer.lr = 1e-2
    pipeline = [dict(type='LoadImageFromFile'), dict(type='PackInputs')]

    def dataset(split):
        return dict(
            type='CustomDataset',
            data_root=data_root,
            ann_file=f'{split}.txt',
            data_prefix=split,
            with_label=True,
            metainfo=dict(classes=QUADRANTS))

    train = cfg.train_dataloader
    train.update(batch_size=32, num_workers=0, persistent_workers=False)
    train.dataset.dataset = dataset('train')  # replaced, not merged
    train.dataset.update(fraction=1.0, pipeline=pipeline)
    cfg.val_dataloader.dataset = dict(dataset('val'), pipeline=pipeline)
    cfg.test_dataloader = cfg.val_dataloader
    cfg.train_cfg = dict(by_epoch=True, max_epochs=6, val_interval=6)
    cfg.param_scheduler[0].update(T_max=6, end=6)
    cfg.default_hooks.checkpoint = dict(type='CheckpointHook', interval=6)
    cfg.default_hooks.logger = dict(type='LoggerHook', interval=100)
    cfg.randomness = dict(seed=seed)
    runner = Runner.from_cfg(own_experiment_name(cfg))
    runner.train()
    return _val_top1(runner)


def test_subtuning_beats_the_linear_probe(tmp_path, quadrant_root):
    """Where the frozen features lose the answer, tuning the last stage
    recovers it. In the random-init ResNet (zero-initialised residual
    branches) layer4.0 passes on only its strided 1x1 shortcut, which keeps
    one of layer3's 2x2 positions: which quadrant holds the square is
    mostly gone for the linear probe, while a tuned layer4.0 sees all four
    positions. Same data, budget, seed and optimizer; only
    trainable_blocks differ. Offline, seeds 0 / 1 / 2: linear probe
    30.0 / 30.0 / 30.5 %, SubTuning of layer4 71 / 69 / 73 % (chance
    25 %)."""
    probe = _quadrant_top1(LINEAR_PROBE, tmp_path / 'probe', quadrant_root)
    tuned = _quadrant_top1(
        SUBTUNING,
        tmp_path / 'subtuning',
        quadrant_root,
        trainable_blocks=['layer4'])
    assert tuned >= 50, (tuned, probe)
    assert tuned >= probe + 15, (tuned, probe)
