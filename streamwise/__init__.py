"""streamwise: run neural networks on unbounded streams, exactly as offline."""

from streamwise.attention import StreamingAttention
from streamwise.convert import ConversionError, FrameStream, WindowStream, convert, find_context
from streamwise.core.protocol import NotStreamableError, State, StreamingModule
from streamwise.core.stream import Stream, StreamClosedError
from streamwise.core.verify import Report, verify
from streamwise.layers.aaren import Aaren
from streamwise.layers.containers import Parallel, Residual, Sequential, as_streaming
from streamwise.layers.conv import Conv1d, Conv2d
from streamwise.layers.conv_transpose import ConvTranspose1d
from streamwise.layers.delta import DeltaGRU, DeltaLinear, delta_pointwise, delta_sparsity_loss
from streamwise.layers.lmu import LMU, lmu_former_block
from streamwise.layers.pointwise import (
    ELU,
    GELU,
    GLU,
    BatchNorm1d,
    BatchNorm2d,
    Dropout,
    Identity,
    LayerNorm,
    LeakyReLU,
    Linear,
    LogSoftmax,
    Pointwise,
    PReLU,
    ReLU,
    Scale,
    Sigmoid,
    SiLU,
    Tanh,
)
from streamwise.layers.pool import AvgPool1d, MaxPool1d
from streamwise.layers.pool_mixer import CausalPoolingMixer
from streamwise.layers.rnn import GRU, LSTM
from streamwise.layers.spectral import STFT, MelSpectrogram
from streamwise.layers.spiking import LIF, PrototypeReadout
from streamwise.layers.unstreamable import (
    AdaptiveAvgPool1d,
    AdaptiveMaxPool1d,
    GlobalAvgPool,
    GroupNorm,
    InstanceNorm1d,
    InstanceNorm2d,
)
from streamwise.layers.upsample import Upsample

__version__ = "0.1.0"

__all__ = [
    "LIF", "LMU", "Aaren", "CausalPoolingMixer", "DeltaGRU", "DeltaLinear", "PrototypeReadout",
    "delta_pointwise", "delta_sparsity_loss", "lmu_former_block",
    "ELU", "GELU", "GRU", "LSTM", "AdaptiveAvgPool1d", "AdaptiveMaxPool1d", "AvgPool1d",
    "BatchNorm1d", "BatchNorm2d", "Conv1d", "Conv2d", "ConvTranspose1d", "Dropout",
    "GlobalAvgPool", "GroupNorm", "Identity", "InstanceNorm1d", "InstanceNorm2d", "LayerNorm",
    "LeakyReLU", "Linear", "MaxPool1d", "NotStreamableError", "PReLU", "Parallel", "Pointwise",
    "GLU", "ReLU", "Report", "Residual", "Scale", "Sequential", "Sigmoid", "SiLU", "State",
    "Stream", "StreamingAttention", "FrameStream", "WindowStream", "find_context",
    "ConversionError", "convert",
    "StreamClosedError", "StreamingModule", "Tanh", "Upsample", "as_streaming", "verify",
    "STFT", "MelSpectrogram", "LogSoftmax",
]
