from pathlib import Path

import pytest
import torch

SHARED_DATA = Path(__file__).resolve().parents[1].parent / "shared" / "data"


@pytest.fixture(autouse=True)
def _seed():
    torch.manual_seed(0)


def small_config(**over) -> dict:
    """A DLGSANet small enough for exhaustive tests (same code paths as the published ones)."""
    cfg = dict(dim=12, groups=1, blocks=1, upscale=2, tlc_kernel=16)
    cfg.update(over)
    return cfg


def randomize_(model: torch.nn.Module) -> torch.nn.Module:
    """Give every parameter non-trivial values (LayerNorm ones/zeros and temperature ones hide bugs)."""
    with torch.no_grad():
        for p in model.parameters():
            p.add_(torch.randn_like(p) * 0.1)
    return model


# --- video tests (tests/test_video_*.py): a real, very small DLGSANet saved once per session ---

@pytest.fixture(scope="session")
def micro_model(tmp_path_factory):
    from video_support import save_micro_model

    return save_micro_model(tmp_path_factory.mktemp("models") / "micro_x2.safetensors", 2)


@pytest.fixture(scope="session")
def micro_model_x3(tmp_path_factory):
    from video_support import save_micro_model

    return save_micro_model(tmp_path_factory.mktemp("models") / "micro_x3.safetensors", 3)
