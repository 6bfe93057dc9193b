#!/usr/bin/python3
"""Generate small PEFT adapter checkpoints (tests/fixtures/peft/checkpoints_extra/) with PEFT's REAL code.

Usage:
    /usr/bin/python3 tests/gen/gen_checkpoints.py PEFT_SRC [--out DIR] [--cases NAME ...]

PEFT_SRC is a checkout of huggingface/peft (repository root or the folder holding the `peft`
package); it is imported at run time with the same stubs as tests/gen/gen_parity.py (nothing of
PEFT is copied here). Each case builds a tiny model whose adapted modules sit at the paths of a
transformer (`model.layers.<i>.self_attn.q_proj`, `...v_proj`, `model.layers.<i>.mlp.down_proj`),
wraps it with `peft.get_peft_model`, sets random trainable values, and writes, the way the examples
in tests/fixtures/peft/checkpoints/ were made:

  <case>/adapter_config.json        written by PEFT's own PeftConfig.save_pretrained
  <case>/adapter_model.safetensors  PEFT's get_peft_model_state_dict (the keys save_pretrained saves),
                                    in the tensors' own dtype (F32 / BF16 / F16)
  <case>/base_model.safetensors     the frozen base weights and biases (`<module path>.weight/.bias`)
                                    plus one tensor no adapter touches (`model.norm.weight`)
  expected/<case>.expected.safetensors
                                    `<module path>.delta_weight` (PEFT's get_delta_weight) and
                                    `<module path>.merged_weight` (PEFT's merge(safe_merge=True)), F32

Requires torch (Debian python3-torch 1.13) and numpy.
"""

import argparse
import copy
import json
import math
import os
import struct
import sys
from collections import OrderedDict

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import gen_parity  # noqa: E402  (stubs + PEFT import)

# (out, in) of q_proj, v_proj (layer 0) and down_proj (layer 1)
CASES = OrderedDict(
    [
        ("vera_ckpt", dict(method="vera", r=6, key=7, shapes=[(48, 32), (16, 32), (32, 64)], seed=2001)),
        ("vera_noproj_ckpt", dict(method="vera", r=4, key=8, save_projection=False, shapes=[(24, 20), (12, 20), (20, 36)], seed=2002)),
        ("randlora_sparse_ckpt", dict(method="randlora", r=6, key=5, sparse=True, alpha=60, shapes=[(48, 32), (16, 32), (32, 64)], seed=2003)),
        ("randlora_very_sparse_noproj_ckpt", dict(method="randlora", r=4, key=11, very_sparse=True, alpha=40, save_projection=False, shapes=[(40, 30), (20, 30), (30, 50)], seed=2004)),
        ("randlora_dense_noproj_ckpt", dict(method="randlora", r=8, key=3, alpha=160, save_projection=False, shapes=[(48, 32), (16, 32), (32, 64)], seed=2005)),
        ("randlora_layer_copies_ckpt", dict(method="randlora", r=5, key=1, alpha=50, drop_canonical=True, shapes=[(36, 28), (28, 28), (28, 44)], seed=2006)),
        ("randlora_bf16_ckpt", dict(method="randlora", r=4, key=9, alpha=32, dtype="bfloat16", shapes=[(24, 16), (8, 16), (16, 40)], seed=2007)),
        ("lora_f16_ckpt", dict(method="lora", r=4, alpha=16, use_rslora=True, dtype="float16", shapes=[(24, 16), (8, 16), (16, 40)], seed=2008)),
    ]
)
PATHS = ["model.layers.0.self_attn.q_proj", "model.layers.0.self_attn.v_proj", "model.layers.1.mlp.down_proj"]
ST_DTYPE = {"float32": "F32", "bfloat16": "BF16", "float16": "F16"}


def build_model(shapes):
    from torch import nn

    (qo, qi), (vo, vi), (do, di) = shapes

    class Attn(nn.Module):
        def __init__(self):
            super().__init__()
            self.q_proj = nn.Linear(qi, qo)
            self.v_proj = nn.Linear(vi, vo)

    class Mlp(nn.Module):
        def __init__(self):
            super().__init__()
            self.down_proj = nn.Linear(di, do)

    class Layer(nn.Module):
        def __init__(self, attn):
            super().__init__()
            if attn:
                self.self_attn = Attn()
            else:
                self.mlp = Mlp()

    class Inner(nn.Module):
        def __init__(self):
            super().__init__()
            self.layers = nn.ModuleList([Layer(True), Layer(False)])
            self.norm = nn.LayerNorm(8)

    class Model(nn.Module):
        def __init__(self):
            super().__init__()
            self.model = Inner()

    return Model()


