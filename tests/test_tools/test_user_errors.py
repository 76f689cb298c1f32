# Copyright (c) mmssl contributors. All rights reserved.
"""Every tool ends a user error with one ``error: ...`` line and exit code 2.

User errors: a missing or empty data folder, a missing, unsafe or broken
checkpoint (:func:`mmssl.engine.tool_errors.user_error_message`).
"""
import glob
import os
import os.path as osp
import pickle
import re
import subprocess
import sys

import pytest
import torch

from mmssl.engine.tool_errors import (ToolError, run_tool, tool_main,
                                      user_error_message)
from mmssl.utils import CheckpointFileError, UnsafeCheckpointError


class _RunsCode:
    """A pickled object whose unpickling would call ``os.getcwd``."""

    def __reduce__(self):
        return (os.getcwd, ())


@pytest.fixture(scope='module')
def bad_checkpoints(tmp_path_factory):
    """``{'unsafe': ..., 'text': ..., 'missing': ...}`` checkpoint paths."""
    root = tmp_path_factory.mktemp('bad_ckpts')
    unsafe = root / 'unsafe.pth'
    torch.save(dict(state_dict={'w': torch.zeros(1)}, x=_RunsCode()), unsafe)
    text = root / 'notes.pth'
    text.write_text('these are my notes\nnot weights\n')
    return dict(
        unsafe=str(unsafe), text=str(text), missing=str(root / 'nope.pth'))


def _one_error_line(err: str) -> str:
    """The stderr of a tool: exactly one line, ``error: ...``."""
    lines = err.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith('error: '), err
    assert 'Traceback' not in err
    return lines[0]


def _error_line(err: str) -> str:
    """The one ``error: ...`` line, the last of stderr.

    For runner tools called in-process: the log lines before it (and
    mmengine's complaints about loggers of earlier tests writing to closed
    captures) are not the tool's error output.
    """
    lines = err.strip().splitlines()
    errors = [line for line in lines if line.startswith('error: ')]
    assert len(errors) == 1 and lines[-1] == errors[0], err[-3000:]
    return errors[0]


# --------------------------------------------------------------------------
# the shared helpers
# --------------------------------------------------------------------------
def test_user_error_messages():
    assert user_error_message(ToolError('a\nb')) == 'a\nb'  # kept as written
    assert user_error_message(
        FileNotFoundError(2, 'No such file or directory', '/x/y.pth')) == \
        "No such file or directory: '/x/y.pth'"
    is_dir = IsADirectoryError(21, 'Is a directory', '/x')
    assert user_error_message(is_dir) == "Is a directory: '/x'"
    assert user_error_message(UnsafeCheckpointError('refused\n  x')) == \
        'refused x'
    assert user_error_message(CheckpointFileError('not a checkpoint')) == \
        'not a checkpoint'
    # torch's own weights-only refusal (code that calls torch.load itself)
    assert user_error_message(
        pickle.UnpicklingError('Weights only load failed.\n\tUnsupported '
                               'global: GLOBAL posix.system')) == \
        'Weights only load failed. Unsupported global: GLOBAL posix.system'
    # mmpretrain's CustomDataset on a folder without images
    msg = user_error_message(
        RuntimeError('Found 0 files in subfolders of: /data. Supported '
                     'extensions are: .jpg'))
    assert msg.startswith('Found 0 files in subfolders of: /data.')
    assert 'class sub-folders' in msg
    # bugs keep their traceback
    assert user_error_message(RuntimeError('Found a bug')) is None
    assert user_error_message(KeyError('x')) is None
    assert user_error_message(ValueError('x')) is None


def test_worker_errors_keep_only_the_message():
    from torch._utils import ExceptionWrapper
    try:
        raise FileNotFoundError("UnlabeledImageFolder: '/d' is gone.")
    except FileNotFoundError:
        wrapper = ExceptionWrapper(where='in DataLoader worker process 1')
    with pytest.raises(FileNotFoundError) as exc:
        wrapper.reraise()
    assert 'Original Traceback' in str(exc.value)
    assert user_error_message(exc.value) == \
        "UnlabeledImageFolder: '/d' is gone."


