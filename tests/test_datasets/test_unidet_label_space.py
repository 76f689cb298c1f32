# Copyright (c) mmssl contributors. All rights reserved.
"""Unified label space: the real RVC 540-class space, the embedded sources,
toy hierarchies, input errors, the command line and class-aware sampling."""
import json
import os
import os.path as osp

import numpy as np
import pytest

from mmssl.datasets.unidet import (RVC_EDITS, LabelSpaceError,
                                   build_label_space, embedded_unidet_inputs,
                                   load_label_space, prepare_embedded_unidet,
                                   read_category_list, read_hierarchy,
                                   read_mapping_csv, remap_coco,
                                   save_label_space)

ROOT = osp.dirname(osp.dirname(osp.dirname(osp.abspath(__file__))))
RVC = osp.join(ROOT, '..', 'shared', 'data', 'unidet')
needs_rvc = pytest.mark.skipif(
    not osp.isdir(RVC),
    reason='the RVC taxonomies (../shared/data/unidet next to the '
    'repository) are not available')

TOY_CSV = """key,oid,coco
animal_super,/m/animal,
bird,,bird
bird_super,/m/bird,
cat,/m/cat,cat
dog,/m/dog,dog
"""
TOY_TREE = dict(
    LabelName='/m/root',
    Subcategory=[
        dict(
            LabelName='/m/animal',
            Subcategory=[
                dict(LabelName='/m/dog'),
                dict(LabelName='/m/cat'),
                dict(LabelName='/m/bird'),
            ]),
    ])


def _toy(edits=None):
    cols, rows = read_mapping_csv(TOY_CSV)
    return build_label_space(rows, dict(oid=None, coco=None), TOY_TREE, 'oid',
                             edits, cols)


def _closed_off_diagonal(mat):
    """mat[i, j] and mat[j, k] imply mat[i, k] for i != k."""
    two = (mat.astype(np.int64) @ mat.astype(np.int64)) > 0
    np.fill_diagonal(two, False)
    return not np.any(two & ~mat.astype(bool))


def test_toy_hierarchy():
    space = _toy()
    names = space['classes']
    assert names == sorted(names) == [
        'animal_super', 'bird', 'bird_super', 'cat', 'dog'
    ]
    idx = {n: i for i, n in enumerate(names)}
    anc, desc = space['ancestors'], space['descendants']
    assert anc.shape == (6, 6)
    assert anc[-1].sum() == anc[:, -1].sum() == desc[-1].sum() == 0
    assert anc[idx['dog'], idx['animal_super']] == 1
    assert desc[idx['animal_super']].tolist() == [0, 0, 1, 1, 1, 0]
    assert not np.any(anc & desc)
    np.testing.assert_array_equal(desc, anc.T)
    # COCO 'bird' is not in the OID hierarchy: no links without edits
    assert anc[idx['bird']].sum() == desc[idx['bird']].sum() == 0
    assert space['sources']['coco']['to_unified'] == {
        'bird': 'bird',
        'cat': 'cat',
        'dog': 'dog'
    }


def test_toy_merged_and_inserted_edits():
    space = _toy(dict(merged={'bird': 'bird_super'}))
    idx = {n: i for i, n in enumerate(space['classes'])}
    anc, desc = space['ancestors'], space['descendants']
    b, bs, an = idx['bird'], idx['bird_super'], idx['animal_super']
    # mutual parents; bird also gets bird_super's ancestors
    assert anc[b, bs] == anc[bs, b] == anc[b, an] == 1
    assert desc[an, b] == 1 and desc[bs, b] == 0
    assert not np.any(anc & desc)
    np.testing.assert_array_equal(space['ancestors_base'][b], 0)
    space = _toy(dict(inserted={'bird': 'animal_super'}))
    anc, desc = space['ancestors'], space['descendants']
    assert anc[b, an] == 1 and desc[an, b] == 1 and anc[an, b] == 0


