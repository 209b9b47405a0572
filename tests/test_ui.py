"""`make ui` (issue #26): the address it prints opens the project's experiment in MLflow's
model-training view; the server itself is started and opened by tests/test_mlflow_ui.py."""

from __future__ import annotations

from signdistill import tracking, ui


def test_the_address_opens_the_experiments_runs_in_the_model_training_view(tmp_path):
    store = f"sqlite:///{tmp_path}/mlruns/mlflow.db"
    experiment = tracking.configure(store, "signdistill", str(tmp_path / "artifacts"))
    assert ui.address(store, 5001) == (
        f"http://127.0.0.1:5001/#/experiments/{experiment}/runs?workflowType=machine_learning"
    )


def test_before_the_first_run_it_is_the_list_of_experiments_and_no_store_is_created(tmp_path):
    store = f"sqlite:///{tmp_path}/mlruns/mlflow.db"
    assert ui.address(store, 5000) == (
        "http://127.0.0.1:5000/#/experiments?workflowType=machine_learning"
    )
    assert not (tmp_path / "mlruns").exists()


def test_the_experiment_is_marked_a_model_training_one_and_a_users_choice_is_kept(tmp_path):
    import mlflow

    store = f"sqlite:///{tmp_path}/mlflow.db"
    experiment = tracking.configure(store, "signdistill", str(tmp_path / "artifacts"))
    client = mlflow.MlflowClient(store)
    assert client.get_experiment(experiment).tags["mlflow.experimentKind"] == (
        "custom_model_development"
    )
    client.set_experiment_tag(experiment, "mlflow.experimentKind", "genai_development")
    tracking.configure(store, "signdistill", str(tmp_path / "artifacts"))
    assert client.get_experiment(experiment).tags["mlflow.experimentKind"] == "genai_development"