def test_run_tool_and_tool_main(capsys):

    def missing():
        raise FileNotFoundError(2, 'No such file or directory', 'data/x')

    with pytest.raises(SystemExit) as exc:
        run_tool(missing)
    assert exc.value.code == 2
    assert capsys.readouterr().err == \
        "error: No such file or directory: 'data/x'\n"

    @tool_main
    def main(argv):
        if argv == 'unsafe':
            raise UnsafeCheckpointError("Refusing to load 'u.pth'")
        if argv == 'bug':
            raise ZeroDivisionError('a genuine bug')
        return 0

    assert main('fine') == 0
    assert main('unsafe') == 2
    assert capsys.readouterr().err == "error: Refusing to load 'u.pth'\n"
    with pytest.raises(ZeroDivisionError):
        main('bug')
    with pytest.raises(ZeroDivisionError):
        run_tool(main, 'bug')


def test_every_tool_reports_through_the_shared_helper(tools_dir):
    """Each script's entry point goes through run_tool or tool_main."""
    scripts = sorted(
        glob.glob(osp.join(tools_dir, '**', '*.py'), recursive=True))
    assert len(scripts) > 15
    for path in scripts:
        text = open(path).read()
        if "__name__ == '__main__'" not in text or path.endswith(
                'check_env.py'):  # takes no input
            continue
        tail = text[text.index("__name__ == '__main__'"):]
        wrapped = re.search(r'@tool_main\s+def main\(', text)
        assert 'run_tool(main)' in tail or (wrapped and 'sys.exit(main())'
                                            in tail), path
        assert "print(f'error:" not in text, path  # no private copies


# --------------------------------------------------------------------------
# converters: unsafe, not-a-checkpoint and missing files
# --------------------------------------------------------------------------
CONVERTERS = [
    'model_converters/convert_backbone.py',
    'model_converters/extract_backbone.py',
    'model_converters/mae_official_to_mmssl.py',
    'model_converters/dino_vit_to_mmpretrain.py',
    'model_converters/guided_diffusion_to_diffusers.py',
]


@pytest.mark.parametrize('script', CONVERTERS)
def test_converters_refuse_bad_checkpoints(script, load_tool_module,
                                           bad_checkpoints, tmp_path, capsys):
    tool = load_tool_module(script)
    out = str(tmp_path / 'out.pth')
    expected = dict(
        unsafe=["Refusing to load checkpoint '{}'", "'posix.getcwd'"],
        text=["'{}' is not a checkpoint: it is a text file"],
        missing=['{}', 'does not exist'])
    for kind, parts in expected.items():
        path = bad_checkpoints[kind]
        capsys.readouterr()
        assert tool.main([path, out]) == 2, kind
        line = _one_error_line(capsys.readouterr().err)
        for part in parts:
            assert part.format(path) in line, (kind, line)
    assert not osp.exists(out)


def test_converter_command_line(tools_dir, bad_checkpoints, tmp_path):
    proc = subprocess.run([
        sys.executable,
        osp.join(tools_dir, 'model_converters', 'convert_backbone.py'),
        bad_checkpoints['unsafe'],
        str(tmp_path / 'o.pth')
    ],
                          capture_output=True,
                          text=True,
                          timeout=300)
    assert proc.returncode == 2
    line = _one_error_line(proc.stderr)
    assert bad_checkpoints['unsafe'] in line and 'posix.getcwd' in line


# --------------------------------------------------------------------------
# runner tools: data folders and checkpoints
# --------------------------------------------------------------------------
def _with_data_root(config, root, name, unlabeled_folder=False):
    """A copy of the tiny MAE config reading ``root``."""
    text = open(config).read()
    text = re.sub(r"data_root='[^']*'", f'data_root={str(root)!r}', text)
    if unlabeled_folder:
        text = text.replace("type='mmpretrain.CustomDataset',",
                            "type='mmssl.UnlabeledImageFolder',")
        text = text.replace('with_label=False,', '')
    path = config.replace('tiny_', f'{name}_')
    with open(path, 'w') as f:
        f.write(text)
    return path


