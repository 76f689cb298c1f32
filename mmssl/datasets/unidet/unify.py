# Copyright (c) mmssl contributors. All rights reserved.
"""File-level driver of the label-space builder, and the embedded inputs.

:func:`unify_label_space` reads the input files, builds the unified label
space (:func:`~.label_space.build_label_space`), writes it as JSON and writes
each given source annotation file remapped to unified ids.
``tools/dataset_converters/unify_label_space.py`` is its command line.

:func:`embedded_unidet_inputs` turns the embedded data set's
``unidet/label_spaces.json`` into the same inputs as the real data (a
mapping CSV and a hierarchy JSON) and :func:`prepare_embedded_unidet` runs
the builder on them once, under ``<data_root>/unidet/unified/``.
"""
import contextlib
import json
import os
import os.path as osp
import shutil
from typing import Dict, Iterator, Optional, Sequence, Tuple

from .label_space import (RVC_EDITS, build_label_space, read_category_list,
                          read_hierarchy, read_mapping_csv, remap_coco,
                          save_label_space)

try:
    import fcntl
except ImportError:  # pragma: no cover - Windows: no inter-process lock
    fcntl = None

__all__ = [
    'unify_label_space', 'embedded_unidet_inputs', 'prepare_embedded_unidet',
    'EMBEDDED_UNIFIED_DIR'
]

#: Folder (relative to the embedded data root) of the unified label space.
EMBEDDED_UNIFIED_DIR = 'unidet/unified'


def _load_edits(edits) -> Dict[str, Dict[str, str]]:
    if edits is None or edits == 'none':
        return {}
    if edits == 'rvc':
        return RVC_EDITS
    if isinstance(edits, dict):
        return edits
    with open(edits) as f:
        return json.load(f)


def unify_label_space(mapping: str,
                      out_dir: str,
                      source_lists: Optional[Dict[str, str]] = None,
                      hierarchy: Optional[str] = None,
                      hierarchy_source: str = 'key',
                      edits=None,
                      annotations: Optional[Dict[str, Sequence[str]]] = None,
                      logger=print) -> dict:
    """Build a unified label space from files and remap annotations.

    Args:
        mapping (str): RVC-style mapping CSV.
        out_dir (str): output folder: ``label_space.json`` and
            ``<source>/<annotation file name>`` per annotation file.
        source_lists (dict[str, str], optional): source -> category list
            file (see :func:`~.label_space.read_category_list`); a source
            without one takes the classes named in its mapping column.
        hierarchy (str, optional): OpenImages-style hierarchy JSON.
        hierarchy_source (str): whose names the hierarchy uses (a source
            or ``'key'``). Defaults to ``'key'``.
        edits (str | dict, optional): ``'rvc'`` (:data:`RVC_EDITS`),
            ``'none'``/None, a JSON file or a dict of ``merged`` /
            ``inserted`` edits.
        annotations (dict[str, Sequence[str]], optional): source -> COCO
            annotation files to remap.
        logger (callable): where progress lines go. Defaults to print.

    Returns:
        dict: the label space (:func:`~.label_space.build_label_space`),
        with ``path`` (the JSON written) and ``annotations`` (source ->
        list of ``dict(src, dst, kept, dropped)``).
    """
    columns, rows = read_mapping_csv(mapping)
    source_lists = source_lists or {}
    unknown = set(source_lists) - set(columns)
    if unknown:
        raise ValueError(f'category lists given for sources {sorted(unknown)}'
                         f' that the mapping has no column for; its sources '
                         f'are {list(columns)}')
    classes = {
        src: (read_category_list(source_lists[src])
              if src in source_lists else None)
        for src in columns
    }
    tree = read_hierarchy(hierarchy) if hierarchy else None
    space = build_label_space(rows, classes, tree, hierarchy_source,
                              _load_edits(edits), columns)
    os.makedirs(out_dir, exist_ok=True)
    path = osp.join(out_dir, 'label_space.json')
    save_label_space(space, path)
    logger(f'{len(space["classes"])} unified classes -> {path}')
    for src, info in space['sources'].items():
        logger(f'  {src}: {len(info["to_unified"])} of '
               f'{len(info["classes"])} classes mapped' +
               (f', unmapped: {info["unmapped"][:5]}...'
                if info['unmapped'] else ''))
    done: Dict[str, list] = {}
    for src, files in (annotations or {}).items():
        if src not in space['sources']:
            raise ValueError(f'annotations given for unknown source {src!r}; '
                             f'the sources are {list(space["sources"])}')
        for ann_file in files:
            with open(ann_file) as f:
                coco = json.load(f)
            out, stats = remap_coco(coco, space, src)
            dst = osp.join(out_dir, src, osp.basename(ann_file))
            os.makedirs(osp.dirname(dst), exist_ok=True)
            with open(dst, 'w') as f:
                json.dump(out, f)
            done.setdefault(src,
                            []).append(dict(src=ann_file, dst=dst, **stats))
            logger(f'  {ann_file} -> {dst}: {stats["kept"]} boxes kept, '
                   f'{stats["dropped"]} dropped')
    return dict(space, path=path, annotations=done)


