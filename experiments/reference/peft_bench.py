#!/usr/bin/python3
"""Time training steps under PyTorch running PEFT's OWN layers (get_peft_model), for `make bench`.

What is timed matches `build/randlora bench` (experiments/bench.c) step for step:

  layer  one adapted nn.Linear(in, out) with bias; upstream gradient G given
         (y.backward(G), no loss op); with --dx the input requires grad, so the
         step also computes dx (an inner layer of a network); AdamW (lr 1e-4,
         weight decay 0) over the adapter's parameters; zero_grad(set_to_none).
  stack  --layers L square layers with ReLU between them, every one adapted;
         dx flows through every layer but the first (its input is data).
  vit    the ViT of lib/models/rl_model.h (image 28, patch 7: 16 tokens, dim 64,
         4 heads, MLP 256, 4 blocks, 5 classes) with adapters on q, k, v, o,
         fc1, fc2 and the head trained too (PEFT's modules_to_save, as the C
         model trains its head in adapter mode); batch --tokens images, mean
         cross-entropy, AdamW.

With --peft-src DIR the adapters are PEFT's real tuner layers, imported from a PEFT checkout
exactly as tests/gen/gen_parity.py does (its _import_peft: PEFT is imported for real, only the
third-party packages its layer path does not use -- transformers, accelerate, huggingface_hub,
safetensors -- are stand-ins). Nothing of PEFT is copied here. The rows say impl=peft.

Without --peft-src, only `layer` with lora or randlora can run: the layer then comes from
experiments/reference/peft_step.py, a transcription of PEFT's formulation in plain torch, NOT
PEFT; the rows say impl=transcription and every table that shows them says so.

Threads: OpenBLAS reads OPENBLAS_NUM_THREADS when it loads and torch.set_num_threads does not
control its pool (toolchain.md section 4), so the script re-execs itself once with
OPENBLAS_NUM_THREADS = OMP_NUM_THREADS = --threads when they differ. OPENBLAS_CORETYPE and
LD_LIBRARY_PATH (the OpenBLAS flavour) are passed through unchanged: `make bench` sets them to
what the C tool uses, so both sides run the same OpenBLAS build and kernels.

Output (--csv): a header and one row:
  impl,kind,method,r,out,in,tokens,layers,dx,threads,median_ms,p25_ms,p75_ms,reps,
  peak_rss_bytes,foreign_cpu,core,blas,torch_version,peft_version
peak_rss_bytes is this process's VmHWM (torch's own libraries included); foreign_cpu is the CPU
time other processes used during the timed steps as a fraction of the machine (/proc/stat less
this process's own), as the C harness reports it.

  /usr/bin/python3 experiments/reference/peft_bench.py --peft-src /tmp/peft_src --kind layer \
      --method randlora --r 32 --out 768 --in 768 --tokens 4096 --dx --threads 1 --csv
"""

import argparse
import errno
import importlib.util
import math
import os
import select
import struct
import sys
import time

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(os.path.dirname(HERE))
CSV_HEADER = ("impl,kind,method,r,out,in,tokens,layers,dx,threads,median_ms,p25_ms,p75_ms,reps,"
              "peak_rss_bytes,foreign_cpu,core,blas,torch_version,peft_version")
SYSTEM_PYTHON = "/usr/bin/python3"
_REEXEC = "PEFT_BENCH_REEXEC"

# The ViT of lib/models/rl_model.h as the pretrained-transformer experiment configures it.
VIT = dict(image=28, patch=7, dim=64, heads=4, mlp=256, blocks=4, classes=5)
VIT_TARGETS = ["q", "k", "v", "o", "fc1", "fc2"]


def skip(why):
    print("skipped: " + why)
    sys.exit(0)


