# Copyright (c) mmssl contributors. All rights reserved.
"""data2vec 2.0 speech configs: every config builds; the base configs hold
fairseq's settings (base_audio_only_task.yaml, base_10h.yaml,
base_100h.yaml), one assertion per setting; the tiny pretraining learns
and resumes exactly through the Runner, and its checkpoint starts the CTC
fine-tuning, which reports WER."""
import glob
import os.path as osp

import pytest
import torch
from mmengine.config import Config
from mmengine.registry import init_default_scope
from mmengine.runner import Runner

from mmssl.datasets.embedded_speech import make_embedded_speech
from mmssl.registry import MODELS
from mmssl.testing.resume import (assert_resume_equals_straight,
                                  own_experiment_name)

ROOT = osp.dirname(osp.dirname(osp.dirname(osp.abspath(__file__))))
FOLDER = osp.join(ROOT, 'configs', 'data2vec2_speech')
CONFIGS = sorted(glob.glob(osp.join(FOLDER, '*.py')))
PRETRAIN = osp.join(FOLDER,
                    'data2vec2_audio-base_8xb3-amp-400k_librispeech-960h.py')
FT10 = osp.join(FOLDER,
                'ctc_d2v2-audio-base_2xb16-accum4-amp-20k_librispeech-10h.py')
FT100 = osp.join(
    FOLDER, 'ctc_d2v2-audio-base_2xb16-accum4-amp-80k_librispeech-100h.py')
TINY = osp.join(FOLDER, 'data2vec2_audio-tiny_1xb16-20e_embedded-speech.py')
TINY_FT = osp.join(FOLDER, 'ctc_d2v2-audio-tiny_1xb16-15e_embedded-speech.py')
TINY_LONG = osp.join(FOLDER,
                     'data2vec2_audio-tiny_1xb16-100e_embedded-speech.py')
TINY_FT_LONG = osp.join(FOLDER,
                        'ctc_d2v2-audio-tiny_1xb16-100e_embedded-speech.py')
TINY_SCRATCH = osp.join(FOLDER,
                        'ctc_audio-tiny-scratch_1xb16-15e_embedded-speech.py')
TINY_SCRATCH_LONG = osp.join(
    FOLDER, 'ctc_audio-tiny-scratch_1xb16-100e_embedded-speech.py')


def _load(path):
    cfg = Config.fromfile(path)
    init_default_scope(cfg.get('default_scope', 'mmpretrain'))
    return cfg


def _build(cfg):
    model = dict(cfg.model)
    backbone = dict(model['backbone'])
    backbone['init_cfg'] = None
    model['backbone'] = backbone
    return MODELS.build(model)


def _step(pipeline, name):
    steps = [s for s in pipeline if s['type'] == name]
    assert len(steps) == 1, f'{name} is not in the pipeline'
    return steps[0]


@pytest.mark.parametrize('path', CONFIGS, ids=osp.basename)
def test_every_config_builds(path):
    cfg = _load(path)
    model = _build(cfg)
    assert type(model).__name__ in ('Data2VecV2', 'CTCSpeechRecognizer')
    assert model.backbone.frame_lengths(16000) == 49


def _without_schedule(cfg):
    d = cfg.to_dict()
    for key in ('param_scheduler', 'train_cfg', 'default_hooks', 'max_epochs',
                'warmup_epochs', 'hold_epochs', 'pretrained'):
        d.pop(key, None)
    d['model'].pop('ema', None)
    d['model']['backbone'].pop('init_cfg', None)
    return d


@pytest.mark.parametrize(
    'short,long', [(TINY, TINY_LONG), (TINY_FT, TINY_FT_LONG),
                   (TINY_SCRATCH, TINY_SCRATCH_LONG)],
    ids=['pretrain', 'finetune', 'scratch'])