def test_unify_files_with_each_kind_of_edits(tmp_path):
    """unify_label_space from a mapping file alone (each source keeps the
    classes of its column); edits None / 'none' / a dict / a JSON file /
    'rvc' (RVC_EDITS, whose classes the toy mapping lacks)."""
    from mmssl.datasets.unidet import unify_label_space
    csv = tmp_path / 'mapping.csv'
    csv.write_text(TOY_CSV)
    plain = unify_label_space(str(csv), str(tmp_path / 'a'), logger=print)
    assert plain['sources']['coco']['classes'] == ['bird', 'cat', 'dog']
    assert osp.isfile(plain['path'])
    named = unify_label_space(
        str(csv), str(tmp_path / 'b'), edits='none', logger=print)
    np.testing.assert_array_equal(named['ancestors'], plain['ancestors'])
    merged = dict(merged={'bird': 'bird_super'})
    (tmp_path / 'edits.json').write_text(json.dumps(merged))
    spaces = [
        unify_label_space(
            str(csv), str(tmp_path / 'c'), edits=edits, logger=print)
        for edits in (merged, str(tmp_path / 'edits.json'))
    ]
    b, bs = (plain['classes'].index(n) for n in ('bird', 'bird_super'))
    for space in spaces:  # the merge makes bird and bird_super parents
        assert space['ancestors'][b, bs] == space['ancestors'][bs, b] == 1
    assert plain['ancestors'][b, bs] == 0
    first = sorted(RVC_EDITS['merged'])[0]
    with pytest.raises(LabelSpaceError, match=f"'{first}' is not a unified"):
        unify_label_space(
            str(csv), str(tmp_path / 'd'), edits='rvc', logger=print)


@needs_rvc
def test_real_rvc_540_label_space():
    from mmdet.datasets import CocoDataset
    cols, rows = read_mapping_csv(osp.join(RVC, 'obj_det_mapping_540.csv'))
    assert cols == dict(
        oid='oid_boxable_leaf',
        coco='coco_boxable_name',
        mvd='mvd_boxable_name')
    tree_file = osp.join(RVC, 'challenge-2019-label500-hierarchy.json')
    tree = read_hierarchy(tree_file)
    oid = read_category_list(tree_file)
    descriptions = read_category_list(
        osp.join(RVC, 'class-descriptions-boxable.csv'))
    assert len(oid) == 500 and set(oid) <= set(descriptions)
    space = build_label_space(
        rows,
        dict(oid=oid, coco=list(CocoDataset.METAINFO['classes']), mvd=None),
        tree, 'oid', RVC_EDITS, cols)
    classes = space['classes']
    C = len(classes)
    # counts of the spec / NOTICE
    assert C == 540 and classes == sorted(classes)
    assert sum(c.endswith('_super') for c in classes) == 57
    assert classes[:3] == ['accordion', 'adhesive_tape', 'aircraft_super']
    assert classes.index('ball') + 1 == classes.index('ball_super') == \
        classes.index('balloon') - 1
    sizes = {s: len(v['classes']) for s, v in space['sources'].items()}
    assert sizes == dict(oid=500, coco=80, mvd=37)
    # every source class maps to exactly one unified class
    for src, info in space['sources'].items():
        assert info['unmapped'] == [], src
        assert set(info['to_unified']) == set(info['classes'])
        assert len(set(info['to_unified'].values())) == len(info['classes'])
    assert space['sources']['coco']['to_unified']['sports ball'] == 'ball'
    assert space['sources']['mvd']['to_unified'][
        'object--vehicle--car'] == 'car'
    anc, desc = space['ancestors'], space['descendants']
    anc_b, desc_b = space['ancestors_base'], space['descendants_base']
    for mat in (anc, desc, anc_b, desc_b):
        assert mat.shape == (C + 1, C + 1)
        assert mat[C].sum() == mat[:, C].sum() == 0
        assert np.diag(mat).sum() == 0
    # no class both an ancestor and a descendant of another
    assert not np.any(anc & desc) and not np.any(anc_b & desc_b)
    # the source hierarchy: an exact transitive closure, desc = anc^T
    two = (anc_b.astype(np.int64) @ anc_b.astype(np.int64)) > 0
    assert not np.any(two & ~anc_b.astype(bool))
    np.testing.assert_array_equal(desc_b, anc_b.T)
    assert (anc_b - anc >= 0).sum() == anc_b.size and np.all(anc >= anc_b)
    # with the edits: closed except that merged pairs are mutual parents
    assert _closed_off_diagonal(anc) and _closed_off_diagonal(desc)
    idx = {n: i for i, n in enumerate(classes)}
    mutual = {(classes[i], classes[j])
              for i, j in np.argwhere(anc & anc.T) if i < j}
    assert mutual == {tuple(sorted(p)) for p in RVC_EDITS['merged'].items()}
    for a, sup in RVC_EDITS['inserted'].items():
        assert anc[idx[a], idx[sup]] == 1 and desc[idx[sup], idx[a]] == 1
        assert np.all(anc[idx[a]] >= anc[idx[sup]])
    p, ps = idx['person'], idx['person_super']
    assert anc[p, ps] == anc[ps, p] == 1 and desc[ps, p] == 0
    assert anc[idx['dog'], idx['animal_super']] == 1
    assert anc[idx['land_vehicle_super'], idx['vehicle_super']] == 1