def ensure_environment(threads):
    """Re-exec once under an interpreter that has torch and with the thread variables set."""
    want = str(threads)
    env = dict(os.environ)
    exe = sys.executable
    if importlib.util.find_spec("torch") is None:
        if os.access(SYSTEM_PYTHON, os.X_OK) and os.path.realpath(SYSTEM_PYTHON) != os.path.realpath(exe or ""):
            exe = SYSTEM_PYTHON
        else:
            skip("python3-torch not installed")
    if exe == sys.executable and env.get("OPENBLAS_NUM_THREADS") == want and env.get("OMP_NUM_THREADS") == want:
        return
    if env.get(_REEXEC):
        skip("cannot set up torch with %s threads under %s" % (want, exe))
    env["OPENBLAS_NUM_THREADS"] = env["OMP_NUM_THREADS"] = want
    env[_REEXEC] = "1"
    sys.stdout.flush()
    os.execve(exe, [exe, os.path.abspath(__file__)] + sys.argv[1:], env)


def import_peft(src):
    """PEFT's real package via tests/gen/gen_parity.py's importer (stand-ins for the unused
    third-party packages only)."""
    sys.path.insert(0, os.path.join(ROOT, "tests", "gen"))
    import gen_parity

    return gen_parity._import_peft(src)


def blas_info(torch):
    """The OpenBLAS core in use (its own answer) and the library file loaded."""
    import ctypes

    torch.ones(8, 8) @ torch.ones(8, 8)
    core = "?"
    try:
        lib = ctypes.CDLL("libopenblas.so.0")
        lib.openblas_get_corename.restype = ctypes.c_char_p
        core = lib.openblas_get_corename().decode()
    except (OSError, AttributeError):
        pass
    with open("/proc/self/maps") as f:
        libs = sorted({ln.split()[-1] for ln in f if "openblas" in ln.split("/")[-1] and ".so" in ln})
    return core, (libs[0] if libs else "?")


def busy_seconds():
    """Busy CPU seconds of the machine (/proc/stat: all but idle and iowait), or None."""
    try:
        with open("/proc/stat") as f:
            v = [int(t) for t in f.readline().split()[1:9]]
        return (v[0] + v[1] + v[2] + v[5] + v[6] + v[7]) / os.sysconf("SC_CLK_TCK")
    except (OSError, ValueError, IndexError):
        return None


def peak_rss_bytes():
    with open("/proc/self/status") as f:
        for ln in f:
            if ln.startswith("VmHWM:"):
                return int(ln.split()[1]) * 1024
    return 0


# --------------------------------------------------------------------------------------------
# models
# --------------------------------------------------------------------------------------------

def make_modules(torch):
    nn, F = torch.nn, torch.nn.functional

    class Stack(nn.Module):
        """`layers` linears l0..l<L-1> (in -> out, then out -> out) with ReLU between."""

        def __init__(self, layers, out, inp):
            super().__init__()
            self.lins = nn.ModuleList([nn.Linear(inp if i == 0 else out, out) for i in range(layers)])

        def forward(self, x):
            for i, lin in enumerate(self.lins):
                x = lin(x)
                if i + 1 < len(self.lins):
                    x = F.relu(x)
            return x

    class Attn(nn.Module):
        def __init__(self, d, heads):
            super().__init__()
            self.h = heads
            self.q, self.k, self.v, self.o = (nn.Linear(d, d) for _ in range(4))

        def forward(self, a):
            B, T, d = a.shape
            dh = d // self.h

            def split(t):
                return t.view(B, T, self.h, dh).transpose(1, 2)

            q, k, v = split(self.q(a)), split(self.k(a)), split(self.v(a))
            P = torch.softmax(q @ k.transpose(-1, -2) / math.sqrt(dh), dim=-1)
            return self.o((P @ v).transpose(1, 2).reshape(B, T, d))

    class Mlp(nn.Module):
        def __init__(self, d, m):
            super().__init__()
            self.fc1, self.fc2 = nn.Linear(d, m), nn.Linear(m, d)

        def forward(self, c):
            return self.fc2(F.gelu(self.fc1(c)))

    class Block(nn.Module):
        def __init__(self, d, heads, m):
            super().__init__()
            self.ln1, self.attn, self.ln2, self.mlp = nn.LayerNorm(d), Attn(d, heads), nn.LayerNorm(d), Mlp(d, m)

        def forward(self, x):
            x = x + self.attn(self.ln1(x))
            return x + self.mlp(self.ln2(x))

    class PatchEmbed(nn.Module):
        def __init__(self, pp, d):
            super().__init__()
            self.proj = nn.Linear(pp, d)

    class ViT(nn.Module):
        """lib/models/rl_model.h's ViT: patch embedding + position, pre-LN blocks, final LN,
        token mean, linear head; module paths as the C model names them."""

        def __init__(self, c):
            super().__init__()
            self.c = c
            self.side = c["image"] // c["patch"]
            self.T = self.side * self.side
            self.patch_embed = PatchEmbed(c["patch"] * c["patch"], c["dim"])
            self.pos_embed = nn.Parameter(torch.randn(self.T, c["dim"]) * 0.02)
            self.blocks = nn.ModuleList([Block(c["dim"], c["heads"], c["mlp"]) for _ in range(c["blocks"])])
            self.lnf = nn.LayerNorm(c["dim"])
            self.head = nn.Linear(c["dim"], c["classes"])

        def forward(self, x):
            B, p, s = x.shape[0], self.c["patch"], self.side
            xp = x.view(B, s, p, s, p).permute(0, 1, 3, 2, 4).reshape(B, self.T, p * p)
            h = self.patch_embed.proj(xp) + self.pos_embed
            for blk in self.blocks:
                h = blk(h)
            return self.head(self.lnf(h).mean(dim=1))

    return Stack, ViT


