# A small CLIP (ModifiedResNet image tower, 2-layer text transformer with
# OpenAI's tokenizer) for the 32 px embedded shapes, trained from scratch.
# Zero-shot prediction over the 9 shape classes with "a photo of a {}.".
model = dict(
    type='mmssl.CLIPPretrainer',
    arch='tiny-rn',
    class_names=[
        'circle', 'ellipse', 'semicircle', 'triangle', 'square', 'pentagon',
        'hexagon', 'star', 'cross'
    ],
    templates=['a photo of a {}.'],
    data_preprocessor=dict(
        type='mmpretrain.ClsDataPreprocessor',
        # CLIP's normalisation
        mean=[122.770938, 116.7460125, 104.09373615],
        std=[68.5005327, 66.6321579, 70.32316305],
        to_rgb=True))
