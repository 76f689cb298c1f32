# CTC fine-tuning of the base data2vec 2.0 speech encoder on the Libri-light
# 10 h labelled set: fairseq's examples/wav2vec/config/finetuning/
# base_10h.yaml as data2vec 2.0 runs it (task.normalize=true). 2 GPUs x 16
# clips (fairseq: up to 3.2M samples = 200 s a GPU, about 16 LibriSpeech
# clips) x 4 accumulated = one update; 20k updates; Adam (0.9, 0.98), eps
# 1e-8, peak lr 5e-5, tri-stage (10 % warm-up from 0.01 of the peak, 40 %
# hold, 50 % exponential decay to 0.05); the encoder frozen for the first
# 10k updates and its conv feature extractor always; time masks (0.65, 10),
# channel masks (0.5, 64), LayerDrop 0.05, FFN dropout 0.1; CTC over
# characters averaged per clip; WER on dev-other.
#
# Data (local paths), fairseq manifests and letter targets:
#   python examples/wav2vec/wav2vec_manifest.py /path/to/librispeech_finetuning \
#       --dest data/librispeech --ext flac --valid-percent 0  (-> train-10h.tsv)
#   python examples/wav2vec/libri_labels.py data/librispeech/train-10h.tsv \
#       --output-dir data/librispeech --output-name train-10h
# and the same for dev-other / test-other.
#   bash tools/dist_train.sh configs/data2vec2_speech/ctc_d2v2-audio-base_2xb16-accum4-amp-20k_librispeech-10h.py 2
_base_ = ['../_base_/default_runtime.py']

data_root = 'data/librispeech'
train_split = 'train-10h'
pretrained = 'work_dirs/data2vec2_audio-base_8xb3-amp-400k_librispeech-960h/' \
    'iter_400000.pth'
accumulate = 4
max_updates = 20000
freeze_updates = 10000
lr = 5e-5
layerdrop = 0.05
max_iters = max_updates * accumulate
warmup_iters = int(0.1 * max_iters)
hold_iters = int(0.4 * max_iters)

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
speech = dict(type='mmssl.SpeechDataset', data_root=data_root)
train_dataloader = dict(
    batch_size=16,
    num_workers=6,
    persistent_workers=True,
    sampler=dict(type='InfiniteSampler', shuffle=True),
    collate_fn=dict(type='pseudo_collate'),
    dataset=dict(
        speech,
        ann_file=f'{train_split}.tsv',
        transcript_file=f'{train_split}.ltr',
        pipeline=train_pipeline))
val_dataloader = dict(
    batch_size=16,
    num_workers=4,
    sampler=dict(type='DefaultSampler', shuffle=False),
    collate_fn=dict(type='pseudo_collate'),
    dataset=dict(
        speech,
        ann_file='dev-other.tsv',
        transcript_file='dev-other.ltr',
        pipeline=test_pipeline))
test_dataloader = dict(
    val_dataloader,
    dataset=dict(
        speech,
        ann_file='test-other.tsv',
        transcript_file='test-other.ltr',
        pipeline=test_pipeline))
val_evaluator = dict(type='mmssl.WERMetric')
test_evaluator = val_evaluator

model = dict(
    type='mmssl.CTCSpeechRecognizer',
    backbone=dict(
        type='mmssl.D2V2AudioEncoder',
        arch='base',
        drop_rate=0.,
        attn_drop_rate=0.,
        ffn_drop_rate=0.1,
        context_dropout=0.,
        layerdrop=layerdrop,
        feature_grad_mult=0.,
        init_cfg=dict(
            type='Pretrained', checkpoint=pretrained, prefix='backbone.')),
    final_dropout=0.,
    mask_prob=0.65,
    mask_length=10,
    mask_channel_prob=0.5,
    mask_channel_length=64,
    freeze_finetune_updates=freeze_updates,
    loss_avg='sentence',
    zero_infinity=True)

optim_wrapper = dict(
    type='AmpOptimWrapper',
    loss_scale='dynamic',
    accumulative_counts=accumulate,
    optimizer=dict(type='Adam', lr=lr, betas=(0.9, 0.98), eps=1e-8))
param_scheduler = [
    dict(
        type='LinearLR',
        start_factor=0.01,
        by_epoch=False,
        begin=0,
        end=warmup_iters),
    dict(
        type='ExponentialLR',
        gamma=0.05**(1 / (max_iters - warmup_iters - hold_iters)),
        by_epoch=False,
        begin=warmup_iters + hold_iters,
        end=max_iters),
]
train_cfg = dict(
    type='IterBasedTrainLoop', max_iters=max_iters, val_interval=4000)
val_cfg = dict()
test_cfg = dict()
default_hooks = dict(
    logger=dict(type='LoggerHook', interval=200),
    checkpoint=dict(
        type='CheckpointHook',
        by_epoch=False,
        interval=4000,
        max_keep_ckpts=1,
        save_best='asr/wer',
        rule='less'))
# the update count for freeze_finetune_updates
custom_hooks = [dict(type='mmssl.NumUpdatesHook')]
# LayerDrop and the frozen encoder leave parameters without gradient
model_wrapper_cfg = dict(
    type='MMDistributedDataParallel', find_unused_parameters=True)
log_processor = dict(by_epoch=False)
randomness = dict(seed=0)