def peft_config(peft, method, r, targets, modules_to_save=None):
    if method == "randlora":  # PEFT's default randlora_alpha (640)
        return peft.RandLoraConfig(r=r, target_modules=targets, modules_to_save=modules_to_save)
    if method == "vera":
        return peft.VeraConfig(r=r, target_modules=targets, modules_to_save=modules_to_save)
    if method == "lora":  # alpha = 2r, as the C bench
        return peft.LoraConfig(r=r, lora_alpha=2 * r, target_modules=targets, modules_to_save=modules_to_save)
    raise ValueError(method)


def trained_looking(torch, model, gen):
    """Adapter values away from PEFT's no-op init (lambda = 0, lora_B = 0), as the C bench
    does: values do not change the work, but a zero B would let nothing flow."""
    with torch.no_grad():
        for name, p in model.named_parameters():
            if p.requires_grad and any(k in name for k in ("lora_", "vera_lambda", "randlora_")):
                p.copy_(torch.randn(p.shape, generator=gen) * 0.01)


def build(torch, a, peft):
    """(model, trainable parameters, step inputs) for a.kind. The model is PeftModel's base
    model, whose target linears get_peft_model replaced in place by PEFT's tuner layers:
    calling it runs those layers (PeftModel.forward would only add a wrapper call)."""
    Stack, ViT = make_modules(torch)
    gen = torch.Generator().manual_seed(42)
    torch.manual_seed(42)
    if a.kind == "vit":
        model = ViT(VIT)
        model = peft.get_peft_model(model, peft_config(peft, a.method, a.r, VIT_TARGETS, ["head"])).get_base_model()
        x = torch.rand((a.tokens, VIT["image"] * VIT["image"]), generator=gen)
        y = torch.randint(0, VIT["classes"], (a.tokens,), generator=gen)
        inputs = (x, y)
    else:
        layers = a.layers if a.kind == "stack" else 1
        model = Stack(layers, a.out, a.inp)
        for p in model.parameters():
            p.requires_grad_(False)
        x = torch.randn((a.tokens, a.inp), generator=gen)
        G = torch.randn((a.tokens, a.out), generator=gen)
        inputs = (x, G)
        if peft is not None:
            targets = ["lins.%d" % i for i in range(layers)]
            model = peft.get_peft_model(model, peft_config(peft, a.method, a.r, targets)).get_base_model()
    trained_looking(torch, model, gen)
    params = [p for p in model.parameters() if p.requires_grad]
    return model, params, inputs


