# Copyright (c) mmssl contributors. All rights reserved.
import datetime
import warnings

from mmengine import DefaultScope


def register_all_modules(init_default_scope: bool = True) -> None:
    """Import every mmssl module that registers parts in its registries.

    Args:
        init_default_scope (bool): also make ``mmssl`` the current default
            scope (configs normally keep the host's scope and name mmssl
            parts as ``mmssl.Name``, so this is rarely needed).
    """
    import mmssl.datasets  # noqa: F401
    import mmssl.engine  # noqa: F401
    import mmssl.evaluation  # noqa: F401
    import mmssl.models  # noqa: F401
    import mmssl.visualization  # noqa: F401

    if not init_default_scope:
        return
    never_created = DefaultScope.get_current_instance() is None \
        or not DefaultScope.check_instance_created('mmssl')
    if never_created:
        DefaultScope.get_instance('mmssl', scope_name='mmssl')
        return
    current_scope = DefaultScope.get_current_instance()
    if current_scope.scope_name != 'mmssl':
        warnings.warn('The current default scope '
                      f'"{current_scope.scope_name}" is not "mmssl", '
                      '`register_all_modules` will force the current '
                      'default scope to be "mmssl". If this is not '
                      'expected, please set `init_default_scope=False`.')
        new_instance_name = f'mmssl-{datetime.datetime.now()}'
        DefaultScope.get_instance(new_instance_name, scope_name='mmssl')
