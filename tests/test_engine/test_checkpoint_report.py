# Copyright (c) mmssl contributors. All rights reserved.
"""mmssl.engine.checkpoint_report: the key-by-key comparison, its summary,
the backbone-only guess and the classifier-size lines, by hand."""
import pytest
import torch
import torch.nn as nn

from mmssl.engine import checkpoint_report
from mmssl.engine.checkpoint_report import (CheckpointMismatchError,
                                            StateDictReport, check_checkpoint,
                                            classifier_shape_mismatches,
                                            compare_state_dict,
                                            num_classes_mismatch_lines)


@pytest.mark.parametrize('field', ['missing', 'unexpected', 'mismatched'])
def test_any_difference_makes_the_report_not_ok(field):
    lists = dict(missing=[], unexpected=[], mismatched=[])
    assert StateDictReport(['a'], num_model_keys=1, **lists).ok
    lists[field] = [('k', (1, ), (2, ))] if field == 'mismatched' else ['k']
    assert not StateDictReport(['a'], num_model_keys=2, **lists).ok


def test_summary_shows_five_names_by_default():
    missing = [f'm{i}' for i in range(7)]
    report = StateDictReport([], missing, [], [], 7)
    names = ', '.join(repr(f'm{i}') for i in range(5))
    assert report.summary() == ('0 of 7 model keys matched; 7 missing from '
                                f'the checkpoint (e.g. {names} (and 2 more))')


class _Net(nn.Module):

    def __init__(self, keys_seen=None):
        super().__init__()
        self.backbone = nn.Sequential(nn.Linear(2, 3), nn.Linear(3, 3))
        self.head = nn.Linear(3, 4)
        if keys_seen is not None:

            def hook(state_dict, prefix, local_metadata, strict, *args):
                keys_seen.append(strict)
                # a conversion on loading: an old name renamed
                if 'head.w' in state_dict:
                    state_dict['head.weight'] = state_dict.pop('head.w')

            self.head._register_load_state_dict_pre_hook(hook)


def test_pre_hooks_run_as_a_strict_load_would():
    seen = []
    net = _Net(seen)
    ckpt = {k: v.clone() for k, v in net.state_dict().items()}
    ckpt['head.w'] = ckpt.pop('head.weight')
    report = compare_state_dict(net, ckpt)
    assert seen == [True]
    assert report.ok and len(report.matched) == 6


def _backbone_only(net, extra=()):
    ckpt = {
        k[len('backbone.'):]: v
        for k, v in net.state_dict().items() if k.startswith('backbone.')
    }
    ckpt.update({k: torch.zeros(1) for k in extra})
    return ckpt


def test_backbone_only_checkpoint_at_and_below_nine_tenths():
    net = _Net()
    big = nn.Module()
    big.backbone = nn.Sequential(*[nn.Linear(2, 2) for _ in range(9)])
    big.head = nn.Linear(2, 2)
    own = _backbone_only(big)  # 18 backbone keys
    assert len(own) == 18
    # 18 of 20 keys (0.9) are the backbone's: still a backbone checkpoint
    report = compare_state_dict(big, _backbone_only(big, ['x', 'y']))
    assert report.backbone_like == 'backbone'
    # 18 of 21 (0.857): not
    report = compare_state_dict(big, _backbone_only(big, ['x', 'y', 'z']))
    assert report.backbone_like is None
    # once a key matches, no guess is made
    ckpt = _backbone_only(big)
    ckpt['head.bias'] = big.head.bias
    report = compare_state_dict(big, ckpt)
    assert report.matched == ['head.bias'] and report.backbone_like is None
    # nor for an empty checkpoint
    assert compare_state_dict(net, {}).backbone_like is None


def test_classifier_mismatches_differ_in_the_first_dimension_only():
    report = StateDictReport([], [], [], [
        ('head.fc.weight', (9, 32), (2, 32)),
        ('head.fc.bias', (9, ), (2, )),
        ('backbone.fc.weight', (9, 32), (2, 32)),
        ('head.layers.0.weight', (9, 32), (9, 16)),
        ('head.proj', (), ()),
        ('head.x', (9, 32), (9, 32, 1)),
        ('backbone.conv.weight', (9, 32), (2, 32)),
    ], 7)
    assert classifier_shape_mismatches(report) == [
        ('head.fc.weight', (9, 32), (2, 32)),
        ('head.fc.bias', (9, ), (2, )),
        ('backbone.fc.weight', (9, 32), (2, 32)),
    ]


# ------------------------------------------------------ the tool check
def test_num_classes_lines_name_the_checkpoint_count_and_head():
    report = StateDictReport([], [], [], [
        ('decode_head.conv_seg.weight', (9, 32, 1, 1), (2, 32, 1, 1)),
    ], 1)
    lines = num_classes_mismatch_lines(report, 'c.pth')
    assert lines[0] == (
        "number of classes differs: 'decode_head.conv_seg.weight' has 9 "
        'classes in the checkpoint (shape (9, 32, 1, 1)) but 2 in the model '
        '(shape (2, 32, 1, 1))')
    assert lines[1].startswith('Set num_classes=9 in model.decode_head (and')
    assert num_classes_mismatch_lines(
        StateDictReport([], [], [], [], 0), 'c.pth') == []


def _saved(tmp_path, net, drop=()):
    state = {k: v for k, v in net.state_dict().items() if k not in drop}
    path = str(tmp_path / 'c.pth')
    torch.save({'state_dict': state}, path)
    return path


def test_check_is_strict_by_default_and_half_matched_is_enough_else(
        tmp_path, monkeypatch):
    logged = []
    monkeypatch.setattr(checkpoint_report, 'print_log',
                        lambda msg, **kw: logged.append(msg))
    net = _Net()  # 6 keys
    path = _saved(tmp_path, net, drop=['head.weight', 'head.bias', 'x'])
    with pytest.raises(CheckpointMismatchError, match='does not match'):
        check_checkpoint(net, path, 'cfg.py')
    # not strict: 4 of 6 matched is more than half, loaded with a warning
    report = check_checkpoint(net, path, 'cfg.py', strict=False)
    assert report.missing == ['head.weight', 'head.bias']
    assert len(logged) == 1
    assert logged[0].startswith(f'checkpoint {path!r} only partly matches')
    assert logged[0].endswith(' Loading the matching weights.')
    # exactly half (3 of 6) is still loaded; fewer is refused
    path = _saved(
        tmp_path, net, drop=['head.weight', 'head.bias', 'backbone.1.bias'])
    check_checkpoint(net, path, 'cfg.py', strict=False)
    path = _saved(
        tmp_path,
        net,
        drop=[
            'head.weight', 'head.bias', 'backbone.1.bias', 'backbone.1.weight'
        ])
    with pytest.raises(CheckpointMismatchError) as exc:
        check_checkpoint(net, path, 'cfg.py', strict=False)
    assert exc.value.report.matched == ['backbone.0.weight', 'backbone.0.bias']
    assert len(logged) == 2