def check_peft_layers(model, kind):
    """Every adapted module must be PEFT's own tuner layer (not a stand-in)."""
    n = 0
    for name, mod in model.named_modules():
        if type(mod).__name__ == "Linear" and type(mod).__module__.startswith("peft.tuners."):
            n += 1
    if n == 0:
        raise SystemExit("peft_bench: no PEFT tuner layer in the %s model" % kind)
    return n


# --------------------------------------------------------------------------------------------
# timing (the C harness's rule: 2 warm-up steps, then >= min_reps steps and >= seconds)
# --------------------------------------------------------------------------------------------

class Lockstep:
    """Taking turns with another process over two FIFOs: the protocol of the C
    side (experiments/lockstep.h). A token is 12 bytes, a native double (the
    sender's process CPU seconds) and an int32 (1: the sender is done). The
    second process opens with "ready"; on receiving the turn a process sleeps
    `settle` seconds (the partner's idle OpenMP threads stop spinning). After
    its last turn a process waits for the partner's last (a token that says
    done); the one still running takes its remaining turns without waiting."""

    TOKEN = struct.Struct("=di")

    def __init__(self, first, fifo_in, fifo_out, settle, timeout=600.0):
        self.first, self.fifo_in, self.fifo_out = first, fifo_in, fifo_out
        self.settle, self.timeout = settle, timeout
        self.fd_in = self.fd_out = None
        self.ready_sent = self.partner_done = self.done = False

    def _open(self):
        self.fd_in = os.open(self.fifo_in, os.O_RDONLY | os.O_NONBLOCK)
        until = time.monotonic() + self.timeout
        while True:
            try:
                self.fd_out = os.open(self.fifo_out, os.O_WRONLY | os.O_NONBLOCK)
                break
            except OSError as e:
                if e.errno != errno.ENXIO:
                    raise SystemExit("peft_bench: lockstep: cannot open %s for writing: %s" % (self.fifo_out, e))
                if time.monotonic() > until:
                    raise SystemExit("peft_bench: lockstep: no partner opened %s within %.0f s"
                                     % (self.fifo_out, self.timeout))
                time.sleep(0.01)
        os.set_blocking(self.fd_in, True)
        os.set_blocking(self.fd_out, True)

    def _send(self, done):
        os.write(self.fd_out, self.TOKEN.pack(time.process_time(), 1 if done else 0))

    def _read(self):
        """A token, or None at the end of the FIFO."""
        buf = b""
        while len(buf) < self.TOKEN.size:
            r, _, _ = select.select([self.fd_in], [], [], self.timeout)
            if not r:
                raise SystemExit("peft_bench: lockstep: no turn came on %s within %.0f s" % (self.fifo_in, self.timeout))
            chunk = os.read(self.fd_in, self.TOKEN.size - len(buf))
            if not chunk:
                if buf:
                    raise SystemExit("peft_bench: lockstep: %s ended inside a token" % self.fifo_in)
                return None
            buf += chunk
        return self.TOKEN.unpack(buf)

    def _recv(self):
        """The partner's next token: (its CPU seconds, whether it is done)."""
        tok = self._read()
        if tok is None:
            raise SystemExit("peft_bench: lockstep: the partner closed %s before it was done" % self.fifo_in)
        return tok[0], bool(tok[1])

    def wait(self):
        """Block until it is our turn; the partner's CPU seconds so far (None if it is done)."""
        if self.fd_in is None:
            self._open()
        if not self.first and not self.ready_sent:
            self._send(False)
            self.ready_sent = True
        if self.partner_done:
            return None
        cpu, self.partner_done = self._recv()
        time.sleep(self.settle)
        return cpu

    def pass_turn(self, last):
        self.done = last
        if self.partner_done:  # the partner waits only for our last turn
            if last:
                self._send(True)
            return
        self._send(last)
        if last:  # wait for the partner's last turn: neither exits while the other is timing
            _, self.partner_done = self._recv()
            if not self.partner_done:
                raise SystemExit("peft_bench: lockstep: a turn came on %s after our last" % self.fifo_in)


