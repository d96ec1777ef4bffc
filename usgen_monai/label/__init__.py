"""MONAI Label for 2D ultrasound: the app that serves the MGCC bundle (automatic segmentation) and the SAM bundle
(box and click segmentation, image embedding cached per study), with train tasks that retrain them on the
datastore's labels, offline and on CPU. See ``usgen_monai/label/README.md``.

MONAI Label 0.8.5 needs numpy 1.26 and pydicom 2.4, so it runs in a virtualenv of its own (``.venv-label``, built
by ``usgen-monai label --setup``); this package's top level and :py:mod:`usgen_monai.label.environment` use only the
standard library, and the modules that import MONAI Label (:py:mod:`usgen_monai.label.infer`,
:py:mod:`usgen_monai.label.train`, :py:mod:`usgen_monai.label.datastore`, ``app/main.py``) are imported only by the
server, in that virtualenv.
"""

from __future__ import annotations

from usgen_monai.label.environment import (
    SETUP_COMMAND,
    LabelEnvironmentError,
    app_dir,
    find_label_venv,
    server_command,
    setup_label_venv,
)

__all__ = ["SETUP_COMMAND", "LabelEnvironmentError", "app_dir", "find_label_venv", "server_command", "setup_label_venv"]
