# Copyright (c) mmssl contributors. All rights reserved.
from .clip_model import (CLIP_ARCHS, EOT_TOKEN, OPENAI_URLS, SOT_TOKEN,
                         build_clip, encode_text_embeddings, freeze,
                         get_tokenizer, load_clip_checkpoint, tokenize,
                         zero_shot_text_features)
from .clip_pretrainer import CLIPPretrainer, clip_contrastive_loss

__all__ = [
    'CLIP_ARCHS', 'EOT_TOKEN', 'OPENAI_URLS', 'SOT_TOKEN', 'build_clip',
    'encode_text_embeddings', 'freeze', 'get_tokenizer',
    'load_clip_checkpoint', 'tokenize', 'zero_shot_text_features',
    'CLIPPretrainer', 'clip_contrastive_loss'
]
