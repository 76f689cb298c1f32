# Copyright (c) mmssl contributors. All rights reserved.
"""Universal detection: unified label space of several detection sources.

:mod:`.label_space` and :mod:`.unify` need neither torch nor mmdet; the
data set classes in :mod:`.unified_coco` need mmdet and are imported by
``mmssl.datasets`` (with a stand-in if mmdet is missing).
"""
from .label_space import (RVC_EDITS, LabelSpaceError, MappingRow,
                          build_label_space, hierarchy_edges, load_label_space,
                          read_category_list, read_hierarchy, read_mapping_csv,
                          remap_coco, save_label_space, source_name)
from .unify import (EMBEDDED_UNIFIED_DIR, embedded_unidet_inputs,
                    prepare_embedded_unidet, unify_label_space)

__all__ = [
    'RVC_EDITS', 'LabelSpaceError', 'MappingRow', 'build_label_space',
    'hierarchy_edges', 'load_label_space', 'read_category_list',
    'read_hierarchy', 'read_mapping_csv', 'remap_coco', 'save_label_space',
    'source_name', 'EMBEDDED_UNIFIED_DIR', 'embedded_unidet_inputs',
    'prepare_embedded_unidet', 'unify_label_space'
]
