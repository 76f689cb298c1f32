# Copyright (c) mmssl contributors. All rights reserved.
"""Role packages export their public names, as in mmpretrain.

``from mmssl.models.backbones import D2V2ViT`` works, every name a role
package lists in ``__all__`` imports from it, every part registered in
mmssl's registries is exported by the role package it lives in, and
``mmssl.models`` re-exports the model roles. The core imports without
diffusers.
"""
import importlib
import subprocess
import sys

import pytest

#: role packages and a few names each must export
ROLE_PACKAGES = {
    'mmssl.models.backbones': ['D2V2ViT'],
    'mmssl.models.necks': ['D2V2ConvDecoder2d', 'DenseCLNeckBN'],
    'mmssl.models.heads': ['D2V2Head'],
    'mmssl.models.losses': ['D2V2RegressionLoss', 'NTXentLoss', 'DenseCLLoss'],
    'mmssl.models.selfsup':
    ['MAE', 'MAEViT', 'Data2VecV2', 'SimCLR', 'DenseCL'],
    'mmssl.models.utils': ['LinearAnnealEMA', 'SplitBatchNorm'],
    'mmssl.models.unidet': ['HierarchyBCELoss', 'UniDetCascadeRCNN'],
    'mmssl.models.prompt': ['CoOp'],
    'mmssl.models.clip': ['CLIPPretrainer'],
    'mmssl.datasets': ['EmbeddedClsDataset', 'UnlabeledImageFolder'],
    'mmssl.datasets.transforms':
    ['InverseBlockMaskGenerator', 'RandomMaskGenerator'],
    'mmssl.engine.hooks': ['TeacherUpdateHook', 'FrozenEvalHook'],
}

#: the model roles ``mmssl.models`` re-exports
MODEL_ROLES = [
    'mmssl.models.backbones', 'mmssl.models.necks', 'mmssl.models.heads',
    'mmssl.models.losses', 'mmssl.models.selfsup', 'mmssl.models.utils'
]


def _exports(package: str) -> list:
    module = importlib.import_module(package)
    names = getattr(module, '__all__', None)
    assert isinstance(names, (list, tuple)), f'{package} has no __all__'
    return list(names)


@pytest.mark.parametrize('package', sorted(ROLE_PACKAGES))
def test_role_package_exports(package):
    names = _exports(package)
    assert len(names) == len(set(names)), f'{package}: duplicate exports'
    assert set(ROLE_PACKAGES[package]) <= set(names)
    module = importlib.import_module(package)
    for name in names:
        # the same as ``from <package> import <name>``
        assert getattr(module, name, None) is not None, f'{package}.{name}'
        exec(f'from {package} import {name}', {})


def test_models_reexports_the_model_roles():
    import mmssl.models as models
    for package in MODEL_ROLES:
        role = importlib.import_module(package)
        for name in _exports(package):
            assert getattr(models, name) is getattr(role, name), name
    from mmssl.models import D2V2ViT  # noqa: F401
    from mmssl.models.backbones import D2V2ViT as same
    assert same is D2V2ViT


def _registries():
    import mmssl.datasets  # noqa: F401
    import mmssl.datasets.transforms  # noqa: F401
    import mmssl.engine  # noqa: F401
    import mmssl.evaluation  # noqa: F401
    import mmssl.models  # noqa: F401
    from mmssl import registry
    for name in registry.__all__:
        yield name, getattr(registry, name)


def test_every_registered_part_is_exported_by_its_package():
    """A class registered from ``mmssl.a.b.module`` is in the ``__all__`` of
    a role package above it (``mmssl.a.b`` or ``mmssl.a``)."""
    missing = []
    for reg_name, registry in _registries():
        for name, obj in registry.module_dict.items():
            module = getattr(obj, '__module__', '')
            if not any(module.startswith(p + '.') for p in ROLE_PACKAGES):
                continue  # outside the role packages checked here
            parts = module.split('.')[:-1]
            chain = ['.'.join(parts[:i]) for i in range(len(parts), 1, -1)]
            if not any(
                    name in getattr(importlib.import_module(p), '__all__', ())
                    for p in chain):
                missing.append(f'{reg_name}: {name} ({module}) is in the '
                               f'__all__ of none of {chain}')
    assert not missing, '\n'.join(missing)


def test_core_imports_without_diffusers():
    """Nothing outside ``mmssl.models.diffusion`` needs diffusers to
    import."""
    code = ('import sys\n'
            'class Block:\n'
            '    def find_spec(self, name, path=None, target=None):\n'
            "        if name.split('.')[0] == 'diffusers':\n"
            "            raise ImportError('diffusers is blocked')\n"
            'sys.meta_path.insert(0, Block())\n'
            'import mmssl.models, mmssl.datasets, mmssl.datasets.transforms\n'
            'import mmssl.engine.hooks\n'
            'from mmssl.models.backbones import D2V2ViT\n'
            "assert 'diffusers' not in sys.modules\n")
    proc = subprocess.run([sys.executable, '-c', code],
                          capture_output=True,
                          text=True,
                          timeout=300)
    assert proc.returncode == 0, proc.stderr[-3000:]
