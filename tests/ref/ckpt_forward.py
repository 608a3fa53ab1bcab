#!/usr/bin/env python3
"""ckpt_forward.py - load a `lode mkmodel` checkpoint with transformers and check it is sane.

  python tests/ref/ckpt_forward.py DIR [DIR...]

For each directory (text layout; bf16 fused experts, or mixed compressed-tensors which
transformers decompresses through the compressed-tensors library), loads
Qwen3_5MoeForCausalLM without any missing or unexpected weight, runs one forward pass in
float32 over 24 tokens, and checks that every hidden state is finite with a standard deviation
in [0.05, 50] (activations neither collapse nor explode through the layers) and that the logits
vary. Prints one line per directory; exits 1 on the first failure.
"""
import sys

import torch
from transformers import Qwen3_5MoeForCausalLM


def check(d):
    model, info = Qwen3_5MoeForCausalLM.from_pretrained(d, dtype=torch.float32,
                                                        output_loading_info=True)
    bad = {k: v for k, v in info.items() if v and k in ("missing_keys", "unexpected_keys",
                                                         "mismatched_keys")}
    if bad:
        return f"loading info: {bad}"
    model.eval()
    ids = torch.tensor([[(i * 37 + 11) % model.config.vocab_size for i in range(24)]])
    with torch.no_grad():
        out = model(ids, output_hidden_states=True)
    stds = []
    for i, h in enumerate(out.hidden_states):
        if not torch.isfinite(h).all():
            return f"hidden state {i} is not finite"
        stds.append(h.float().std().item())
    if min(stds) < 0.05 or max(stds) > 50:
        return f"hidden std out of range: {['%.3g' % s for s in stds]}"
    lg = out.logits
    if not torch.isfinite(lg).all() or lg.std().item() < 1e-2:
        return f"logits degenerate (std {lg.std().item():.3g})"
    print(f"ok {d}: hidden std {min(stds):.3g}..{max(stds):.3g} over {len(stds)} states, "
          f"logits std {lg.std().item():.3g}")
    return None


def main():
    for d in sys.argv[1:]:
        err = check(d)
        if err:
            print(f"FAIL {d}: {err}")
            sys.exit(1)


if __name__ == "__main__":
    main()
