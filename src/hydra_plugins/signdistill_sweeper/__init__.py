"""An Optuna 5 sweeper for Hydra, registered as ``hydra/sweeper=signdistill_optuna``.

Written in-project because every release of the published ``hydra-optuna-sweeper`` pins
``optuna<3``, which fails with SQLAlchemy 2 on any database storage; it behaves like that plugin
for apps written for it. Hydra imports the public modules (``config``, ``sweeper``,
``searchpath``, ``job``) in every app of the environment while it scans plugins, so they import
nothing heavy; the work lives in ``_impl``, ``_space``, ``_results`` and ``_tracking`` (MLflow).
"""
