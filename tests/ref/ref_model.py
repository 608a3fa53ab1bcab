#!/usr/bin/env python3
"""ref_model.py - the transformers reference for lode's forward pass (issue #5, part a).

Builds tiny random Qwen3.5-MoE models with the transformers classes themselves
(an independent writer: `save_pretrained`, the official fused expert layout),
runs them in float32 on fixed token sequences, and writes a golden directory:

  OUT/<name>/config.json, generation_config.json, model.safetensors   (bf16 weights)
  OUT/<name>/golden.json   manifest: sequences, shapes, file hashes, versions
  OUT/<name>/logits.f32    float32 little-endian [n_seq][T_i][vocab], sequences concatenated
  OUT/<name>/hidden.f32    float32 [n_seq][n_layers + 1][T_i][hidden]: the embedding output,
                           then each decoder layer's output (the last one after the final norm,
                           as transformers returns it)

The weights are stored in bf16 (as the real checkpoint) and the reference runs
in float32 on those bf16 values, so lode's fp32 engine can be compared at a
tight tolerance (max relative error 1e-3, identical argmax).

  python tests/ref/ref_model.py OUT              # all models
  python tests/ref/ref_model.py OUT --only text  # one model

Deterministic: fixed seeds; the same library versions give the same bytes.
"""
import argparse
import hashlib
import json
import math
import os
import sys

import torch

# Tiny dimensions that keep every structural feature of the real model:
# both layer types (full attention every 4th layer), GQA, partial RoPE (1/4 of
# head_dim), value heads = 2 x key heads in DeltaNet, several experts with
# top-k > 1, a shared expert, and in-features that are multiples of 32.
TEXT = dict(
    vocab_size=256,
    hidden_size=64,
    num_hidden_layers=4,
    num_attention_heads=4,
    num_key_value_heads=2,
    head_dim=32,
    linear_conv_kernel_dim=4,
    linear_key_head_dim=16,
    linear_value_head_dim=16,
    linear_num_key_heads=2,
    linear_num_value_heads=4,
    moe_intermediate_size=32,
    shared_expert_intermediate_size=32,
    num_experts=8,
    num_experts_per_tok=2,
    max_position_embeddings=4096,
    rms_norm_eps=1e-6,
    rope_parameters={"rope_type": "default", "rope_theta": 10000000.0,
                     "partial_rotary_factor": 0.25},
    tie_word_embeddings=False,
    eos_token_id=255,
)

# Sequences: short, a single token, and one longer than a DeltaNet chunk (64)
# so the chunked prefill path crosses a chunk boundary.
def sequences(vocab):
    g = torch.Generator().manual_seed(1234)
    long = torch.randint(0, vocab, (80,), generator=g).tolist()
    return [[1, 17, 42, 99, 200, 7, 7, 7, 3, 250, 128, 64], [5], long]


def randomize(model, seed):
    """Every parameter random, scaled so activations stay O(1) through the layers.
    Norm weights get small random values so that '1 + w' mistakes show."""
    g = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for name, p in model.named_parameters():
            if name.endswith("A_log"):
                p.copy_(torch.log(torch.empty(p.shape).uniform_(1.0, 16.0, generator=g)))
            elif name.endswith("dt_bias"):
                p.copy_(torch.empty(p.shape).uniform_(-1.0, 1.0, generator=g))
            elif "norm" in name:
                base = 1.0 if name.endswith("linear_attn.norm.weight") else 0.0
                p.copy_(base + 0.1 * torch.randn(p.shape, generator=g))
            elif "conv1d" in name:
                p.copy_(0.5 * torch.randn(p.shape, generator=g))
            elif p.dim() >= 2:
                fan_in = p.shape[-1]
                p.copy_(torch.randn(p.shape, generator=g) / math.sqrt(fan_in))
            else:
                p.copy_(0.1 * torch.randn(p.shape, generator=g))


def sha256(path):
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            h.update(chunk)
    return h.hexdigest()


def build(kind):
    import transformers
    if kind == "text":
        cfg = transformers.Qwen3_5MoeTextConfig(**TEXT)
        model = transformers.Qwen3_5MoeForCausalLM(cfg)
    elif kind == "vl":
        vision = dict(depth=1, hidden_size=32, intermediate_size=64, num_heads=2, patch_size=16,
                      spatial_merge_size=2, temporal_patch_size=2, out_hidden_size=TEXT["hidden_size"],
                      num_position_embeddings=64)
        cfg = transformers.Qwen3_5MoeConfig(text_config=dict(TEXT), vision_config=vision)
        model = transformers.Qwen3_5MoeForConditionalGeneration(cfg)
    else:
        raise SystemExit(f"unknown model kind {kind}")
    randomize(model, seed=20261127 + (kind == "vl"))
    return model


def run(kind, out):
    import transformers
    d = os.path.join(out, kind)
    os.makedirs(d, exist_ok=True)
    model = build(kind).to(torch.bfloat16)
    # The published checkpoint keeps A_log in float32 (checkpoint-format.md);
    # so does ours, so loaders meet mixed dtypes in one file.
    for name, p in model.named_parameters():
        if name.endswith("A_log"):
            p.data = p.data.float()
    model.save_pretrained(d, safe_serialization=True)
    # The reference: the saved bf16 values, computed in float32.
    model = model.to(torch.float32).eval()
    seqs = sequences(TEXT["vocab_size"])
    logits_f = open(os.path.join(d, "logits.f32"), "wb")
    hidden_f = open(os.path.join(d, "hidden.f32"), "wb")
    argmax = []
    with torch.no_grad():
        for s in seqs:
            ids = torch.tensor([s])
            o = model(input_ids=ids, output_hidden_states=True, use_cache=False)
            logits_f.write(o.logits[0].float().contiguous().numpy().tobytes())
            hs = torch.stack([h[0] for h in o.hidden_states])  # [L+1, T, H]
            hidden_f.write(hs.float().contiguous().numpy().tobytes())
            argmax.append(o.logits[0].argmax(-1).tolist())
    logits_f.close()
    hidden_f.close()
    files = sorted(f for f in os.listdir(d) if f.endswith((".json", ".safetensors")) and f != "golden.json")
    manifest = {
        "model": kind,
        "description": "tiny random Qwen3.5-MoE written by transformers save_pretrained (bf16), "
                       "reference computed in float32",
        "transformers": transformers.__version__,
        "torch": torch.__version__,
        "vocab_size": TEXT["vocab_size"],
        "hidden_size": TEXT["hidden_size"],
        "num_layers": TEXT["num_hidden_layers"],
        "sequences": seqs,
        "argmax": argmax,
        "logits": "logits.f32",
        "hidden": "hidden.f32",
        "checkpoint_sha256": {f: sha256(os.path.join(d, f)) for f in files},
    }
    with open(os.path.join(d, "golden.json"), "w") as f:
        json.dump(manifest, f, indent=1)
    return d


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("out")
    ap.add_argument("--only", choices=["text", "vl"])
    a = ap.parse_args()
    torch.use_deterministic_algorithms(True)
    torch.set_num_threads(1)
    for kind in ([a.only] if a.only else ["text", "vl"]):
        d = run(kind, a.out)
        print(f"wrote {d}")


if __name__ == "__main__":
    sys.exit(main())
