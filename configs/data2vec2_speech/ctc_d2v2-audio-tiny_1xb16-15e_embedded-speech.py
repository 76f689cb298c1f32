# CTC fine-tuning of the tiny data2vec 2.0 speech encoder on the embedded
# speech corpus (480 training clips, WER / CER on the 64 validation clips),
# the base_10h recipe scaled down: characters (blank, |, A-Z, '), the conv
# feature extractor without gradient, only the output layer trained for the
# first 30 updates (base_10h: 10k of 20k), time masks (p 0.65, length 10)
# filled with small noise and channel masks (p 0.5, length 6: 64 of 768
# channels in the base model), LayerDrop 0.05, FFN dropout 0.1, Adam with a
# tri-stage schedule (10 % warm-up, 40 % hold, 50 % exponential decay to
# 0.05 of the peak). The encoder starts from the tiny pretraining:
#   python tools/train.py configs/data2vec2_speech/data2vec2_audio-tiny_1xb16-20e_embedded-speech.py
#   python tools/train.py configs/data2vec2_speech/ctc_d2v2-audio-tiny_1xb16-15e_embedded-speech.py
# From scratch, same budget: ctc_audio-tiny-scratch_1xb16-15e_embedded-speech.py
_base_ = ['../_base_/default_runtime.py']

pretrained = 'work_dirs/data2vec2_audio-tiny_1xb16-20e_embedded-speech/' \
    'epoch_20.pth'
max_epochs = 15
iters_per_epoch = 30  # 480 clips, batch 16
warmup_epochs = 1.5  # 10 %
hold_epochs = 6  # 40 %

train_pipeline = [
    dict(type='mmssl.LoadAudio', sample_rate=16000),
    dict(type='mmssl.NormalizeAudio'),
    dict(type='mmssl.EncodeTranscript'),
    dict(type='mmssl.PackAudioInputs'),
]
test_pipeline = [
    dict(type='mmssl.LoadAudio', sample_rate=16000),
    dict(type='mmssl.NormalizeAudio'),
    dict(type='mmssl.PackAudioInputs'),
]
speech = dict(
    type='mmssl.EmbeddedSpeechDataset', data_root='data/embedded_speech')
train_dataloader = dict(
    batch_size=16,
    num_workers=0,
    sampler=dict(type='DefaultSampler', shuffle=True),
    collate_fn=dict(type='pseudo_collate'),
    dataset=dict(speech, split='train', pipeline=train_pipeline))
val_dataloader = dict(
    batch_size=16,
    num_workers=0,
    sampler=dict(type='DefaultSampler', shuffle=False),
    collate_fn=dict(type='pseudo_collate'),
    dataset=dict(speech, split='val', pipeline=test_pipeline))
test_dataloader = dict(
    val_dataloader, dataset=dict(speech, split='test', pipeline=test_pipeline))
val_evaluator = dict(type='mmssl.WERMetric')
test_evaluator = val_evaluator

model = dict(
    type='mmssl.CTCSpeechRecognizer',
    backbone=dict(
        type='mmssl.D2V2AudioEncoder',
        arch='tiny',
        drop_rate=0.,
        attn_drop_rate=0.,
        ffn_drop_rate=0.1,
        context_dropout=0.,
        layerdrop=0.05,
        feature_grad_mult=0.,
        init_cfg=dict(
            type='Pretrained', checkpoint=pretrained, prefix='backbone.')),
    final_dropout=0.,
    mask_prob=0.65,
    mask_length=10,
    mask_channel_prob=0.5,
    mask_channel_length=6,
    freeze_finetune_updates=30,
    loss_avg='sentence')

optim_wrapper = dict(
    type='OptimWrapper',
    optimizer=dict(type='Adam', lr=1e-3, betas=(0.9, 0.98), eps=1e-8))
param_scheduler = [
    dict(
        type='LinearLR',
        start_factor=0.01,
        by_epoch=True,
        begin=0,
        end=warmup_epochs,
        convert_to_iter_based=True),
    dict(
        type='ExponentialLR',
        gamma=0.05**(1 / (
            (max_epochs - warmup_epochs - hold_epochs) * iters_per_epoch)),
        by_epoch=True,
        begin=warmup_epochs + hold_epochs,
        end=max_epochs,
        convert_to_iter_based=True),
]
train_cfg = dict(
    type='EpochBasedTrainLoop', max_epochs=max_epochs, val_interval=5)
val_cfg = dict()
test_cfg = dict()
default_hooks = dict(
    logger=dict(type='LoggerHook', interval=10),
    checkpoint=dict(type='CheckpointHook', interval=5, max_keep_ckpts=1))
# the update count for freeze_finetune_updates
custom_hooks = [dict(type='mmssl.NumUpdatesHook')]
env_cfg = dict(dist_cfg=dict(backend='gloo'))
randomness = dict(seed=0)