def time_steps(step, warmup=2, min_reps=7, max_reps=50, seconds=0.5, turn=None, turn_calls=5, turn_warmup=1):
    """Time step() as rl_bench_run does; with turn (a Lockstep), in turns: the
    warm-up, then turn_warmup untimed calls and up to turn_calls timed ones."""
    sys.path.insert(0, HERE)
    from peft_step import quantile  # GSL's linear-interpolation quantile, as the C side

    pcpu = pcpu0 = 0.0
    if turn and warmup > 0:
        c = turn.wait()
        pcpu = c if c is not None else pcpu
    for _ in range(warmup):
        step()
    if turn and warmup > 0:
        turn.pass_turn(False)
    ts = []
    in_turn, last = 0, False
    start = cpu0 = busy0 = None
    while not last:
        if turn and in_turn == 0:
            c = turn.wait()
            pcpu = c if c is not None else pcpu
            for _ in range(turn_warmup):
                step()
        if not ts:
            start, cpu0, busy0 = time.perf_counter(), time.process_time(), busy_seconds()
            pcpu0 = pcpu
        t0 = time.perf_counter()
        step()
        t1 = time.perf_counter()
        ts.append(t1 - t0)
        last = len(ts) >= max_reps or (len(ts) >= min_reps and t1 - start >= seconds)
        if last:  # the window ends here: passing the last turn waits for the partner's last
            wall, cpu, busy1 = t1 - start, time.process_time() - cpu0, busy_seconds()
        if turn:
            in_turn += 1
            if in_turn == turn_calls or last:
                turn.pass_turn(last)
                in_turn = 0
    foreign = float("nan")
    if busy0 is not None and busy1 is not None and wall > 0:
        foreign = max(0.0, (busy1 - busy0 - cpu - (pcpu - pcpu0)) / (wall * os.cpu_count()))
    ts.sort()
    return {"median_ms": 1e3 * quantile(ts, 0.5), "p25_ms": 1e3 * quantile(ts, 0.25),
            "p75_ms": 1e3 * quantile(ts, 0.75), "reps": len(ts), "foreign_cpu": foreign}


def run(a):
    import torch

    torch.set_num_threads(a.threads)
    peft = import_peft(a.peft_src) if a.peft_src else None
    core, blas = blas_info(torch)
    if peft is None:
        sys.path.insert(0, HERE)
        import peft_step

        layer = peft_step.build_layer(torch, a.method, a.r, a.out, a.inp)
        params = layer.params()
        gen = torch.Generator().manual_seed(7)
        x = torch.randn((a.tokens, a.inp), generator=gen)
        G = torch.randn((a.tokens, a.out), generator=gen)
        fwd = layer.forward
        impl, peft_version = "transcription", "-"
    else:
        model, params, (x, G) = build(torch, a, peft)
        check_peft_layers(model, a.kind)
        fwd = model
        impl, peft_version = "peft", getattr(peft, "__version__", "?")
    opt = torch.optim.AdamW(params, lr=1e-4, weight_decay=0.0)
    F = torch.nn.functional
    need_dx = a.dx and a.kind == "layer"
    if need_dx:
        x.requires_grad_(True)

    if a.kind == "vit":
        def step():
            F.cross_entropy(fwd(x), G).backward()
            opt.step()
            opt.zero_grad(set_to_none=True)
    else:
        def step():
            fwd(x).backward(G)
            opt.step()
            opt.zero_grad(set_to_none=True)
            if need_dx:
                x.grad = None

    turn = None
    if a.lockstep:
        # the C side's first turn measures the machine and sets up; ours is empty, so
        # that the two take the same number of turns
        turn = Lockstep(a.lockstep == "first", a.lockstep_in, a.lockstep_out, a.lockstep_settle / 1e3)
        turn.wait()
        turn.pass_turn(False)
    res = time_steps(step, min_reps=a.min_reps, max_reps=a.max_reps, seconds=a.seconds, turn=turn,
                     turn_calls=a.lockstep_calls, turn_warmup=a.lockstep_warmup)
    layers = a.layers if a.kind == "stack" else (VIT["blocks"] if a.kind == "vit" else 1)
    dims = (VIT["dim"], VIT["dim"]) if a.kind == "vit" else (a.out, a.inp)
    dx = 1 if (a.kind != "layer" or need_dx) else 0  # a stack's and a model's inner layers compute dx
    row = [impl, a.kind, a.method, a.r, dims[0], dims[1], a.tokens, layers, dx, a.threads,
           "%.4f" % res["median_ms"], "%.4f" % res["p25_ms"], "%.4f" % res["p75_ms"], res["reps"],
           peak_rss_bytes(), "%.4f" % res["foreign_cpu"], core, "/".join(blas.split("/")[-2:]), torch.__version__,
           peft_version]
    if a.csv:
        print(CSV_HEADER)
        print(",".join(str(v) for v in row))
    else:
        print("%s %s %s r=%d %dx%d tokens=%d layers=%d dx=%d threads=%d core=%s (%s; torch %s, PEFT %s)" % (
            impl, a.kind, a.method, a.r, dims[0], dims[1], a.tokens, layers, dx, a.threads, core, blas,
            torch.__version__, peft_version))
        print("  step  median %.3f ms  IQR [%.3f, %.3f]  n=%d  peak RSS %.1f MB" % (
            res["median_ms"], res["p25_ms"], res["p75_ms"], res["reps"], peak_rss_bytes() / 1e6))
    return 0


