# Copyright (c) mmssl contributors. All rights reserved.
"""Every ALBERT config builds with the sizes, task and metric its name says;
the tiny pretraining trains through the Runner, lowers its losses and
resumes exactly; its checkpoint starts the pair-task fine-tuning."""
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
FOLDER = osp.join(ROOT, 'configs', 'albert')
CONFIGS = sorted(glob.glob(osp.join(FOLDER, '*.py')))
IDS = [osp.basename(p) for p in CONFIGS]
TINY = osp.join(FOLDER, 'albert_tiny_1xb32-lamb-20e_embedded-text.py')
PAIRS = osp.join(FOLDER, 'albert_tiny_1xb32-adamw-5e_embedded-pairs.py')
TEXT_ROOT = osp.join(ROOT, 'data', 'embedded_text')

# parameters of the encoder with its pooler, by hand (V = 30000, 512
# positions): embeddings V E + 512 E + 2 E + 2 E, projection E H + H (E != H),
# one layer 4 (H^2 + H) + 2 H + 2 H F + F + H + 2 H per weight set, pooler
# H^2 + H; base is the spec's 11,683,584, the others the paper's 18M / 60M /
# 235M (its table's sizes give 222.6M) / 108M
ENCODER_PARAMS = {
    'base': 11_683_584,
    'large': 17_683_968,
    'xlarge': 58_724_864,
    'xxlarge': 222_595_584,
    'bert-base': 109_081_344,
}
GLUE_METRICS = {
    'cola': ('matthews', ),
    'sst2': ('accuracy', ),
    'mrpc': ('accuracy', 'f1'),
    'stsb': ('pearson', 'spearman'),
    'qqp': ('accuracy', 'f1'),
    'mnli': ('accuracy', ),
    'qnli': ('accuracy', ),
    'rte': ('accuracy', ),
}


def _load(path):
    cfg = Config.fromfile(path)
    init_default_scope(cfg.get('default_scope', 'mmpretrain'))
    return cfg


def _params(module):
    return sum(p.numel() for p in module.parameters())


def test_the_configs_are_there():
    names = set(IDS)
    for task in GLUE_METRICS:
        assert f'albert_base_1xb32-adamw-3e_glue-{task}.py' in names
    for arch in ('base', 'large', 'xlarge', 'xxlarge'):
        assert f'albert_{arch}_64xb64-lamb-125k_bookwiki.py' in names
    assert 'bert_base_64xb64-lamb-125k_bookwiki.py' in names
    for name in ('albert_tiny', 'bert_tiny', 'albert_tiny-nosop'):
        assert f'{name}_1xb32-lamb-20e_embedded-text.py' in names


@pytest.mark.parametrize('path', CONFIGS, ids=IDS)
def test_config_builds(path):
    name = osp.basename(path)
    cfg = _load(path)
    model_cfg = copy.deepcopy(cfg.model)
    model_cfg.backbone.pop('init_cfg', None)  # no checkpoint to read here
    with torch.device('meta'):  # sizes only: nothing is allocated
        model = MODELS.build(model_cfg)
    backbone = model.backbone
    if 'bookwiki' in name:
        arch = name.split('_')[1]
        arch = 'bert-base' if name.startswith('bert') else arch
        assert _params(backbone) == ENCODER_PARAMS[arch]
        assert type(model).__name__ == 'AlbertPretrainer'
        assert backbone.max_position == 512
        assert cfg.optim_wrapper.optimizer.type == 'Lamb'
        assert cfg.optim_wrapper.optimizer.lr == 0.00176
        assert cfg.train_cfg.max_iters == 125000
        assert cfg.param_scheduler[0].end == 3125
        assert cfg.auto_scale_lr.base_batch_size == 64 * 64
    elif 'glue' in name:
        task = name.rsplit('-', 1)[1][:-3]
        labels = GLUE_TASKS[task]['labels']
        assert type(model).__name__ == 'TextClassifier'
        for key in ('train_dataloader', 'val_dataloader', 'test_dataloader'):
            assert cfg[key].dataset.task == task
        assert cfg.val_evaluator.scores == GLUE_METRICS[task]
        assert cfg.test_evaluator.scores == GLUE_METRICS[task]
        assert cfg.default_hooks.checkpoint.save_best == \
            GLUE_METRICS[task][-1 if task in ('mrpc', 'qqp') else 0]
        assert model.head.num_classes == (1 if labels is None else len(labels))
        assert model.head.regression == (labels is None)
        assert _params(backbone) == ENCODER_PARAMS['base']
        dev = 'dev_matched.tsv' if task == 'mnli' else 'dev.tsv'
        assert cfg.val_dataloader.dataset.ann_file.endswith('/' + dev)
    else:  # the tiny embedded configs
        assert backbone.max_position == 128
        shared = name.startswith('albert')
        assert (backbone.embedding_size == 32) == shared
        (attn0, ffn0), = backbone.layer_modules(0)
        (attn3, ffn3), = backbone.layer_modules(3)
        assert (attn0 is attn3) == shared and (ffn0 is ffn3) == shared
        if 'nosop' in name:
            assert model.sop_head is None
        if 'pairs' in name:
            assert model.head.num_classes == 2
    if _params(backbone) > 20e6:
        return
    backbone = MODELS.build(model_cfg.backbone).eval()  # real weights
    ids = torch.randint(5, backbone.vocab_size, (2, 16))
    with torch.no_grad():
        seq, pooled = backbone(ids, torch.zeros_like(ids),
                               torch.ones_like(ids))
    assert seq.shape == (2, 16, backbone.hidden_size)
    assert pooled.shape == (2, backbone.hidden_size)