def test_long_tiny_configs_change_only_the_length(short, long):
    """The 100-epoch tiny configs are the short ones with every schedule
    stretched to the same shape (warm-up, hold and decay fractions, the
    teacher annealing over half the updates) and nothing else changed."""
    a, b = _load(short), _load(long)
    assert _without_schedule(a) == _without_schedule(b)
    assert b.train_cfg.max_epochs == 100
    for cfg in (a, b):
        epochs = cfg.train_cfg.max_epochs
        sched = cfg.param_scheduler
        if cfg.model.type == 'mmssl.Data2VecV2':
            updates = epochs * 27  # 432 one-second clips, batch 16
            assert cfg.model.ema.anneal_iters == updates // 2
            assert sched[1].type == 'CosineAnnealingLR'
            assert sched[1].end == epochs
            assert sched[1].T_max == epochs - sched[0].end
            continue
        # tri-stage: 10 % warm-up, 40 % hold, 50 % decay to 0.05 of the peak
        assert sched[0].end == pytest.approx(0.1 * epochs)
        assert sched[1].begin == pytest.approx(0.5 * epochs)
        assert sched[1].end == epochs
        decay_iters = (sched[1].end - sched[1].begin) * 30
        assert sched[1].gamma**decay_iters == pytest.approx(0.05)
    init = b.model.backbone.get('init_cfg')
    if 'scratch' in long:
        assert init is None
    elif b.model.type == 'mmssl.CTCSpeechRecognizer':
        # the long fine-tuning starts from the long pretraining's end
        assert init.checkpoint == ('work_dirs/' +
                                   osp.basename(TINY_LONG)[:-3] +
                                   '/epoch_100.pth')


def test_base_pretraining_equals_base_audio_only_task_yaml():
    cfg = _load(PRETRAIN)
    model = _build(cfg)
    enc, head, neck = model.backbone, model.head, model.neck
    masker = model.mask_generator
    opt = cfg.optim_wrapper.optimizer
    sched = cfg.param_scheduler
    data = cfg.train_dataloader.dataset
    # task
    assert _step(data.pipeline, 'mmssl.RandomAudioCrop').max_samples == 320000
    assert data.min_samples == 32000  # min_sample_size
    assert _step(data.pipeline, 'mmssl.NormalizeAudio')  # normalize: true
    # optimization / optimizer / lr_scheduler / fp16
    assert cfg.train_cfg.max_iters == 400000  # max_update
    assert opt.lr == 0.00075
    assert opt.betas == (0.9, 0.98)
    assert opt.eps == 1e-6
    assert opt.weight_decay == 0.01
    assert sched[0].end == 8000 and sched[1].begin == 8000  # warmup_updates
    assert sched[1].type == 'CosineAnnealingLR' and sched[1].end == 400000
    assert cfg.optim_wrapper.type == 'AmpOptimWrapper'  # fp16
    assert 'clip_grad' not in cfg.optim_wrapper  # clip_norm 0
    # model
    assert head.loss_module.beta == 0  # loss_beta
    assert head.loss_module.scale is None  # loss_scale: 1 / sqrt(768)
    assert enc.num_layers == 12  # depth (prenet_depth 0)
    assert enc.embed_dims == 768  # embed_dim
    assert enc.num_heads == 12  # num_heads (default)
    assert enc.layers[0].ffn.layers[0][0].out_features == 3072  # mlp_ratio 4
    assert masker.num_masks == 8  # clone_batch
    assert model.teacher.momentum == pytest.approx(1e-3)  # ema_decay 0.999
    assert model.teacher.end_momentum == pytest.approx(1e-5)  # 0.99999
    assert model.teacher.anneal_iters == 75000  # ema_anneal_end_step
    assert model.teacher_input == 'student_embedding'  # ema_local_encoder
    assert head.top_k == 8  # average_top_k_layers
    assert head.instance_norm  # instance_norm_target_layer
    assert not head.layer_norm  # layer_norm_targets (no per-layer LN)
    assert head.cls_loss_weight == 0  # cls_loss
    assert enc.layerdrop == 0.05  # layerdrop
    assert enc.ln_pre.eps == 1e-5 and enc.layers[0].ln1.eps == 1e-5
    # modalities.audio
    assert enc.spec == [(512, 10, 5)] + [(512, 3, 2)] * 4 + [(512, 2, 2)] * 2
    assert enc.feature_extractor[0].norm_type == 'layer'  # layer_norm mode
    assert len(enc.pos_convs) == 5  # conv_pos_depth
    assert enc.pos_kernel == 95 // 5  # conv_pos_width
    assert enc.pos_convs[0].groups == 16  # conv_pos_groups
    assert enc.pos_pre_ln is None  # conv_pos_pre_ln
    assert masker.mask_prob == 0.5  # mask_prob
    assert masker.mask_prob_adjust == 0.05  # mask_prob_adjust
    assert masker.mask_length == 5  # mask_length
    assert masker.method == 'block'  # precompute_mask_config
    assert masker.mask_dropout == 0  # mask_dropout
    assert neck.noise_std == 0.01  # mask_noise_std
    assert enc.use_alibi  # use_alibi_encoder
    assert enc.alibi_scale.requires_grad  # learned_alibi_scale
    assert enc.alibi_scale.shape == (1, 12, 1, 1)  # ... per head
    assert enc.drop_after_pos.p == 0.1  # prenet_dropout
    assert enc.layers[0].attn.attn_drop == 0.1  # attention_dropout
    assert enc.layers[0].attn.proj_drop.p == 0.1  # encoder_dropout
    assert enc.layers[0].post_ffn_drop.p == 0.1  # post_mlp_drop
    assert enc.feature_grad_mult == 1  # local_grad_mult
    # modalities.audio.decoder
    assert neck.input_dropout.p == 0.1  # input_dropout
    assert neck.embed_dims == 384  # decoder_dim
    assert neck.blocks[0].conv.groups == 16  # decoder_groups
    assert neck.blocks[0].conv.kernel_size == (7, )  # decoder_kernel
    assert len(neck.blocks) == 4  # decoder_layers
    assert neck.residual  # decoder_residual (default)
    assert isinstance(neck.proj, torch.nn.Linear)  # projection_layers 1
    guard = cfg.custom_hooks[1]  # min_target_var / min_pred_var defaults
    assert guard.type == 'mmssl.CollapseGuardHook'
    assert (guard.min_target_std, guard.min_pred_std,
            guard.after_iters) == (0.1, 0.01, 5000)


