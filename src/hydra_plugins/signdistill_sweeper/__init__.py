"""An Optuna 5 sweeper for Hydra, registered as ``hydra/sweeper=signdistill_optuna``.

Written in-project because every release of the published ``hydra-optuna-sweeper`` pins
``optuna<3``, which fails with SQLAlchemy 2 on any database storage.
"""
