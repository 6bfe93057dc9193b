#!/usr/bin/python3
"""Generate PEFT parity fixtures (format `peft-parity-v1`) by running PEFT's REAL code.

Usage:
    /usr/bin/python3 tests/gen/gen_parity.py PEFT_SRC [--peft-commit SHA] [--out DIR]
                                             [--reproduce FIXTURE_DIR] [--cases NAME ...]

PEFT_SRC is a checkout (or `git archive` extract) of huggingface/peft: either the repository
root (containing src/peft) or the folder that directly contains the `peft` package. Nothing of
PEFT is copied into this project: the package is imported from PEFT_SRC at run time.

PEFT's own `peft` package is imported for real (`get_peft_model`, `RandLoraConfig`,
`VeraConfig`, `LoraConfig`, the tuner layers and models, `BufferDict`, `BaseTuner`...). Only the
third-party packages that PEFT imports but that are not needed on this path are stubbed:
`transformers`, `accelerate`, `huggingface_hub`, `safetensors` (every attribute is an inert
class). `accelerate.utils.imports.is_bf16_available` is stubbed to return True, which is what
accelerate returns on a CPU-only machine, so dense RandLora bases are generated in bfloat16.
torch 1.13's `nn.init.kaiming_uniform_` lacks the `generator=` keyword (added in torch 2.1); it
is shimmed with torch's own bound computation followed by `uniform_(-bound, bound, generator=g)`.

Requires torch (Debian python3-torch 1.13), numpy, python3-packaging, python3-tqdm.

--reproduce DIR regenerates the fixtures found in DIR from their own inputs (weights, adapter
values, x, grad_output) and reports how the regenerated bases/inits/outputs compare; it does not
write anything.
"""

import argparse
import copy
import importlib.abc
import importlib.machinery
import json
import math
import os
import struct
import subprocess
import sys
import types
from collections import OrderedDict

# --------------------------------------------------------------------------------------------
# Stubs for third-party packages PEFT imports but which the layer code path does not use.
# --------------------------------------------------------------------------------------------
STUB_ROOTS = ("transformers", "accelerate", "huggingface_hub", "safetensors")


class _Dummy:
    def __init__(self, *a, **k):
        super().__init__()

    def __call__(self, *a, **k):
        return _Dummy()

    def __bool__(self):
        return False


class _StubModule(types.ModuleType):
    def __getattr__(self, name):
        if name.startswith("__"):
            raise AttributeError(name)
        cls = type(name, (_Dummy,), {"__module__": self.__name__})
        setattr(self, name, cls)
        return cls


class _StubFinder(importlib.abc.MetaPathFinder, importlib.abc.Loader):
    def find_spec(self, fullname, path=None, target=None):
        if fullname.split(".")[0] in STUB_ROOTS:
            return importlib.machinery.ModuleSpec(fullname, self, is_package=True)
        return None

    def create_module(self, spec):
        m = _StubModule(spec.name)
        m.__path__ = []
        return m

    def exec_module(self, module):
        name = module.__name__
        if name == "transformers":
            module.__version__ = "4.57.0"
        elif name == "accelerate":
            module.__version__ = "1.10.0"
        elif name == "accelerate.utils.imports":
            # accelerate returns True on a CPU-only machine (no CUDA/MPS/XPU/MLU/NPU).
            module.is_bf16_available = lambda *a, **k: True


def _install_shims():
    sys.meta_path.insert(0, _StubFinder())
    import torch

    orig = torch.nn.init.kaiming_uniform_

    def kaiming_uniform_(tensor, a=0, mode="fan_in", nonlinearity="leaky_relu", generator=None):
        if generator is None:
            return orig(tensor, a=a, mode=mode, nonlinearity=nonlinearity)
        # identical to torch >= 2.1's kaiming_uniform_ with a generator
        fan = torch.nn.init._calculate_correct_fan(tensor, mode)
        gain = torch.nn.init.calculate_gain(nonlinearity, a)
        std = gain / math.sqrt(fan)
        bound = math.sqrt(3.0) * std
        with torch.no_grad():
            return tensor.uniform_(-bound, bound, generator=generator)

    torch.nn.init.kaiming_uniform_ = kaiming_uniform_


