"""GPT generation: 32 new tokens (greedy) after a 16-token prompt, batch 1, with a 4-layer GPT (width 128,
4 heads, vocab 96, context 128), with the KV cache and without it (the whole sequence re-run per token).
PyTorch runs the same network, same weights, written with its functional ops and the same cache."""

from __future__ import annotations

import numpy as np
from harness import Result, setup_torch, time_pair

NEW, PROMPT = 32, 16


def _dw_model():
    import deepwise as dw
    from deepwise.models import GPT

    dw.manual_seed(0)
    return GPT(96, block_size=128, n_layer=4, n_head=4, n_embd=128)


def _torch_generate(torch, w, n_layer, n_head):
    """Greedy generation with the deepwise GPT's weights, cached or not."""
    F = torch.nn.functional

    def run(ids, past):
        B, T = ids.shape
        P = 0 if past is None else past[0][0].shape[2]
        x = w["wte.weight"][ids] + w["wpe.weight"][torch.arange(P, P + T)]
        C = x.shape[-1]
        cache = []
        for i in range(n_layer):
            p = f"blocks.{i}."
            h = F.layer_norm(x, (C,), w[p + "ln_1.weight"], w[p + "ln_1.bias"])
            q, k, v = F.linear(h, w[p + "attn.c_attn.weight"], w[p + "attn.c_attn.bias"]).split(C, dim=2)
            q, k, v = (t.reshape(B, T, n_head, C // n_head).transpose(1, 2) for t in (q, k, v))
            if past is not None:
                k, v = torch.cat([past[i][0], k], 2), torch.cat([past[i][1], v], 2)
            cache.append((k, v))
            y = F.scaled_dot_product_attention(q, k, v, is_causal=past is None)
            x = x + F.linear(y.transpose(1, 2).reshape(B, T, C), w[p + "attn.c_proj.weight"], w[p + "attn.c_proj.bias"])
            h = F.layer_norm(x, (C,), w[p + "ln_2.weight"], w[p + "ln_2.bias"])
            h = F.gelu(F.linear(h, w[p + "mlp_fc.weight"], w[p + "mlp_fc.bias"]))
            x = x + F.linear(h, w[p + "mlp_proj.weight"], w[p + "mlp_proj.bias"])
        x = F.layer_norm(x, (C,), w["ln_f.weight"], w["ln_f.bias"])
        return F.linear(x[:, -1], w["wte.weight"]), cache

    def generate(ids, new, use_cache):
        with torch.no_grad():
            seq, cache = ids, None
            for _ in range(new):
                if use_cache and cache is not None:
                    logits, cache = run(seq[:, -1:], cache)
                else:
                    logits, cache = run(seq, None)
                seq = torch.cat([seq, logits.argmax(-1, keepdim=True)], 1)
        return seq

    return generate


def run():
    torch = setup_torch()
    model = _dw_model()
    prompt = np.random.default_rng(0).integers(0, 96, (1, PROMPT))
    th_gen = None
    if torch is not None:
        w = {k: torch.tensor(np.asarray(v.numpy())) for k, v in model.state_dict().items()}
        th_gen = _torch_generate(torch, w, 4, 4)
        th_prompt = torch.tensor(prompt)
        # same weights, same greedy tokens
        ref = th_gen(th_prompt, 8, True).numpy()
        assert (model.generate(prompt, 8, temperature=0).numpy() == ref).all(), "deepwise and PyTorch GPTs differ"
    out = []
    for use_cache, label in ((True, "with KV cache"), (False, "without cache")):
        def dw_step(use_cache=use_cache):
            model.generate(prompt, NEW, temperature=0, use_cache=use_cache)

        th_step = None if th_gen is None else (lambda use_cache=use_cache: th_gen(th_prompt, NEW, use_cache))
        dw_s, th_s, mem = time_pair(dw_step, th_step, repeats=3, warmup=1, blocks=3)
        note = " / ".join(f"{name} {NEW / s:.0f} tokens/s" for name, s in (("deepwise", dw_s), ("PyTorch", th_s))
                          if s)
        out.append(Result("gpt", f"GPT generate {NEW} tokens {label} (4 layers, 128 wide, prompt {PROMPT})",
                          dw_s, th_s, note=note, extra=mem))
    return out
