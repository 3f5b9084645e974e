"""ConvGRU spatial memory (PermaTrack / RAM): M_t = GRU(F_t, M_{t-1}) at stride 4."""
import torch
import torch.nn as nn


class ConvGRU(nn.Module):
    """One ConvGRU cell. Gates and candidate are convolutions over [input, hidden], so the
    memory at a cell sees a kernel x kernel neighbourhood: that is how a hidden object's
    state can drift across cells while it is occluded."""

    def __init__(self, in_channels: int, hidden_channels: int, kernel: int = 3):
        super().__init__()
        self.hidden_channels = hidden_channels
        pad = kernel // 2
        self.gates = nn.Conv2d(in_channels + hidden_channels, 2 * hidden_channels, kernel, padding=pad)
        self.candidate = nn.Conv2d(in_channels + hidden_channels, hidden_channels, kernel, padding=pad)

    def forward(self, x: torch.Tensor, h: torch.Tensor) -> torch.Tensor:
        update, reset = torch.sigmoid(self.gates(torch.cat([x, h], dim=1))).chunk(2, dim=1)
        candidate = torch.tanh(self.candidate(torch.cat([x, reset * h], dim=1)))
        return (1 - update) * h + update * candidate
