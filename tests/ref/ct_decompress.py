"""ct_decompress.py - a checkpoint directory's linear weights as the compressed-tensors
library decompresses them (shared by ckpt_oracle.py and ref_logits.py).

read_tensors(d)            every tensor of the checkpoint (sharded or not), by name
linear_modules(d, tensors, float_scales=False)
                           [(module, bits, group, weight)] for every linear module: the
                           library's own matcher (is_match / match_targets: ignore first, then
                           exact, regex, class targets) picks the scheme and
                           PackedQuantizationCompressor.decompress dequantizes packed ones;
                           unquantized ones come back as stored (bits 16, group 0). The library
                           dequantizes in the scale's dtype; float_scales=True hands it the same
                           scales as float32 so the products are exact (lode computes them in
                           fp32), instead of rounded to bf16 once more.
"""
import json
import os

import torch
from compressed_tensors.compressors.pack_quantized.base import PackedQuantizationCompressor
from compressed_tensors.quantization import QuantizationConfig
from compressed_tensors.utils.match import is_match, match_targets
from safetensors import safe_open


def read_tensors(d):
    idx = os.path.join(d, "model.safetensors.index.json")
    files = sorted(set(json.load(open(idx))["weight_map"].values())) if os.path.exists(idx) \
        else ["model.safetensors"]
    tensors = {}
    for fn in files:
        with safe_open(os.path.join(d, fn), "pt") as f:
            for k in f.keys():
                tensors[k] = f.get_tensor(k)
    return tensors


def quant_config(d):
    cfg = json.load(open(os.path.join(d, "config.json")))
    qc = cfg.get("quantization_config") or cfg.get("text_config", {}).get("quantization_config")
    return QuantizationConfig.model_validate(qc) if qc else None


def linear_modules(d, tensors, float_scales=False):
    qconf = quant_config(d)
    target_scheme = {}
    for scheme in (qconf.config_groups.values() if qconf else []):
        for t in scheme.targets:
            target_scheme.setdefault(t, scheme)
    lin = torch.nn.Linear(1, 1)
    names = set()
    for k, v in tensors.items():
        mod, _, leaf = k.rpartition(".")
        if leaf == "weight_packed" or (leaf == "weight" and v.dim() == 2 and
                                       not mod.endswith(("embed_tokens", "mlp.gate"))):
            names.add(mod)
    out = []
    for name in sorted(names):
        if not qconf or not is_match(name, lin, list(target_scheme), qconf.ignore or []):
            out.append((name, 16, 0, tensors[name + ".weight"]))
            continue
        scheme = target_scheme[match_targets(name, lin, list(target_scheme))[0]]
        sd = {k: tensors[name + "." + k] for k in ("weight_packed", "weight_scale", "weight_shape")}
        if float_scales:
            sd["weight_scale"] = sd["weight_scale"].float()
        w = PackedQuantizationCompressor.decompress(sd, scheme)["weight"]
        out.append((name, scheme.weights.num_bits, scheme.weights.group_size or 0, w))
    return out
