"""Convolutions whose output is a single pixel, computed as one matrix product.

Deep in a ResNet the feature maps of small inputs shrink to one pixel: ResNet-18's last stage works on 1 x 1 maps
at 32 px input (and behind the space-to-depth stem at 64 px). A 3 x 3 convolution with padding 1 over a 1 x 1 map
sees eight padded zeros and one real pixel, so only the kernel's centre tap contributes: the convolution is a
linear layer over the channels. oneDNN still runs it as a full convolution, and its backward pass over such maps
is slow on a CPU (about 4 x the forward pass; ``benchmarks/pixel_conv.py`` measures the difference).

:class:`SinglePixelConv2d` is an ``nn.Conv2d`` that, whenever its output is 1 x 1, multiplies the part of the
input that the kernel covers with the taps that cover it, and runs the ordinary convolution otherwise. The result
and the gradients are those of the convolution up to float rounding (taps that meet only padding get a zero
gradient, as they do in the convolution); the parameters and their names are unchanged, so checkpoints load into
either class.

The product runs through :class:`_TapProduct`, whose backward pass writes the weight's gradient once into a
zero tensor of the full kernel's shape; autograd's own chain (the backward of a reshape and of one slice per
kernel axis) fills and copies that tensor once per axis. Under autocast the slices run through autograd as they
are (their casts are autocast's).
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import Tensor, nn
from torch.autograd.function import once_differentiable

from spacessl.models.retype import retype_layers

#: ((rows, cols) of the input that the kernel covers, (top, left) padding): see ``single_pixel_window``
Window = tuple[tuple[int, int], tuple[int, int]]


class SinglePixelConv2d(nn.Conv2d):
    """``nn.Conv2d`` whose 1 x 1 outputs are computed as one matrix product.

    Shape: (B, C_in, H, W) -> (B, C_out, H', W') as ``nn.Conv2d``. When H' = W' = 1 (and the convolution has one
    group, no dilation and zero padding) the input window that the kernel covers, (B, C_in, h, w) with h <= H and
    w <= W, is flattened to (B, C_in·h·w) and multiplied by the matching taps of the weight, (C_out, C_in·h·w).
    """

    def forward(self, x: Tensor) -> Tensor:
        window = self.single_pixel_window(x.shape[-2], x.shape[-1]) if x.dim() == 4 else None
        if window is None:  # larger outputs, and unbatched (C, H, W) inputs
            return super().forward(x)
        (rows, cols), (ph, pw) = window
        n = x.shape[0]
        # input pixel (i, j) meets tap (i + ph, j + pw) of the kernel; every other tap meets padding
        inputs = x[:, :, :rows, :cols].reshape(n, -1)
        if torch.is_autocast_enabled(x.device.type):
            taps = self.weight[:, :, ph:ph + rows, pw:pw + cols].reshape(self.out_channels, -1)
            out = F.linear(inputs, taps, self.bias)
        else:
            out = _TapProduct.apply(inputs, self.weight, self.bias, window)
        return out.view(n, self.out_channels, 1, 1)

    def single_pixel_window(self, height: int, width: int) -> Window | None:
        """For an input of ``height`` x ``width`` px: ((rows, cols) of the input the kernel covers, (top, left)
        padding), or None when the output is larger than 1 x 1 or the convolution is not a plain one."""
        if self.groups != 1 or self.dilation != (1, 1) or self.padding_mode != "zeros" or isinstance(self.padding, str):
            return None
        (kh, kw), (ph, pw), (sh, sw) = self.kernel_size, self.padding, self.stride
        if (height + 2 * ph - kh) // sh != 0 or (width + 2 * pw - kw) // sw != 0:
            return None
        rows, cols = min(height, kh - ph), min(width, kw - pw)
        if rows < 1 or cols < 1:
            return None
        return (rows, cols), (ph, pw)


class _TapProduct(torch.autograd.Function):
    """``inputs @ taps.T + bias`` with ``taps`` the kernel's window of ``weight``, and the weight's gradient zero
    outside that window.

    Shapes: inputs (B, C_in·h·w), weight (C_out, C_in, kh, kw), bias (C_out,) or None -> (B, C_out).
    """

    @staticmethod
    def forward(ctx, inputs: Tensor, weight: Tensor, bias: Tensor | None, window: Window) -> Tensor:
        (rows, cols), (ph, pw) = window
        taps = weight[:, :, ph:ph + rows, pw:pw + cols].reshape(weight.shape[0], -1)  # (C_out, C_in·h·w)
        ctx.save_for_backward(inputs, taps)
        ctx.window, ctx.weight_shape = window, weight.shape
        return F.linear(inputs, taps, bias)

    @staticmethod
    @once_differentiable
    def backward(ctx, grad: Tensor) -> tuple[Tensor | None, ...]:
        inputs, taps = ctx.saved_tensors
        (rows, cols), (ph, pw) = ctx.window
        grad_inputs = grad @ taps if ctx.needs_input_grad[0] else None
        grad_weight = grad_bias = None
        if ctx.needs_input_grad[1]:
            grad_taps = grad.t() @ inputs  # (C_out, C_in·h·w)
            c_out, c_in, kh, kw = ctx.weight_shape
            if (rows, cols) == (kh, kw):  # the whole kernel meets the input
                grad_weight = grad_taps.view(ctx.weight_shape)
            else:
                grad_weight = grad.new_zeros(ctx.weight_shape)
                grad_weight[:, :, ph:ph + rows, pw:pw + cols] = grad_taps.view(c_out, c_in, rows, cols)
        if ctx.needs_input_grad[2]:
            grad_bias = grad.sum(0)
        return grad_inputs, grad_weight, grad_bias, None


def use_single_pixel_convs(module: nn.Module) -> int:
    """Turn every plain ``nn.Conv2d`` inside ``module`` into a :class:`SinglePixelConv2d`, in place (only their
    class changes). Returns the number of layers changed."""
    return retype_layers(module, nn.Conv2d, SinglePixelConv2d)
