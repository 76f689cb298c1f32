# The cross-entropy baseline of anm_resnet18-cifar_1xb64-360e_cifar100-sym80.py:
# mmpretrain's plain ImageClassifier on the same noisy labels, network,
# schedule and seed (no masking, label refinement or quality refresh).
#   python tools/train.py configs/anm/ce_resnet18-cifar_1xb64-360e_cifar100-sym80.py
_base_ = ['./anm_resnet18-cifar_1xb64-360e_cifar100-sym80.py']

model = dict(
    _delete_=True,
    type='ImageClassifier',
    data_preprocessor={{_base_.model.data_preprocessor}},
    backbone={{_base_.model.backbone}},
    neck={{_base_.model.neck}},
    head={{_base_.model.head}})
custom_hooks = []
find_unused_parameters = False
