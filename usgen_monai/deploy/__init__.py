"""MONAI Deploy: an application that turns a folder of ultrasound DICOM into DICOM SEG with the MGCC bundle.

The application and its operators (:py:mod:`usgen_monai.deploy.app`, :py:mod:`usgen_monai.deploy.operators`) import
the MONAI Deploy App SDK and run in the deploy virtualenv (the ``[deploy]`` extra, see
:py:mod:`usgen_monai.deploy.environment` and ``usgen_monai/deploy/README.md``). This package itself, the
environment helpers, the run report and the bundle loader they use
(:py:class:`usgen_monai.engines.bundle_segmenter.BundleSegmenter`) import no SDK, so ``usgen-monai deploy`` can find the
virtualenv and start the app from the main one.
"""

from __future__ import annotations

__all__: list[str] = []
