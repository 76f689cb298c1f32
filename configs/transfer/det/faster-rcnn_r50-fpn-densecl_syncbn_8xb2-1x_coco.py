# Faster R-CNN with FPN on a ResNet-50 pretrained by DenseCL, COCO 2017
# (data/coco), 1x schedule (12 epochs, batch 16, SGD lr 0.02): mmdet's recipe
# with the detection-transfer settings of MoCo / DenseCL: SyncBN in the
# backbone, the FPN and a 4-conv-1-fc box head, every stage trained
# (frozen_stages=-1) and norm_eval=False. `pretrained` is the
# `convert_backbone.py --to mmdet` export of a checkpoint of
# configs/densecl/densecl_resnet50_8xb32-coslr-200e_in1k.py
# (commands: configs/transfer/README.md, "Full-size runs").
# In one process SyncBN falls back to BN (mmengine reverts it when not
# distributed).
_base_ = 'mmdet::faster_rcnn/faster-rcnn_r50_fpn_1x_coco.py'
custom_imports = dict(imports=['mmssl'], allow_failed_imports=False)

pretrained = 'work_dirs/transfer/densecl_resnet50_in1k/backbone_mmdet.pth'
norm_cfg = dict(type='SyncBN', requires_grad=True)

model = dict(
    backbone=dict(
        frozen_stages=-1,
        norm_cfg=norm_cfg,
        norm_eval=False,
        init_cfg=dict(
            type='Pretrained', prefix='backbone.', checkpoint=pretrained)),
    neck=dict(norm_cfg=norm_cfg),
    roi_head=dict(
        bbox_head=dict(
            type='Shared4Conv1FCBBoxHead',
            conv_out_channels=256,
            norm_cfg=norm_cfg)))
