# The cross-entropy baseline of anm_resnet50_1xb32-4e_clothing1m.py:
# mmpretrain's plain ImageClassifier with the same pretrained ResNet-50,
# data, schedule and seed.
#   python tools/train.py configs/anm/ce_resnet50_1xb32-4e_clothing1m.py
_base_ = ['./anm_resnet50_1xb32-4e_clothing1m.py']

model = dict(
    _delete_=True,
    type='ImageClassifier',
    data_preprocessor={{_base_.model.data_preprocessor}},
    backbone={{_base_.model.backbone}},
    neck={{_base_.model.neck}},
    head={{_base_.model.head}})
custom_hooks = []
find_unused_parameters = False
