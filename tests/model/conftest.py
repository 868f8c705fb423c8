import pytest

from romp_fast.data import SyntheticScenes, collate


@pytest.fixture(scope="session")
def body():
    """The procedural body model (built once per session)."""
    from romp_fast.body import BodyModel

    return BodyModel()


@pytest.fixture(scope="session")
def scenes(body):
    """128 px synthetic scenes, up to 4 people in 6 slots."""
    return SyntheticScenes(8, image_size=128, max_person=6, seed=3, body_model=body)


@pytest.fixture(scope="session")
def batch4(scenes):
    return collate([scenes[i] for i in range(4)])


@pytest.fixture
def small_cfg():
    """A tiny model for fast tests (the parser and heads do not depend on the backbone size)."""
    return {"backbone_depth": 10, "width": 8, "head_channels": 16}

