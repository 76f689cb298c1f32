# Copyright (c) mmssl contributors. All rights reserved.
"""Unified label space of several detection data sets (Large-UniDet / RVC).

Pure functions (no torch, no mmdet) that turn

* each source data set's category list,
* a mapping table in the RVC devkit's CSV format (``key`` column plus one
  column per source, an empty cell meaning "not in that source"),
* an OpenImages-style class hierarchy (nested ``{"LabelName": ...,
  "Subcategory": [...]}``) over the class names of one source (or over the
  unified keys),
* and the hierarchy edits that link conflicting classes (``merged`` and
  ``inserted``, see :data:`RVC_EDITS`)

into one unified label space, and remap a source's COCO annotations onto it.

Conventions (those of the reference ``label_spaces/gen_hierarchy.py``):

* unified classes are the mapping keys sorted alphabetically; mmdet label
  ``i`` is ``classes[i]``, the COCO ``category_id`` is ``i + 1``;
* the hierarchy matrices have shape ``(C + 1, C + 1)``, the last row and
  column being the background (always zero). ``ancestors[i, j] = 1`` iff
  ``j`` is an ancestor of ``i`` (all levels, the hierarchy root excluded),
  ``descendants[i, j] = 1`` iff ``j`` is a descendant of ``i``;
* ``*_base`` matrices hold the source hierarchy alone, the others the
  hierarchy after the edits. Invariant for both: no class is both an
  ancestor and a descendant of another (``ancestors * descendants == 0``).

Only ``Subcategory`` links are followed; OpenImages ``Part`` links (a wheel
is part of a car, not a kind of car) are not is-a relations and are skipped.

Every input error raises :class:`LabelSpaceError` naming the CSV row or the
hierarchy node at fault.
"""
import csv
import io
import json
import os.path as osp
from typing import Dict, List, Optional, Sequence, Tuple

import numpy as np

__all__ = [
    'LabelSpaceError', 'RVC_EDITS', 'MappingRow', 'read_mapping_csv',
    'read_category_list', 'read_hierarchy', 'hierarchy_edges',
    'build_label_space', 'save_label_space', 'load_label_space', 'remap_coco',
    'source_name'
]

#: The hierarchy edits of the RVC 2022 label space (Large-UniDet's
#: ``gen_hierarchy.py``). ``merged``: a (COCO / Mapillary) class and an
#: OpenImages parent class that mean nearly the same thing; ``inserted``: a
#: class that belongs under an OpenImages parent it is not linked to.
RVC_EDITS: Dict[str, Dict[str, str]] = {
    'merged': {
        'ball': 'ball_super',
        'bear': 'bear_super',
        'bed': 'bed_super',
        'bird': 'bird_super',
        'boat': 'boat_super',
        'car': 'car_super',
        'clock': 'clock_super',
        'person': 'person_super',
    },
    'inserted': {
        'caravan': 'land_vehicle_super',
        'cow': 'animal_super',
        'ground_animal': 'animal_super',
        'handcart': 'land_vehicle_super',
        'land_vehicle': 'land_vehicle_super',
        'traffic_sign_backside': 'traffic_sign_super',
        'traffic_sign_frame': 'traffic_sign_super',
        'traffic_sign_front': 'traffic_sign_super',
        'trailer': 'land_vehicle_super',
    },
}

_SUFFIXES = ('_boxable_leaf', '_boxable_name', '_name', '_leaf')


class LabelSpaceError(ValueError):
    """An input of the label-space builder is inconsistent."""


class MappingRow:
    """One row of the mapping table.

    Args:
        line (int): 1-based line number in the CSV file (the header is 1).
        key (str): the unified class name.
        names (dict[str, str]): source name -> class name in that source,
            only the sources whose cell is not empty.
    """

    def __init__(self, line: int, key: str, names: Dict[str, str]) -> None:
        self.line, self.key, self.names = line, key, names

    def __repr__(self) -> str:
        return f'MappingRow(line={self.line}, key={self.key!r})'

    def where(self) -> str:
        """``"row N (key 'k')"`` for error messages."""
        return f'mapping row {self.line} (key {self.key!r})'


