# Copyright (c) mmssl contributors. All rights reserved.
