"""CLIP image embeddings for CMMD (Jayasumana et al., CVPR 2024) through open_clip.

Weights resolve: score.clip_weights (a local file) -> the local Hugging Face
hub cache or open_clip's URL cache (looked up on disk, no network) -> a download when
score.clip_download is true -> unavailable. The big model is only built once
a weights file is in hand, so an offline machine pays nothing for trying.

Preprocessing as the reference implementation: images in [0, 1] resized to
336x336 (bicubic, antialiased), normalised with CLIP's mean/std; embeddings
are L2-normalised by the CMMD estimator.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F
from tqdm import tqdm

from lediflow.core import artifacts

UNAVAILABLE = "unavailable (no CLIP weights)"


@dataclass(frozen=True)
class ClipWeights:
    path: Path
    source: str
    sha256: str


HF_FILENAMES = ("open_clip_model.safetensors", "open_clip_pytorch_model.bin")


def cached_clip_file(cfg: dict) -> tuple[Path | None, str]:
    """The weights of an open_clip pretrained cfg if already on disk (hub cache or open_clip's URL cache)."""
    from huggingface_hub import try_to_load_from_cache

    repo = cfg.get("hf_hub", "").rstrip("/")
    if repo:
        for name in HF_FILENAMES:
            found = try_to_load_from_cache(repo, name)
            if isinstance(found, str) and Path(found).is_file():
                return Path(found), "local hub cache"
    url = cfg.get("url", "")
    if url:
        legacy = Path.home() / ".cache" / "clip" / Path(url).name
        if legacy.is_file():
            return legacy, "local open_clip cache"
    return None, ""


def resolve_clip_weights(model: str, pretrained: str, explicit: str | None, download: bool) -> ClipWeights | None:
    """A local weights file for (model, pretrained tag), or None when none can be had."""
    if explicit:
        path = Path(explicit)
        return ClipWeights(path, "explicit file", artifacts.sha256_file(path)) if path.is_file() else None
    try:
        import open_clip
        from open_clip.pretrained import download_pretrained
    except ImportError:  # the [cmmd] extra is not installed: CMMD is unavailable, every other metric is not
        return None

    cfg = open_clip.get_pretrained_cfg(model, pretrained)
    if not cfg:
        return None
    found, source = cached_clip_file(cfg)
    if found is None and download:
        try:
            found, source = Path(download_pretrained(cfg)), "downloaded"
        except Exception:  # noqa: BLE001 (no network, hub down, ...): CMMD is then unavailable
            found = None
    if found is None:
        return None
    return ClipWeights(found, source, artifacts.sha256_file(found))


class ClipEmbedder:
    """Image embeddings of an open_clip CLIP model (any size: tests use a tiny random one)."""

    def __init__(self, model: torch.nn.Module, image_size: int, mean: tuple[float, ...], std: tuple[float, ...],
                 device: torch.device, provenance: dict | None = None) -> None:
        self.model = model.to(device).eval().requires_grad_(False)
        self.image_size, self.device = image_size, device
        self.mean = torch.tensor(mean, device=device).view(1, -1, 1, 1)
        self.std = torch.tensor(std, device=device).view(1, -1, 1, 1)
        self.provenance = provenance or {}

    @classmethod
    def from_weights(cls, model_name: str, pretrained: str, weights: ClipWeights, device: torch.device
                     ) -> "ClipEmbedder":
        import open_clip

        cfg = open_clip.get_pretrained_cfg(model_name, pretrained) or {}
        model = open_clip.create_model(model_name, pretrained=str(weights.path),
                                       force_quick_gelu=bool(cfg.get("quick_gelu", False)), device=device)
        size = model.visual.image_size
        size = size[0] if isinstance(size, (tuple, list)) else size
        mean = cfg.get("mean", open_clip.constants.OPENAI_DATASET_MEAN)
        std = cfg.get("std", open_clip.constants.OPENAI_DATASET_STD)
        provenance = {"model": model_name, "pretrained": pretrained, "file": str(weights.path),
                      "source": weights.source, "sha256": weights.sha256}
        return cls(model, size, mean, std, device, provenance)

    def preprocess(self, images: torch.Tensor) -> torch.Tensor:
        """uint8 (N, C, H, W) -> normalised float (N, 3, S, S): bicubic antialiased resize to S."""
        x = images.to(self.device).float() / 255.0
        if x.shape[1] == 1:
            x = x.expand(-1, 3, -1, -1)
        x = F.interpolate(x, size=(self.image_size, self.image_size), mode="bicubic", align_corners=False,
                          antialias=True).clamp(0, 1)
        return (x - self.mean) / self.std

    @torch.no_grad()
    def __call__(self, images: np.ndarray, batch_size: int = 32, progress: bool = False) -> torch.Tensor:
        out = []
        for start in tqdm(range(0, len(images), batch_size), desc="clip", disable=not progress):
            batch = torch.from_numpy(np.array(images[start : start + batch_size]))
            out.append(self.model.encode_image(self.preprocess(batch)).float().cpu())
        return torch.cat(out)


def load_clip(params_score: dict, device: torch.device) -> ClipEmbedder | None:
    """The CMMD embedder of score params, or None when CMMD is off or no weights can be had."""
    if not params_score["cmmd"]:
        return None
    weights = resolve_clip_weights(params_score["clip_model"], params_score["clip_pretrained"],
                                   params_score["clip_weights"], params_score["clip_download"])
    if weights is None:
        return None
    return ClipEmbedder.from_weights(params_score["clip_model"], params_score["clip_pretrained"], weights, device)
