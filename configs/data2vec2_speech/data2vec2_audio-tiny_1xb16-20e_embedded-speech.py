# data2vec 2.0 speech pretraining, tiny, on the embedded speech corpus
# (480 synthesised English clips, 15 minutes, made on first use in
# data/embedded_speech). The base audio recipe scaled down: a 32-channel
# conv feature extractor with wav2vec 2.0's kernels and strides (50 frames a second),
# 4 post-LN blocks of width 64 with ALiBi, 8 span masks per clip
# (mask_prob 0.5, length 5, adjust 0.05), targets the instance-normalised
# average of the top 3 teacher blocks (no final LayerNorm), the 1-D conv
# decoder at width 64. Clips are cropped to 1 s so batches are rectangular
# (clips shorter than that, 7 %, are dropped), as fairseq crops a batch to
# its shortest clip.
#   python tools/train.py configs/data2vec2_speech/data2vec2_audio-tiny_1xb16-20e_embedded-speech.py
_base_ = ['../_base_/default_runtime.py']

crop = 16000  # samples: 1 s at 16 kHz, 49 frames
max_epochs = 20
warmup_epochs = 1

train_pipeline = [
    dict(type='mmssl.LoadAudio', sample_rate=16000),
    dict(type='mmssl.RandomAudioCrop', max_samples=crop, min_samples=crop),
    dict(type='mmssl.NormalizeAudio'),
    dict(type='mmssl.PackAudioInputs'),
]
train_dataloader = dict(
    batch_size=16,
    num_workers=0,
    drop_last=True,
    sampler=dict(type='DefaultSampler', shuffle=True),
    collate_fn=dict(type='pseudo_collate'),
    dataset=dict(
        type='mmssl.EmbeddedSpeechDataset',
        data_root='data/embedded_speech',
        split='train',
        min_samples=crop,
        pipeline=train_pipeline))

model = dict(
    type='mmssl.Data2VecV2',
    data_preprocessor=dict(type='mmssl.AudioDataPreprocessor'),
    backbone=dict(type='mmssl.D2V2AudioEncoder', arch='tiny'),
    neck=dict(
        type='mmssl.D2V2ConvDecoder1d',
        in_channels=64,
        embed_dims=64,
        num_layers=4,
        kernel_size=7,
        groups=16,
        residual=True,
        projection_layers=1,
        input_dropout=0.1,
        noise_std=0.01),
    head=dict(
        type='mmssl.D2V2Head',
        top_k=3,
        instance_norm=True,
        layer_norm=False,
        cls_loss_weight=0.,
        loss=dict(type='mmssl.D2V2RegressionLoss')),
    # the teacher anneals over the first half of the 540 updates
    ema=dict(momentum=1e-2, end_momentum=1e-4, anneal_iters=270),
    mask_generator=dict(
        type='mmssl.SpanMasker',
        mask_prob=0.5,
        mask_length=5,
        mask_prob_adjust=0.05,
        num_masks=8))

optim_wrapper = dict(
    type='OptimWrapper',
    optimizer=dict(
        type='AdamW', lr=1e-3, betas=(0.9, 0.98), eps=1e-6, weight_decay=0.01),
    paramwise_cfg=dict(
        bias_decay_mult=0.,
        norm_decay_mult=0.,
        flat_decay_mult=0.,
        custom_keys={'alibi_scale': dict(decay_mult=0.)}))
param_scheduler = [
    dict(
        type='LinearLR',
        start_factor=1e-3,
        by_epoch=True,
        begin=0,
        end=warmup_epochs,
        convert_to_iter_based=True),
    dict(
        type='CosineAnnealingLR',
        T_max=max_epochs - warmup_epochs,
        by_epoch=True,
        begin=warmup_epochs,
        end=max_epochs,
        convert_to_iter_based=True),
]
train_cfg = dict(type='EpochBasedTrainLoop', max_epochs=max_epochs)
default_hooks = dict(
    logger=dict(type='LoggerHook', interval=10),
    checkpoint=dict(type='CheckpointHook', interval=5, max_keep_ckpts=1))
custom_hooks = [dict(type='mmssl.TeacherUpdateHook')]
env_cfg = dict(dist_cfg=dict(backend='gloo'))
randomness = dict(seed=0, diff_rank_seed=True)
