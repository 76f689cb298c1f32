# Copyright (c) mmssl contributors. All rights reserved.
"""Print the versions of mmssl's stack and whether mmcv's compiled ops run.

    python tools/misc/check_env.py
"""
from mmssl.utils.collect_env import collect_env

if __name__ == '__main__':
    for key, value in collect_env().items():
        print(f'{key}: {value}')
