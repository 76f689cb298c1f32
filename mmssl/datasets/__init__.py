# Copyright (c) mmssl contributors. All rights reserved.
"""Data sets: the embedded shape data and folders of the user's images.

The detection and segmentation views need mmdet and mmseg; if one of them
cannot be imported, its class is registered as a stand-in that raises the
original import error when a config builds it, and the rest of
``mmssl.datasets`` keeps working.

Every public name of the data modules is exported here (``from
mmssl.datasets import UnlabeledImageFolder``); the modules that define
``__all__`` decide their own exports.
"""
from mmssl.registry import DATASETS
from . import albert_pretrain as _albert_pretrain
from . import albert_streaming as _albert_streaming
from . import captions as _captions
from . import char_vocab as _char_vocab
from . import clothing1m as _clothing1m
from . import d2v2_text as _d2v2_text
from . import embedded as _embedded
from . import embedded_cifar as _embedded_cifar
from . import embedded_shapes as _embedded_shapes
from . import embedded_speech as _embedded_speech
from . import embedded_text as _embedded_text
from . import fashion_pairs as _fashion_pairs
from . import fewshot as _fewshot
from . import glue as _glue
from . import label_noise as _label_noise
from . import noisy_labels as _noisy_labels
from . import speech as _speech
from . import subsets as _subsets
from . import text_corpus as _text_corpus
from . import tokenizer as _tokenizer
from . import unidet as _unidet
from .albert_pretrain import *  # noqa: F401,F403
from .albert_streaming import *  # noqa: F401,F403
from .captions import *  # noqa: F401,F403
from .char_vocab import *  # noqa: F401,F403
from .clothing1m import *  # noqa: F401,F403
from .d2v2_text import *  # noqa: F401,F403
from .embedded import *  # noqa: F401,F403
from .embedded_cifar import *  # noqa: F401,F403
from .embedded_cls import EmbeddedClsDataset
from .embedded_shapes import *  # noqa: F401,F403
from .embedded_speech import *  # noqa: F401,F403
from .embedded_text import *  # noqa: F401,F403
from .fashion_pairs import *  # noqa: F401,F403
from .fewshot import *  # noqa: F401,F403
from .glue import *  # noqa: F401,F403
from .label_noise import *  # noqa: F401,F403
from .mini_imagenet import MINI_IMAGENET_CLASSES, MiniImageNet
from .noisy_labels import *  # noqa: F401,F403
from .speech import *  # noqa: F401,F403
from .subsets import *  # noqa: F401,F403
from .text_corpus import *  # noqa: F401,F403
from .tokenizer import *  # noqa: F401,F403
from .unidet import *  # noqa: F401,F403
from .unlabeled_folder import IMG_EXTENSIONS, SkipRecord, UnlabeledImageFolder


def _unavailable(name: str,
                 host: str,
                 error: ImportError,
                 register: bool = True):
    """A stand-in for ``name`` that re-raises ``error``, registered as a
    data set unless ``register`` is False."""

    def build(*args, **kwargs):
        raise ImportError(
            f'mmssl.{name} needs {host}, which failed to import: '
            f'{error}') from error

    build.__name__ = build.__qualname__ = name
    if register:
        DATASETS.register_module(name=name, module=build)
    return build


try:
    from .embedded_coco import EmbeddedCocoDataset
except ImportError as err:  # mmdet missing or mmcv without compiled ops
    EmbeddedCocoDataset = _unavailable('EmbeddedCocoDataset', 'mmdet', err)
try:
    from .embedded_seg import EmbeddedSegDataset
except ImportError as err:
    EmbeddedSegDataset = _unavailable('EmbeddedSegDataset', 'mmseg', err)
try:
    from .unidet.unified_coco import (EmbeddedUniDetDataset,
                                      UnifiedCocoDataset, UnifiedConcatDataset,
                                      unified_palette)
except ImportError as err:  # mmdet missing or mmcv without compiled ops
    EmbeddedUniDetDataset = _unavailable('EmbeddedUniDetDataset', 'mmdet', err)
    UnifiedCocoDataset = _unavailable('UnifiedCocoDataset', 'mmdet', err)
    UnifiedConcatDataset = _unavailable('UnifiedConcatDataset', 'mmdet', err)
    unified_palette = _unavailable('unified_palette', 'mmdet', err, False)

__all__ = [
    'EmbeddedClsDataset', 'EmbeddedCocoDataset', 'EmbeddedSegDataset',
    'IMG_EXTENSIONS', 'SkipRecord', 'UnlabeledImageFolder',
    'EmbeddedUniDetDataset', 'UnifiedCocoDataset', 'UnifiedConcatDataset',
    'unified_palette', 'MiniImageNet', 'MINI_IMAGENET_CLASSES'
]
for _module in (_embedded, _embedded_shapes, _captions, _fewshot,
                _fashion_pairs, _unidet, _subsets, _label_noise, _noisy_labels,
                _clothing1m, _embedded_cifar, _text_corpus, _tokenizer,
                _albert_pretrain, _glue, _embedded_text, _albert_streaming,
                _char_vocab, _embedded_speech, _speech, _d2v2_text):
    __all__ += [n for n in _module.__all__ if n not in __all__]
del _module
