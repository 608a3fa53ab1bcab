#!/usr/bin/env python3
"""ckpt_oracle.py - the compressed-tensors library as the oracle for lode's checkpoint loader.

Builds a tiny random transformers Qwen3_5MoeForCausalLM, splits its fused experts into
per-expert nn.Linear modules (as llm-compressor does before quantizing), applies a mixed
compressed-tensors config with the library itself:
  group_0  int4 group 32 symmetric   re:.*mlp\\.experts\\.\\d+\\.(gate|up|down)_proj$
  group_1  int8 channel symmetric    re:.*self_attn\\.(q|k|v|o)_proj$ and one expert exactly
  ignore   lm_head, re: shared experts, re: DeltaNet, re: all of layer 0
computes min/max scales (calculate_qparams), compresses (ModelCompressor, pack-quantized),
saves the state dict with safetensors and config.json with update_config, then decompresses
with the library and writes what lode must reproduce:

  OUT/expected.json  {"modules": [{"name", "bits" (16 = not quantized), "group" (0 = channel
                     or unquantized), "out", "in", "offset"}], "dtype": "bfloat16"}
  OUT/expected.f32   float32 little-endian: each module's decompressed weight [out, in]

  python tests/ref/ckpt_oracle.py OUT
Runs in about a second on a CPU.

The reverse direction checks what `lode mkmodel --quant mixed` writes:

  python tests/ref/ckpt_oracle.py [OUT] --decompress DIR [--decompress DIR2 ...]

reads DIR's quantization_config and tensors with the library (QuantizationConfig, safe_open),
decides every linear module's scheme with the library's own matcher (is_match, match_targets:
ignore first, then exact, regex, class targets), decompresses each packed module with
PackedQuantizationCompressor.decompress, and writes DIR/expected.json and DIR/expected.f32 in
the format above.
"""
import json
import os
import sys

import numpy as np
import torch
from compressed_tensors.compressors import ModelCompressor
from compressed_tensors.quantization import (
    QuantizationArgs,
    QuantizationConfig,
    QuantizationScheme,
    apply_quantization_config,
)
from compressed_tensors.quantization.utils import calculate_qparams
from safetensors.torch import save_file
from transformers import Qwen3_5MoeForCausalLM, Qwen3_5MoeTextConfig

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from ct_decompress import linear_modules, read_tensors  # noqa: E402

SUPER = "model.layers.2.mlp.experts.5.down_proj"


class Expert(torch.nn.Module):
    def __init__(self, h, i):
        super().__init__()
        self.gate_proj = torch.nn.Linear(h, i, bias=False)
        self.up_proj = torch.nn.Linear(h, i, bias=False)
        self.down_proj = torch.nn.Linear(i, h, bias=False)


