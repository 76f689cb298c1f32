# Copyright (c) mmssl contributors. All rights reserved.
"""The data2vec 2.0 text configs: every one builds; the base recipe holds
the spec's settings (one assertion each); the tiny pretraining trains
through the Runner, lowers its loss and resumes exactly; either
pretraining's checkpoint starts the pair-task fine-tuning."""
import copy
import glob
import os.path as osp

import pytest
import torch
from mmengine.config import Config
from mmengine.registry import init_default_scope
from mmengine.runner import Runner

from mmssl.datasets import GLUE_TASKS
from mmssl.registry import MODELS
from mmssl.testing.resume import (assert_resume_equals_straight,
                                  own_experiment_name)

ROOT = osp.dirname(osp.dirname(osp.dirname(osp.abspath(__file__))))
FOLDER = osp.join(ROOT, 'configs', 'data2vec2_text')
CONFIGS = sorted(glob.glob(osp.join(FOLDER, '*.py')))
IDS = [osp.basename(p) for p in CONFIGS]
BASE = osp.join(FOLDER, 'data2vec2-text_base_16xb4-adam-1000kiter_bookwiki.py')
TINY = osp.join(FOLDER,
                'data2vec2-text_tiny_1xb8-adamw-120iter_embedded-text.py')
MLM = osp.join(FOLDER,
               'mlm_d2v2-text-tiny_1xb32-adamw-240iter_embedded-text.py')
PAIRS = osp.join(FOLDER,
                 'data2vec2-text_tiny_1xb32-adamw-1e_embedded-pairs.py')
TEXT_ROOT = osp.join(ROOT, 'data', 'embedded_text')
SMALL = dict(embed_dims=16, num_layers=2, num_heads=2, feedforward_channels=32)


def _load(path):
    cfg = Config.fromfile(path)
    init_default_scope(cfg.get('default_scope', 'mmpretrain'))
    return cfg


@pytest.mark.parametrize('path', CONFIGS, ids=IDS)
def test_config_builds(path):
    name = osp.basename(path)
    cfg = _load(path)
    model_cfg = copy.deepcopy(cfg.model)
    model_cfg.backbone.pop('init_cfg', None)
    with torch.device('meta'):
        model = MODELS.build(model_cfg)
    assert type(model.backbone).__name__ == 'D2V2TextEncoder'
    if 'glue' in name:
        task = name.rsplit('-', 1)[1][:-3]
        labels = GLUE_TASKS[task]['labels']
        assert cfg.train_dataloader.dataset.task == task
        assert model.head.num_classes == (1 if labels is None else len(labels))
        assert model.backbone.embed_dims == 768
        assert cfg.model.backbone.init_cfg.prefix == 'backbone.'
    if 'embedded' in name:
        assert model.backbone.vocab_size == 2000
        assert model.backbone.max_position == 128


def test_the_configs_are_there():
    names = set(IDS)
    for task in ('cola', 'sst2', 'mrpc', 'stsb', 'qqp', 'mnli', 'qnli', 'rte'):
        assert f'data2vec2-text_base_1xb16-adam-10e_glue-{task}.py' in names
    for path in (BASE, TINY, MLM, PAIRS):
        assert osp.basename(path) in names


def test_base_recipe_is_the_spec_table():
    cfg = _load(BASE)
    m = cfg.model
    assert m.type == 'mmssl.Data2VecV2'
    assert m.backbone.arch == 'base'  # 12 blocks, D 768
    assert m.backbone.max_position == 512
    assert cfg.train_dataloader.dataset.tokens_per_sample == 512
    assert cfg.train_dataloader.dataset.sample_break_mode == 'none'
    assert cfg.train_dataloader.batch_size == 4
    assert m.mask_generator.num_masks == 8  # M
    assert m.mask_generator.mask_ratio == 0.48
    assert m.neck.type == 'mmssl.D2V2ConvDecoder1d'
    assert m.neck.num_layers == 5
    assert m.neck.kernel_size == 9
    assert m.neck.embed_dims == 768
    assert m.neck.groups == 1
    assert m.neck.residual is False
    assert m.neck.projection_layers == 2
    assert m.neck.projection_ratio == 2
    assert m.neck.input_dropout == 0.1
    assert m.neck.noise_std == 0.01
    assert m.head.top_k == 12
    assert m.head.instance_norm is True
    assert m.head.layer_norm is False  # IN only, no final LN
    assert m.head.loss.scale == 1
    assert m.head.cls_loss_weight == 0  # no CLS term
    assert 1 - m.ema.momentum == pytest.approx(0.9999)
    assert 1 - m.ema.end_momentum == pytest.approx(0.99999)
    assert m.ema.anneal_iters == 100000
    opt = cfg.optim_wrapper.optimizer
    assert opt.type == 'AdamW'  # Adam with decoupled weight decay
    assert opt.betas == (0.9, 0.98)
    assert opt.eps == 1e-6
    assert opt.weight_decay == 0.01
    assert opt.lr == 2e-4
    assert cfg.param_scheduler[0].end == 4000  # warm-up
    assert cfg.param_scheduler[1].type == 'CosineAnnealingLR'
    assert cfg.train_cfg.max_iters == 1000000
    assert cfg.optim_wrapper.clip_grad.max_norm == 1
    assert m.backbone.drop_rate == 0.1
    assert m.backbone.attn_drop_rate == 0.1
    assert m.backbone.norm_eps == 1e-5
    assert cfg.custom_hooks[0].type == 'mmssl.TeacherUpdateHook'
    guard = cfg.custom_hooks[1]  # fairseq's min_target_var / min_pred_var
    assert guard.type == 'mmssl.CollapseGuardHook'
    assert (guard.min_target_std, guard.min_pred_std) == (0.1, 0.01)
    assert guard.after_iters == 5000
    with torch.device('meta'):
        model = MODELS.build(cfg.model)
    assert model.backbone.num_layers == 12
    assert model.backbone.embed_dims == 768
    assert model.teacher_input == 'student_embedding'


