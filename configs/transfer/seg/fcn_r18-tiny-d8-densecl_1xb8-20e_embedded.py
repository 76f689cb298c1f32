# FCN on the tiny ResNet-18 pretrained by DenseCL
# (configs/densecl/densecl_resnet18-tiny_1xb64-coslr-30e_embedded.py): the
# recipe of fcn_r18-tiny-d8-simclr_1xb8-20e_embedded.py with the backbone
#   python tools/analysis_tools/transfer_pipeline.py \
#       --method densecl --task seg
# converts.
_base_ = './fcn_r18-tiny-d8-simclr_1xb8-20e_embedded.py'

pretrained = 'work_dirs/transfer/embedded/densecl/backbone_mmseg.pth'

model = dict(backbone=dict(init_cfg=dict(checkpoint=pretrained)))