def test_embedded_sources(tmp_path):
    from mmssl.datasets import make_embedded_data
    root = str(tmp_path / 'embedded')
    make_embedded_data(root, num_train=16, num_val=8)
    # a build that died half way left its scratch folder behind
    os.makedirs(osp.join(root, 'unidet', 'unified', '.tmp', 'source_a'))
    path = prepare_embedded_unidet(root)
    assert not osp.exists(osp.join(root, 'unidet', 'unified', '.tmp'))
    built = open(path).read()
    with open(path, 'w') as f:
        f.write(built + ' ')
    assert prepare_embedded_unidet(root) == path  # built once: kept
    assert open(path).read() == built + ' '
    assert prepare_embedded_unidet(root, force=True) == path  # rebuilt
    assert open(path).read() == built
    space = load_label_space(path)
    classes = space['classes']
    assert classes == [
        'circle', 'cross', 'ellipse', 'hexagon', 'pentagon', 'polygon',
        'semicircle', 'square', 'star', 'triangle'
    ]
    b = space['sources']['source_b']['to_unified']
    assert b['disc'] == 'circle' and b['polygon'] == 'polygon'
    for src in ('source_a', 'source_b'):
        info = space['sources'][src]
        assert len(info['classes']) == 6 and info['unmapped'] == []
        assert len(set(info['to_unified'].values())) == 6
    idx = {n: i for i, n in enumerate(classes)}
    anc = space['ancestors']
    assert anc[idx['pentagon'], idx['polygon']] == 1
    assert anc[idx['hexagon'], idx['polygon']] == 1
    assert anc.sum() == 2 and not np.any(anc & space['descendants'])
    # remapped annotations: same boxes, unified category ids
    for split in ('train', 'val'):
        src_file = osp.join(root, 'unidet', 'source_b', 'annotations',
                            f'instances_{split}.json')
        orig = json.load(open(src_file))
        out = json.load(
            open(
                osp.join(root, 'unidet', 'unified', 'source_b',
                         f'instances_{split}.json')))
        names = {c['id']: c['name'] for c in orig['categories']}
        assert [c['name'] for c in out['categories']] == classes
        assert len(out['annotations']) == len(orig['annotations'])
        for a, o in zip(out['annotations'], orig['annotations']):
            assert a['bbox'] == o['bbox']
            assert classes[a['category_id'] - 1] == b[names[o['category_id']]]


def test_embedded_inputs_are_csv_and_hierarchy():
    from mmssl.datasets import UNIDET_LABEL_SPACES
    spaces = dict(
        sources={
            k: dict(classes=list(v['classes']), to_unified=v['to_unified'])
            for k, v in UNIDET_LABEL_SPACES.items()
        })
    text, tree = embedded_unidet_inputs(spaces)
    assert text.splitlines()[0] == 'key,source_a,source_b'
    assert 'circle,circle,disc' in text.splitlines()
    assert tree['Subcategory'][0]['LabelName'] == 'polygon'


# ----------------------------------------------------------------- errors
def _build(csv_text, tree=TOY_TREE, lists=None, edits=None):
    cols, rows = read_mapping_csv(csv_text)
    lists = lists or {s: None for s in cols}
    return build_label_space(rows, lists, tree, 'oid', edits, cols)


def test_error_cycle():
    tree = dict(
        LabelName='/m/root',
        Subcategory=[
            dict(
                LabelName='/m/animal',
                Subcategory=[
                    dict(
                        LabelName='/m/dog',
                        Subcategory=[dict(LabelName='/m/animal')])
                ])
        ])
    with pytest.raises(LabelSpaceError, match=r'cycle.*animal.*dog.*animal'):
        _build(TOY_CSV, tree)


def test_error_missing_parent():
    tree = dict(
        LabelName='/m/root',
        Subcategory=[
            dict(LabelName='/m/pet', Subcategory=[dict(LabelName='/m/dog')])
        ])
    with pytest.raises(
            LabelSpaceError,
            match=r"hierarchy node '/m/root > /m/pet': parent '/m/pet' does "
            'not exist'):
        _build(TOY_CSV, tree)


