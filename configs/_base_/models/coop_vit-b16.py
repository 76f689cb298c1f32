# CoOp on OpenAI's CLIP ViT-B/16 (frozen), loaded from a local file (never
# downloaded; the error message names the address). 16 context tokens, N(0,
# 0.02^2) init, class token at the end, unified context.
model = dict(
    type='mmssl.CoOp',
    clip=dict(arch='ViT-B/16', checkpoint='checkpoints/clip/ViT-B-16.pt'),
    n_ctx=16,
    ctx_init=None,
    class_token_position='end',
    csc=False,
    data_preprocessor=dict(
        type='mmpretrain.ClsDataPreprocessor',
        mean=[122.770938, 116.7460125, 104.09373615],
        std=[68.5005327, 66.6321579, 70.32316305],
        to_rgb=True))
custom_hooks = [dict(type='mmssl.PromptClassNamesHook')]
