import pytest

from romp_fast.body import procedural


@pytest.fixture(scope="session")
def built():
    """The procedural model in memory (arrays, regressors, rest joints, landmark ids)."""
    return procedural.build_procedural_model()


@pytest.fixture(scope="session")
def model_dir(tmp_path_factory):
    """The procedural model written to disk, with the official-style chumpy pickle too."""
    out = tmp_path_factory.mktemp("procedural")
    procedural.write_procedural_model(out, pkl=True)
    return out


@pytest.fixture(scope="session")
def body(model_dir):
    from romp_fast.body import BodyModel

    return BodyModel(model_dir / procedural.MODEL_FILE)
