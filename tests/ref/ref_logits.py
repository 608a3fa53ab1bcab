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
    decompressed by the compressed-tensors library itself (its own matcher picks
    the scheme), names as written (per expert)."""
    from compressed_tensors.compressors.pack_quantized.base import PackedQuantizationCompressor
    from compressed_tensors.quantization import QuantizationConfig
    from compressed_tensors.utils.match import is_match, match_targets
    from safetensors import safe_open
    qconf = QuantizationConfig.model_validate(cfg["quantization_config"])
    target_scheme = {}
    for scheme in qconf.config_groups.values():
        for t in scheme.targets:
            target_scheme.setdefault(t, scheme)
    idx = os.path.join(d, "model.safetensors.index.json")
    files = sorted(set(json.load(open(idx))["weight_map"].values())) if os.path.exists(idx) \
        else ["model.safetensors"]
    tensors = {}
    for fn in files:
        with safe_open(os.path.join(d, fn), "pt") as f:
            for k in f.keys():
                tensors[k] = f.get_tensor(k)
    lin = torch.nn.Linear(1, 1)
    dense = {}
    for k, v in tensors.items():
        mod, _, leaf = k.rpartition(".")
        if leaf in ("weight_scale", "weight_shape", "weight_zero_point", "weight_g_idx"):
            continue
        if leaf == "weight_packed":
            if not is_match(mod, lin, list(target_scheme), qconf.ignore or []):
                raise SystemExit(f"{mod}: packed but matched by no scheme")
            scheme = target_scheme[match_targets(mod, lin, list(target_scheme))[0]]
            sd = {x: tensors[mod + "." + x] for x in ("weight_packed", "weight_scale", "weight_shape")}
            # The library dequantizes in the scale's dtype; with bf16 scales every weight would be
            # rounded to bf16 once more. lode computes code * scale exactly in fp32, so give the
            # library fp32 scales (same values) to get the exact products.
            sd["weight_scale"] = sd["weight_scale"].float()
            dense[mod + ".weight"] = PackedQuantizationCompressor.decompress(sd, scheme)["weight"].float()
        else:
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