def test_error_class_mapped_twice():
    bad = TOY_CSV + 'hound,,dog\n'
    with pytest.raises(
            LabelSpaceError,
            match=r"mapping row 7 \(key 'hound'\).*'dog' of source 'coco' "
            r"is mapped twice \(also by mapping row 6 \(key 'dog'\)\)"):
        _build(bad)


def test_error_class_absent_from_source():
    lists = dict(oid=None, coco=['bird', 'cat'])
    with pytest.raises(
            LabelSpaceError,
            match=r"mapping row 6 \(key 'dog'\): class 'dog' is not a class "
            "of source 'coco'"):
        _build(TOY_CSV, lists=lists)


def test_error_duplicate_key_and_bad_edit():
    with pytest.raises(LabelSpaceError, match=r"row 7 \(key 'dog'\).*row 6"):
        _build(TOY_CSV + 'dog,,\n')
    with pytest.raises(LabelSpaceError, match="'wolf' is not a unified"):
        _build(TOY_CSV, edits=dict(merged={'wolf': 'animal_super'}))


def test_cli(tmp_path, capsys):
    import importlib.util
    spec = importlib.util.spec_from_file_location(
        'unify_cli',
        osp.join(ROOT, 'tools', 'dataset_converters', 'unify_label_space.py'))
    cli = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(cli)
    (tmp_path / 'map.csv').write_text(TOY_CSV)
    (tmp_path / 'tree.json').write_text(json.dumps(TOY_TREE))
    coco = dict(
        images=[dict(id=1, file_name='a.png', width=8, height=8)],
        annotations=[
            dict(id=1, image_id=1, category_id=3, bbox=[0, 0, 2, 2]),
            dict(id=2, image_id=1, category_id=9, bbox=[1, 1, 2, 2])
        ],
        categories=[dict(id=3, name='dog'),
                    dict(id=9, name='zebra')])
    (tmp_path / 'coco.json').write_text(json.dumps(coco))
    out = tmp_path / 'out'
    rc = cli.main([
        '--mapping',
        str(tmp_path / 'map.csv'), '--hierarchy',
        str(tmp_path / 'tree.json'), '--hierarchy-source', 'oid', '--ann',
        f'coco={tmp_path / "coco.json"}', '--out-dir',
        str(out)
    ])
    assert rc == 0
    space = load_label_space(str(out / 'label_space.json'))
    assert space['classes'][4] == 'dog'
    remapped = json.load(open(out / 'coco' / 'coco.json'))
    assert [a['category_id'] for a in remapped['annotations']] == [5]
    # a bad input is one "error:" line and exit code 2
    (tmp_path / 'bad.csv').write_text(TOY_CSV + 'hound,,dog\n')
    rc = cli.main(
        ['--mapping',
         str(tmp_path / 'bad.csv'), '--out-dir',
         str(out)])
    err = capsys.readouterr().err
    assert rc == 2 and err.startswith('error: mapping row 7')


def test_save_load_and_remap_roundtrip(tmp_path):
    space = _toy()
    save_label_space(space, str(tmp_path / 'ls.json'))
    loaded = load_label_space(str(tmp_path / 'ls.json'))
    for key in ('ancestors', 'descendants'):
        np.testing.assert_array_equal(loaded[key], space[key])
    out, stats = remap_coco(
        dict(
            images=[],
            annotations=[dict(id=1, category_id=1)],
            categories=[dict(id=1, name='/m/cat')]), loaded, 'oid')
    assert out['annotations'][0]['category_id'] == 4 and stats['kept'] == 1


def test_class_aware_sampler_on_unified_concat():
    """One epoch of mmdet's ClassAwareSampler over two repeated sources
    with disjoint classes visits every class about equally often."""
    from mmdet.datasets.samplers import ClassAwareSampler
    from mmengine.dataset import BaseDataset, RepeatDataset

    from mmssl.datasets import UnifiedConcatDataset

    class Fake(BaseDataset):
        METAINFO = dict(classes=('a', 'b', 'c', 'd'))

        def __init__(self, labels):
            self.labels = labels
            super().__init__(serialize_data=False, lazy_init=False)

        def load_data_list(self):
            return [dict(labels=lab) for lab in self.labels]

        def get_cat_ids(self, idx):
            return list(self.get_data_info(idx)['labels'])

    one = Fake([[0], [0], [0], [1], [0, 1]])
    two = Fake([[2], [3], [3]])
    concat = UnifiedConcatDataset(
        [RepeatDataset(one, times=2),
         RepeatDataset(two, times=1)])
    assert concat.get_cat_ids(9) == [0, 1] and concat.get_cat_ids(10) == [2]
    sampler = ClassAwareSampler(concat, seed=0, num_sample_class=1)
    counts = np.zeros(4)
    order = list(iter(sampler))
    assert len(order) == len(concat) == 13
    for i in order:
        # the class drawn is one of the image's classes
        counts[list(set(concat.get_cat_ids(i)))] += 1
    assert counts.min() >= 3


