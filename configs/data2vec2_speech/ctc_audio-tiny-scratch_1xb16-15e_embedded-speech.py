# The tiny CTC fine-tuning of ctc_d2v2-audio-tiny_1xb16-15e_embedded-speech.py
# from a randomly initialised encoder (the baseline of the pretraining):
# same model, data, schedule and budget, no pretrained weights.
#   python tools/train.py configs/data2vec2_speech/ctc_audio-tiny-scratch_1xb16-15e_embedded-speech.py
_base_ = ['./ctc_d2v2-audio-tiny_1xb16-15e_embedded-speech.py']

model = dict(backbone=dict(init_cfg=None))
