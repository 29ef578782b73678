"""mla_decode: one decode step of DeepSeek-style multi-head latent attention (MLA), bfloat16.

Shapes follow DeepSeek-V3 and GPU MODE's mla-decode problem; every line here is ours. The
reference is the plain (non-absorbed) formulation: up-project the whole latent cache to
per-head keys and values, then attend.
"""

import math
from contextlib import contextmanager

import torch

# DeepSeek-V3 sizes; CPU-sized specs override them with the same keys.
DEFAULTS = {
    "heads": 128,
    "kv_rank": 512,
    "rope_dim": 64,
    "nope_dim": 128,
    "v_dim": 128,
    "max_seq_len": 8192,
}


def _device() -> str:
    return "cuda" if torch.cuda.is_available() else "cpu"


@contextmanager
def _full_fp32_matmuls():
    """Attention runs in exact float32: no TF32 in cuBLAS, restored afterwards."""
    saved = torch.backends.cuda.matmul.allow_tf32
    torch.backends.cuda.matmul.allow_tf32 = False
    try:
        yield
    finally:
        torch.backends.cuda.matmul.allow_tf32 = saved


def generate_input(batchsize: int, dim: int, dq: int, prefill: int, seed: int, **sizes: int) -> tuple:
    """(x [B, 1, dim], kv_cache [B, max_seq_len, kv_rank + rope_dim], weights, config), bfloat16.

    Rows `0 .. prefill-1` of the cache hold earlier tokens' latents (N(0, 1)); the rest is zero.
    """
    unknown = set(sizes) - set(DEFAULTS)
    if unknown:
        raise ValueError(f"unknown spec keys {sorted(unknown)}; known: {sorted(DEFAULTS)}")
    config = {**DEFAULTS, **sizes, "batchsize": batchsize, "dim": dim, "dq": dq, "prefill": prefill}
    if prefill >= config["max_seq_len"]:
        raise ValueError(f"prefill {prefill} leaves no room in a cache of {config['max_seq_len']} rows")
    heads, kv_rank, rope = config["heads"], config["kv_rank"], config["rope_dim"]
    nope, v_dim = config["nope_dim"], config["v_dim"]
    device = _device()
    gen = torch.Generator(device=device).manual_seed(seed)

    def randn(*shape: int, fan_in: int = 1) -> torch.Tensor:
        return torch.randn(shape, dtype=torch.bfloat16, device=device, generator=gen) / math.sqrt(fan_in)

    weights = {  # nn.Linear layout [out, in]; drawn in this order from one generator
        "q_down": randn(dq, dim, fan_in=dim),
        "kv_down": randn(kv_rank + rope, dim, fan_in=dim),
        "q_up": randn(heads * (nope + rope), dq, fan_in=dq),
        "kv_up": randn(heads * (nope + v_dim), kv_rank, fan_in=kv_rank),
        "wo": randn(dim, heads * v_dim, fan_in=heads * v_dim),
    }
    x = randn(batchsize, 1, dim)
    kv_cache = torch.zeros(
        batchsize, config["max_seq_len"], kv_rank + rope, dtype=torch.bfloat16, device=device
    )
    kv_cache[:, :prefill] = randn(batchsize, prefill, kv_rank + rope)
    return x, kv_cache, weights, config


def rope(t: torch.Tensor, positions: torch.Tensor) -> torch.Tensor:
    """Rotary embedding, rotate-half convention, base 10000, over the last dim (float32).

    `t` is `[..., len(positions), r]`; pair (i, i + r/2) is rotated by positions * 10000^(-2i/r).
    """
    half = t.shape[-1] // 2
    inv_freq = 10000.0 ** (-torch.arange(half, device=t.device, dtype=torch.float32) / half)
    angles = positions.to(torch.float32)[:, None] * inv_freq[None, :]
    cos = torch.cat([angles.cos(), angles.cos()], dim=-1)
    sin = torch.cat([angles.sin(), angles.sin()], dim=-1)
    t1, t2 = t[..., :half], t[..., half:]
    return t * cos + torch.cat([-t2, t1], dim=-1) * sin


def ref_kernel(data: tuple) -> tuple[torch.Tensor, torch.Tensor]:
    x, kv_cache, w, cfg = data
    batch, pos = x.shape[0], cfg["prefill"]
    heads, kv_rank, rope_dim = cfg["heads"], cfg["kv_rank"], cfg["rope_dim"]
    nope, v_dim = cfg["nope_dim"], cfg["v_dim"]
    seq = pos + 1  # the cached tokens plus the new one, which sits at position `prefill`

    # Projections in bfloat16, as the model runs them.
    q = ((x @ w["q_down"].t()) @ w["q_up"].t()).view(batch, heads, nope + rope_dim)
    kv_new = x @ w["kv_down"].t()  # [B, 1, kv_rank + rope_dim]: the cache entry of this token
    latent = torch.cat([kv_cache[:, :pos], kv_new], dim=1)  # the input cache stays untouched
    kv_c, k_pe = latent.split([kv_rank, rope_dim], dim=-1)
    q_nope, q_pe = q.float().split([nope, rope_dim], dim=-1)
    q_pe = rope(q_pe[:, :, None, :], torch.tensor([pos], device=x.device))[:, :, 0]
    k_pe = rope(k_pe.float(), torch.arange(seq, device=x.device))  # one rope key shared by all heads

    # Up-projecting the cache costs B * seq * heads * (nope + v_dim) values (~50 GB at
    # batch 128 and 6144 tokens), so the batch is processed in chunks to bound memory.
    chunk = max(1, (1 << 27) // (seq * heads * (nope + v_dim)))
    outs = []
    with _full_fp32_matmuls():
        for b0 in range(0, batch, chunk):
            b1 = min(batch, b0 + chunk)
            kv = (kv_c[b0:b1] @ w["kv_up"].t()).view(b1 - b0, seq, heads, nope + v_dim)
            k_nope, v = kv.float().split([nope, v_dim], dim=-1)
            scores = torch.einsum("bhd,bshd->bhs", q_nope[b0:b1], k_nope)
            scores = scores + torch.einsum("bhr,bsr->bhs", q_pe[b0:b1], k_pe[b0:b1])
            attn = torch.softmax(scores / math.sqrt(nope + rope_dim), dim=-1)
            outs.append(torch.einsum("bhs,bshd->bhd", attn, v))
    out = torch.cat(outs).to(torch.bfloat16).reshape(batch, 1, heads * v_dim)
    return out @ w["wo"].t(), kv_new