def source_name(column: str) -> str:
    """Source name of a mapping column (``'oid_boxable_leaf'`` -> ``'oid'``).

    Args:
        column (str): CSV header of a source column.

    Returns:
        str: the column name without the RVC suffixes ``_boxable_leaf``,
        ``_boxable_name``, ``_name``, ``_leaf``.
    """
    for suffix in _SUFFIXES:
        if column.endswith(suffix) and len(column) > len(suffix):
            return column[:-len(suffix)]
    return column


def read_mapping_csv(
        path_or_text: str) -> Tuple[Dict[str, str], List[MappingRow]]:
    """Read an RVC-style mapping CSV.

    The header is ``key`` followed by one column per source; cells are
    stripped, a UTF-8 byte-order mark and CRLF line ends are accepted.

    Args:
        path_or_text (str): a file path, or the CSV text itself if it holds
            a newline.

    Returns:
        tuple[dict[str, str], list[MappingRow]]: source name -> column name
        (in column order) and the rows in file order.
    """
    if '\n' in path_or_text:
        text = path_or_text
    else:
        with open(path_or_text, encoding='utf-8-sig', newline='') as f:
            text = f.read()
    text = text.lstrip('\ufeff')
    reader = csv.reader(io.StringIO(text))
    try:
        header = [h.strip() for h in next(reader)]
    except StopIteration:
        raise LabelSpaceError('the mapping CSV is empty') from None
    if not header or header[0] != 'key' or len(header) < 2:
        raise LabelSpaceError(
            'the mapping CSV header must be "key,<source column>,...", '
            f'got {",".join(header)!r}')
    columns: Dict[str, str] = {}
    for col in header[1:]:
        name = source_name(col)
        if name in columns or name == 'key':
            raise LabelSpaceError(
                f'mapping CSV: columns {columns.get(name, "key")!r} and '
                f'{col!r} name the same source {name!r}')
        columns[name] = col
    rows = []
    for line, cells in enumerate(reader, start=2):
        if not any(c.strip() for c in cells):
            continue
        if len(cells) != len(header):
            raise LabelSpaceError(
                f'mapping row {line}: {len(cells)} cells, the header has '
                f'{len(header)}')
        cells = [c.strip() for c in cells]
        names = {src: cell for src, cell in zip(columns, cells[1:]) if cell}
        rows.append(MappingRow(line, cells[0], names))
    return columns, rows


def read_category_list(path: str) -> List[str]:
    """Category names of a source data set.

    Accepted formats:

    * ``.json``: a COCO annotation file (``categories`` sorted by id), a
      JSON list of names, or an OpenImages-style hierarchy (its nodes,
      the root excluded);
    * ``.csv``: OpenImages ``class-descriptions-boxable.csv``
      (``<MID>,<display name>``, no header): the MIDs;
    * anything else: one name a line.

    Args:
        path (str): the file.

    Returns:
        list[str]: the class names in file order.
    """
    if path.endswith('.json'):
        with open(path) as f:
            obj = json.load(f)
        if isinstance(obj, list):
            return [str(x) for x in obj]
        if 'categories' in obj:
            cats = sorted(obj['categories'], key=lambda c: c['id'])
            return [c['name'] for c in cats]
        if 'LabelName' in obj:
            seen: Dict[str, None] = {}
            for _, child, _ in hierarchy_edges(obj):
                seen.setdefault(child)
            return list(seen)
        raise LabelSpaceError(
            f'{path}: not a COCO annotation file, a list of names or a '
            'hierarchy')
    with open(path, encoding='utf-8-sig') as f:
        lines = [ln.strip() for ln in f if ln.strip()]
    if path.endswith('.csv'):
        return [ln.split(',', 1)[0].strip() for ln in lines]
    return lines


def read_hierarchy(path: str) -> dict:
    """Load an OpenImages-style hierarchy JSON (nested ``LabelName``)."""
    with open(path) as f:
        tree = json.load(f)
    if not isinstance(tree, dict) or 'LabelName' not in tree:
        raise LabelSpaceError(
            f'{path}: the hierarchy must be a nested object with '
            '"LabelName" and optional "Subcategory" lists')
    return tree