def _import_peft(src):
    cand = [src, os.path.join(src, "src")]
    for c in cand:
        if os.path.isfile(os.path.join(c, "peft", "__init__.py")):
            sys.path.insert(0, os.path.abspath(c))
            break
    else:
        sys.exit(f"no peft package under {src} (looked in {cand})")
    _install_shims()
    import peft

    return peft


# --------------------------------------------------------------------------------------------
# safetensors (hand-written: Debian has no python3-safetensors)
# --------------------------------------------------------------------------------------------
def write_safetensors(path, tensors, metadata):
    import numpy as np

    header = OrderedDict()
    header["__metadata__"] = OrderedDict((k, str(v)) for k, v in metadata.items())
    blobs = []
    off = 0
    for name in sorted(tensors):
        a = np.ascontiguousarray(tensors[name], dtype="<f4")
        b = a.tobytes()
        header[name] = OrderedDict(
            [("dtype", "F32"), ("shape", list(a.shape)), ("data_offsets", [off, off + len(b)])]
        )
        blobs.append(b)
        off += len(b)
    h = json.dumps(header, separators=(",", ":")).encode()
    h += b" " * ((-len(h)) % 8)
    with open(path, "wb") as f:
        f.write(struct.pack("<Q", len(h)))
        f.write(h)
        for b in blobs:
            f.write(b)


def read_safetensors(path):
    import numpy as np

    with open(path, "rb") as f:
        buf = f.read()
    n = struct.unpack("<Q", buf[:8])[0]
    h = json.loads(buf[8 : 8 + n], object_pairs_hook=OrderedDict)
    meta = h.pop("__metadata__", {})
    out = OrderedDict()
    for k, v in h.items():
        assert v["dtype"] == "F32", (k, v["dtype"])
        s, e = v["data_offsets"]
        out[k] = np.frombuffer(buf[8 + n + s : 8 + n + e], dtype="<f4").reshape(v["shape"]).copy()
    return meta, out


# --------------------------------------------------------------------------------------------
# cases
# --------------------------------------------------------------------------------------------
# shapes are (out, in), like nn.Linear.weight
CASES = OrderedDict(
    [
        ("randlora_dense_three_layers", dict(method="randlora", r=4, key=42, alpha=64, shapes=[(20, 12), (12, 30), (18, 18)], tokens=5, seed=1001)),
        ("randlora_dense_r1", dict(method="randlora", r=1, key=3, alpha=10, shapes=[(10, 6)], tokens=3, seed=1002)),
        ("randlora_dense_r_gt_min", dict(method="randlora", r=16, key=0, alpha=32, shapes=[(8, 12)], tokens=4, seed=1003)),
        ("randlora_sparse_two_layers", dict(method="randlora", sparse=True, r=6, key=5, alpha=60, shapes=[(30, 20), (16, 40)], tokens=4, seed=1004)),
        ("randlora_very_sparse_two_layers", dict(method="randlora", very_sparse=True, r=3, key=11, alpha=30, shapes=[(9, 64), (40, 25)], tokens=4, seed=1005)),
        ("randlora_dense_key_big", dict(method="randlora", r=8, key=123456789, alpha=160, shapes=[(50, 33)], tokens=3, seed=1006)),
        ("vera_three_layers", dict(method="vera", r=5, key=9, d_initial=0.1, shapes=[(20, 12), (12, 30), (18, 18)], tokens=4, seed=1007)),
        ("lora_r3", dict(method="lora", r=3, alpha=5, shapes=[(14, 22)], tokens=4, seed=1008)),
        ("lora_rslora_r6", dict(method="lora", r=6, alpha=12, use_rslora=True, shapes=[(33, 17)], tokens=2, seed=1009)),
    ]
)

PARAMS = {
    "randlora": ["randlora_lambda", "randlora_gamma"],
    "vera": ["vera_lambda_b", "vera_lambda_d"],
    "lora": ["lora_A.weight", "lora_B.weight"],
}
REF_BLAS_DIR = "/usr/lib/x86_64-linux-gnu/blas"
BASES = {"randlora": ["randlora_A", "randlora_B"], "vera": ["vera_A", "vera_B"], "lora": []}


def fmt_num(v):
    """Metadata number: ints as ints, floats via repr (0.1 -> '0.1', 64.0 -> '64')."""
    if isinstance(v, float) and v.is_integer():
        return str(int(v))
    return str(v)


