# The cross-entropy baseline of anm_resnet18-tiny_1xb64-coslr-16e_embedded-asym40.py:
# 40 % asymmetric noise (cross -> star, semicircle -> circle,
# ellipse -> circle, hexagon <-> pentagon), plain ImageClassifier.
#   python tools/train.py configs/anm/ce_resnet18-tiny_1xb64-coslr-16e_embedded-asym40.py
_base_ = ['./ce_resnet18-tiny_1xb64-coslr-16e_embedded-sym50.py']

train_dataloader = dict(
    dataset=dict(
        noise_type='asymmetric',
        noise_rate=0.4,
        mapping=[[8, 7], [2, 0], [1, 0], [6, 5], [5, 6]]))
