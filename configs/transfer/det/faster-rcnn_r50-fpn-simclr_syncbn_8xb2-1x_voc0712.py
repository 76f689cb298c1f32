# The recipe of faster-rcnn_r50-fpn-densecl_syncbn_8xb2-1x_voc0712.py with a
# ResNet-50 pretrained by SimCLR: `pretrained` is the `convert_backbone.py --to
# mmdet` export of a checkpoint of
# configs/simclr/simclr_resnet50_16xb256-coslr-200e_in1k.py
# (commands: configs/transfer/README.md, "Full-size runs").
_base_ = './faster-rcnn_r50-fpn-densecl_syncbn_8xb2-1x_voc0712.py'

pretrained = 'work_dirs/transfer/simclr_resnet50_in1k/backbone_mmdet.pth'

model = dict(backbone=dict(init_cfg=dict(checkpoint=pretrained)))
