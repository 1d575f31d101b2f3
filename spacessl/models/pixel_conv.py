"""Convolutions over maps of one or two pixels a side, computed as one matrix product.

Deep in a ResNet the feature maps of small inputs shrink to a pixel or four: ResNet-18's last stage works on 1 x 1
maps at 32 px input (and behind the space-to-depth stem at 64 px), and on 2 x 2 maps at 64 px (behind the stem at
128 px), where its third stage works on 2 x 2 maps at 32 px (behind the stem at 64 px). A 3 x 3 convolution with
padding 1 over a 1 x 1 map sees eight padded zeros and one real pixel; over a 2 x 2 map each output pixel sees four
real pixels and five zeros. oneDNN still runs the full kernel over the padding, and its backward pass over such maps
is slow on a CPU (3-4 x the forward pass; ``benchmarks/pixel_conv.py`` measures the difference).

Where every input pixel that the kernel reaches meets every output pixel through exactly one tap, which holds for
any 1 x 1 output and for a 3 x 3 kernel at stride 1 over a 2 x 2 map, the convolution is a linear map over the
flattened maps whose matrix holds each (input pixel, output pixel) pair's tap and no zeros:
(B, C_in·h·w) @ (C_in·h·w, C_out·H'·W'). :class:`SmallMapConv2d` is an ``nn.Conv2d`` that computes such
convolutions as that one matrix product (for 2 x 2 maps 16 of the kernel's 36 tap-pixel products, as one GEMM) and
runs the ordinary convolution otherwise. The result and the gradients are those of the convolution up to float
rounding (taps that meet only padding get a zero gradient, as they do in the convolution); the parameters and their
names are unchanged, so checkpoints load into either class.

The product runs through :class:`_PairProduct`, which builds the matrix from the kernel's taps in the forward pass
and sums the matrix's gradient back into one tensor of the kernel's shape in the backward pass. Under autocast
(GPUs) a 1 x 1 output runs as a product of the taps' slices through autograd (their casts are autocast's), and
a 2 x 2 output as the convolution.
"""

from __future__ import annotations

from functools import lru_cache
from typing import NamedTuple

import torch
import torch.nn.functional as F
from torch import Tensor, nn
from torch.autograd.function import once_differentiable

from spacessl.models.retype import retype_layers


class Plan(NamedTuple):
    """How a convolution over an input of a given size runs as one matrix product.

    ``rows`` x ``cols``: the top-left part of the input that the kernel reaches; ``out_h`` x ``out_w``: the output;
    ``pairs``: (input pixel, output pixel, tap row, tap column) for every pair, pixels numbered row-major within
    the input part and the output; ``taps_once``: no tap in two pairs (1 x 1 outputs), so the weight's gradient
    takes each block as it is; ``all_taps``: every tap of the kernel in some pair.
    """

    rows: int
    cols: int
    out_h: int
    out_w: int
    pairs: tuple[tuple[int, int, int, int], ...]
    taps_once: bool
    all_taps: bool


#: largest output (pixels) computed as a product: the matrix holds C_in·C_out·(input pixels)·(output pixels)
#: entries, 16 kernel slices for 2 x 2 maps; 3 x 3 kernels only ever fill it up to 2 x 2
MAX_OUTPUT_PIXELS = 4


@lru_cache(maxsize=256)
def product_plan(height: int, width: int, kernel: tuple[int, int], stride: tuple[int, int],
                 padding: tuple[int, int]) -> Plan | None:
    """The :class:`Plan` of a plain convolution (one group, no dilation, zero padding) over a ``height`` x
    ``width`` input, or None when it should run as the convolution: outputs larger than 2 x 2, or some pair of an
    input pixel that the kernel reaches and an output pixel that meets no tap."""
    (kh, kw), (sh, sw), (ph, pw) = kernel, stride, padding
    out_h, out_w = (height + 2 * ph - kh) // sh + 1, (width + 2 * pw - kw) // sw + 1
    if out_h < 1 or out_w < 1 or out_h * out_w > MAX_OUTPUT_PIXELS:
        return None
    # input rows / columns that some output pixel's window reaches (the rest only ever meets nothing)
    rows = min(height, (out_h - 1) * sh + kh - ph)
    cols = min(width, (out_w - 1) * sw + kw - pw)
    if rows < 1 or cols < 1:
        return None
    pairs = []
    for iy in range(rows):
        for ix in range(cols):
            for oy in range(out_h):
                for ox in range(out_w):
                    ky, kx = iy - oy * sh + ph, ix - ox * sw + pw
                    if not (0 <= ky < kh and 0 <= kx < kw):
                        return None  # a zero in the matrix: the convolution does less work
                    pairs.append((iy * cols + ix, oy * out_w + ox, ky, kx))
    taps = {(ky, kx) for _, _, ky, kx in pairs}
    return Plan(rows, cols, out_h, out_w, tuple(pairs), len(taps) == len(pairs), len(taps) == kh * kw)