def test_train_missing_image_folder_command_line(tiny_mae_config, tools_dir,
                                                 tmp_path):
    missing = str(tmp_path / 'no_images')
    config = _with_data_root(
        tiny_mae_config, missing, 'folder', unlabeled_folder=True)
    proc = subprocess.run([
        sys.executable,
        osp.join(tools_dir, 'train.py'), config, '--work-dir',
        str(tmp_path / 'w')
    ],
                          capture_output=True,
                          text=True,
                          timeout=300)
    assert proc.returncode == 2, proc.stderr[-3000:]
    assert 'Traceback' not in proc.stderr
    last = proc.stderr.strip().splitlines()[-1]
    assert last.startswith('error: UnlabeledImageFolder: the image folder '
                           f"`data_root` = '{missing}' does not exist")
    assert proc.stderr.count('error:') == 1


def test_train_empty_data_folder(train_tool, tiny_mae_config, tmp_path,
                                 capsys):
    empty = tmp_path / 'empty'
    (empty / 'sub').mkdir(parents=True)
    (empty / 'sub' / 'readme.txt').write_text('no images here')
    config = _with_data_root(tiny_mae_config, empty, 'empty')
    capsys.readouterr()
    with pytest.raises(SystemExit) as exc:
        run_tool(train_tool.main, [config, '--work-dir', str(tmp_path / 'w')])
    assert exc.value.code == 2
    line = _error_line(capsys.readouterr().err)
    assert 'Found 0 files in subfolders of' in line and str(empty) in line
    # the same for mmssl's own folder data set, which names the fix
    config = _with_data_root(
        tiny_mae_config, empty, 'empty2', unlabeled_folder=True)
    with pytest.raises(SystemExit):
        run_tool(train_tool.main, [config, '--work-dir', str(tmp_path / 'w')])
    line = _error_line(capsys.readouterr().err)
    assert f"`data_root` = '{empty}' holds no image files" in line


@pytest.fixture(scope='module')
def train_tool(load_tool_module):
    return load_tool_module('train.py')


@pytest.fixture(scope='module')
def test_tool(load_tool_module):
    return load_tool_module('test.py')


@pytest.mark.parametrize('kind', ['unsafe', 'text'])
def test_runner_tools_refuse_bad_checkpoints(kind, train_tool, test_tool,
                                             tiny_mae_config, tiny_cls_config,
                                             bad_checkpoints, tmp_path,
                                             capsys):
    path = bad_checkpoints[kind]
    capsys.readouterr()
    with pytest.raises(SystemExit) as exc:
        run_tool(test_tool.main,
                 [tiny_cls_config, path, '--work-dir',
                  str(tmp_path / 't')])
    assert exc.value.code == 2
    assert path in _error_line(capsys.readouterr().err)
    with pytest.raises(SystemExit) as exc:
        run_tool(train_tool.main, [
            tiny_mae_config, '--work-dir',
            str(tmp_path / 'w'), '--cfg-options', f'load_from={path}'
        ])
    assert exc.value.code == 2
    assert path in _error_line(capsys.readouterr().err)


def test_eval_frozen_refuses_unsafe_checkpoint(load_tool_module,
                                               tiny_mae_config,
                                               bad_checkpoints, tmp_path,
                                               capsys):
    from PIL import Image
    tool = load_tool_module('analysis_tools/eval_frozen.py')
    for cls in ('cat', 'dog'):
        (tmp_path / 'labelled' / cls).mkdir(parents=True)
        for i in range(2):
            Image.new('RGB',
                      (8, 8)).save(tmp_path / 'labelled' / cls / f'{i}.png')
    capsys.readouterr()
    with pytest.raises(SystemExit) as exc:
        run_tool(tool.main, [
            tiny_mae_config, bad_checkpoints['unsafe'], '--data-root',
            str(tmp_path / 'labelled'), '--num-workers', '0'
        ])
    assert exc.value.code == 2
    line = _error_line(capsys.readouterr().err)
    assert 'Refusing to load checkpoint' in line


def test_unsafe_pickle_fixture_is_really_unsafe(bad_checkpoints):
    """Guard: plain pickle loading of the fixture would run code."""
    with pytest.raises(pickle.UnpicklingError):
        torch.load(bad_checkpoints['unsafe'], weights_only=True)
