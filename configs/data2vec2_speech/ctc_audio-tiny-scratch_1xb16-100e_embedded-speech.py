# The 100-epoch tiny CTC fine-tuning of
# ctc_d2v2-audio-tiny_1xb16-100e_embedded-speech.py from a randomly
# initialised encoder: same model, data, schedule and budget.
#   python tools/train.py configs/data2vec2_speech/ctc_audio-tiny-scratch_1xb16-100e_embedded-speech.py
_base_ = ['./ctc_d2v2-audio-tiny_1xb16-100e_embedded-speech.py']

model = dict(backbone=dict(init_cfg=None))