class SmallMapConv2d(nn.Conv2d):
    """``nn.Conv2d`` whose outputs of up to 2 x 2 pixels are computed as one matrix product where that matrix has
    no zeros (:func:`product_plan`).

    Shape: (B, C_in, H, W) -> (B, C_out, H', W') as ``nn.Conv2d``. With a plan, the part of the input that the
    kernel reaches, (B, C_in, h, w) with h <= H and w <= W, is flattened to (B, C_in·h·w) and multiplied by the
    (C_in·h·w, C_out·H'·W') matrix of the taps that join each input pixel to each output pixel.
    """

    def forward(self, x: Tensor) -> Tensor:
        plan = self.plan(x.shape[-2], x.shape[-1]) if x.dim() == 4 else None
        if plan is None:  # larger outputs, and unbatched (C, H, W) inputs
            return super().forward(x)
        n = x.shape[0]
        inputs = x[:, :, :plan.rows, :plan.cols].reshape(n, -1)
        if torch.is_autocast_enabled(x.device.type):
            if plan.out_h * plan.out_w > 1:
                return super().forward(x)
            (ph, pw) = self.padding
            taps = self.weight[:, :, ph:ph + plan.rows, pw:pw + plan.cols].reshape(self.out_channels, -1)
            out = F.linear(inputs, taps, self.bias)
        else:
            out = _PairProduct.apply(inputs, self.weight, self.bias, plan)
        return out.view(n, self.out_channels, plan.out_h, plan.out_w)

    def plan(self, height: int, width: int) -> Plan | None:
        """:func:`product_plan` for an input of ``height`` x ``width`` px; None for grouped, dilated or
        non-zero-padded convolutions."""
        if self.groups != 1 or self.dilation != (1, 1) or self.padding_mode != "zeros" or isinstance(self.padding, str):
            return None
        return product_plan(height, width, tuple(self.kernel_size), tuple(self.stride), tuple(self.padding))


class _PairProduct(torch.autograd.Function):
    """``inputs @ M + bias`` with ``M`` (C_in·h·w, C_out·H'·W') built from ``weight``'s taps by a :class:`Plan`.

    ``M`` is kept as its transpose (C_out·H'·W', C_in·h·w), whose blocks (C_out, C_in) are the taps as they lie in
    the weight. Shapes: inputs (B, C_in·h·w), weight (C_out, C_in, kh, kw), bias (C_out,) or None ->
    (B, C_out·H'·W') ordered (C_out, H', W').
    """

    @staticmethod
    def forward(ctx, inputs: Tensor, weight: Tensor, bias: Tensor | None, plan: Plan) -> Tensor:
        c_out, c_in = weight.shape[:2]
        n_in, n_out = plan.rows * plan.cols, plan.out_h * plan.out_w
        matrix = weight.new_empty(c_out, n_out, c_in, n_in)
        for i, o, ky, kx in plan.pairs:
            matrix[:, o, :, i] = weight[:, :, ky, kx]
        matrix = matrix.view(c_out * n_out, c_in * n_in)
        ctx.save_for_backward(inputs, matrix)
        ctx.plan, ctx.weight_shape = plan, weight.shape
        return F.linear(inputs, matrix, None if bias is None else bias.repeat_interleave(n_out))

    @staticmethod
    @once_differentiable
    def backward(ctx, grad: Tensor) -> tuple[Tensor | None, ...]:
        inputs, matrix = ctx.saved_tensors
        plan = ctx.plan
        c_out, c_in = ctx.weight_shape[:2]
        n_in, n_out = plan.rows * plan.cols, plan.out_h * plan.out_w
        grad_inputs = grad @ matrix if ctx.needs_input_grad[0] else None
        grad_weight = grad_bias = None
        if ctx.needs_input_grad[1]:
            grad_matrix = (grad.t() @ inputs).view(c_out, n_out, c_in, n_in)
            # each tap in one pair over the whole kernel: the blocks fill it, nothing to zero first
            grad_weight = grad.new_empty(ctx.weight_shape) if plan.taps_once and plan.all_taps else \
                grad.new_zeros(ctx.weight_shape)
            for i, o, ky, kx in plan.pairs:
                if plan.taps_once:
                    grad_weight[:, :, ky, kx] = grad_matrix[:, o, :, i]
                else:
                    grad_weight[:, :, ky, kx] += grad_matrix[:, o, :, i]
        if ctx.needs_input_grad[2]:
            grad_bias = grad.reshape(-1, c_out, n_out).sum((0, 2))
        return grad_inputs, grad_weight, grad_bias, None


def use_small_map_convs(module: nn.Module) -> int:
    """Turn every plain ``nn.Conv2d`` inside ``module`` into a :class:`SmallMapConv2d`, in place (only their class
    changes). Returns the number of layers changed."""
    return retype_layers(module, nn.Conv2d, SmallMapConv2d)
