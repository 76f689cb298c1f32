# data2vec 2.0 speech pretraining, base, on LibriSpeech 960 h: fairseq's
# examples/data2vec/config/v2/base_audio_only_task.yaml. 8 GPUs; fairseq
# batches up to 1M samples (62.5 s) per GPU with clips cropped to at most
# 20 s (and to the shortest clip of the batch), i.e. about 3 clips a GPU,
# each with 8 masks (clone batch). 400k updates, Adam (0.9, 0.98), peak lr
# 7.5e-4 after 8k warm-up updates then cosine, weight decay 0.01 (none on
# biases, norms and the ALiBi scales), fp16, no gradient clipping.
#
# Data (local paths): fairseq manifests of the 960 h training audio,
#   python examples/wav2vec/wav2vec_manifest.py /path/to/LibriSpeech \
#       --dest data/librispeech --ext flac --valid-percent 0
# which writes data/librispeech/train.tsv (root folder, then
# relative_path<TAB>num_samples lines).
#   bash tools/dist_train.sh configs/data2vec2_speech/data2vec2_audio-base_8xb3-amp-400k_librispeech-960h.py 8
_base_ = ['../_base_/default_runtime.py']

data_root = 'data/librispeech'
max_updates = 400000
warmup_updates = 8000

train_pipeline = [
    dict(type='mmssl.LoadAudio', sample_rate=16000),
    dict(type='mmssl.RandomAudioCrop', max_samples=320000),
    dict(type='mmssl.NormalizeAudio'),
    dict(type='mmssl.PackAudioInputs'),
]
train_dataloader = dict(
    batch_size=3,
    num_workers=6,
    persistent_workers=True,
    drop_last=True,
    sampler=dict(type='InfiniteSampler', shuffle=True),
    collate_fn=dict(type='pseudo_collate'),
    dataset=dict(
        type='mmssl.SpeechDataset',
        data_root=data_root,
        ann_file='train.tsv',
        min_samples=32000,
        pipeline=train_pipeline))

model = dict(
    type='mmssl.Data2VecV2',
    # clips cropped to the shortest of the batch: rectangular, no padding
    data_preprocessor=dict(type='mmssl.ShortestCropDataPreprocessor'),
    backbone=dict(
        type='mmssl.D2V2AudioEncoder',
        arch='base',
        extractor_mode='layer_norm',
        conv_pos_depth=5,
        conv_pos_width=95,
        conv_pos_groups=16,
        use_alibi=True,
        learned_alibi_scale=True,
        drop_rate=0.1,
        attn_drop_rate=0.1,
        ffn_drop_rate=0.,
        context_dropout=0.1,
        layerdrop=0.05,
        norm_eps=1e-5,
        feature_grad_mult=1.),
    neck=dict(
        type='mmssl.D2V2ConvDecoder1d',
        in_channels=768,
        embed_dims=384,
        num_layers=4,
        kernel_size=7,
        groups=16,
        residual=True,
        projection_layers=1,
        input_dropout=0.1,
        noise_std=0.01),
    head=dict(
        type='mmssl.D2V2Head',
        top_k=8,
        instance_norm=True,
        layer_norm=False,
        cls_loss_weight=0.,
        # L2, scaled by 1 / sqrt(768)
        loss=dict(type='mmssl.D2V2RegressionLoss', beta=0., scale=None)),
    # EMA decay 0.999 -> 0.99999 over 75k updates (momentum = 1 - decay)
    ema=dict(momentum=1e-3, end_momentum=1e-5, anneal_iters=75000),
    mask_generator=dict(
        type='mmssl.SpanMasker',
        mask_prob=0.5,
        mask_length=5,
        mask_prob_adjust=0.05,
        num_masks=8,
        method='block'))

optim_wrapper = dict(
    type='AmpOptimWrapper',
    loss_scale='dynamic',
    optimizer=dict(
        type='AdamW',
        lr=7.5e-4,
        betas=(0.9, 0.98),
        eps=1e-6,
        weight_decay=0.01),
    paramwise_cfg=dict(
        bias_decay_mult=0.,
        norm_decay_mult=0.,
        flat_decay_mult=0.,
        custom_keys={'alibi_scale': dict(decay_mult=0.)}))
param_scheduler = [
    dict(
        type='LinearLR',
        start_factor=1e-6,
        by_epoch=False,
        begin=0,
        end=warmup_updates),
    dict(
        type='CosineAnnealingLR',
        T_max=max_updates - warmup_updates,
        by_epoch=False,
        begin=warmup_updates,
        end=max_updates),
]
train_cfg = dict(type='IterBasedTrainLoop', max_iters=max_updates)
default_hooks = dict(
    logger=dict(type='LoggerHook', interval=200),
    checkpoint=dict(
        type='CheckpointHook',
        by_epoch=False,
        interval=25000,
        max_keep_ckpts=1))
# fairseq's min_target_var / min_pred_var defaults (std values)
custom_hooks = [
    dict(type='mmssl.TeacherUpdateHook'),
    dict(
        type='mmssl.CollapseGuardHook',
        min_target_std=0.1,
        min_pred_std=0.01,
        after_iters=5000)
]
# LayerDrop skips blocks: DDP must tolerate parameters without gradient
model_wrapper_cfg = dict(
    type='MMDistributedDataParallel', find_unused_parameters=True)
log_processor = dict(by_epoch=False)
randomness = dict(seed=0, diff_rank_seed=True)
auto_scale_lr = dict(base_batch_size=24)
