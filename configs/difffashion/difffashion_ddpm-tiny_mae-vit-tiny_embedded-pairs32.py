# DiffFashion evaluated on deterministic garment / reference pairs of the
# embedded shapes (32 px): the tiny class-conditional DDPM of
# ddpm_unet-tiny_1xb64-10e_embedded32.py and the tiny MAE ViT of
# configs/mae/mae_vit-tiny-p8_1xb64-coslr-30e_embedded.py. Training-free:
# only test_* settings. The single checkpoint holding both models is made
# by tools/model_converters/difffashion_editor.py from the two trained
# checkpoints; then `python tools/test.py THIS_CONFIG
# work_dirs/difffashion_tiny/editor.pth` (commands in README.md).
default_scope = 'mmssl'
custom_imports = dict(imports=['mmssl'], allow_failed_imports=False)

img_size = 32
num_classes = 9  # mmssl.datasets.SHAPE_CLASSES

model = dict(
    type='mmssl.DiffFashionEditor',
    # the model of ddpm_unet-tiny_1xb64-10e_embedded32.py
    diffusion=dict(
        type='mmssl.ClassCondDDPM',
        unet=dict(
            sample_size=img_size,
            in_channels=3,
            out_channels=3,
            block_out_channels=(32, 64, 64),
            layers_per_block=1,
            down_block_types=('DownBlock2D', 'DownBlock2D', 'AttnDownBlock2D'),
            up_block_types=('AttnUpBlock2D', 'UpBlock2D', 'UpBlock2D'),
            attention_head_dim=32,
            norm_num_groups=8,
            num_class_embeds=num_classes),
        scheduler=dict(
            num_train_timesteps=1000,
            beta_schedule='linear',
            beta_start=1e-4,
            beta_end=0.02)),
    # the backbone of mae_vit-tiny-p8_1xb64-coslr-30e_embedded.py
    vit=dict(
        type='mmssl.MAEViT',
        arch=dict(
            embed_dims=192,
            num_layers=6,
            num_heads=3,
            feedforward_channels=768),
        img_size=64,
        patch_size=8,
        mask_ratio=0.75),
    # the reference's mask computation with one set of all other labels,
    # z > -0.2 (mmssl's 'mean' mode and 3x3 cleaning)
    mask_generator=dict(
        type='mmssl.LabelContrastMaskGenerator',
        label_sets=None,
        mode='mean',
        threshold=-0.2,
        mask_index=64,
        draws=1,
        source='trajectory',
        contrast='mean'),
    # the reference schedule scaled to 50 respaced steps (skip, blend
    # counted of 200); x0-hat clipped in the posterior (README.md)
    schedule=dict(
        sampler='ddpm',
        num_steps=50,
        skip=80,
        blend_steps=35,
        resample=10,
        clip_x0=True),
    # the reference guidance weights; the divergence term while the step
    # index is above 100 of 200 (25 of 50)
    guidance=dict(
        weights=dict(
            ssim=1000., contra=200., cls=200., dir=100., l2=3000., range=200.),
        dir_until_index=100,
        img_size=None,  # the ViT's own (64)
        mean=(0.485, 0.456, 0.406),
        std=(0.229, 0.224, 0.225)),
    colour_matching=True,
    garment_label=None,  # each pair's garment class
    on_empty_mask='no_mask',  # an empty mask counts as a miss (IoU 0)
    seed=0)

test_pipeline = [
    dict(type='mmssl.LoadFashionPair', size=img_size),
    dict(type='mmssl.PackFashionPair'),
]
test_dataloader = dict(
    batch_size=1,
    num_workers=0,
    sampler=dict(type='DefaultSampler', shuffle=False),
    collate_fn=dict(type='pseudo_collate'),
    dataset=dict(
        type='mmssl.FashionPairDataset',
        data_root='data/embedded',
        split='val',
        num_pairs=9,  # one garment of each class
        pipeline=test_pipeline))
test_evaluator = dict(type='mmssl.FashionTransferMetric')
test_cfg = dict(type='TestLoop')

default_hooks = dict(
    timer=dict(type='IterTimerHook'),
    logger=dict(type='LoggerHook', interval=1))
env_cfg = dict(
    cudnn_benchmark=False,
    mp_cfg=dict(mp_start_method='fork', opencv_num_threads=0),
    dist_cfg=dict(backend='gloo'))
log_level = 'INFO'
load_from = None
resume = False
randomness = dict(seed=0)
