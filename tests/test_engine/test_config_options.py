# Copyright (c) mmssl contributors. All rights reserved.
"""mmssl.engine.config_options: --cfg-options items, per-config option
lists, --arm-options text and the keys merge_cfg_options accepts."""
import argparse
import re

import pytest
from mmengine.config import Config

from mmssl.engine import config_options as co
from mmssl.engine.tool_errors import CfgOptionsError


def _parser():
    parser = argparse.ArgumentParser(prog='tool')
    parser.add_argument('configs', nargs='+')
    parser.add_argument('--names', nargs='+')
    parser.add_argument('--arm-options', nargs='+')
    parser.add_argument('--cfg-options', nargs='+', action=co.CfgOptionsAction)
    return parser


@pytest.mark.parametrize('item', ['x', '=1', '+=1', '.a=1', 'a.=1', 'a..b=1'])
def test_malformed_cfg_option_items_are_usage_errors(item, capsys):
    with pytest.raises(SystemExit) as exc:
        _parser().parse_args(['c.py', '--cfg-options', item])
    assert exc.value.code == 2
    assert ('argument --cfg-options: expected KEY=VALUE (e.g. '
            f'optim_wrapper.optimizer.lr=0.01), got {item!r}'
            in capsys.readouterr().err)


def test_well_formed_cfg_option_items_parse():
    args = _parser().parse_args(
        ['c.py', '--cfg-options', 'a.b=1', '+c.d=x,y', 'e=f=g', 'h.0=2'])
    assert args.cfg_options == {
        'a.b': 1,
        '+c.d': ['x', 'y'],
        'e': 'f=g',
        'h.0': 2
    }


def test_one_value_per_config(capsys):
    parser = _parser()
    args = parser.parse_args(['a.py', 'b.py', '--names', 'x', 'y'])
    co.check_one_per_config(parser, args)  # names fit, arm-options absent
    args = parser.parse_args(['a.py', 'b.py', '--arm-options', '-'])
    with pytest.raises(SystemExit) as exc:
        co.check_one_per_config(parser, args)
    assert exc.value.code == 2
    assert '--arm-options gives 1 values for 2 configs' in \
        capsys.readouterr().err
    args = parser.parse_args(['a.py', '--names', 'x', 'y', 'z'])
    with pytest.raises(SystemExit):
        co.check_one_per_config(parser, args)
    assert '--names gives 3 values for 1 configs' in capsys.readouterr().err
    # other option and list names
    args = argparse.Namespace(runs=['a', 'b'], labels=['x'])
    with pytest.raises(SystemExit):
        co.check_one_per_config(parser, args, ('labels', ), 'runs')
    assert '--labels gives 1 values for 2 configs' in capsys.readouterr().err


@pytest.mark.parametrize('text', ['', '-', '  -  ', ' '])
def test_arm_options_none(text):
    assert co.parse_options_text(text, 'w') == {}


def test_arm_options_values_read_as_cfg_options():
    assert co.parse_options_text('compile=True a.b=1 c=x,y +d=0.5 e=f=g',
                                 'w') == {
                                     'compile': True,
                                     'a.b': 1,
                                     'c': ['x', 'y'],
                                     '+d': 0.5,
                                     'e': 'f=g'
                                 }


@pytest.mark.parametrize('item', ['x', '=1', '+=1'])
def test_arm_options_malformed_item_names_the_option(item):
    with pytest.raises(ValueError) as exc:
        co.parse_options_text(f'a=1 {item}', '--arm-options of c.py')
    assert str(exc.value) == (
        '--arm-options of c.py: expected KEY=VALUE items separated by '
        "spaces (or '-' for none), e.g. 'compile=True "
        f"model.neck.channels_last=True', got {item!r}")


# -------------------------------------------------- accepted arguments
class _Base:

    def __init__(self, a, b=1, *args, **kwargs):
        pass


class _Passes(_Base):

    def __init__(self, c, **kwargs):
        super().__init__(**kwargs)


class _Closed:

    def __init__(self, x, *rest):
        pass


class _Open:

    def __init__(self, **kwargs):
        pass


class _NoInit:
    pass


def test_accepted_args_along_the_mro():
    assert co._accepted_args(_Closed) == ({'x'}, False)
    assert co._accepted_args(_Passes) == ({'a', 'b', 'c'}, True)
    assert co._accepted_args(_Open) == (set(), True)
    assert co._accepted_args(_NoInit) == (set(), False)
    assert co._accepted_args(lambda p, q=2: 0) == ({'p', 'q'}, False)
    # a callable without a signature: its arguments cannot be read
    assert co._accepted_args(min) == (set(), True)


def test_implicit_args_of_the_runners_type_less_dicts():
    assert co._implicit_args(
        ['randomness']) == {'seed', 'deterministic', 'diff_rank_seed'}
    assert {'batch_size', 'num_workers',
            'persistent_workers'} <= co._implicit_args(['val_dataloader'])
    assert co._implicit_args(['env_cfg']) == {
        'cudnn_benchmark', 'mp_cfg', 'dist_cfg', 'resource_limit'
    }
    wrapper = co._implicit_args(['optim_wrapper'])
    assert {
        'type', 'constructor', 'paramwise_cfg', 'optimizer',
        'accumulative_counts', 'clip_grad'
    } <= wrapper
    train = co._implicit_args(['train_cfg'])
    assert {'type', 'by_epoch', 'max_epochs', 'max_iters',
            'val_interval'} <= train
    assert 'fp16' in co._implicit_args(['test_cfg'])
    assert 'fp16' in co._implicit_args(['val_cfg'])
    assert 'window_size' in co._implicit_args(['log_processor'])
    assert co._implicit_args(['model']) is None
    assert co._implicit_args(['optim_wrapper', 'optimizer']) is None


