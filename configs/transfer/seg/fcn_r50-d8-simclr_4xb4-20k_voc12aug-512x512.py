# The recipe of fcn_r50-d8-densecl_4xb4-20k_voc12aug-512x512.py with a
# ResNet-50 pretrained by SimCLR: `pretrained` is the `convert_backbone.py --to
# mmseg` export of a checkpoint of
# configs/simclr/simclr_resnet50_16xb256-coslr-200e_in1k.py
# (commands: configs/transfer/README.md, "Full-size runs").
_base_ = './fcn_r50-d8-densecl_4xb4-20k_voc12aug-512x512.py'

pretrained = 'work_dirs/transfer/simclr_resnet50_in1k/backbone_mmseg.pth'

model = dict(backbone=dict(init_cfg=dict(checkpoint=pretrained)))
