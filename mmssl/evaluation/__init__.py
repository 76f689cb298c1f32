# Copyright (c) mmssl contributors. All rights reserved.
try:  # per-source detection metrics need mmdet
    from .metrics import UniDetPerSourceMetric  # noqa: F401,E402
except ImportError as _err:  # pragma: no cover
    import warnings as _warnings
    _warnings.warn(f'mmssl.evaluation metrics unavailable: {_err}')