def build(peft, case):
    """Wrap a tiny model of independent nn.Linear layers with PEFT's own get_peft_model."""
    import torch
    from torch import nn

    class Tiny(nn.Module):
        def __init__(self, shapes):
            super().__init__()
            self.layers = nn.ModuleList([nn.Linear(i, o) for (o, i) in shapes])

    n = len(case["shapes"])
    targets = [f"layers.{i}" for i in range(n)]
    m = case["method"]
    if m == "randlora":
        cfg = peft.RandLoraConfig(
            r=case["r"],
            randlora_alpha=case["alpha"],
            projection_prng_key=case["key"],
            sparse=case.get("sparse", False),
            very_sparse=case.get("very_sparse", False),
            target_modules=targets,
        )
    elif m == "vera":
        cfg = peft.VeraConfig(
            r=case["r"], projection_prng_key=case["key"], d_initial=case.get("d_initial", 0.1), target_modules=targets
        )
    elif m == "lora":
        cfg = peft.LoraConfig(
            r=case["r"], lora_alpha=case["alpha"], use_rslora=case.get("use_rslora", False), target_modules=targets
        )
    else:
        raise ValueError(m)
    model = Tiny(case["shapes"])
    pm = peft.get_peft_model(model, cfg)
    layers = [pm.base_model.model.layers[i] for i in range(n)]
    for ly in layers:
        assert type(ly).__module__.startswith("peft.tuners."), type(ly)
    return pm, layers


def get_param(layer, method, name):
    if method == "lora":
        mod, attr = name.split(".")
        return getattr(getattr(layer, mod)["default"], attr)
    return getattr(layer, name)["default"]


def get_bases(pm, method):
    return {b: getattr(pm.base_model, b)["default"] for b in BASES[method]}


def metadata(case, peft_commit, torch_version):
    m = case["method"]
    md = OrderedDict(
        [
            ("format", "peft-parity-v1"),
            ("method", m),
            ("r", str(case["r"])),
            ("tokens", str(case["tokens"])),
            ("layers", str(len(case["shapes"]))),
            ("projection_prng_key", str(case.get("key", 0))),
            ("torch", torch_version),
            ("peft_commit", peft_commit),
            ("dtype", "float32"),
        ]
    )
    if m == "lora":
        md["alpha"] = fmt_num(case["alpha"])
        md["use_rslora"] = "true" if case.get("use_rslora", False) else "false"
    elif m == "randlora":
        dense = not (case.get("sparse", False) or case.get("very_sparse", False))
        md["alpha"] = fmt_num(case["alpha"])
        md["sparse"] = "true" if case.get("sparse", False) else "false"
        md["very_sparse"] = "true" if case.get("very_sparse", False) else "false"
        md["bases_dtype"] = "bfloat16" if dense else "float32"
    elif m == "vera":
        md["d_initial"] = fmt_num(case.get("d_initial", 0.1))
    return md


def random_inputs(case, pm, layers, seed):
    """Random base weights, adapter values, x and grad_output (deterministic in `seed`)."""
    import torch

    g = torch.Generator().manual_seed(seed)
    m = case["method"]
    vals = []
    for (o, i), ly in zip(case["shapes"], layers):
        d = OrderedDict()
        d["weight"] = torch.randn(o, i, generator=g) / math.sqrt(i)
        d["bias"] = torch.randn(o, generator=g) * 0.1
        if m == "randlora":
            lam = get_param(ly, m, "randlora_lambda")
            gam = get_param(ly, m, "randlora_gamma")
            d["randlora_lambda"] = torch.randn(lam.shape, generator=g) * 0.05
            d["randlora_gamma"] = gam.detach() * (1.0 + 0.5 * torch.randn(gam.shape, generator=g))
        elif m == "vera":
            d["vera_lambda_b"] = torch.randn(o, generator=g)
            d["vera_lambda_d"] = torch.randn(case["r"], generator=g)
        elif m == "lora":
            d["lora_A.weight"] = torch.randn(case["r"], i, generator=g) / math.sqrt(i)
            d["lora_B.weight"] = torch.randn(o, case["r"], generator=g) * 0.1
        d["x"] = torch.randn(case["tokens"], i, generator=g)
        d["grad_output"] = torch.randn(case["tokens"], o, generator=g)
        vals.append(d)
    return vals


