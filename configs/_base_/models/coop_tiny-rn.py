# CoOp on the small CLIP pretrained by
# configs/clip/clip_tiny-rn_1xb128-150e_embedded.py (frozen); 4 context tokens
# initialised from "a photo of a", so the untrained model is zero-shot CLIP.
model = dict(
    type='mmssl.CoOp',
    clip=dict(
        arch='tiny-rn', checkpoint='work_dirs/clip_tiny_b128/epoch_150.pth'),
    n_ctx=4,
    ctx_init='a photo of a',
    class_token_position='end',
    csc=False,
    data_preprocessor=dict(
        type='mmpretrain.ClsDataPreprocessor',
        mean=[122.770938, 116.7460125, 104.09373615],
        std=[68.5005327, 66.6321579, 70.32316305],
        to_rgb=True))
