"""Tests of usgen_monai.engines.

The tiny networks here run in milliseconds per forward pass on one thread, but take seconds with two intra-op threads
on a loaded 2-core machine (threads spin waiting for each other), and pytest-xdist already runs one worker per core;
so these tests use one thread.
"""

import torch

torch.set_num_threads(1)