def run_case(pm, layers, case, vals):
    """Set values into PEFT's layers, run forward/backward/get_delta_weight in f32 and f64."""
    import torch

    m = case["method"]
    out = OrderedDict()
    with torch.no_grad():
        for ly, v in zip(layers, vals):
            base = ly.get_base_layer()
            base.weight.copy_(torch.as_tensor(v["weight"]))
            base.bias.copy_(torch.as_tensor(v["bias"]))
            for p in PARAMS[m]:
                get_param(ly, m, p).copy_(torch.as_tensor(v[p]))
    pm64 = copy.deepcopy(pm).double()
    layers64 = [pm64.base_model.model.layers[i] for i in range(len(layers))]
    pm.train(False)
    pm64.train(False)
    checks = []
    for li, (ly, ly64, v) in enumerate(zip(layers, layers64, vals)):
        pre = f"layers.{li}."
        x = torch.as_tensor(v["x"]).clone().requires_grad_(True)
        go = torch.as_tensor(v["grad_output"])
        y = ly(x)
        (y * go).sum().backward()
        with torch.no_grad():
            dw = ly.get_delta_weight("default")
        out[pre + "expect.output"] = y.detach()
        out[pre + "expect.delta_weight"] = dw.detach()
        out[pre + "expect.grad.x"] = x.grad.detach()
        for p in PARAMS[m]:
            prm = get_param(ly, m, p)
            assert prm.requires_grad and prm.grad is not None, p
            out[pre + "expect.grad." + p] = prm.grad.detach().clone()
        # base layer must stay frozen
        assert ly.get_base_layer().weight.grad is None
        # float64 truth through a deep copy of the same PEFT model cast to double
        x64 = torch.as_tensor(v["x"]).double().requires_grad_(True)
        y64 = ly64(x64)
        (y64 * go.double()).sum().backward()
        out[pre + "truth.output"] = y64.detach()
        out[pre + "truth.grad.x"] = x64.grad.detach()
        if m != "lora":  # as in ../shared/parity: truth.grad.<param> for RandLora and VeRA
            for p in PARAMS[m]:
                out[pre + "truth.grad." + p] = get_param(ly64, m, p).grad.detach().clone()
        # sanity: merge with PEFT's own merge(): merged forward - base forward == x @ dW^T
        lm = copy.deepcopy(ly)
        with torch.no_grad():
            xb = torch.as_tensor(v["x"])
            base_y = lm.get_base_layer()(xb)
            lm.merge()
            merged_y = lm(xb)
            lm.unmerge()
            unmerged_y = lm(xb)
            diff = (merged_y - base_y).double()
            pred = xb.double() @ dw.double().T
            scale = max(pred.abs().max().item(), 1e-30)
            e_merge = (diff - pred).abs().max().item() / scale
            e_fwd = (merged_y - y.detach()).abs().max().item() / max(y.abs().max().item(), 1e-30)
            e_unm = (unmerged_y - y.detach()).abs().max().item() / max(y.abs().max().item(), 1e-30)
            e_truth = (y.detach().double() - y64.detach()).abs().max().item() / max(y64.abs().max().item(), 1e-30)
        # sanity: the float32 gradients against central finite differences of the float64 copy
        # (independent of PEFT's custom backward; the loss is linear in each parameter, so the
        # difference quotient is exact up to rounding)
        e_fd = 0.0
        with torch.no_grad():
            gd = torch.Generator().manual_seed(12345 + li)
            xd = torch.as_tensor(v["x"]).double()

            def loss64():
                return (ly64(xd) * go.double()).sum().item()

            targets = [(get_param(ly64, m, p), out[pre + "expect.grad." + p]) for p in PARAMS[m]]
            targets.append((xd, out[pre + "expect.grad.x"]))
            for t64, g32 in targets:
                d = torch.randn(t64.shape, generator=gd, dtype=torch.float64)
                eps = 1e-3
                t64.add_(eps * d)
                lp = loss64()
                t64.sub_(2 * eps * d)
                lm_ = loss64()
                t64.add_(eps * d)
                fd = (lp - lm_) / (2 * eps)
                ana = (g32.double() * d).sum().item()
                e_fd = max(e_fd, abs(fd - ana) / max(g32.double().norm().item() * d.norm().item(), 1e-30))
        checks.append((li, e_merge, e_fwd, e_unm, e_truth, e_fd))
    return out, checks


