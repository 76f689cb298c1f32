# Copyright (c) mmssl contributors. All rights reserved.
"""mmssl: representation-learning methods as an OpenMMLab 2.0 extension.

Importing mmssl checks that the OpenMMLab stack it was written for is
installed, makes mmengine's checkpoint I/O safe and atomic on torch >= 2.6
(see :mod:`mmssl.utils.checkpoint`), and lets config files name mmssl's
configs as ``_base_ = 'mmssl::<folder>/<file>.py'`` (see
:mod:`mmssl.utils.config`).
"""
from importlib import metadata

from .version import __version__, version_info

# (distribution names, minimum inclusive, maximum exclusive, install hint)
_REQUIRED = [
    (('mmcv', 'mmcv-lite'), '2.1.0', '2.2.0',
     'bash tools/setup_env.sh (builds mmcv 2.1.0 with ops and caches it), '
     'or: MMCV_WITH_OPS=1 pip install --no-build-isolation "mmcv==2.1.0"'),
    (('mmengine', ), '0.10.4', '1.0.0', 'pip install "mmengine==0.10.7"'),
    (('mmpretrain', ), '1.2.0', '1.3.0', 'pip install "mmpretrain==1.2.0"'),
    (('mmdet', ), '3.3.0', '3.4.0', 'pip install "mmdet==3.3.0"'),
    (('mmsegmentation', ), '1.2.2', '1.3.0',
     'pip install "mmsegmentation==1.2.2"'),
]


def _digits(version: str) -> tuple:
    out = []
    for part in version.split('+')[0].split('.'):
        num = ''.join(ch for ch in part if ch.isdigit())
        out.append(int(num) if num else 0)
        if not part.isdigit():
            break
    return tuple(out + [0] * (3 - len(out)))


def _check_stack() -> None:
    problems = []
    for names, low, high, hint in _REQUIRED:
        found = None
        for name in names:
            try:
                found = metadata.version(name)
                break
            except metadata.PackageNotFoundError:
                continue
        if found is None:
            problems.append(f'  - {names[0]} is not installed; install '
                            f'{names[0]}>={low},<{high}: {hint}')
        elif not _digits(low) <= _digits(found) < _digits(high):
            problems.append(f'  - {names[0]}=={found} is installed, but mmssl '
                            f'needs {names[0]}>={low},<{high}: {hint}')
    if problems:
        raise ImportError(
            'mmssl cannot run with the installed OpenMMLab stack:\n' +
            '\n'.join(problems) +
            '\nThe whole pinned stack installs with: bash tools/setup_env.sh')


_check_stack()

from .utils.config import enable_mmssl_config_prefix  # noqa: E402
from .utils.mmengine_patches import patch_mmengine_checkpoint_io  # noqa: E402

patch_mmengine_checkpoint_io()
enable_mmssl_config_prefix()

__all__ = ['__version__', 'version_info']
