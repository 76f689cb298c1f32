# Copyright (c) mmssl contributors. All rights reserved.
"""Build a unified detection label space and remap source annotations.

Real data (the RVC 2022 / Large-UniDet 540-class space)::

    python tools/dataset_converters/unify_label_space.py \\
        --mapping label_spaces/obj_det_mapping_540.csv \\
        --hierarchy label_spaces/challenge-2019-label500-hierarchy.json \\
        --hierarchy-source oid --edits rvc \\
        --source-list \\
        oid=label_spaces/challenge-2019-label500-hierarchy.json \\
        --ann coco=data/coco/annotations/instances_train2017.json \\
        --ann coco=data/coco/annotations/instances_val2017.json \\
        --out-dir data/rvc/unified

The embedded two-source data (``data/embedded/unidet``)::

    python tools/dataset_converters/unify_label_space.py \\
        --embedded data/embedded

Writes ``<out-dir>/label_space.json`` (unified classes, per-source mapping,
ancestor / descendant matrices) and ``<out-dir>/<source>/<file>`` for every
``--ann`` (COCO json, category ids = unified ids ``1..C``). Input errors
(hierarchy cycle, missing parent, a class mapped twice, a mapping row naming
a class absent from its source) are printed as ``error: ...`` naming the
row, with exit code 2.
"""
import argparse
import sys

from mmssl.datasets.unidet import (LabelSpaceError, prepare_embedded_unidet,
                                   unify_label_space)
from mmssl.engine.tool_errors import ToolError, tool_main


def _pairs(items, what):
    out = {}
    for item in items or []:
        if '=' not in item:
            raise LabelSpaceError(f'{what} {item!r} must be SOURCE=PATH')
        src, path = item.split('=', 1)
        out.setdefault(src, []).append(path)
    return out


def parse_args(argv=None):
    parser = argparse.ArgumentParser(
        description='Build a unified label space from source category '
        'lists, a mapping CSV and a class hierarchy')
    parser.add_argument('--mapping', help='RVC-style mapping CSV')
    parser.add_argument(
        '--hierarchy', help='OpenImages-style hierarchy JSON (optional)')
    parser.add_argument(
        '--hierarchy-source',
        default='key',
        help='whose class names the hierarchy uses: a source (e.g. oid) or '
        '"key" (the unified keys). Default: key')
    parser.add_argument(
        '--edits',
        default='none',
        help='hierarchy edits: "rvc" (the Large-UniDet merged/inserted '
        'pairs), "none", or a JSON file {"merged": {a: A_super}, '
        '"inserted": {...}}. Default: none')
    parser.add_argument(
        '--source-list',
        action='append',
        metavar='SOURCE=PATH',
        help='category list of a source (COCO json, names json, OpenImages '
        'class-descriptions csv, hierarchy json or one name a line); '
        'without it a source takes the names in its mapping column')
    parser.add_argument(
        '--ann',
        action='append',
        metavar='SOURCE=PATH',
        help='COCO annotation file of a source to remap (repeatable)')
    parser.add_argument('--out-dir', help='output folder')
    parser.add_argument(
        '--embedded',
        metavar='DATA_ROOT',
        help='build the embedded two-source space under '
        'DATA_ROOT/unidet/unified (other options ignored)')
    parser.add_argument(
        '--force', action='store_true', help='rebuild (with --embedded)')
    return parser.parse_args(argv)


@tool_main
def main(argv=None) -> int:
    args = parse_args(argv)
    try:
        if args.embedded:
            from mmssl.datasets import ensure_embedded_data
            ensure_embedded_data(args.embedded)
            path = prepare_embedded_unidet(
                args.embedded, force=args.force, logger=print)
            print(f'embedded unified label space: {path}')
            return 0
        if not args.mapping or not args.out_dir:
            raise LabelSpaceError('--mapping and --out-dir are required '
                                  '(or --embedded DATA_ROOT)')
        lists = {
            k: v[-1]
            for k, v in _pairs(args.source_list, '--source-list').items()
        }
        unify_label_space(
            args.mapping,
            args.out_dir,
            source_lists=lists,
            hierarchy=args.hierarchy,
            hierarchy_source=args.hierarchy_source,
            edits=args.edits,
            annotations=_pairs(args.ann, '--ann'))
    except (LabelSpaceError, ValueError) as err:
        raise ToolError(str(err)) from err
    return 0


if __name__ == '__main__':
    sys.exit(main())
