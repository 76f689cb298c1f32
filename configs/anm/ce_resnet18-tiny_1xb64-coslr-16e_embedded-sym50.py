# The cross-entropy baseline of anm_resnet18-tiny_1xb64-coslr-16e_embedded-sym50.py:
# the same network, noisy data, schedule and seed as mmpretrain's plain
# ImageClassifier (no masking, no label refinement, no quality refresh).
#   python tools/train.py configs/anm/ce_resnet18-tiny_1xb64-coslr-16e_embedded-sym50.py
_base_ = ['./anm_resnet18-tiny_1xb64-coslr-16e_embedded-sym50.py']

model = dict(
    _delete_=True,
    type='ImageClassifier',
    data_preprocessor={{_base_.data_preprocessor}},
    backbone={{_base_.model.backbone}},
    neck=dict(type='GlobalAveragePooling'),
    head={{_base_.model.head}})
custom_hooks = []
find_unused_parameters = False
