"""Tests of the bundles: every config runs on a tiny configuration.

Tiny networks run fastest with one intra-op thread on a shared 2-core machine (pytest-xdist already runs one worker
per core).
"""

import torch

torch.set_num_threads(1)