def write_st(path, tensors):
    """safetensors writer for F32 / BF16 / F16 torch tensors (sorted keys, like safetensors)."""
    import torch

    header = OrderedDict([("__metadata__", {"format": "pt"})])
    blobs, off = [], 0
    for name in sorted(tensors):
        t = tensors[name].detach().contiguous().cpu()
        dt = ST_DTYPE[str(t.dtype).replace("torch.", "")]
        if t.dtype == torch.bfloat16:
            b = t.view(torch.int16).numpy().astype("<i2").tobytes()
        elif t.dtype == torch.float16:
            b = t.numpy().astype("<f2").tobytes()
        else:
            b = t.numpy().astype("<f4").tobytes()
        header[name] = OrderedDict([("dtype", dt), ("shape", list(t.shape)), ("data_offsets", [off, off + len(b)])])
        blobs.append(b)
        off += len(b)
    h = json.dumps(header, separators=(",", ":")).encode()
    h += b" " * ((-len(h)) % 8)
    with open(path, "wb") as f:
        f.write(struct.pack("<Q", len(h)))
        f.write(h)
        for b in blobs:
            f.write(b)


def make_case(peft, name, case, out_dir):
    import torch

    torch.manual_seed(case["seed"])
    dtype = getattr(torch, case.get("dtype", "float32"))
    model = build_model(case["shapes"]).to(dtype)
    targets = ["q_proj", "v_proj", "down_proj"]
    m = case["method"]
    if m == "randlora":
        cfg = peft.RandLoraConfig(r=case["r"], randlora_alpha=case["alpha"], projection_prng_key=case["key"],
                                  sparse=case.get("sparse", False), very_sparse=case.get("very_sparse", False),
                                  save_projection=case.get("save_projection", True), target_modules=targets)
    elif m == "vera":
        cfg = peft.VeraConfig(r=case["r"], projection_prng_key=case["key"], save_projection=case.get("save_projection", True),
                              target_modules=targets)
    else:
        cfg = peft.LoraConfig(r=case["r"], lora_alpha=case["alpha"], use_rslora=case.get("use_rslora", False), target_modules=targets)
    pm = peft.get_peft_model(model, cfg, autocast_adapter_dtype=(dtype == torch.float32))
    g = torch.Generator().manual_seed(case["seed"])
    layers = OrderedDict()
    with torch.no_grad():
        for path in PATHS:
            ly = pm.base_model.model.get_submodule(path)
            assert type(ly).__module__.startswith("peft.tuners."), type(ly)
            layers[path] = ly
            base = ly.get_base_layer()
            o, i = base.weight.shape
            base.weight.copy_((torch.randn(o, i, generator=g) / math.sqrt(i)).to(dtype))
            base.bias.copy_((torch.randn(o, generator=g) * 0.1).to(dtype))
            if m == "randlora":
                lam, gam = ly.randlora_lambda["default"], ly.randlora_gamma["default"]
                lam.copy_(torch.randn(lam.shape, generator=g) * 0.05)
                gam.copy_(gam.float() * (1.0 + 0.5 * torch.randn(gam.shape, generator=g)))
            elif m == "vera":
                ly.vera_lambda_b["default"].copy_(torch.randn(o, generator=g))
                ly.vera_lambda_d["default"].copy_(torch.randn(case["r"], generator=g))
            else:
                ly.lora_A["default"].weight.copy_(torch.randn(case["r"], i, generator=g) / math.sqrt(i))
                ly.lora_B["default"].weight.copy_(torch.randn(o, case["r"], generator=g) * 0.1)
    d = os.path.join(out_dir, name)
    os.makedirs(d, exist_ok=True)
    pc = pm.peft_config["default"]
    pc.inference_mode = True  # as PeftModel.save_pretrained does
    pc.save_pretrained(d)  # PEFT's own adapter_config.json writer
    sd = peft.utils.get_peft_model_state_dict(pm, adapter_name="default")
    if case.get("drop_canonical"):
        sd = {k: v for k, v in sd.items() if not k.startswith("base_model.randlora_")}
    write_st(os.path.join(d, "adapter_model.safetensors"), {k: v.clone() for k, v in sd.items()})
    base = {}
    exp = {}
    for path, ly in layers.items():
        bl = ly.get_base_layer()
        base[path + ".weight"] = bl.weight.detach().clone()
        base[path + ".bias"] = bl.bias.detach().clone()
        with torch.no_grad():
            exp[path + ".delta_weight"] = ly.get_delta_weight("default").float().clone()
            lm = copy.deepcopy(ly)
            lm.merge(safe_merge=True)
            exp[path + ".merged_weight"] = lm.get_base_layer().weight.float().clone()
    base["model.norm.weight"] = pm.base_model.model.model.norm.weight.detach().clone()
    write_st(os.path.join(d, "base_model.safetensors"), base)
    os.makedirs(os.path.join(out_dir, "expected"), exist_ok=True)
    write_st(os.path.join(out_dir, "expected", name + ".expected.safetensors"), exp)
    print(f"wrote {d}: {len(sd)} adapter tensors ({', '.join(sorted({ST_DTYPE[str(v.dtype)[6:]] for v in sd.values()}))})")


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("peft_src")
    ap.add_argument("--out", default=os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "fixtures", "peft", "checkpoints_extra"))
    ap.add_argument("--cases", nargs="*", default=None)
    args = ap.parse_args()
    peft = gen_parity._import_peft(args.peft_src)
    import torch

    torch.set_num_threads(1)
    for name in args.cases or list(CASES):
        make_case(peft, name, CASES[name], args.out)


if __name__ == "__main__":
    main()
