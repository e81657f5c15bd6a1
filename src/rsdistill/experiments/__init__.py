"""Runs built from configs: single runs, fused sweeps, comparisons, studies.

Importing this package registers every training procedure (``single``, ``mutual``,
``generations``) in :data:`~rsdistill.experiments.procedures.PROCEDURES`.
"""

from rsdistill.experiments import born_again, mutual, single  # noqa: F401  (register procedures)
