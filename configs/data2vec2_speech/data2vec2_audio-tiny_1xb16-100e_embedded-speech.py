# data2vec 2.0 speech pretraining, tiny, on the embedded speech corpus, five
# times longer than data2vec2_audio-tiny_1xb16-20e_embedded-speech.py (the
# same model, data and recipe): 100 epochs, 2700 updates, the teacher
# annealing over the first half of them. Fine-tuned by
# ctc_d2v2-audio-tiny_1xb16-100e_embedded-speech.py.
#   python tools/train.py configs/data2vec2_speech/data2vec2_audio-tiny_1xb16-100e_embedded-speech.py
_base_ = ['./data2vec2_audio-tiny_1xb16-20e_embedded-speech.py']

max_epochs = 100
warmup_epochs = 5

model = dict(ema=dict(anneal_iters=1350))
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
default_hooks = dict(checkpoint=dict(interval=25))
