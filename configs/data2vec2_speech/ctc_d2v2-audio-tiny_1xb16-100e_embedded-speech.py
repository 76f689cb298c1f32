# CTC fine-tuning of the tiny data2vec 2.0 speech encoder, the recipe of
# ctc_d2v2-audio-tiny_1xb16-15e_embedded-speech.py run for 100 epochs (3000
# updates: 10 % warm-up, 40 % hold, 50 % exponential decay, the first 30
# updates with the encoder frozen), from the 100-epoch pretraining:
#   python tools/train.py configs/data2vec2_speech/data2vec2_audio-tiny_1xb16-100e_embedded-speech.py
#   python tools/train.py configs/data2vec2_speech/ctc_d2v2-audio-tiny_1xb16-100e_embedded-speech.py
# From scratch, same budget: ctc_audio-tiny-scratch_1xb16-100e_embedded-speech.py
_base_ = ['./ctc_d2v2-audio-tiny_1xb16-15e_embedded-speech.py']

pretrained = 'work_dirs/data2vec2_audio-tiny_1xb16-100e_embedded-speech/' \
    'epoch_100.pth'
max_epochs = 100
iters_per_epoch = 30  # 480 clips, batch 16
warmup_epochs = 10  # 10 %
hold_epochs = 40  # 40 %

model = dict(
    backbone=dict(
        init_cfg=dict(
            type='Pretrained', checkpoint=pretrained, prefix='backbone.')))
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
    type='EpochBasedTrainLoop', max_epochs=max_epochs, val_interval=10)
default_hooks = dict(checkpoint=dict(interval=25))