def make_case(peft, name, case, peft_commit):
    import torch

    torch.manual_seed(case["seed"])  # global RNG: nn.Linear / PEFT constructor draws (all overwritten)
    pm, layers = build(peft, case)
    m = case["method"]
    tensors = OrderedDict()
    for b, t in get_bases(pm, m).items():
        assert t.dtype == torch.float32, (b, t.dtype)
        if m == "randlora" and not (case.get("sparse") or case.get("very_sparse")):
            assert torch.equal(t, t.bfloat16().float()), "dense bases should hold bf16 values"
        tensors[b] = t.detach().clone()
    inits = []
    for li, ly in enumerate(layers):
        d = OrderedDict()
        if m != "lora":  # the existing LoRA fixtures carry no init.*
            for p in PARAMS[m]:
                d[p] = get_param(ly, m, p).detach().clone()
        inits.append(d)
    vals = random_inputs(case, pm, layers, case["seed"])
    for li, (v, d) in enumerate(zip(vals, inits)):
        pre = f"layers.{li}."
        for k, t in v.items():
            tensors[pre + k] = t
        for k, t in d.items():
            tensors[pre + "init." + k] = t
    res, checks = run_case(pm, layers, case, vals)
    tensors.update(res)
    md = metadata(case, peft_commit, torch.__version__)
    return md, OrderedDict((k, t.detach().float().numpy()) for k, t in tensors.items()), checks


def case_from_fixture(meta, data):
    m = meta["method"]
    n = int(meta["layers"])
    shapes = [tuple(data[f"layers.{i}.weight"].shape) for i in range(n)]
    case = dict(method=m, r=int(meta["r"]), tokens=int(meta["tokens"]), shapes=shapes, key=int(meta["projection_prng_key"]))
    if m in ("randlora", "lora"):
        a = float(meta["alpha"])
        case["alpha"] = int(a) if a.is_integer() else a
    if m == "randlora":
        case["sparse"] = meta["sparse"] == "true"
        case["very_sparse"] = meta["very_sparse"] == "true"
    if m == "lora":
        case["use_rslora"] = meta["use_rslora"] == "true"
    if m == "vera":
        case["d_initial"] = float(meta["d_initial"])
    return case


