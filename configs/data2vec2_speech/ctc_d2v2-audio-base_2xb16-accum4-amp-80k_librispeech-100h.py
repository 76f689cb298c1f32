# CTC fine-tuning on the LibriSpeech 100 h clean set (train-clean-100):
# fairseq's base_100h.yaml, i.e. the 10 h config with 80k updates, peak lr
# 3e-5, LayerDrop 0.1 and no frozen phase.
#   bash tools/dist_train.sh configs/data2vec2_speech/ctc_d2v2-audio-base_2xb16-accum4-amp-80k_librispeech-100h.py 2
_base_ = ['./ctc_d2v2-audio-base_2xb16-accum4-amp-20k_librispeech-10h.py']

train_split = 'train-clean-100'
accumulate = 4
max_updates = 80000
max_iters = max_updates * accumulate
warmup_iters = int(0.1 * max_iters)
hold_iters = int(0.4 * max_iters)

train_dataloader = dict(
    dataset=dict(
        ann_file=f'{train_split}.tsv', transcript_file=f'{train_split}.ltr'))
model = dict(backbone=dict(layerdrop=0.1), freeze_finetune_updates=0)
optim_wrapper = dict(optimizer=dict(lr=3e-5))
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
train_cfg = dict(max_iters=max_iters)