def hierarchy_edges(tree: dict) -> List[Tuple[Optional[str], str, str]]:
    """Parent -> child links of a nested hierarchy, in depth-first order.

    Args:
        tree (dict): the root node ``{"LabelName": str, "Subcategory":
            [nodes]}``. The root itself is not a class.

    Returns:
        list[tuple[str | None, str, str]]: ``(parent, child, path)`` per
        link, ``path`` being the `` > ``-joined names from the root to the
        child (for error messages). Links from the root have parent
        ``None`` (its children are top-level classes).
    """
    edges = []
    stack = [(tree, tree.get('LabelName', '?'))]
    while stack:
        node, path = stack.pop()
        parent = None if node is tree else node['LabelName']
        for child in reversed(node.get('Subcategory', [])):
            name = child.get('LabelName') if isinstance(child, dict) else None
            if name is None:
                raise LabelSpaceError(
                    f'hierarchy node under {path!r} has no "LabelName"')
            cpath = f'{path} > {name}'
            edges.append((parent, name, cpath))
            stack.append((child, cpath))
    return edges


def _check_rows(
    rows: Sequence[MappingRow], source_classes: Dict[str,
                                                     Optional[Sequence[str]]]
) -> Dict[str, Dict[str, MappingRow]]:
    """Validate the mapping rows; source -> class name -> row."""
    by_key: Dict[str, MappingRow] = {}
    per_source: Dict[str, Dict[str, MappingRow]] = {
        src: {}
        for src in source_classes
    }
    known = {
        src: set(names)
        for src, names in source_classes.items() if names is not None
    }
    for row in rows:
        if not row.key:
            raise LabelSpaceError(f'{row.where()}: the key is empty')
        if row.key in by_key:
            raise LabelSpaceError(
                f'{row.where()}: key {row.key!r} is already defined by '
                f'{by_key[row.key].where()}')
        by_key[row.key] = row
        if not row.names:
            raise LabelSpaceError(
                f'{row.where()}: names no class of any source')
        for src, name in row.names.items():
            if src not in per_source:
                raise LabelSpaceError(f'{row.where()}: unknown source {src!r}')
            if src in known and name not in known[src]:
                raise LabelSpaceError(
                    f'{row.where()}: class {name!r} is not a class of '
                    f'source {src!r}')
            first = per_source[src].get(name)
            if first is not None:
                raise LabelSpaceError(
                    f'{row.where()}: class {name!r} of source {src!r} is '
                    f'mapped twice (also by {first.where()})')
            per_source[src][name] = row
    return per_source


def _closure(num: int, edges: Sequence[Tuple[int, int]],
             names: Sequence[str]) -> np.ndarray:
    """Ancestor matrix ``(num, num)`` of a DAG given ``(parent, child)``.

    Raises :class:`LabelSpaceError` naming a cycle if there is one.
    """
    parents: List[List[int]] = [[] for _ in range(num)]
    for p, c in edges:
        if p == c:
            raise LabelSpaceError(
                f'hierarchy cycle: {names[p]!r} is its own parent')
        parents[c].append(p)
    anc = np.zeros((num, num), dtype=np.uint8)
    state = [0] * num  # 0 new, 1 on the current path, 2 done

    def visit(i: int, path: List[int]) -> None:
        # iterative DFS over parents with explicit path for cycle reports
        stack = [(i, iter(parents[i]))]
        state[i] = 1
        path.append(i)
        while stack:
            node, it = stack[-1]
            nxt = next(it, None)
            if nxt is None:
                for p in parents[node]:
                    anc[node, p] = 1
                    anc[node] |= anc[p]
                state[node] = 2
                stack.pop()
                path.pop()
            elif state[nxt] == 1:
                cyc = path[path.index(nxt):] + [nxt]
                raise LabelSpaceError('hierarchy cycle: ' + ' -> '.join(
                    repr(names[k])
                    for k in reversed(cyc)) + ' (parent -> child)')
            elif state[nxt] == 0:
                state[nxt] = 1
                path.append(nxt)
                stack.append((nxt, iter(parents[nxt])))

    for i in range(num):
        if state[i] == 0:
            visit(i, [])
    return anc


