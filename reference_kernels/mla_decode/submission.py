"""Starting candidate for mla_decode: torch for the projections and RoPE tables, one Triton
kernel for the attention over the latent cache.

The kernel works in the latent space (weight absorption): the no-RoPE part of each head's
query is multiplied into kv_up's key block once, q_abs[h] = q_nope[h] @ W_uk[h], so scores
are q_abs . c_s + q_pe . rope(k_pe_s) against the cached latents c_s directly and the
per-head keys and values are never materialised. Values are applied after the softmax:
out[h] = W_uv[h] @ (sum_s p_s c_s).
"""

import math

import torch
import triton
import triton.language as tl


@triton.jit
def mla_attention_kernel(
    q_abs_ptr, q_pe_ptr, cache_ptr, new_ptr, cos_ptr, sin_ptr, out_ptr,
    heads, pos, scale,
    s_cache_b, s_cache_s, s_new_b,
    KV_RANK: tl.constexpr, HALF_ROPE: tl.constexpr, BLOCK_H: tl.constexpr, BLOCK_N: tl.constexpr,
):
    # One program: batch element b, BLOCK_H heads, a streaming (online) softmax over the
    # pos + 1 latent rows (rows < pos from the cache, row pos is this step's new latent).
    b = tl.program_id(0)
    h = tl.program_id(1) * BLOCK_H + tl.arange(0, BLOCK_H)
    h_ok = h < heads
    lat = tl.arange(0, KV_RANK)
    half = tl.arange(0, HALF_ROPE)
    q_abs = tl.load(q_abs_ptr + (b * heads + h)[:, None] * KV_RANK + lat[None, :], mask=h_ok[:, None], other=0.0)
    q_pe_base = q_pe_ptr + (b * heads + h)[:, None] * (2 * HALF_ROPE)
    q1 = tl.load(q_pe_base + half[None, :], mask=h_ok[:, None], other=0.0)
    q2 = tl.load(q_pe_base + HALF_ROPE + half[None, :], mask=h_ok[:, None], other=0.0)

    m = tl.full((BLOCK_H,), -float("inf"), dtype=tl.float32)
    denom = tl.zeros((BLOCK_H,), dtype=tl.float32)
    acc = tl.zeros((BLOCK_H, KV_RANK), dtype=tl.float32)
    for s0 in range(0, pos + 1, BLOCK_N):
        s = s0 + tl.arange(0, BLOCK_N)
        old = s < pos
        new = s == pos
        c_row = cache_ptr + b * s_cache_b + s[:, None] * s_cache_s
        n_row = new_ptr + b * s_new_b + s[:, None] * 0
        c = tl.load(c_row + lat[None, :], mask=old[:, None], other=0.0) + tl.load(
            n_row + lat[None, :], mask=new[:, None], other=0.0
        )
        k1 = tl.load(c_row + KV_RANK + half[None, :], mask=old[:, None], other=0.0) + tl.load(
            n_row + KV_RANK + half[None, :], mask=new[:, None], other=0.0
        )
        k2 = tl.load(c_row + KV_RANK + HALF_ROPE + half[None, :], mask=old[:, None], other=0.0) + tl.load(
            n_row + KV_RANK + HALF_ROPE + half[None, :], mask=new[:, None], other=0.0
        )
        c = c.to(tl.float32)
        valid = s <= pos
        cos = tl.load(cos_ptr + s[:, None] * HALF_ROPE + half[None, :], mask=valid[:, None], other=0.0)
        sin = tl.load(sin_ptr + s[:, None] * HALF_ROPE + half[None, :], mask=valid[:, None], other=0.0)
        k1 = k1.to(tl.float32)
        k2 = k2.to(tl.float32)
        r1 = k1 * cos - k2 * sin  # rotate-half RoPE applied to the shared rope key
        r2 = k2 * cos + k1 * sin
        scores = tl.dot(q_abs, tl.trans(c), input_precision="ieee")
        scores += tl.dot(q1, tl.trans(r1), input_precision="ieee")
        scores += tl.dot(q2, tl.trans(r2), input_precision="ieee")
        scores = tl.where(valid[None, :], scores * scale, -float("inf"))
        m_new = tl.maximum(m, tl.max(scores, axis=1))
        p = tl.exp(scores - m_new[:, None])
        alpha = tl.exp(m - m_new)
        denom = denom * alpha + tl.sum(p, axis=1)
        acc = acc * alpha[:, None] + tl.dot(p, c, input_precision="ieee")
        m = m_new
    out = acc / denom[:, None]
    tl.store(out_ptr + (b * heads + h)[:, None] * KV_RANK + lat[None, :], out, mask=h_ok[:, None])


def rope_tables(n: int, rope_dim: int, device):
    half = rope_dim // 2
    inv_freq = 10000.0 ** (-torch.arange(half, device=device, dtype=torch.float32) / half)
    angles = torch.arange(n, device=device, dtype=torch.float32)[:, None] * inv_freq[None, :]
    return angles.cos().contiguous(), angles.sin().contiguous()


def custom_kernel(data):
    x, kv_cache, w, cfg = data
    batch, pos = x.shape[0], cfg["prefill"]
    heads, kv_rank, rope_dim = cfg["heads"], cfg["kv_rank"], cfg["rope_dim"]
    nope, v_dim = cfg["nope_dim"], cfg["v_dim"]
    half = rope_dim // 2
    assert kv_rank & (kv_rank - 1) == 0 and half & (half - 1) == 0, "kernel assumes power-of-two sizes"

    q = ((x @ w["q_down"].t()) @ w["q_up"].t()).view(batch, heads, nope + rope_dim)
    kv_new = x @ w["kv_down"].t()
    kv_up = w["kv_up"].view(heads, nope + v_dim, kv_rank)
    w_uk, w_uv = kv_up[:, :nope].float(), kv_up[:, nope:].float()
    q_nope, q_pe = q.float().split([nope, rope_dim], dim=-1)
    q_abs = torch.einsum("bhd,hdl->bhl", q_nope, w_uk).contiguous()

    cos, sin = rope_tables(pos + 1, rope_dim, x.device)
    q1, q2 = q_pe[..., :half], q_pe[..., half:]
    qc, qs = cos[pos], sin[pos]
    q_pe = torch.cat([q1 * qc - q2 * qs, q2 * qc + q1 * qs], dim=-1).contiguous()

    latent_out = torch.empty(batch, heads, kv_rank, device=x.device, dtype=torch.float32)
    block_h, block_n = 16, 32
    mla_attention_kernel[(batch, triton.cdiv(heads, block_h))](
        q_abs, q_pe, kv_cache, kv_new, cos, sin, latent_out,
        heads, pos, 1.0 / math.sqrt(nope + rope_dim),
        kv_cache.stride(0), kv_cache.stride(1), kv_new.stride(0),
        KV_RANK=kv_rank, HALF_ROPE=half, BLOCK_H=block_h, BLOCK_N=block_n,
    )
    out = torch.einsum("bhl,hvl->bhv", latent_out, w_uv).to(torch.bfloat16)
    return out.reshape(batch, 1, heads * v_dim) @ w["wo"].t(), kv_new
