"""Well-known streaming-relevant architectures, written in plain torch (no streamwise layers).

Each factory returns ``(model, example_input, time_dim, length_step)``: the converted stream must
equal the model on any input whose length differs from the example's by a multiple of
``length_step`` (models that crop by computed lengths behave differently for other residues).
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import Tensor, nn

import streamwise as sw
from streamwise.attention.cache.chunked import Chunked


# -- WaveNet / TCN: dilated causal convs, gated activations, residual and skip sums -----------
class WaveNetBlock(nn.Module):
    def __init__(self, ch: int, dilation: int) -> None:
        super().__init__()
        self.dilation = dilation
        self.conv = nn.Conv1d(ch, 2 * ch, 2, dilation=dilation)
        self.res = nn.Conv1d(ch, ch, 1)
        self.skip = nn.Conv1d(ch, ch, 1)

    def forward(self, x: Tensor) -> tuple[Tensor, Tensor]:
        h = self.conv(F.pad(x, (self.dilation, 0)))
        a, b = h.chunk(2, dim=1)
        z = torch.tanh(a) * torch.sigmoid(b)
        return x + self.res(z), self.skip(z)


class WaveNet(nn.Module):
    def __init__(self, ch: int = 6) -> None:
        super().__init__()
        self.inp = nn.Conv1d(1, ch, 1)
        self.blocks = nn.ModuleList(WaveNetBlock(ch, d) for d in (1, 2, 4, 8))
        self.out = nn.Sequential(nn.ReLU(), nn.Conv1d(ch, ch, 1), nn.ReLU(), nn.Conv1d(ch, 3, 1))

    def forward(self, x: Tensor) -> Tensor:
        x = self.inp(x)
        total = torch.zeros_like(x)
        for block in self.blocks:
            x, s = block(x)
            total = total + s
        return self.out(total)


# -- SEANet / EnCodec: non-causal reflect-padded convs, strided down, transposed up ------------
class ResUnit(nn.Module):
    def __init__(self, ch: int, dilation: int) -> None:
        super().__init__()
        self.dilation = dilation
        self.conv1 = nn.Conv1d(ch, ch // 2, 3, dilation=dilation)
        self.conv2 = nn.Conv1d(ch // 2, ch, 1)

    def forward(self, x: Tensor) -> Tensor:
        h = F.pad(F.elu(x), (self.dilation, self.dilation), mode="reflect")
        return x + self.conv2(F.elu(self.conv1(h)))


class SEANet(nn.Module):
    def __init__(self, ch: int = 4, ratios: tuple[int, ...] = (2, 4)) -> None:
        super().__init__()
        enc: list[nn.Module] = [nn.Conv1d(1, ch, 7, padding=3)]
        c = ch
        for r in ratios:
            enc += [ResUnit(c, 1), ResUnit(c, 3), nn.ELU(),
                    nn.Conv1d(c, 2 * c, 2 * r, stride=r, padding=r // 2 + r % 2)]
            c *= 2
        self.encoder = nn.Sequential(*enc)
        dec: list[nn.Module] = []
        for r in reversed(ratios):
            dec += [nn.ELU(), nn.ConvTranspose1d(c, c // 2, 2 * r, stride=r,
                                                 padding=r // 2 + r % 2),
                    ResUnit(c // 2, 1)]
            c //= 2
        dec += [nn.ELU(), nn.Conv1d(c, 1, 7, padding=3), nn.Tanh()]
        self.decoder = nn.Sequential(*dec)

    def forward(self, x: Tensor) -> Tensor:
        return self.decoder(self.encoder(x))


# -- Demucs-style U-Net: valid strided convs, GLU, skip concatenations centre-trimmed ----------
def center_trim(t: Tensor, ref: Tensor) -> Tensor:
    delta = t.shape[-1] - ref.shape[-1]
    return t[..., delta // 2 : t.shape[-1] - (delta - delta // 2)]


class DemucsUNet(nn.Module):
    def __init__(self, ch: int = 4, depth: int = 3, k: int = 8, s: int = 4) -> None:
        super().__init__()
        self.enc, self.dec = nn.ModuleList(), nn.ModuleList()
        c_in = 1
        for i in range(depth):
            c = ch * 2**i
            self.enc.append(nn.Sequential(nn.Conv1d(c_in, c, k, s), nn.ReLU(),
                                          nn.Conv1d(c, 2 * c, 1), nn.GLU(1)))
            up: list[nn.Module] = [nn.Conv1d(2 * c, 2 * c, 3, padding=1), nn.GLU(1),
                                   nn.ConvTranspose1d(c, c_in, k, s)]
            self.dec.insert(0, nn.Sequential(*up, *([nn.ReLU()] if i else [])))
            c_in = c
        self.head = nn.Conv1d(2, 1, 1)

    def forward(self, x: Tensor) -> Tensor:
        skips = []
        h = x
        for e in self.enc:
            h = e(h)
            skips.append(h)
        for d in self.dec:
            skip = skips.pop()
            h = d(torch.cat([h, center_trim(skip, h)], 1))
        return self.head(torch.cat([h, center_trim(x, h)], 1))


# -- Conv-TasNet: learned encoder, TCN with cumulative (per-frame) layer norm, masks --------------
class ChannelNorm(nn.Module):
    """cLN: layer norm over channels of each frame."""

    def __init__(self, ch: int) -> None:
        super().__init__()
        self.norm = nn.LayerNorm(ch)

    def forward(self, x: Tensor) -> Tensor:
        return self.norm(x.transpose(1, 2)).transpose(1, 2)


class TasBlock(nn.Module):
    def __init__(self, ch: int, hidden: int, dilation: int) -> None:
        super().__init__()
        self.pad = 2 * dilation
        self.inp = nn.Sequential(nn.Conv1d(ch, hidden, 1), nn.PReLU(), ChannelNorm(hidden))
        self.dw = nn.Conv1d(hidden, hidden, 3, dilation=dilation, groups=hidden)
        self.post = nn.Sequential(nn.PReLU(), ChannelNorm(hidden))
        self.res, self.skip = nn.Conv1d(hidden, ch, 1), nn.Conv1d(hidden, ch, 1)

    def forward(self, x: Tensor) -> tuple[Tensor, Tensor]:
        h = self.post(self.dw(F.pad(self.inp(x), (self.pad, 0))))
        return x + self.res(h), self.skip(h)


class ConvTasNet(nn.Module):
    def __init__(self, n: int = 8, win: int = 16, speakers: int = 2) -> None:
        super().__init__()
        self.speakers, self.n = speakers, n
        self.encoder = nn.Conv1d(1, n, win, stride=win // 2, bias=False)
        self.bottleneck = nn.Sequential(ChannelNorm(n), nn.Conv1d(n, n, 1))
        self.blocks = nn.ModuleList(TasBlock(n, 12, d) for d in (1, 2, 4))
        self.mask = nn.Sequential(nn.PReLU(), nn.Conv1d(n, n * speakers, 1), nn.Sigmoid())
        self.decoder = nn.ConvTranspose1d(n, 1, win, stride=win // 2, bias=False)

    def forward(self, x: Tensor) -> Tensor:
        w = F.relu(self.encoder(x))
        h = self.bottleneck(w)
        skips = torch.zeros_like(h)
        for b in self.blocks:
            h, s = b(h)
            skips = skips + s
        masks = self.mask(skips)
        outs = [self.decoder(w * masks[:, i * self.n : (i + 1) * self.n])
                for i in range(self.speakers)]
        return torch.cat(outs, 1)


# -- 1-D ResNet with pooling: strided shortcuts, batch norm (eval), max and average pools --------
class BasicBlock(nn.Module):
    def __init__(self, c_in: int, c_out: int, stride: int) -> None:
        super().__init__()
        self.conv1 = nn.Conv1d(c_in, c_out, 3, stride, 1, bias=False)
        self.bn1 = nn.BatchNorm1d(c_out)
        self.conv2 = nn.Conv1d(c_out, c_out, 3, 1, 1, bias=False)
        self.bn2 = nn.BatchNorm1d(c_out)
        self.short = nn.Sequential(nn.Conv1d(c_in, c_out, 1, stride, bias=False),
                                   nn.BatchNorm1d(c_out))

    def forward(self, x: Tensor) -> Tensor:
        h = F.relu(self.bn1(self.conv1(x)))
        return F.relu(self.bn2(self.conv2(h)) + self.short(x))


class ResNet1d(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.stem = nn.Sequential(nn.Conv1d(2, 8, 7, 2, 3), nn.BatchNorm1d(8), nn.ReLU(),
                                  nn.MaxPool1d(3, 2, 1))
        self.layers = nn.Sequential(BasicBlock(8, 8, 1), BasicBlock(8, 12, 2))
        self.pool = nn.AvgPool1d(2)
        self.head = nn.Conv1d(12, 4, 1)

    def forward(self, x: Tensor) -> Tensor:
        return self.head(self.pool(self.layers(self.stem(x))))


# -- CRNN: conv front end, GRU, per-frame classifier on [B, T, classes] ----------------------------
class CRNN(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.conv = nn.Sequential(nn.Conv1d(1, 8, 5, stride=2, padding=2), nn.ReLU(),
                                  nn.Conv1d(8, 8, 3, padding=1), nn.ReLU())
        self.gru = nn.GRU(8, 12, num_layers=2, batch_first=True)
        self.fc = nn.Linear(12, 5)

    def forward(self, x: Tensor) -> Tensor:
        h, _ = self.gru(self.conv(x).transpose(1, 2))
        return self.fc(h).log_softmax(-1)


class LSTMTimeFirst(nn.Module):
    """An LSTM with batch_first=False (time on axis 0 inside) and a projection."""

    def __init__(self) -> None:
        super().__init__()
        self.lstm = nn.LSTM(3, 6, proj_size=4)

    def forward(self, x: Tensor) -> Tensor:
        y, _ = self.lstm(x.permute(2, 0, 1))
        return y.permute(1, 2, 0)


# -- 2-D conv net on spectrograms [B, C, F, T] -----------------------------------------------------
class SpecNet(nn.Module):
    def __init__(self, freqs: int = 16) -> None:
        super().__init__()
        self.c1 = nn.Conv2d(1, 4, 3, padding=1)
        self.bn = nn.BatchNorm2d(4)
        self.c2 = nn.Conv2d(4, 6, (3, 3), stride=(2, 2), padding=(1, 1))
        self.pool = nn.MaxPool2d((2, 1))
        self.c3 = nn.Conv1d(6 * freqs // 4, 5, 3, padding=2, dilation=2)

    def forward(self, x: Tensor) -> Tensor:
        h = F.relu(self.bn(self.c1(x)))
        h = self.pool(F.relu(self.c2(h)))
        b, c, f, t = h.shape
        return self.c3(h.reshape(b, c * f, t))


# -- Conformer-style block: FFN, chunked attention, conv module, on [B, T, C] -------------------
class ConformerBlock(nn.Module):
    def __init__(self, dim: int = 8, chunk: int = 4) -> None:
        super().__init__()
        self.ff1 = nn.Sequential(nn.LayerNorm(dim), nn.Linear(dim, 2 * dim), nn.SiLU(),
                                 nn.Linear(2 * dim, dim))
        self.norm_att = nn.LayerNorm(dim)
        self.att = sw.StreamingAttention(dim, heads=2, cache=Chunked(chunk, 1))
        self.norm_conv = nn.LayerNorm(dim)
        self.pw1 = nn.Conv1d(dim, 2 * dim, 1)
        self.dw = nn.Conv1d(dim, dim, 5, groups=dim)
        self.bn = nn.BatchNorm1d(dim)
        self.pw2 = nn.Conv1d(dim, dim, 1)
        self.ff2 = nn.Sequential(nn.LayerNorm(dim), nn.Linear(dim, 2 * dim), nn.SiLU(),
                                 nn.Linear(2 * dim, dim))
        self.out = nn.LayerNorm(dim)

    def forward(self, x: Tensor) -> Tensor:
        x = x + 0.5 * self.ff1(x)
        x = x + self.att(self.norm_att(x))
        h = F.glu(self.pw1(self.norm_conv(x).transpose(1, 2)), dim=1)
        h = self.pw2(F.silu(self.bn(self.dw(F.pad(h, (4, 0))))))
        x = x + h.transpose(1, 2)
        x = x + 0.5 * self.ff2(x)
        return self.out(x)


# -- functional calls: F.conv1d with parameters, interpolate, decimating slices, unfold ---------
class Functional(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.w = nn.Parameter(torch.randn(4, 2, 3) * 0.5)
        self.b = nn.Parameter(torch.randn(4) * 0.1)
        self.proj = nn.Linear(6, 4)

    def forward(self, x: Tensor) -> Tensor:
        h = F.conv1d(x, self.w, self.b, padding=1)
        up = F.interpolate(h, scale_factor=2, mode="nearest")[..., ::2]
        lin = F.interpolate(h, scale_factor=3, mode="linear", align_corners=False)
        lin = F.avg_pool1d(lin, 3)
        frames = F.pad(x, (1, 1)).unfold(-1, 3, 1)  # [B, 2, T, 3]
        fr = self.proj(frames.permute(0, 2, 1, 3).flatten(2)).transpose(1, 2)
        return torch.cat([(up * torch.sigmoid(lin))[..., 1:], fr[..., 1:] - h[..., :-1].abs()], 1)


# -- conv front end, residual conv branch, sizes read per chunk, GRU, per-frame classifier -------
class ResGRU(nn.Module):
    """Residual convs (the branch waits 4 frames: an alignment queue), a reshape from the chunk's
    sizes, a GRU, and a factor built from the input's batch size (read from a stream that is not
    the node's own input)."""

    def __init__(self) -> None:
        super().__init__()
        self.inp = nn.Conv1d(2, 8, 3, padding=1)
        self.res = nn.Sequential(nn.Conv1d(8, 8, 5, padding=2), nn.ReLU(),
                                 nn.Conv1d(8, 8, 3, padding=2, dilation=2))
        self.gru = nn.GRU(4, 6, batch_first=True)
        self.fc = nn.Linear(6, 3)

    def forward(self, x: Tensor) -> Tensor:
        h = self.inp(x)
        h = h + self.res(h)
        b, c, t = h.shape
        h = h.reshape(b, c // 2, 2, t).sum(2)
        y, _ = self.gru(h.transpose(1, 2))
        return self.fc(y) * x.new_ones(x.shape[0], 1, 1)  # [B, T, 3]


def _make(model: nn.Module, shape: tuple[int, ...], time_dim: int = -1, step: int = 1,
          seed: int = 0) -> tuple[nn.Module, Tensor, int, int]:
    torch.manual_seed(seed)
    for m in model.modules():  # non-trivial batch-norm statistics
        if isinstance(m, nn.modules.batchnorm._BatchNorm):
            m.running_mean.uniform_(-0.5, 0.5)
            m.running_var.uniform_(0.5, 2.0)
    model = model.double().eval()
    return model, torch.randn(*shape, dtype=torch.float64), time_dim, step


def architectures() -> dict[str, tuple[nn.Module, Tensor, int, int]]:
    """Name -> (model, example, time_dim, length step), float64."""
    torch.manual_seed(0)
    return {
        "wavenet": _make(WaveNet(), (2, 1, 64)),
        "seanet": _make(SEANet(), (2, 1, 64), step=8),
        "demucs_unet": _make(DemucsUNet(), (2, 1, 410), step=64),
        "conv_tasnet": _make(ConvTasNet(), (2, 1, 96), step=8),
        "resnet1d_pool": _make(ResNet1d(), (2, 2, 64), step=16),
        "crnn": _make(CRNN(), (2, 1, 40), step=2),
        "lstm_time_first": _make(LSTMTimeFirst(), (2, 3, 30)),
        "spectrogram_2d": _make(SpecNet(), (2, 1, 16, 40), step=2),
        "conformer_block": _make(ConformerBlock(), (2, 24, 8), time_dim=1),
        "functional": _make(Functional(), (2, 2, 30)),
        "res_gru": _make(ResGRU(), (2, 2, 40)),
    }