def embedded_unidet_inputs(label_spaces: dict) -> Tuple[str, dict]:
    """Mapping CSV and hierarchy of the embedded universal-detection sources.

    Each source class that covers one fine shape class maps to that class
    (``disc`` -> ``circle``); a class that covers several (``polygon`` of
    ``source_b`` = pentagon or hexagon) becomes a unified class of its own,
    the parent of the fine classes it covers in the hierarchy (the role of
    OpenImages' parent classes). The hierarchy is over the unified keys.

    Args:
        label_spaces (dict): the content of ``unidet/label_spaces.json``
            (``sources`` -> ``classes``, ``to_unified``).

    Returns:
        tuple[str, dict]: the CSV text (``key,<source>,...``) and the
        nested hierarchy (root ``'entity'``).
    """
    sources = list(label_spaces['sources'])
    rows: Dict[str, Dict[str, str]] = {}
    children: Dict[str, Sequence[str]] = {}
    for src in sources:
        space = label_spaces['sources'][src]
        for name in space['classes']:
            fine = space['to_unified'][name]
            key = fine[0] if len(fine) == 1 else name
            if len(fine) > 1:
                children[key] = list(fine)
            rows.setdefault(key, {})[src] = name
    lines = ['key,' + ','.join(sources)]
    for key in sorted(rows):
        lines.append(','.join([key] +
                              [rows[key].get(src, '') for src in sources]))
    tree = dict(
        LabelName='entity',
        Subcategory=[
            dict(
                LabelName=parent,
                Subcategory=[dict(LabelName=c) for c in kids])
            for parent, kids in sorted(children.items())
        ])
    return '\n'.join(lines) + '\n', tree


@contextlib.contextmanager
def _lock(path: str) -> Iterator[None]:
    with open(path, 'a+') as f:
        if fcntl is not None:
            fcntl.flock(f.fileno(), fcntl.LOCK_EX)
        try:
            yield
        finally:
            if fcntl is not None:
                fcntl.flock(f.fileno(), fcntl.LOCK_UN)


def prepare_embedded_unidet(data_root: str,
                            force: bool = False,
                            logger=None) -> str:
    """Build the embedded unified label space once (process-safe).

    Writes ``mapping.csv``, ``hierarchy.json``, ``label_space.json`` and
    ``<source>/instances_{train,val}.json`` (remapped) under
    ``<data_root>/unidet/unified/``. The embedded data must exist.

    Args:
        data_root (str): the embedded data set folder.
        force (bool): rebuild even if the files are there.
        logger (callable, optional): progress lines; silent if None.

    Returns:
        str: the path of ``label_space.json``.
    """
    unidet = osp.join(data_root, 'unidet')
    out_dir = osp.join(data_root, EMBEDDED_UNIFIED_DIR)
    path = osp.join(out_dir, 'label_space.json')
    os.makedirs(out_dir, exist_ok=True)
    with _lock(osp.join(out_dir, '.lock')):
        if osp.isfile(path) and not force:
            return path
        with open(osp.join(unidet, 'label_spaces.json')) as f:
            spaces = json.load(f)
        csv_text, tree = embedded_unidet_inputs(spaces)
        tmp = out_dir + '/.tmp'
        os.makedirs(tmp, exist_ok=True)
        with open(osp.join(out_dir, 'mapping.csv'), 'w') as f:
            f.write(csv_text)
        with open(osp.join(out_dir, 'hierarchy.json'), 'w') as f:
            json.dump(tree, f, indent=2)
        anns = {
            src: [
                osp.join(unidet, src, 'annotations', f'instances_{split}.json')
                for split in ('train', 'val')
            ]
            for src in spaces['sources']
        }
        lists = {
            src: osp.join(unidet, src, 'annotations', 'instances_train.json')
            for src in spaces['sources']
        }
        unify_label_space(
            osp.join(out_dir, 'mapping.csv'),
            tmp,
            source_lists=lists,
            hierarchy=osp.join(out_dir, 'hierarchy.json'),
            hierarchy_source='key',
            annotations=anns,
            logger=logger or (lambda *a: None))
        # move into place, label_space.json last (it marks completion)
        for src in spaces['sources']:
            os.makedirs(osp.join(out_dir, src), exist_ok=True)
            for name in os.listdir(osp.join(tmp, src)):
                os.replace(
                    osp.join(tmp, src, name), osp.join(out_dir, src, name))
        os.replace(osp.join(tmp, 'label_space.json'), path)
        shutil.rmtree(tmp, ignore_errors=True)
    return path
