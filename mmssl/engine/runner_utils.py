# Copyright (c) mmssl contributors. All rights reserved.
"""Everything ``tools/train.py``, ``tools/test.py`` and the analysis tools
share, importable from one place.

They turn the usual user mistakes into one readable message instead of a
long traceback, and adapt a config to the machine it runs on:

* :func:`load_config` / :func:`merge_cfg_options` / :class:`CfgOptionsAction`
  (:mod:`mmssl.engine.config_options`): a missing config file or a
  mistyped ``--cfg-options`` key is reported with the closest existing names.
* :func:`friendly_errors` / :func:`unknown_type_error`
  (:mod:`mmssl.engine.registry_errors`): mmengine's ``KeyError('X is not in
  the scope::name registry ...')`` becomes an :class:`UnknownTypeError`
  naming the config file, where the type is written, the registry and
  scope searched and the closest registered names.
* :func:`check_checkpoint` (:mod:`mmssl.engine.checkpoint_report`): compares
  a checkpoint's ``state_dict`` with the model before testing / loading and
  raises :class:`CheckpointMismatchError` with counts, examples and the fix.
* :func:`configure_amp`, :func:`configure_test_amp`,
  :func:`configure_distributed` (:mod:`mmssl.engine.machine_cfg`): ``--amp``
  and NCCL configs keep working on a machine without CUDA (fp32, ``gloo``,
  DDP without ``device_ids``).
* :func:`run_tool` / :func:`tool_main` (:mod:`mmssl.engine.tool_errors`):
  print a user error (a :class:`ToolError`, a missing file or folder, an
  unsafe or broken checkpoint) as ``error: <message>`` on stderr and exit
  with code 2; any other exception keeps its traceback.
* ``mmssl::<folder>/<file>`` config names (:mod:`mmssl.utils.config`,
  enabled by ``import mmssl``).

All user-facing errors derive from :class:`ToolError`.
"""
from mmssl.utils.config import (MMSSL_PREFIX, enable_mmssl_config_prefix,
                                mmssl_configs_root, resolve_mmssl_config)
from .checkpoint_report import (CheckpointMismatchError, StateDictReport,
                                check_checkpoint, classifier_shape_mismatches,
                                compare_state_dict, num_classes_mismatch_lines)
from .config_options import (CFG_OPTIONS_HELP, CfgOptionsAction, load_config,
                             merge_cfg_options, positive_int)
from .machine_cfg import (build_runner, configure_amp, configure_distributed,
                          configure_test_amp, set_default_dataloader_cfg)
from .registry_errors import friendly_errors, unknown_type_error
from .tool_errors import (CfgOptionsError, ConfigFileError, ToolError,
                          UnknownTypeError, print_user_error, run_tool,
                          tool_main, user_error_message)

__all__ = [
    'ToolError', 'ConfigFileError', 'CfgOptionsError', 'UnknownTypeError',
    'CheckpointMismatchError', 'CfgOptionsAction', 'load_config',
    'merge_cfg_options', 'friendly_errors', 'unknown_type_error',
    'configure_amp', 'configure_test_amp', 'configure_distributed',
    'set_default_dataloader_cfg', 'build_runner', 'compare_state_dict',
    'StateDictReport', 'check_checkpoint', 'run_tool', 'tool_main',
    'print_user_error', 'user_error_message', 'classifier_shape_mismatches',
    'num_classes_mismatch_lines', 'CFG_OPTIONS_HELP', 'MMSSL_PREFIX',
    'mmssl_configs_root', 'resolve_mmssl_config', 'enable_mmssl_config_prefix',
    'positive_int'
]
