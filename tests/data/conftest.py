import pytest

from romp_fast.data.synthetic import SyntheticScenes


@pytest.fixture(scope="session")
def scenes():
    """128 px scenes with up to 4 people in 6 slots (small and fast)."""
    return SyntheticScenes(32, image_size=128, max_person=6, seed=7)


@pytest.fixture(scope="session")
def body(scenes):
    return scenes.body
