#!/usr/bin/env python3
"""ref_logits.py DIR TOKENS OUT - transformers' float32 logits for a checkpoint.

Loads DIR with the Qwen3.5-MoE classes (text or vision-language layout, from
config.json's architectures), runs the comma-separated token ids and writes
the logits of every position as raw little-endian float32 [T][vocab] to OUT.
A compressed-tensors checkpoint is first decompressed by the compressed-tensors
library itself into a dense float32 state dict (see load_dense)."""
import json
import os
import sys

import torch


def load_dense(d, cfg):
    """Dense float32 weights of a pack-quantized checkpoint, each quantized module
    decompressed by the compressed-tensors library itself, names as written (per expert)."""
    sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
    from ct_decompress import linear_modules, read_tensors
    tensors = read_tensors(d)
    dense = {}
    for name, bits, group, w in linear_modules(d, tensors, float_scales=True):
        dense[name + ".weight"] = w.float()
    for k, v in tensors.items():
        leaf = k.rpartition(".")[2]
        if leaf.startswith("weight_") or k in dense:
            continue
        dense[k] = v.float()
    return dense


def fuse_experts(dense, cfg_text, prefix):
    """Per-expert gate/up/down -> the fused 3-D tensors of the transformers module."""
    n = cfg_text["num_hidden_layers"]
    E = cfg_text["num_experts"]
    for l in range(n):
        base = f"{prefix}layers.{l}.mlp.experts"
        if f"{base}.0.gate_proj.weight" not in dense:
            continue
        gu = [torch.cat([dense.pop(f"{base}.{e}.gate_proj.weight"), dense.pop(f"{base}.{e}.up_proj.weight")], 0) for e in range(E)]
        dn = [dense.pop(f"{base}.{e}.down_proj.weight") for e in range(E)]
        dense[f"{base}.gate_up_proj"] = torch.stack(gu)
        dense[f"{base}.down_proj"] = torch.stack(dn)
    return dense


def main():
    d, toks, out = sys.argv[1], sys.argv[2], sys.argv[3]
    import transformers
    cfg = json.load(open(os.path.join(d, "config.json")))
    arch = cfg["architectures"][0]
    cls = getattr(transformers, arch)
    ids = torch.tensor([[int(x) for x in toks.split(",")]])
    if "quantization_config" in cfg:
        dense = load_dense(d, cfg)
        plain = {k: v for k, v in cfg.items() if k != "quantization_config"}
        conf = transformers.AutoConfig.for_model(**plain)
        text = plain.get("text_config", plain)
        prefix = "model.language_model." if arch.endswith("ConditionalGeneration") else "model."
        dense = fuse_experts(dense, text, prefix)
        model = cls(conf).float()
        missing, unexpected = model.load_state_dict(dense, strict=False)
        missing = [m for m in missing if "visual" not in m]
        if missing or unexpected:
            raise SystemExit(f"state dict mismatch: missing {missing[:5]}, unexpected {unexpected[:5]}")
    else:
        model = cls.from_pretrained(d, dtype=torch.float32)
    model.eval()
    with torch.no_grad():
        lg = model(input_ids=ids, use_cache=False).logits[0].float()
    open(out, "wb").write(lg.contiguous().numpy().tobytes())


if __name__ == "__main__":
    main()
