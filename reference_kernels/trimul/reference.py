"""trimul: AlphaFold3's outgoing triangle multiplicative update (forward), float32.

Math, shapes and seeds follow GPU MODE's bioml `trimul` problem; every line here is ours.
"""

import math
from contextlib import contextmanager

import torch
import torch.nn.functional as F


def _device() -> str:
    return "cuda" if torch.cuda.is_available() else "cpu"


@contextmanager
def _full_fp32_matmuls():
    """The reference is exact float32: no TF32 in cuBLAS or cuDNN, restored afterwards."""
    saved = torch.backends.cuda.matmul.allow_tf32, torch.backends.cudnn.allow_tf32
    torch.backends.cuda.matmul.allow_tf32 = False
    torch.backends.cudnn.allow_tf32 = False
    try:
        yield
    finally:
        torch.backends.cuda.matmul.allow_tf32, torch.backends.cudnn.allow_tf32 = saved


def generate_input(
    seqlen: int, bs: int, dim: int, hiddendim: int, seed: int, nomask: bool, distribution: str
) -> tuple:
    """(x [bs, seqlen, seqlen, dim], mask [bs, seqlen, seqlen], weights, config), all float32."""
    if distribution not in ("normal", "cauchy"):
        raise ValueError(f"distribution must be 'normal' or 'cauchy', got {distribution!r}")
    device = _device()
    gen = torch.Generator(device=device).manual_seed(seed)
    shape = (bs, seqlen, seqlen, dim)
    if distribution == "cauchy":
        # Cauchy(0, 2) by inverting its CDF, from the seeded generator.
        u = torch.rand(shape, device=device, generator=gen)
        x = 2.0 * torch.tan(math.pi * (u - 0.5))
    else:
        x = torch.randn(shape, device=device, generator=gen)
    if nomask:
        mask = torch.ones(bs, seqlen, seqlen, device=device)
    else:
        mask = torch.randint(0, 2, (bs, seqlen, seqlen), device=device, generator=gen).float()
    hidden = hiddendim

    def weight(*shape: int, scale: float = 1.0) -> torch.Tensor:
        return torch.randn(shape, device=device, generator=gen) / scale

    weights = {  # drawn in this order from the same generator
        "norm.weight": weight(dim),
        "norm.bias": weight(dim),
        "left_proj.weight": weight(hidden, dim, scale=math.sqrt(hidden)),
        "right_proj.weight": weight(hidden, dim, scale=math.sqrt(hidden)),
        "left_gate.weight": weight(hidden, dim, scale=math.sqrt(hidden)),
        "right_gate.weight": weight(hidden, dim, scale=math.sqrt(hidden)),
        "out_gate.weight": weight(hidden, dim, scale=math.sqrt(hidden)),
        "to_out_norm.weight": weight(hidden),
        "to_out_norm.bias": weight(hidden),
        "to_out.weight": weight(dim, hidden, scale=math.sqrt(dim)),
    }
    config = {"dim": dim, "hidden_dim": hidden}
    return x.contiguous(), mask, weights, config


def ref_kernel(data: tuple) -> torch.Tensor:
    x, mask, w, config = data
    dim, hidden = config["dim"], config["hidden_dim"]
    with _full_fp32_matmuls():
        x = F.layer_norm(x, (dim,), w["norm.weight"], w["norm.bias"])
        m = mask.unsqueeze(-1)
        left = F.linear(x, w["left_proj.weight"]) * m * torch.sigmoid(F.linear(x, w["left_gate.weight"]))
        right = F.linear(x, w["right_proj.weight"]) * m * torch.sigmoid(F.linear(x, w["right_gate.weight"]))
        # The triangle update proper: out[b, i, j, h] = sum_k left[b, i, k, h] * right[b, j, k, h].
        out = torch.einsum("bikh,bjkh->bijh", left, right)
        out = F.layer_norm(out, (hidden,), w["to_out_norm.weight"], w["to_out_norm.bias"])
        out = out * torch.sigmoid(F.linear(x, w["out_gate.weight"]))
        return F.linear(out, w["to_out.weight"])