def _apply_edits(anc_base: np.ndarray, desc_base: np.ndarray,
                 edits: Dict[str, Dict[str, str]],
                 index: Dict[str, int]) -> Tuple[np.ndarray, np.ndarray]:
    """The ``merged`` / ``inserted`` edits of ``gen_hierarchy.py``."""
    anc, desc = anc_base.copy(), desc_base.copy()
    unknown = set(edits) - {'merged', 'inserted'}
    if unknown:
        raise LabelSpaceError(
            f'unknown hierarchy edit kinds {sorted(unknown)}; expected '
            '"merged" and "inserted"')
    for kind in ('merged', 'inserted'):
        for a, sup in edits.get(kind, {}).items():
            for name in (a, sup):
                if name not in index:
                    raise LabelSpaceError(
                        f'{kind} edit {a!r} -> {sup!r}: {name!r} is not a '
                        'unified class')
            i, s = index[a], index[sup]
            sup_parents = np.flatnonzero(anc_base[s])
            anc[i, sup_parents] = 1  # a gets A_super's ancestors ...
            anc[i, s] = 1  # ... and A_super as parents
            desc[sup_parents, i] = 1  # A_super's ancestors get a as child
            if kind == 'merged':
                sup_children = np.flatnonzero(desc_base[s])
                desc[i, sup_children] = 1  # a gets A_super's descendants
                anc[s, i] = 1  # A_super gets a as a parent
                anc[sup_children, i] = 1  # A_super's descendants too
            else:
                desc[s, i] = 1  # A_super gets a as a child
    return anc, desc


def build_label_space(rows: Sequence[MappingRow],
                      source_classes: Dict[str, Optional[Sequence[str]]],
                      hierarchy: Optional[dict] = None,
                      hierarchy_source: str = 'key',
                      edits: Optional[Dict[str, Dict[str, str]]] = None,
                      columns: Optional[Dict[str, str]] = None) -> dict:
    """Build the unified label space.

    Args:
        rows (Sequence[MappingRow]): the mapping table
            (:func:`read_mapping_csv`).
        source_classes (dict[str, Sequence[str] | None]): every source of
            the table -> its category list, or None to take the classes
            named in its column (no membership check).
        hierarchy (dict, optional): OpenImages-style nested hierarchy; its
            root is not a class. None: no hierarchy (flat space).
        hierarchy_source (str): whose class names the hierarchy uses: a
            source name (``'oid'``) or ``'key'`` for the unified keys.
            Defaults to ``'key'``.
        edits (dict, optional): ``{'merged': {a: A_super}, 'inserted':
            {a: A_super}}`` applied on top of the hierarchy (see
            :data:`RVC_EDITS`).
        columns (dict[str, str], optional): source -> CSV column name, only
            recorded in the output.

    Returns:
        dict: ``classes`` (list of C unified names), ``sources`` (source ->
        ``dict(column, classes, to_unified: {source class: unified name},
        unmapped: [source classes without a row])``), ``hierarchy_source``,
        ``edits`` and four ``(C + 1, C + 1)`` uint8 arrays ``ancestors``,
        ``descendants``, ``ancestors_base``, ``descendants_base``.
    """
    per_source = _check_rows(rows, source_classes)
    classes = sorted(row.key for row in rows)
    index = {name: i for i, name in enumerate(classes)}
    num = len(classes)

    # hierarchy names -> unified index
    if hierarchy_source == 'key':
        lookup = dict(index)
    elif hierarchy_source in per_source:
        lookup = {
            name: index[row.key]
            for name, row in per_source[hierarchy_source].items()
        }
    else:
        raise LabelSpaceError(
            f'hierarchy_source must be "key" or a source of the mapping '
            f'{sorted(per_source)}, got {hierarchy_source!r}')
    links = []
    if hierarchy is not None:
        edges = hierarchy_edges(hierarchy)
        parents = {p for p, _, _ in edges if p is not None}
        for parent, child, path in edges:
            if child not in lookup:
                role = 'parent' if child in parents else 'class'
                raise LabelSpaceError(
                    f'hierarchy node {path!r}: {role} {child!r} does not '
                    f'exist (not a class of {hierarchy_source!r} in the '
                    'mapping)')
            if parent is not None:
                links.append((lookup[parent], lookup[child]))
    anc_base = np.zeros((num + 1, num + 1), dtype=np.uint8)
    anc_base[:num, :num] = _closure(num, links, classes)
    desc_base = np.ascontiguousarray(anc_base.T)
    anc, desc = _apply_edits(anc_base, desc_base, edits or {}, index)
    for tag, a, d in (('base', anc_base, desc_base), ('edited', anc, desc)):
        both = np.argwhere(a & d)
        if len(both):
            i, j = both[0]
            raise LabelSpaceError(
                f'{tag} hierarchy: {classes[j]!r} is both an ancestor and a '
                f'descendant of {classes[i]!r}')

    sources = {}
    for src, names in source_classes.items():
        mapped = per_source[src]
        listed = list(names) if names is not None else [
            row.names[src] for row in rows if src in row.names
        ]
        sources[src] = dict(
            column=(columns or {}).get(src, src),
            classes=listed,
            to_unified={
                name: mapped[name].key
                for name in listed if name in mapped
            },
            unmapped=[name for name in listed if name not in mapped])
    return dict(
        classes=classes,
        sources=sources,
        hierarchy_source=hierarchy_source if hierarchy is not None else None,
        edits={
            k: dict(v)
            for k, v in (edits or {}).items()
        },
        ancestors=anc,
        descendants=desc,
        ancestors_base=anc_base,
        descendants_base=desc_base)


