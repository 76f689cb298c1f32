# Copyright (c) mmssl contributors. All rights reserved.
"""Hierarchy-aware sigmoid BCE: hand computations, modes, mmdet protocol."""
import math
import os.path as osp

import numpy as np
import pytest
import torch
import torch.nn.functional as F

from mmssl.datasets.unidet import (RVC_EDITS, build_label_space,
                                   read_hierarchy, read_mapping_csv)
from mmssl.models.unidet import (HierarchyBCELoss, hierarchy_bce_loss,
                                 hierarchy_targets)

ROOT = osp.dirname(osp.dirname(osp.dirname(osp.abspath(__file__))))
RVC = osp.join(ROOT, '..', 'shared', 'data', 'unidet')

# classes: animal_super, bird, bird_super, cat, dog (+ background = 5)
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
            ])
    ])
ANIMAL, BIRD, BIRD_SUPER, CAT, DOG, BG = range(6)


def _space(edits=None):
    cols, rows = read_mapping_csv(TOY_CSV)
    return build_label_space(rows, dict(oid=None, coco=None), TOY_TREE, 'oid',
                             edits, cols)


def _bce(z, y):
    """Binary cross-entropy with logits of one entry, by hand."""
    return math.log1p(math.exp(-z)) if y else math.log1p(math.exp(z))


def test_hand_computed_single_roi():
    """label dog: dog and animal_super positive, 'child' ignores nothing
    (dog is a leaf); label animal_super: dog, cat, bird_super ignored."""
    space = _space()
    loss = HierarchyBCELoss(space, ignore='child', loss_weight=1.0)
    z = [0.5, -1.0, 2.0, 0.0, 1.5, -0.5]
    expect = (
        _bce(0.5, 1) + _bce(-1.0, 0) + _bce(2.0, 0) + _bce(0.0, 0) +
        _bce(1.5, 1) + _bce(-0.5, 0))
    got = loss(torch.tensor([z]), torch.tensor([DOG]))
    assert got.item() == pytest.approx(expect, abs=1e-6)
    # animal_super: its descendants dog, cat, bird_super weight 0
    expect = _bce(0.5, 1) + _bce(-1.0, 0) + _bce(-0.5, 0)
    got = loss(torch.tensor([z]), torch.tensor([ANIMAL]))
    assert got.item() == pytest.approx(expect, abs=1e-6)


def test_zero_logits_ln2_and_normalisation_by_n():
    space = _space()
    lam = 1.5
    loss = HierarchyBCELoss(space, ignore='child', loss_weight=lam)
    labels = torch.tensor([DOG, ANIMAL, BG, CAT])
    # non-ignored columns per RoI: 6, 3 (3 descendants ignored), 6, 6
    got = loss(torch.zeros(4, 6), labels)
    assert got.item() == pytest.approx(
        lam * math.log(2) * (6 + 3 + 6 + 6) / 4, abs=1e-6)
    tgt = hierarchy_targets(labels, 6, torch.as_tensor(space['ancestors']))
    assert tgt[0].tolist() == [1, 0, 0, 0, 1, 0]  # dog + animal_super
    assert tgt[2].tolist() == [0, 0, 0, 0, 0, 1]  # background only


def test_matches_dense_formula_on_random_logits():
    space = _space(dict(merged={'bird': 'bird_super'}))
    anc = torch.as_tensor(space['ancestors'], dtype=torch.float32)
    desc = torch.as_tensor(space['descendants'], dtype=torch.float32)
    anc_b = torch.as_tensor(space['ancestors_base'], dtype=torch.float32)
    desc_b = torch.as_tensor(space['descendants_base'], dtype=torch.float32)
    torch.manual_seed(0)
    z = torch.randn(7, 6, dtype=torch.float64).float()
    labels = torch.tensor([0, 1, 2, 3, 4, 5, 1])
    for ignore, m in (('child', desc_b), ('child+', anc - anc_b + desc),
                      ('child++', anc_b + desc_b)):
        loss = HierarchyBCELoss(space, ignore=ignore, loss_weight=1.5)
        y = F.one_hot(labels, 6).float() + F.one_hot(labels, 6).float() @ anc_b
        w = 1 - m[labels]
        ref = 1.5 * (w * F.binary_cross_entropy_with_logits(
            z, y, reduction='none')).sum() / len(z)
        torch.testing.assert_close(loss(z, labels), ref, atol=1e-6, rtol=0)


def test_flat_is_plain_sigmoid_bce_and_ignores_mmdet_weights():
    loss = HierarchyBCELoss(set_pos_parents=False, ignore_children=False)
    z, labels = torch.randn(5, 6), torch.tensor([0, 1, 5, 3, 4])
    ref = F.binary_cross_entropy_with_logits(
        z, F.one_hot(labels, 6).float(), reduction='sum') / 5
    got = loss(z, labels, torch.zeros(5), avg_factor=123.0)
    torch.testing.assert_close(got, ref)
    assert hierarchy_bce_loss(z[:0], labels[:0]).item() == 0


def test_protocol_and_mmdet_scope_resolution():
    from mmdet.registry import MODELS
    from mmengine.registry import init_default_scope
    init_default_scope('mmdet')
    loss = MODELS.build(
        dict(
            type='mmssl.HierarchyBCELoss',
            set_pos_parents=False,
            ignore_children=False))
    assert isinstance(loss, HierarchyBCELoss)
    assert loss.custom_cls_channels and loss.custom_activation
    assert loss.get_cls_channels(540) == 541
    z = torch.randn(3, 6)
    torch.testing.assert_close(loss.get_activation(z), z.sigmoid())
    z = torch.full((2, 6), -5.0)
    z[0, 4] = z[1, 1] = 5.0
    acc = loss.get_accuracy(z, torch.tensor([4, 2]))['acc']
    assert acc.item() == pytest.approx(50.0)