def parse_args(argv):
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--peft-src", help="a PEFT checkout (repository root or the folder holding `peft`)")
    p.add_argument("--kind", choices=("layer", "stack", "vit"), default="layer")
    p.add_argument("--method", choices=("lora", "vera", "randlora"), default="randlora")
    p.add_argument("--r", type=int, default=32)
    p.add_argument("--out", type=int, default=768)
    p.add_argument("--in", dest="inp", type=int, default=768)
    p.add_argument("--tokens", type=int, default=4096, help="rows (layer, stack) or images (vit)")
    p.add_argument("--layers", type=int, default=4, help="stack depth")
    p.add_argument("--dx", action="store_true", help="layer: compute dx as an inner layer does")
    p.add_argument("--threads", type=int, default=1)
    p.add_argument("--min-reps", type=int, default=7)
    p.add_argument("--max-reps", type=int, default=50)
    p.add_argument("--seconds", type=float, default=0.5)
    p.add_argument("--csv", action="store_true")
    p.add_argument("--lockstep", choices=("first", "second"),
                   help="take turns with `randlora bench --lockstep` (experiments/lockstep.h)")
    p.add_argument("--lockstep-in", help="FIFO the partner's turns arrive on")
    p.add_argument("--lockstep-out", help="FIFO our turns leave on")
    p.add_argument("--lockstep-calls", type=int, default=5, help="timed steps per turn")
    p.add_argument("--lockstep-warmup", type=int, default=1, help="untimed steps opening each turn")
    p.add_argument("--lockstep-settle", type=float, default=20.0, help="ms slept on getting the turn")
    a = p.parse_args(argv)
    if bool(a.lockstep) != bool(a.lockstep_in) or bool(a.lockstep) != bool(a.lockstep_out):
        p.error("--lockstep, --lockstep-in and --lockstep-out go together")
    if a.lockstep_calls < 1 or a.lockstep_warmup < 0 or a.lockstep_settle < 0:
        p.error("--lockstep-calls must be positive, --lockstep-warmup and --lockstep-settle not negative")
    for name in ("r", "out", "inp", "tokens", "layers", "threads", "min_reps", "max_reps"):
        if getattr(a, name) < 1:
            p.error("--%s must be positive" % {"inp": "in"}.get(name, name).replace("_", "-"))
    if not a.peft_src and (a.kind != "layer" or a.method == "vera"):
        p.error("--kind %s --method %s needs --peft-src (the transcription covers single lora and "
                "randlora layers only)" % (a.kind, a.method))
    if a.kind == "stack" and a.out != a.inp:
        p.error("a stack needs square layers")
    return a


def main(argv):
    a = parse_args(argv)
    ensure_environment(a.threads)
    return run(a)


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