_MATRICES = ('ancestors', 'descendants', 'ancestors_base', 'descendants_base')


def save_label_space(space: dict, path: str) -> None:
    """Write a label space as JSON (matrices as nested 0/1 lists)."""
    out = {
        k: (v.astype(int).tolist() if k in _MATRICES else v)
        for k, v in space.items()
    }
    out['num_classes'] = len(space['classes'])
    with open(path, 'w') as f:
        json.dump(out, f, separators=(',', ':'))


def load_label_space(path_or_space) -> dict:
    """Load a label space written by :func:`save_label_space`.

    Args:
        path_or_space (str | dict): the JSON path, or an already loaded /
            built label space (returned with its matrices as arrays).

    Returns:
        dict: as :func:`build_label_space`, matrices as uint8 arrays
        ``(C + 1, C + 1)``.
    """
    if isinstance(path_or_space, dict):
        space = dict(path_or_space)
    else:
        if not osp.isfile(path_or_space):
            raise FileNotFoundError(
                f'label space file {path_or_space!r} does not exist; build '
                'it with tools/dataset_converters/unify_label_space.py')
        with open(path_or_space) as f:
            space = json.load(f)
    num = len(space['classes'])
    for key in _MATRICES:
        mat = np.asarray(space[key], dtype=np.uint8)
        if mat.shape != (num + 1, num + 1):
            raise LabelSpaceError(
                f'label space: {key} has shape {mat.shape}, expected '
                f'{(num + 1, num + 1)} for {num} classes')
        space[key] = mat
    return space


def remap_coco(coco: dict, space: dict, source: str) -> Tuple[dict, dict]:
    """Remap a source's COCO annotations onto the unified label space.

    Categories are matched by ``name`` against the source's classes;
    annotations of classes without a unified class are dropped.

    Args:
        coco (dict): the source's COCO annotation dict.
        space (dict): the unified label space.
        source (str): the source name in ``space['sources']``.

    Returns:
        tuple[dict, dict]: the remapped COCO dict (same images and
        annotation ids, ``categories`` = the unified classes with ids
        ``1..C``) and counts ``dict(kept, dropped, dropped_classes)``.
    """
    if source not in space['sources']:
        raise LabelSpaceError(f'unknown source {source!r}; the label space '
                              f'has {sorted(space["sources"])}')
    to_unified = space['sources'][source]['to_unified']
    uid = {name: i + 1 for i, name in enumerate(space['classes'])}
    cat_to_uid = {}
    dropped_classes = []
    for cat in coco.get('categories', []):
        unified = to_unified.get(cat['name'])
        if unified is None:
            dropped_classes.append(cat['name'])
        else:
            cat_to_uid[cat['id']] = uid[unified]
    anns, dropped = [], 0
    for ann in coco.get('annotations', []):
        new_id = cat_to_uid.get(ann['category_id'])
        if new_id is None:
            dropped += 1
            continue
        anns.append(dict(ann, category_id=new_id))
    out = dict(coco)
    out['info'] = dict(coco.get('info', {}), unified_source=source)
    out['annotations'] = anns
    out['categories'] = [
        dict(id=i + 1, name=name, supercategory=name)
        for i, name in enumerate(space['classes'])
    ]
    return out, dict(
        kept=len(anns), dropped=dropped, dropped_classes=dropped_classes)