def test_errors():
    with pytest.raises(ValueError, match='label_space is required'):
        HierarchyBCELoss()
    with pytest.raises(ValueError, match='ignore must be one of'):
        HierarchyBCELoss(_space(), ignore='children')
    loss = HierarchyBCELoss(_space())
    with pytest.raises(ValueError, match='5 classes but cls_score has 8'):
        loss(torch.zeros(2, 8), torch.tensor([0, 1]))
    lazy = HierarchyBCELoss('/nonexistent/label_space.json')
    with pytest.raises(FileNotFoundError, match='unify_label_space'):
        lazy(torch.zeros(1, 6), torch.tensor([0]))


@pytest.mark.skipif(
    not osp.isdir(RVC), reason='../shared/data/unidet is not available')
def test_rvc_person_merge_child_plus():
    """A COCO person RoI ignores person_super (an RVC-only parent) and OID
    person subclasses; its only positive is person."""
    cols, rows = read_mapping_csv(osp.join(RVC, 'obj_det_mapping_540.csv'))
    tree = read_hierarchy(
        osp.join(RVC, 'challenge-2019-label500-hierarchy.json'))
    space = build_label_space(rows, {s: None
                                     for s in cols}, tree, 'oid', RVC_EDITS,
                              cols)
    names = space['classes']
    person, sup = names.index('person'), names.index('person_super')
    loss = HierarchyBCELoss(space, ignore='child+')
    assert loss._pos.shape == (541, 541)
    tgt = hierarchy_targets(torch.tensor([person]), 541, loss._pos)[0]
    assert tgt.nonzero().flatten().tolist() == [person]
    weight = 1 - loss._ignore[person]
    assert weight[sup] == 0
    for child in ('man', 'woman', 'boy', 'girl'):
        assert weight[names.index(child)] == 0
    # an OID 'man' RoI: man and person_super positive, person ignored
    man = names.index('man')
    tgt = hierarchy_targets(torch.tensor([man]), 541, loss._pos)[0]
    assert set(tgt.nonzero().flatten().tolist()) == {man, sup}
    assert loss._ignore[man, person] == 1
    assert np.all(space['ancestors'][-1] == 0)


# ------------------------------------------------ each flag alone
def test_positive_parents_without_ignore_and_ignore_without_parents():
    """set_pos_parents only: ancestors positive, every column weighted;
    ignore_children only: one-hot targets, descendants weight 0."""
    space = _space()
    z = torch.tensor([[0.5, -1.0, 2.0, 0.0, 1.5, -0.5]])
    parents = HierarchyBCELoss(space, ignore_children=False)
    want = sum(_bce(v, y) for v, y in zip(z[0].tolist(), [1, 0, 0, 0, 0, 0]))
    # label animal_super: no ancestor, nothing ignored
    assert parents(z, torch.tensor([ANIMAL])).item() == pytest.approx(
        want, abs=1e-6)
    want = sum(_bce(v, y) for v, y in zip(z[0].tolist(), [1, 0, 0, 0, 1, 0]))
    assert parents(z, torch.tensor([DOG])).item() == pytest.approx(
        want, abs=1e-6)
    ignore = HierarchyBCELoss(space, set_pos_parents=False, ignore='child')
    # label animal_super: its descendants dog, cat, bird_super weight 0
    want = _bce(0.5, 1) + _bce(-1.0, 0) + _bce(-0.5, 0)
    assert ignore(z, torch.tensor([ANIMAL])).item() == pytest.approx(
        want, abs=1e-6)
    # label dog: one-hot, the ancestor animal_super is a negative
    want = sum(_bce(v, y) for v, y in zip(z[0].tolist(), [0, 0, 0, 0, 1, 0]))
    assert ignore(z, torch.tensor([DOG])).item() == pytest.approx(
        want, abs=1e-6)
    with pytest.raises(ValueError, match='5 classes but cls_score has 8'):
        ignore(torch.zeros(2, 8), torch.tensor([0, 1]))


def test_either_flag_needs_the_label_space_and_shapes_are_checked():
    for flags in ((True, False), (False, True)):
        with pytest.raises(ValueError, match='label_space is required'):
            HierarchyBCELoss(
                set_pos_parents=flags[0], ignore_children=flags[1])
    with pytest.raises(ValueError, match=r'got \(3, 6\) and \(2,\)'):
        hierarchy_bce_loss(torch.zeros(3, 6), torch.zeros(2).long())
    with pytest.raises(ValueError, match=r'got \(6,\) and \(6,\)'):
        hierarchy_bce_loss(torch.zeros(6), torch.zeros(6).long())


def test_accuracy_counts_an_ancestor_and_is_zero_without_rois():
    """get_accuracy (what mmdet's box head logs as 'acc'): the top column is
    one of the RoI's targets, so animal_super on a dog is a hit."""
    loss = HierarchyBCELoss(_space())
    z = torch.full((2, 6), -5.0)
    z[0, ANIMAL] = z[1, CAT] = 5.0
    acc = loss.get_accuracy(z, torch.tensor([DOG, DOG]))['acc']
    assert acc.item() == pytest.approx(50.0)
    empty = loss.get_accuracy(torch.zeros(0, 6), torch.zeros(0).long())
    assert empty['acc'].item() == 0
