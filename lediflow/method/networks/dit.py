"""DiT-style velocity network v_theta(x_t, t) (Peebles & Xie 2023), built from timm blocks.

Patchify -> transformer blocks with adaLN-Zero time conditioning -> final
adaLN + linear -> unpatchify. Attention and MLP are timm's layers; the
adaLN-Zero wiring is ours (written from the paper's equations, not copied).
"""

from __future__ import annotations

from dataclasses import asdict, dataclass

import torch
from timm.layers import Attention, Mlp, PatchEmbed
from torch import nn

from lediflow.method.networks.embeddings import TimestepEmbedder, sincos_pos_embed_2d


@dataclass(frozen=True)
class DiTConfig:
    hidden: int
    depth: int
    heads: int
    mlp_ratio: float = 4.0


# Model registry; its keys are the schema's choices for flow.model.
REGISTRY: dict[str, DiTConfig] = {
    "dit-xs": DiTConfig(hidden=64, depth=2, heads=2),
    "dit-tiny": DiTConfig(hidden=128, depth=6, heads=4),
    "dit-s": DiTConfig(hidden=384, depth=12, heads=6),
    "dit-b": DiTConfig(hidden=768, depth=12, heads=12),
}


def modulate(x: torch.Tensor, shift: torch.Tensor, scale: torch.Tensor) -> torch.Tensor:
    """adaLN: LN(x) * (1 + scale) + shift, per sample."""
    return x * (1 + scale[:, None]) + shift[:, None]


class DiTBlock(nn.Module):
    """x += gate_msa * Attn(modulate(LN x)); x += gate_mlp * MLP(modulate(LN x)); gates start at 0 (adaLN-Zero)."""

    def __init__(self, hidden: int, heads: int, mlp_ratio: float) -> None:
        super().__init__()
        self.norm1 = nn.LayerNorm(hidden, elementwise_affine=False, eps=1e-6)
        self.attn = Attention(hidden, num_heads=heads, qkv_bias=True)
        self.norm2 = nn.LayerNorm(hidden, elementwise_affine=False, eps=1e-6)
        self.mlp = Mlp(hidden, hidden_features=int(hidden * mlp_ratio), act_layer=lambda: nn.GELU(approximate="tanh"))
        self.adaLN_modulation = nn.Sequential(nn.SiLU(), nn.Linear(hidden, 6 * hidden))

    def forward(self, x: torch.Tensor, c: torch.Tensor) -> torch.Tensor:
        shift_msa, scale_msa, gate_msa, shift_mlp, scale_mlp, gate_mlp = self.adaLN_modulation(c).chunk(6, dim=1)
        x = x + gate_msa[:, None] * self.attn(modulate(self.norm1(x), shift_msa, scale_msa))
        return x + gate_mlp[:, None] * self.mlp(modulate(self.norm2(x), shift_mlp, scale_mlp))


class FinalLayer(nn.Module):
    def __init__(self, hidden: int, patch: int, channels: int) -> None:
        super().__init__()
        self.norm = nn.LayerNorm(hidden, elementwise_affine=False, eps=1e-6)
        self.linear = nn.Linear(hidden, patch * patch * channels)
        self.adaLN_modulation = nn.Sequential(nn.SiLU(), nn.Linear(hidden, 2 * hidden))

    def forward(self, x: torch.Tensor, c: torch.Tensor) -> torch.Tensor:
        shift, scale = self.adaLN_modulation(c).chunk(2, dim=1)
        return self.linear(modulate(self.norm(x), shift, scale))


class DiT(nn.Module):
    """v_theta(x, t) for images (B, C, R, R) and times (B,) in [0, 1]."""

    def __init__(self, resolution: int, channels: int, patch_size: int, config: DiTConfig) -> None:
        super().__init__()
        if resolution % patch_size:
            raise ValueError(f"resolution {resolution} is not divisible by patch size {patch_size}")
        self.arch = {"resolution": resolution, "channels": channels, "patch_size": patch_size, **asdict(config)}
        self.channels, self.patch = channels, patch_size
        self.grid = resolution // patch_size
        self.x_embedder = PatchEmbed(resolution, patch_size, channels, config.hidden)
        self.t_embedder = TimestepEmbedder(config.hidden)
        self.register_buffer("pos_embed", sincos_pos_embed_2d(config.hidden, self.grid)[None], persistent=False)
        self.blocks = nn.ModuleList(DiTBlock(config.hidden, config.heads, config.mlp_ratio) for _ in range(config.depth))
        self.final_layer = FinalLayer(config.hidden, patch_size, channels)
        self._init_weights()

    def _init_weights(self) -> None:
        for module in self.modules():
            if isinstance(module, nn.Linear):
                nn.init.xavier_uniform_(module.weight)
                nn.init.zeros_(module.bias)
        proj = self.x_embedder.proj.weight
        nn.init.xavier_uniform_(proj.view(proj.shape[0], -1))
        nn.init.normal_(self.t_embedder.mlp[0].weight, std=0.02)
        nn.init.normal_(self.t_embedder.mlp[2].weight, std=0.02)
        # adaLN-Zero: every residual branch and the output start at zero.
        for block in self.blocks:
            nn.init.zeros_(block.adaLN_modulation[-1].weight)
            nn.init.zeros_(block.adaLN_modulation[-1].bias)
        nn.init.zeros_(self.final_layer.adaLN_modulation[-1].weight)
        nn.init.zeros_(self.final_layer.adaLN_modulation[-1].bias)
        nn.init.zeros_(self.final_layer.linear.weight)
        nn.init.zeros_(self.final_layer.linear.bias)

    def unpatchify(self, x: torch.Tensor) -> torch.Tensor:
        """(B, grid*grid, p*p*C) -> (B, C, R, R)."""
        b, p, g, c = x.shape[0], self.patch, self.grid, self.channels
        x = x.reshape(b, g, g, p, p, c)
        return torch.einsum("nhwpqc->nchpwq", x).reshape(b, c, g * p, g * p)

    def forward(self, x: torch.Tensor, t: torch.Tensor) -> torch.Tensor:
        h = self.x_embedder(x) + self.pos_embed
        c = self.t_embedder(t)
        for block in self.blocks:
            h = block(h, c)
        return self.unpatchify(self.final_layer(h, c))


def build_dit(name: str, resolution: int, channels: int, patch_size: int) -> DiT:
    return DiT(resolution, channels, patch_size, REGISTRY[name])
