# anm_resnet18-tiny_1xb64-coslr-16e_embedded-sym50.py at 80 % symmetric noise.
#   python tools/train.py configs/anm/anm_resnet18-tiny_1xb64-coslr-16e_embedded-sym80.py
_base_ = ['./anm_resnet18-tiny_1xb64-coslr-16e_embedded-sym50.py']

train_dataloader = dict(dataset=dict(noise_rate=0.8))