def main(out):
    torch.manual_seed(1234)
    cfg = Qwen3_5MoeTextConfig(
        vocab_size=256, hidden_size=64, num_hidden_layers=4, num_attention_heads=4,
        num_key_value_heads=2, head_dim=32, linear_conv_kernel_dim=4, linear_key_head_dim=16,
        linear_value_head_dim=16, linear_num_key_heads=2, linear_num_value_heads=4,
        moe_intermediate_size=32, shared_expert_intermediate_size=32, num_experts=8,
        num_experts_per_tok=2, max_position_embeddings=4096, tie_word_embeddings=False,
        rope_parameters={"rope_type": "default", "rope_theta": 10000000.0,
                         "partial_rotary_factor": 0.25},
    )
    model = Qwen3_5MoeForCausalLM(cfg).to(torch.bfloat16)
    with torch.no_grad():
        for p in model.parameters():  # random weights of a realistic spread
            p.copy_(torch.randn_like(p, dtype=torch.float32).mul_(0.05).to(p.dtype))
    H, I = cfg.hidden_size, cfg.moe_intermediate_size
    # per-expert Linear modules, gate = gate_up_proj[e, :I], up = [e, I:], down = down_proj[e]
    for layer in model.model.layers:
        fused = layer.mlp.experts
        experts = torch.nn.ModuleList()
        for e in range(cfg.num_experts):
            x = Expert(H, I).to(torch.bfloat16)
            with torch.no_grad():
                x.gate_proj.weight.copy_(fused.gate_up_proj[e, :I])
                x.up_proj.weight.copy_(fused.gate_up_proj[e, I:])
                x.down_proj.weight.copy_(fused.down_proj[e])
            experts.append(x)
        layer.mlp.experts = experts

    w4 = QuantizationArgs(num_bits=4, type="int", symmetric=True, strategy="group", group_size=32)
    w8 = QuantizationArgs(num_bits=8, type="int", symmetric=True, strategy="channel")
    qcfg = QuantizationConfig(
        config_groups={
            "group_0": QuantizationScheme(
                targets=["re:.*mlp\\.experts\\.\\d+\\.(gate|up|down)_proj$"], weights=w4),
            "group_1": QuantizationScheme(
                targets=["re:.*self_attn\\.(q|k|v|o)_proj$", SUPER], weights=w8),
        },
        ignore=["lm_head", "re:.*shared_expert.*", "re:.*linear_attn\\..*", "re:.*layers\\.0\\..*"],
    )
    apply_quantization_config(model, qcfg)
    with torch.no_grad():
        for name, m in model.named_modules():
            s = getattr(m, "quantization_scheme", None)
            if s is None or s.weights is None:
                continue
            w = m.weight.float()
            if s.weights.strategy == "group":
                g = w.reshape(w.shape[0], -1, s.weights.group_size)
                mn, mx = g.amin(-1), g.amax(-1)
            else:
                mn, mx = w.amin(-1, keepdim=True), w.amax(-1, keepdim=True)
            scale, zp = calculate_qparams(mn, mx, s.weights)
            m.weight_scale.data.copy_(scale.to(m.weight_scale.dtype))
            if hasattr(m, "weight_zero_point"):
                m.weight_zero_point.data.copy_(zp.to(m.weight_zero_point.dtype))
    decision = {}
    for name, m in model.named_modules():
        s = getattr(m, "quantization_scheme", None)
        if isinstance(m, torch.nn.Linear):
            if s is not None and s.weights is not None:
                decision[name] = (s.weights.num_bits, s.weights.group_size or 0)
            else:
                decision[name] = (16, 0)
    comp = ModelCompressor.from_pretrained_model(model, quantization_format="pack-quantized")
    comp.compress_model(model)
    os.makedirs(out, exist_ok=True)
    sd = {k: v.contiguous() for k, v in model.state_dict().items()}
    save_file(sd, os.path.join(out, "model.safetensors"), metadata={"format": "pt"})
    model.config.architectures = ["Qwen3_5MoeForCausalLM"]
    model.config.to_json_file(os.path.join(out, "config.json"))
    comp.update_config(out)
    comp.decompress_model(model)

    mods, blobs, off = [], [], 0
    for name, m in model.named_modules():
        if name not in decision:
            continue
        w = m.weight.detach().float().numpy().astype("<f4")
        bits, group = decision[name]
        mods.append({"name": name, "bits": bits, "group": group, "out": int(w.shape[0]),
                     "in": int(w.shape[1]), "offset": off, "dtype": str(m.weight.dtype)})
        blobs.append(w.tobytes())
        off += w.size
    with open(os.path.join(out, "expected.f32"), "wb") as f:
        for b in blobs:
            f.write(b)
    with open(os.path.join(out, "expected.json"), "w") as f:
        json.dump({"modules": mods}, f, indent=1)
    print(f"wrote {out}: {len(mods)} modules "
          f"({sum(1 for m in mods if m['bits'] == 4)} int4, "
          f"{sum(1 for m in mods if m['bits'] == 8)} int8)")


def write_expected(out, mods_weights):
    mods, off = [], 0
    with open(os.path.join(out, "expected.f32"), "wb") as f:
        for name, bits, group, w in mods_weights:
            a = w.detach().float().numpy().astype("<f4")
            mods.append({"name": name, "bits": bits, "group": group, "out": int(a.shape[0]),
                         "in": int(a.shape[1]), "offset": off, "dtype": str(w.dtype)})
            f.write(a.tobytes())
            off += a.size
    with open(os.path.join(out, "expected.json"), "w") as f:
        json.dump({"modules": mods}, f, indent=1)
    return mods


def decompress_dir(d):
    mods = write_expected(d, linear_modules(d, read_tensors(d)))
    print(f"decompressed {d}: {len(mods)} modules "
          f"({sum(1 for m in mods if m['bits'] == 4)} int4, "
          f"{sum(1 for m in mods if m['bits'] == 8)} int8)")


if __name__ == "__main__":
    # ckpt_oracle.py [OUT] [--decompress DIR]...: both in one process (torch loads once)
    args, dirs = sys.argv[1:], []
    while "--decompress" in args:
        i = args.index("--decompress")
        if i + 1 >= len(args):
            sys.exit("usage: ckpt_oracle.py [OUT] [--decompress DIR]...")
        dirs.append(args[i + 1])
        del args[i:i + 2]
    if len(args) > 1 or (not args and not dirs):
        sys.exit("usage: ckpt_oracle.py [OUT] [--decompress DIR]...")
    if args:
        main(args[0])
    for d in dirs:
        decompress_dir(d)