def reproduce(peft, path, peft_commit):
    import numpy as np
    import torch

    meta, data = read_safetensors(path)
    case = case_from_fixture(meta, data)
    m = case["method"]
    torch.manual_seed(0)
    pm, layers = build(peft, case)
    print(f"== {os.path.basename(path)}")
    ok = True
    md = metadata(case, peft_commit, torch.__version__)
    if dict(md) != dict(meta):
        print("   metadata differs:", {k: (md.get(k), meta.get(k)) for k in set(md) | set(meta) if md.get(k) != meta.get(k)})
    for b, t in get_bases(pm, m).items():
        same = np.array_equal(t.detach().numpy(), data[b]) and t.shape == data[b].shape
        print(f"   base {b} {tuple(t.shape)} bit-identical: {same}")
        ok &= same
    for li, ly in enumerate(layers):
        for p in PARAMS[m]:
            k = f"layers.{li}.init.{p}"
            if k in data:
                same = np.array_equal(get_param(ly, m, p).detach().numpy(), data[k])
                print(f"   {k} bit-identical: {same}")
                ok &= same
    vals = []
    for li in range(len(layers)):
        pre = f"layers.{li}."
        v = {k: torch.from_numpy(data[pre + k]) for k in ["weight", "bias", "x", "grad_output"] + PARAMS[m]}
        vals.append(v)
    res, checks = run_case(pm, layers, case, vals)
    worst = 0.0
    zero_grads = 0
    for k, t in res.items():
        ref = data[k]
        got = t.detach().float().numpy()
        assert got.shape == ref.shape, (k, got.shape, ref.shape)
        nbit = int(np.sum(got.view(np.uint32) != ref.view(np.uint32)))
        rel = float(np.max(np.abs(got.astype(np.float64) - ref)) / max(np.max(np.abs(ref)), 1e-30))
        if not (nbit and not np.any(ref)):
            worst = max(worst, rel)
        if nbit and not np.any(ref):
            print(f"   {k:40s} STORED VALUES ARE ALL ZERO (regenerated max |g| {np.max(np.abs(got)):.3g})")
            zero_grads += 1
            continue
        print(f"   {k:40s} {'bit-exact' if nbit == 0 else f'{nbit}/{ref.size} differ, max rel {rel:.2e}'}")
    for li, e_merge, e_fwd, e_unm, e_truth, e_fd in checks:
        print(f"   layer {li}: merge check rel {e_merge:.2e}, merged fwd vs fwd {e_fwd:.2e}, unmerged {e_unm:.2e}, f32 vs f64 {e_truth:.2e}, grads vs finite diff {e_fd:.2e}")
    print(f"   bases/inits identical: {ok}; worst rel diff of the other expect/truth tensors {worst:.2e}"
          + (f"; {zero_grads} stored expect.grad tensors are all zero" if zero_grads else ""))
    return ok, worst


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("peft_src")
    ap.add_argument("--peft-commit", default=None, help="recorded in metadata (default: git rev-parse of PEFT_SRC)")
    ap.add_argument("--out", default=os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "fixtures", "peft_extra"))
    ap.add_argument("--reproduce", default=None, help="folder of existing fixtures to regenerate and compare (writes nothing)")
    ap.add_argument("--cases", nargs="*", default=None)
    ap.add_argument("--system-blas", action="store_true", help="do not switch to the reference BLAS (see below)")
    args = ap.parse_args()

    # BLAS: the existing fixtures in /work/shared/parity reproduce bit for bit only with the
    # reference (netlib) BLAS that Debian ships as the `libblas.so.3` alternative in
    # /usr/lib/x86_64-linux-gnu/blas; OpenBLAS differs by an ulp or so. Torch (BLAS_INFO=generic)
    # loads whatever `libblas.so.3` the dynamic linker finds, so re-exec with that folder first.
    if not args.system_blas and os.path.exists(os.path.join(REF_BLAS_DIR, "libblas.so.3")):
        ld = os.environ.get("LD_LIBRARY_PATH", "")
        if REF_BLAS_DIR not in ld.split(":"):
            os.environ["LD_LIBRARY_PATH"] = REF_BLAS_DIR + (":" + ld if ld else "")
            os.execv(sys.executable, [sys.executable] + sys.argv)

    commit = args.peft_commit
    if commit is None:
        try:
            commit = subprocess.check_output(["git", "-C", args.peft_src, "rev-parse", "--short=9", "HEAD"], text=True).strip()
        except Exception:
            commit = "unknown"
    peft = _import_peft(args.peft_src)
    import torch

    torch.set_num_threads(1)
    torch.ones(4, 4) @ torch.ones(4, 4)
    with open("/proc/self/maps") as f:
        blas = sorted({ln.split()[-1] for ln in f if "blas" in ln.split("/")[-1]})
    print(f"torch {torch.__version__}, PEFT {getattr(peft, '__version__', '?')} ({commit}), BLAS: {', '.join(blas) or '?'}")

    if args.reproduce:
        names = args.cases or sorted(f[: -len(".safetensors")] for f in os.listdir(args.reproduce) if f.endswith(".safetensors"))
        allok = True
        for nm in names:
            ok, _ = reproduce(peft, os.path.join(args.reproduce, nm + ".safetensors"), commit)
            allok &= ok
        sys.exit(0 if allok else 1)

    os.makedirs(args.out, exist_ok=True)
    for name in args.cases or list(CASES):
        case = CASES[name]
        md, tensors, checks = make_case(peft, name, case, commit)
        for li, e_merge, e_fwd, e_unm, e_truth, e_fd in checks:
            assert max(e_merge, e_fwd, e_unm, e_truth, e_fd) < 1e-5, (name, li, e_merge, e_fwd, e_unm, e_truth, e_fd)
        path = os.path.join(args.out, name + ".safetensors")
        write_safetensors(path, tensors, md)
        worst = max(max(c[1] for c in checks), max(c[2] for c in checks))
        print(
            f"wrote {path}: {len(tensors)} tensors; merge check max rel {worst:.1e}; "
            f"f32 vs f64 output max rel {max(c[4] for c in checks):.1e}; grads vs finite diff max rel {max(c[5] for c in checks):.1e}"
        )


if __name__ == "__main__":
    main()