# ------------------------------------------------------------ merging
def _cfg(**extra):
    cfg = dict(
        model=dict(
            type='mmpretrain.ImageClassifier',
            backbone=dict(type='mmpretrain.ResNet', depth=18)),
        pipeline=[dict(type='A'), dict(type='B')])
    cfg.update(extra)
    return Config(cfg)


def _refusal(cfg, key, value=1):
    with pytest.raises(CfgOptionsError) as exc:
        co.merge_cfg_options(cfg, {key: value}, 'cfg.py')
    return str(exc.value)


def test_merge_without_options_returns_the_config():
    cfg = _cfg()
    assert co.merge_cfg_options(cfg, None, 'cfg.py') is cfg
    assert co.merge_cfg_options(cfg, {}, 'cfg.py') is cfg


def test_unprefixed_types_are_looked_up_in_the_default_scope():
    cfg = _cfg(default_scope='mmpretrain')
    cfg.model.backbone.type = 'ResNet'
    co.merge_cfg_options(cfg, {'model.backbone.frozen_stages': 2}, 'cfg.py')
    assert cfg.model.backbone.frozen_stages == 2
    cfg = _cfg()  # no default_scope: mmengine's, where ResNet is unknown
    cfg.model.backbone.type = 'ResNet'
    assert "its type 'ResNet' is not a registered class" in _refusal(
        cfg, 'model.backbone.frozen_stages')


def test_a_class_type_and_its_closed_arguments():
    cfg = _cfg()
    cfg.model.neck = dict(type=_Closed, x=1)
    co.merge_cfg_options(cfg, {'model.neck.x': 2}, 'cfg.py')
    msg = _refusal(cfg, 'model.neck.y')
    assert msg == (
        "--cfg-options 'model.neck.y': the config 'cfg.py' has no key 'y' "
        "under model.neck (its keys there: 'type', 'x'); _Closed has no "
        "argument 'y'. Fix the key; to add it as a new key on purpose, "
        'write +model.neck.y=...')
    cfg.model.neck = dict(type=_Passes)
    co.merge_cfg_options(cfg, {'model.neck.a': 2}, 'cfg.py')  # a parent's
    assert ("_Passes has no argument 'y' (it passes further keyword "
            'arguments on, which cannot be checked)') in _refusal(
                cfg, 'model.neck.y')


def test_close_matches_at_most_three_else_the_first_twelve_keys():
    cfg = _cfg(
        opts=dict(alpha1=1, alpha2=2, alpha3=3, alpha4=4, beta=5),
        many={f'k{i:02d}': i
              for i in range(14)},
        empty=dict())
    msg = _refusal(cfg, 'opts.alpha')
    assert re.search(r"\(did you mean 'alpha\d' or 'alpha\d' or 'alpha\d'\?\)",
                     msg)
    msg = _refusal(cfg, 'many.zzzzzz')
    listed = ', '.join(repr(f'k{i:02d}') for i in range(12))
    assert f'(its keys there: {listed})' in msg and "'k12'" not in msg
    assert '(its keys there: none)' in _refusal(cfg, 'empty.zzzzzz')


def test_list_indices_are_checked_against_the_length():
    cfg = _cfg()
    co.merge_cfg_options(cfg, {'pipeline.1.type': 'C'}, 'cfg.py')
    assert cfg.pipeline[1].type == 'C'
    assert _refusal(cfg, 'pipeline.2.type') == (
        "--cfg-options 'pipeline.2.type': pipeline is a list of 2 items in "
        "the config 'cfg.py', so '2' is not a valid index (use 0 to 1)")
    assert "'-1' is not a valid index" in _refusal(cfg, 'pipeline.-1.type')
    assert "'x' is not a valid index" in _refusal(cfg, 'pipeline.x')


def test_runner_arguments_and_type_less_dicts_take_new_keys():
    cfg = _cfg(randomness=dict(seed=1), train_cfg=dict(max_epochs=2))
    co.merge_cfg_options(
        cfg, {
            'randomness.deterministic': True,
            'train_cfg.val_interval': 2,
            'load_from': 'x.pth',
            'compile': True
        }, 'cfg.py')
    assert cfg.randomness.deterministic is True
    assert cfg.train_cfg.val_interval == 2
    assert cfg.load_from == 'x.pth' and cfg.compile is True
    assert "the Runner reads no 'colour' there" in _refusal(
        cfg, 'train_cfg.colour')


def test_a_merge_mmengine_refuses_is_reported():
    cfg = _cfg()
    msg = _refusal(cfg, 'pipeline', {'a': 1})
    assert msg.startswith("--cfg-options could not be merged into 'cfg.py'")
