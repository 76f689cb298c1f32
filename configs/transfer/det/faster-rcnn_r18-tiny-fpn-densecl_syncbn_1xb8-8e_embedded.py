# Faster R-CNN with FPN on the tiny ResNet-18 pretrained by DenseCL
# (configs/densecl/densecl_resnet18-tiny_1xb64-coslr-30e_embedded.py): the
# recipe of faster-rcnn_r18-tiny-fpn-simclr_syncbn_1xb8-8e_embedded.py with
# the backbone that
#   python tools/analysis_tools/transfer_pipeline.py \
#       --method densecl --task det
# converts.
_base_ = './faster-rcnn_r18-tiny-fpn-simclr_syncbn_1xb8-8e_embedded.py'

pretrained = 'work_dirs/transfer/embedded/densecl/backbone_mmdet.pth'

model = dict(backbone=dict(init_cfg=dict(checkpoint=pretrained)))
