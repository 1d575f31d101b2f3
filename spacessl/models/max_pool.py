"""Max pooling whose CPU forward pass runs in the channels-last layout.

On the CPU, ``F.max_pool2d`` over an ordinary (channels-first, NCHW) tensor loops over every (sample, channel)
plane, which is slow when the planes are small and many: ResNet-18's stem pooling over 64 x 64 x 16 x 16 maps (the
quality benchmark's frames behind the space-to-depth stem) took 5-7 ms forward and 1 ms backward on two cores.
The same kernel over a channels-last copy vectorises across channels and takes 1-1.5 ms with the copy, and its
backward pass over the channels-first tensor stays at 1 ms (``benchmarks/max_pool.py`` measures both).

:class:`ChannelsLastMaxPool2d` is an ``nn.MaxPool2d`` that does exactly that on the CPU for batched
channels-first inputs and is ``nn.MaxPool2d`` everywhere else (CUDA, channels-last or unbatched inputs, returned
indices). Outputs are identical; gradients are identical where each window has one maximum (where several inputs
tie for it, the gradient goes to one of them, as in either kernel, not necessarily the same one).
"""

from __future__ import annotations

import torch
from torch import Tensor, nn
from torch.autograd.function import once_differentiable

from spacessl.models.retype import retype_layers


class ChannelsLastMaxPool2d(nn.MaxPool2d):
    """``nn.MaxPool2d`` whose CPU forward pass runs over a channels-last copy of the input.

    Shape: (B, C, H, W) -> (B, C, H', W') as ``nn.MaxPool2d``.
    """

    def forward(self, x: Tensor) -> Tensor:
        if (x.device.type != "cpu" or x.dim() != 4 or self.return_indices
                or not x.is_contiguous() or x.is_contiguous(memory_format=torch.channels_last)):
            return super().forward(x)
        return _ChannelsLastMaxPool.apply(x, _pair(self.kernel_size), _pair(self.stride or self.kernel_size),
                                          _pair(self.padding), _pair(self.dilation), self.ceil_mode)


def _pair(value: int | tuple[int, ...]) -> tuple[int, int]:
    """A pooling argument as (height, width)."""
    return (value, value) if isinstance(value, int) else (int(value[0]), int(value[1]))


class _ChannelsLastMaxPool(torch.autograd.Function):
    """Forward over a channels-last copy; backward over the channels-first input with the forward's indices.

    Shapes: x (B, C, H, W) contiguous -> (B, C, H', W') contiguous.
    """

    @staticmethod
    def forward(ctx, x: Tensor, kernel: tuple[int, int], stride: tuple[int, int], padding: tuple[int, int],
                dilation: tuple[int, int], ceil_mode: bool) -> Tensor:
        out, indices = torch.ops.aten.max_pool2d_with_indices(
            x.contiguous(memory_format=torch.channels_last), kernel, stride, padding, dilation, ceil_mode)
        # indices count positions within each (H, W) plane, whatever the layout
        ctx.save_for_backward(x, indices.contiguous())
        ctx.args = (kernel, stride, padding, dilation, ceil_mode)
        return out.contiguous()

    @staticmethod
    @once_differentiable
    def backward(ctx, grad: Tensor) -> tuple[Tensor | None, ...]:
        x, indices = ctx.saved_tensors
        grad_x = torch.ops.aten.max_pool2d_with_indices_backward(grad.contiguous(), x, *ctx.args, indices)
        return grad_x, None, None, None, None, None


def use_channels_last_max_pool(module: nn.Module) -> int:
    """Turn every ``nn.MaxPool2d`` inside ``module`` into a :class:`ChannelsLastMaxPool2d`, in place (only their
    class changes). Returns the number of layers changed."""
    return retype_layers(module, nn.MaxPool2d, ChannelsLastMaxPool2d)