def test_source_names_and_mapping_header():
    from mmssl.datasets.unidet import source_name
    assert source_name('oid_boxable_leaf') == 'oid'
    assert source_name('mvd_name') == 'mvd'
    # a column that is only a suffix keeps its name
    assert source_name('_leaf') == '_leaf'
    cols, rows = read_mapping_csv('key,coco\ncat,cat\n')  # one source
    assert cols == dict(coco='coco') and rows[0].names == dict(coco='cat')
    for header in ('key', 'name,coco', ''):
        with pytest.raises(LabelSpaceError, match='header must be "key,'):
            read_mapping_csv(header + '\ncat,cat\n')
    with pytest.raises(
            LabelSpaceError, match="'key' and 'key' name the "
            "same source 'key'"):
        read_mapping_csv('key,key\ncat,cat\n')
    with pytest.raises(
            LabelSpaceError,
            match="columns 'oid_leaf' and "
            "'oid_name' name the same source 'oid'"):
        read_mapping_csv('key,oid_leaf,oid_name\ncat,a,b\n')


def test_hierarchy_file_needs_a_label_name(tmp_path):
    for bad in ([dict(LabelName='/m/a')], dict(Subcategory=[])):
        (tmp_path / 'h.json').write_text(json.dumps(bad))
        with pytest.raises(
                LabelSpaceError, match='nested object with '
                '"LabelName"'):
            read_hierarchy(str(tmp_path / 'h.json'))


def test_cycle_away_from_the_first_class():
    # the search starts at 'bird' (sorted first after the root-level
    # 'animal_super'), which sits below a cat <-> dog cycle
    tree = dict(
        LabelName='/m/root',
        Subcategory=[
            dict(
                LabelName='/m/cat',
                Subcategory=[
                    dict(
                        LabelName='/m/dog',
                        Subcategory=[
                            dict(LabelName='/m/cat'),
                            dict(LabelName='/m/bird')
                        ])
                ])
        ])
    with pytest.raises(
            LabelSpaceError,
            match=r"^hierarchy cycle: 'dog' -> "
            r"'cat' -> 'dog' \(parent -> child\)$"):
        _build(TOY_CSV, tree)


def test_edit_that_contradicts_the_hierarchy():
    # putting the animal class under its own descendant 'dog'
    with pytest.raises(
            LabelSpaceError,
            match=r"^edited hierarchy: 'animal_super' is both an ancestor "
            r"and a descendant of 'animal_super'$"):
        _toy(dict(inserted={'animal_super': 'dog'}))


def test_flat_space_has_no_hierarchy_source():
    cols, rows = read_mapping_csv(TOY_CSV)
    flat = build_label_space(rows, dict(oid=None, coco=None))
    assert flat['hierarchy_source'] is None
    assert not flat['ancestors'].any() and not flat['descendants'].any()
    assert _toy()['hierarchy_source'] == 'oid'


def test_remap_counts_and_unified_categories():
    space = _toy()
    coco = dict(
        images=[dict(id=1)],
        annotations=[
            dict(id=1, image_id=1, category_id=3),
            dict(id=2, image_id=1, category_id=9),
            dict(id=3, image_id=1, category_id=9)
        ],
        categories=[dict(id=3, name='dog'),
                    dict(id=9, name='zebra')])
    out, stats = remap_coco(coco, space, 'coco')
    assert stats == dict(kept=1, dropped=2, dropped_classes=['zebra'])
    assert out['categories'] == [
        dict(id=i + 1, name=n, supercategory=n) for i, n in enumerate(
            ['animal_super', 'bird', 'bird_super', 'cat', 'dog'])
    ]
    assert out['categories'][0]['id'] == 1
    assert out['info'] == dict(unified_source='coco')