def _ft_settings(path):
    cfg = _load(path)
    return cfg, _build(cfg)


def test_base_10h_equals_base_10h_yaml():
    cfg, model = _ft_settings(FT10)
    acc = cfg.optim_wrapper.accumulative_counts
    sched = cfg.param_scheduler
    assert acc == 4  # update_freq
    assert cfg.train_cfg.max_iters == 20000 * acc  # max_update
    assert cfg.optim_wrapper.optimizer.lr == 5e-5
    assert cfg.optim_wrapper.optimizer.betas == (0.9, 0.98)
    assert cfg.optim_wrapper.optimizer.eps == 1e-8
    assert cfg.optim_wrapper.type == 'AmpOptimWrapper'  # fp16
    assert sched[0].start_factor == 0.01  # tri_stage init_lr_scale
    assert sched[0].end == 0.1 * 80000  # phase_ratio[0]
    assert sched[1].begin == 0.5 * 80000  # phase_ratio[1] (hold)
    assert sched[1].gamma**(80000 - 40000) == pytest.approx(0.05)
    assert model.mask_prob == 0.65
    assert model.mask_length == 10
    assert model.mask_channel_prob == 0.5
    assert model.mask_channel_length == 64
    assert model.backbone.layerdrop == 0.05
    assert model.backbone.layers[0].ffn.layers[0][2].p == 0.1
    assert model.backbone.feature_grad_mult == 0.
    assert model.freeze_finetune_updates == 10000
    assert model.zero_infinity  # criterion zero_infinity
    assert model.loss_avg == 'sentence'  # sentence_avg
    assert model.final_dropout.p == 0.
    assert _step(cfg.train_dataloader.dataset.pipeline,
                 'mmssl.NormalizeAudio')  # data2vec: normalize=true
    assert cfg.val_dataloader.dataset.ann_file == 'dev-other.tsv'
    assert cfg.val_evaluator.type == 'mmssl.WERMetric'
    assert [h.type for h in cfg.custom_hooks] == ['mmssl.NumUpdatesHook']


