# FCN (output stride 8) on a ResNet-50 pretrained by DenseCL, Cityscapes
# (data/cityscapes, 19 classes): mmseg's
# fcn_r50-d8_4xb2-40k_cityscapes-769x769.py with the plain-stem ResNet-50 of
# the pretraining (type='ResNet', deep_stem=False, instead of ResNetV1c);
# SyncBN, every stage trained and norm_eval=False, as in mmseg. `pretrained` is
# the `convert_backbone.py --to mmseg` export of a checkpoint of
# configs/densecl/densecl_resnet50_8xb32-coslr-200e_in1k.py
# (commands: configs/transfer/README.md, "Full-size runs").
_base_ = 'mmseg::fcn/fcn_r50-d8_4xb2-40k_cityscapes-769x769.py'
custom_imports = dict(imports=['mmssl'], allow_failed_imports=False)

pretrained = 'work_dirs/transfer/densecl_resnet50_in1k/backbone_mmseg.pth'

model = dict(
    pretrained=None,
    backbone=dict(
        type='ResNet',
        depth=50,
        init_cfg=dict(
            type='Pretrained', prefix='backbone.', checkpoint=pretrained)))
