# Copyright (c) mmssl contributors. All rights reserved.
"""Data sets: the embedded shape data and folders of the user's images.

The detection and segmentation views need mmdet and mmseg; if one of them
cannot be imported, its class is registered as a stand-in that raises the
original import error when a config builds it, and the rest of
``mmssl.datasets`` keeps working.
"""
from mmssl.registry import DATASETS
from .embedded import (EMBEDDED_VERSION, UNIDET_LABEL_SPACES,
                       ensure_embedded_data, load_embedded_meta,
                       make_embedded_data)
from .embedded_cls import EmbeddedClsDataset
from .embedded_shapes import (SHAPE_CLASSES, SHAPE_HIERARCHY, SHAPE_PALETTE,
                              SHAPE_PARENT)
from .unlabeled_folder import IMG_EXTENSIONS, UnlabeledImageFolder


def _unavailable(name: str, host: str, error: ImportError):
    """Register a stand-in for ``name`` that re-raises ``error``."""

    def build(*args, **kwargs):
        raise ImportError(
            f'mmssl.{name} needs {host}, which failed to import: '
            f'{error}') from error

    build.__name__ = build.__qualname__ = name
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

__all__ = [
    'EMBEDDED_VERSION', 'SHAPE_CLASSES', 'SHAPE_HIERARCHY', 'SHAPE_PARENT',
    'SHAPE_PALETTE', 'UNIDET_LABEL_SPACES', 'IMG_EXTENSIONS',
    'make_embedded_data', 'ensure_embedded_data', 'load_embedded_meta',
    'EmbeddedClsDataset', 'EmbeddedCocoDataset', 'EmbeddedSegDataset',
    'UnlabeledImageFolder'
]
from .unidet import (RVC_EDITS, LabelSpaceError,  # noqa: F401,E402
                     build_label_space, load_label_space,
                     prepare_embedded_unidet, unify_label_space)
try:
    from .unidet.unified_coco import (  # noqa: F401,E402
        EmbeddedUniDetDataset, UnifiedConcatDataset, UnifiedCocoDataset)
except ImportError as err:  # mmdet missing or mmcv without compiled ops
    EmbeddedUniDetDataset = _unavailable('EmbeddedUniDetDataset', 'mmdet',
                                         err)
    UnifiedCocoDataset = _unavailable('UnifiedCocoDataset', 'mmdet', err)
    UnifiedConcatDataset = _unavailable('UnifiedConcatDataset', 'mmdet', err)
__all__ += [
    'RVC_EDITS', 'LabelSpaceError', 'build_label_space', 'load_label_space',
    'prepare_embedded_unidet', 'unify_label_space', 'EmbeddedUniDetDataset',
    'UnifiedCocoDataset', 'UnifiedConcatDataset'
]
from .captions import EmbeddedCaptionDataset  # noqa: F401,E402
__all__ += ['EmbeddedCaptionDataset']
from .fewshot import (CoOpSplitDataset, FewShotDataset,  # noqa: F401,E402
                      sample_few_shot, split_base_novel)
__all__ += [
    'CoOpSplitDataset', 'FewShotDataset', 'sample_few_shot',
    'split_base_novel'
]
from .fashion_pairs import (FashionPairDataset,  # noqa: F401,E402
                            LoadFashionPair, PackFashionPair,
                            embedded_silhouette)
__all__ += [
    'FashionPairDataset', 'LoadFashionPair', 'PackFashionPair',
    'embedded_silhouette'
]