def test_base_100h_equals_base_100h_yaml():
    cfg, model = _ft_settings(FT100)
    acc = cfg.optim_wrapper.accumulative_counts
    assert cfg.train_cfg.max_iters == 80000 * acc  # max_update
    assert cfg.optim_wrapper.optimizer.lr == 3e-5
    assert model.backbone.layerdrop == 0.1
    assert model.freeze_finetune_updates == 0
    assert cfg.param_scheduler[0].end == 0.1 * 320000
    assert cfg.param_scheduler[1].begin == 0.5 * 320000
    assert cfg.train_dataloader.dataset.ann_file == 'train-clean-100.tsv'


# ------------------------------------------------------------ tiny runs
@pytest.fixture(scope='module')
def speech_root(tmp_path_factory):
    root = str(tmp_path_factory.mktemp('speech') / 'embedded_speech')
    make_embedded_speech(root, num_train=16, num_val=8, num_test=8)
    return root


def _tiny_cfg(root, work_dir, max_epochs, resume_from=None):
    cfg = _load(TINY)
    cfg.work_dir = work_dir
    cfg.train_dataloader.batch_size = 4
    data = cfg.train_dataloader.dataset
    data.data_root = root
    data.min_samples = 8000
    _step(data.pipeline, 'mmssl.RandomAudioCrop').update(
        max_samples=8000, min_samples=8000)
    cfg.model.mask_generator.num_masks = 2
    cfg.model.ema = dict(momentum=0.05, end_momentum=0.01, anneal_iters=10)
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
            T_max=3,
            by_epoch=True,
            begin=1,
            end=4,
            convert_to_iter_based=True)
    ]
    cfg.train_cfg.max_epochs = max_epochs
    cfg.default_hooks.checkpoint = dict(type='CheckpointHook', interval=1)
    cfg.default_hooks.logger = dict(type='LoggerHook', interval=1)
    if resume_from:
        cfg.load_from, cfg.resume = resume_from, True
    return cfg


def test_tiny_pretraining_lowers_the_loss(speech_root, tmp_path):
    cfg = own_experiment_name(_tiny_cfg(speech_root, str(tmp_path), 4))
    runner = Runner.from_cfg(cfg)
    runner.train()
    losses = runner.message_hub.get_scalar('train/loss').data[0]
    assert len(losses) == 16
    assert sum(losses[-4:]) < 0.7 * sum(losses[:4])


def test_tiny_pretraining_resumes_exactly_and_starts_the_finetuning(
        speech_root, tmp_path):
    straight, _, raw = assert_resume_equals_straight(
        lambda work_dir, epochs, resume: _tiny_cfg(speech_root, work_dir,
                                                   epochs, resume),
        str(tmp_path))
    assert int(straight['teacher.steps']) == 16
    assert int(raw['state_dict']['teacher.steps']) == 8

    # the CTC fine-tuning starts from the student of that checkpoint
    ckpt = str(tmp_path / 'b' / 'epoch_2.pth')
    cfg = _load(TINY_FT)
    cfg.model.backbone.init_cfg.checkpoint = ckpt
    model = MODELS.build(cfg.model)
    model.init_weights()
    for k, v in model.backbone.state_dict().items():
        torch.testing.assert_close(
            v, raw['state_dict']['backbone.' + k], atol=0, rtol=0, msg=k)
    cfg.work_dir = str(tmp_path / 'ft')
    for loader in ('train_dataloader', 'val_dataloader', 'test_dataloader'):
        cfg[loader].dataset.data_root = speech_root
        cfg[loader].batch_size = 4
    cfg.train_cfg.update(max_epochs=1, val_interval=1)
    cfg.model.freeze_finetune_updates = 2
    runner = Runner.from_cfg(own_experiment_name(cfg))
    runner.train()
    wer = runner.message_hub.get_scalar('val/asr/wer').current()
    assert 0 <= wer and runner.model.num_updates == 3  # 4 iterations