def _tiny_cfg(work_dir, max_epochs=4, resume_from=None, documents=30):
    """The tiny data2vec 2.0 pretraining made smaller (2 blocks, 16 wide,
    32-token blocks of the first documents) and epoch-based."""
    cfg = Config.fromfile(TINY)
    cfg.train_dataloader.dataset.update(
        data_root=TEXT_ROOT, max_documents=documents, tokens_per_sample=32)
    cfg.train_dataloader.sampler = dict(type='DefaultSampler', shuffle=True)
    cfg.train_dataloader.batch_size = 8
    cfg.model.backbone.update(arch=SMALL, max_position=32)
    cfg.model.neck.update(in_channels=16, embed_dims=16, num_layers=2)
    cfg.model.head.top_k = 2
    cfg.model.mask_generator.num_masks = 2
    cfg.param_scheduler = [
        dict(
            type='LinearLR',
            start_factor=0.1,
            by_epoch=True,
            begin=0,
            end=1,
            convert_to_iter_based=True),
        dict(
            type='CosineAnnealingLR',
            T_max=max(4, max_epochs) - 1,
            by_epoch=True,
            begin=1,
            end=max(4, max_epochs),
            convert_to_iter_based=True)
    ]
    cfg.train_cfg = dict(type='EpochBasedTrainLoop', max_epochs=max_epochs)
    cfg.log_processor = dict(by_epoch=True)
    cfg.merge_from_dict({
        'work_dir':
        work_dir,
        'default_hooks.checkpoint':
        dict(type='CheckpointHook', interval=1, by_epoch=True),
        'log_level':
        'WARNING',
    })
    if resume_from:
        cfg.resume = True
        cfg.load_from = resume_from
    return cfg


def test_tiny_pretraining_resumes_exactly(tmp_path):
    straight, _, _ = assert_resume_equals_straight(_tiny_cfg, str(tmp_path))
    assert any(k.startswith('teacher.') for k in straight)


def test_tiny_pretraining_lowers_the_loss(tmp_path):
    cfg = own_experiment_name(
        _tiny_cfg(str(tmp_path), max_epochs=6, documents=100))
    cfg.optim_wrapper.optimizer.lr = 3e-3
    runner = Runner.from_cfg(cfg)
    runner.train()
    loss = runner.message_hub.log_scalars['train/loss_reg'].data[0]
    k = 4
    assert loss[-k:].mean() < 0.8 * loss[:k].mean(), loss


def _save(model, path):
    torch.save(dict(state_dict=model.state_dict()), path)


@pytest.mark.parametrize('arm', ['data2vec2', 'mlm'])
def test_either_checkpoint_starts_the_finetune(tmp_path, arm):
    torch.manual_seed(0)
    cfg = _load(TINY if arm == 'data2vec2' else MLM)
    cfg.model.backbone.update(arch=SMALL)
    if arm == 'data2vec2':
        cfg.model.neck.update(in_channels=16, embed_dims=16)
        cfg.model.head.top_k = 2
    pre = MODELS.build(cfg.model)
    ckpt = str(tmp_path / 'pre.pth')
    _save(pre, ckpt)
    ft = _load(PAIRS)
    ft.model.backbone.update(arch=SMALL)
    ft.model.backbone.init_cfg.checkpoint = ckpt
    model = MODELS.build(ft.model)
    model.init_weights()
    want = pre.backbone.state_dict()
    got = model.backbone.state_dict()
    for k, v in want.items():
        torch.testing.assert_close(got[k], v, msg=k)
    assert set(got) - set(want) == {'pooler.weight', 'pooler.bias'}
    ft.model.backbone.init_cfg = None  # from scratch
    scratch = MODELS.build(ft.model)
    scratch.init_weights()
    assert not torch.equal(scratch.backbone.token_embed.weight,
                           want['token_embed.weight'])
