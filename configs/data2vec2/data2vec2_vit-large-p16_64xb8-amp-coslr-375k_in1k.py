# data2vec 2.0 ViT-L/16 on ImageNet-1K, the reference recipe (fairseq
# examples/data2vec/config/v2/large_images_only_task.yaml): 24 blocks, 8
# images per GPU, 75 % masked (adjust 0.1), 3-layer conv decoder with kernel
# 5, top-18 targets, EMA annealed over 150k updates, lr 4e-4. 375,300
# updates x 8 images x 64 GPUs = 150 epochs, the paper's ViT-L run (86.8 %
# top-1 after fine-tuning).
_base_ = ['./data2vec2_vit-base-p16_16xb16-amp-coslr-375k_in1k.py']

patch_size = 16
img_size = 224

model = dict(
    backbone=dict(arch='large'),
    neck=dict(in_channels=1024, embed_dims=1024, num_layers=3, kernel_size=5),
    head=dict(top_k=18),
    ema=dict(anneal_iters=150000))

train_pipeline = [
    dict(type='LoadImageFromFile'),
    dict(
        type='RandomResizedCrop',
        scale=img_size,
        crop_ratio_range=(0.2, 1.0),
        backend='pillow',
        interpolation='bicubic'),
    dict(type='RandomFlip', prob=0.5),
    # the M masks per image (the clone batch), drawn in the data workers;
    # the model reads them from the data samples and has no mask settings
    dict(
        type='mmssl.InverseBlockMaskGenerator',
        input_size=img_size // patch_size,
        mask_ratio=0.75,
        num_masks=16,
        block_size=3,
        adjust=0.1),
    dict(type='PackInputs', algorithm_keys=['mask'])
]
train_dataloader = dict(batch_size=8, dataset=dict(pipeline=train_pipeline))

optim_wrapper = dict(optimizer=dict(lr=4e-4))
# lr 4e-4 is for 64 x 8 = 512 images per update
auto_scale_lr = dict(base_batch_size=512)