def test_unshared_bert_has_more_parameters_than_albert():
    counts = {}
    for name in ('albert_tiny', 'bert_tiny'):
        cfg = _load(
            osp.join(FOLDER, f'{name}_1xb32-lamb-20e_embedded-text.py'))
        counts[name] = _params(MODELS.build(cfg.model).backbone)
    # V E + E H (projection) vs V H; one layer vs four
    assert counts['bert_tiny'] > 2.5 * counts['albert_tiny']


def _tiny_pretrain_cfg(work_dir,
                       max_epochs=4,
                       resume_from=None,
                       documents=40,
                       lr=5e-3):
    """The tiny pretraining config, made small: the first ``documents``
    documents, 64-token sequences, a 2-layer 32-wide model, a schedule of
    ``max_epochs`` (at least 4) epochs."""
    cfg = Config.fromfile(TINY)
    for key in ('train_dataloader', 'val_dataloader'):
        cfg[key].dataset.update(
            data_root=TEXT_ROOT, max_documents=documents, max_seq_length=64)
        cfg[key].batch_size = 16
    cfg.model.backbone.update(
        embedding_size=16,
        hidden_size=32,
        num_layers=2,
        num_heads=2,
        ffn_dim=64,
        max_position=64)
    cfg.param_scheduler[1].end = max(4, max_epochs)
    cfg.optim_wrapper.optimizer.lr = lr
    cfg.merge_from_dict({
        'work_dir': work_dir,
        'train_cfg.max_epochs': max_epochs,
        'train_cfg.val_interval': 4,
        'default_hooks.checkpoint.interval': 1,
        'default_hooks.checkpoint.max_keep_ckpts': 4,
        'default_hooks.logger.interval': 1,
        'log_level': 'WARNING',
    })
    cfg.test_dataloader = cfg.val_dataloader
    if resume_from:
        cfg.resume = True
        cfg.load_from = resume_from
    return cfg


def test_tiny_pretraining_resumes_exactly(tmp_path):
    assert_resume_equals_straight(_tiny_pretrain_cfg, str(tmp_path))


def test_tiny_pretraining_lowers_both_losses_and_starts_the_finetune(tmp_path):
    # 120 documents, 8 epochs: 104 steps (MLM 7.60 -> 6.72, SOP 0.694 ->
    # 0.659 over the first / last 4 steps when measured)
    cfg = own_experiment_name(
        _tiny_pretrain_cfg(
            str(tmp_path / 'pt'), max_epochs=8, documents=120, lr=1e-2))
    runner = Runner.from_cfg(cfg)
    runner.train()
    history = runner.message_hub.log_scalars
    mlm = history['train/loss_mlm'].data[0]
    sop = history['train/loss_sop'].data[0]
    k = 8
    assert mlm[-k:].mean() < mlm[:k].mean() - 0.5
    assert sop[-k:].mean() < sop[:k].mean() - 0.01
    metrics = runner.val_loop.run()
    assert {'mlm_accuracy', 'sop_accuracy'} <= set(metrics)
    ckpt = str(tmp_path / 'pt' / 'epoch_8.pth')
    pretrained = runner.model.backbone.state_dict()

    # the pair task starts from this backbone
    ft = Config.fromfile(PAIRS)
    ft.model.backbone.update(
        embedding_size=16,
        hidden_size=32,
        num_layers=2,
        num_heads=2,
        ffn_dim=64,
        max_position=64)
    ft.model.backbone.init_cfg.checkpoint = ckpt
    ft.model.head.dropout = 0.
    for key in ('train_dataloader', 'val_dataloader'):
        ft[key].dataset.update(data_root=TEXT_ROOT, max_length=64, indices=32)
    init_default_scope('mmpretrain')
    model = MODELS.build(ft.model)
    model.init_weights()
    for k, v in model.backbone.state_dict().items():
        torch.testing.assert_close(v, pretrained[k], msg=k)
    # and the config fine-tunes through the Runner with its own metric
    ft.merge_from_dict({
        'work_dir': str(tmp_path / 'ft'),
        'train_cfg.max_epochs': 1,
        'default_hooks.logger.interval': 1,
        'log_level': 'WARNING',
    })
    ft.param_scheduler = [dict(type='ConstantLR', factor=1.0, by_epoch=True)]
    ft.test_dataloader = ft.val_dataloader
    runner = Runner.from_cfg(own_experiment_name(ft))
    runner.train()
    metrics = runner.val_loop.run()
    assert set(metrics) == {'accuracy', 'f1'}
    assert osp.isfile(str(tmp_path / 'ft' / 'epoch_1.pth'))
