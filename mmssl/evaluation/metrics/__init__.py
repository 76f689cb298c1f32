# Copyright (c) mmssl contributors. All rights reserved.
from .unidet_metric import UniDetPerSourceMetric  # noqa: F401,E402
