# Copyright (c) mmssl contributors. All rights reserved.
from .clip_model import (CLIP_ARCHS, EOT_TOKEN, OPENAI_URLS, SOT_TOKEN,
                         build_clip, encode_text_embeddings, freeze,
                         get_tokenizer, load_clip_checkpoint, tokenize,
                         zero_shot_text_features)
from .clip_pretrainer import CLIPPretrainer, clip_contrastive_loss
from .templates import (COOP_DATASET_TEMPLATES, OPENAI_IMAGENET_TEMPLATES,
                        TEMPLATE_SETS, resolve_templates)

__all__ = [
    'CLIP_ARCHS', 'EOT_TOKEN', 'OPENAI_URLS', 'SOT_TOKEN', 'build_clip',
    'encode_text_embeddings', 'freeze', 'get_tokenizer',
    'load_clip_checkpoint', 'tokenize', 'zero_shot_text_features',
    'CLIPPretrainer', 'clip_contrastive_loss', 'COOP_DATASET_TEMPLATES',
    'OPENAI_IMAGENET_TEMPLATES', 'TEMPLATE_SETS', 'resolve_templates'
]
