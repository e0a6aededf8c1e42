"""Speed of the engine's training steps, side by side, in one run (not a test).

  python benchmarks/bench_steps.py --profile            # cpu preset, writes benchmarks/results.md
  python benchmarks/bench_steps.py --preset tiny --repeats 2 --steps 5 --out ''   # smoke run

(a) vs PyTorch: the engine's jitted phase-2 DPO step and phase-3 mix step (``run_chunk``, the
    very program ``toy.engine.train`` runs), against the same steps in eager PyTorch with
    ``transformers.GPTNeoXForCausalLM`` (random weights, same size, batch, sequence length,
    freezing, AdamW + clip_grad_norm_ + warmup-cosine schedule, reference forward under no_grad,
    log-softmax over the first A logits); torch with 2 threads and with 1, the faster counts.
(b) vs the machine: matmul FLOPs of the DPO chunk (counted analytically, see ``step_flops``)
    divided by its time, against a large jitted fp32 matmul (2048^3, timed alternately with
    the chunk in samples of equal length, or 4096^3 if that is faster).
(c) seeds: one vmapped program over S seeds against S sequential single-seed runs of the
    same (already compiled) program.
Every ratio alternates its two sides repeat by repeat, so that load from other processes hits
both alike; the table gives median (best). benchmarks/README.md reads the results.

torch and transformers come from the ``bench`` extra: ``pip install -e .[bench]``.
"""
from __future__ import annotations

import argparse
import copy
import datetime
import math
import os
import platform
import statistics
import sys
import time

os.environ.setdefault("HF_HUB_OFFLINE", "1")
if "--profile" in sys.argv:  # per-kernel trace events; must be set before XLA starts
  os.environ["XLA_FLAGS"] = (os.environ.get("XLA_FLAGS", "")
                             + " --xla_cpu_enable_xprof_traceme=true").strip()

import jax  # noqa: E402
import jax.numpy as jnp  # noqa: E402
import numpy as np  # noqa: E402

import toy  # noqa: E402
from toy import data as data_lib  # noqa: E402
from toy import engine as E  # noqa: E402
from toy.config import make_config  # noqa: E402
from toy.phases import PHASE_NAMES, PHASES, PREFIXES, eval_prefixes, phase_steps  # noqa: E402

TARGETS = {"torch": 3.0, "peak": 0.6, "seeds": 2.0}  # torch: eager PyTorch; peak: matmul share


# ============================================================================ FLOP counting

def step_flops(cfg, phase: str, batch_size: int | None = None) -> dict:
  """Matmul FLOPs of one training step (multiply-add = 2), per seed, by hand.

  Sequences have T = password_len tokens ([prefix, p_1..p_{L-1}]). Per sequence:
    linear layers  2*T*(3D*D + D*D + 2*D*F)  per layer (qkv, dense, mlp up + down)
    attention      2 * 2*T*T*D               per layer (Q K^T and P V, all heads, unmasked
                                               as computed: the causal mask is a `where`)
    unembedding    2*T*D*V
  Backward: an activation gradient costs one forward matmul, a weight gradient another.
  Attention matmuls have two activation operands: 2x forward wherever gradient flows.
  Frozen weights (phase 2: upper half of the layers, final LN, unembedding) need only the
  activation gradient (1x), since the trainable embedding and lower half sit below them.
  The reference model runs forward only, on the B fresh chosen sequences: the rejected side's
  reference log-probs are computed once per phase (``toy.phases.reference_logps``, not
  counted here: n_negatives sequences forward once per phase, amortised over its steps).
  Not counted: layer norms, softmax, GELU, AdamW, the embedding gather (all O(T*D), not
  O(T*D^2)); and the evaluation that ends every engine chunk (amortised over its steps).
  """
  B = batch_size or cfg.batch_size
  T, Dm, L, V = cfg.password_len, cfg.d_model, cfg.n_layers, data_lib.vocab_size(cfg)
  F = 4 * Dm
  lin = 2 * T * (3 * Dm * Dm + Dm * Dm + 2 * Dm * F)
  att = 2 * 2 * T * T * Dm
  unemb = 2 * T * Dm * V
  fwd_seq = L * (lin + att) + unemb
  if phase == "dpo" and cfg.freeze_phase2:
    lower = L // 2
    bwd_seq = lower * (2 * lin + 2 * att) + (L - lower) * (lin + 2 * att) + unemb
  else:
    bwd_seq = 2 * fwd_seq
  n_policy = 2 * B if phase == "dpo" else 4 * B
  n_ref = B
  total = n_policy * (fwd_seq + bwd_seq) + n_ref * fwd_seq
  return {"total": total, "fwd_seq": fwd_seq, "bwd_seq": bwd_seq, "n_policy": n_policy,
          "n_ref": n_ref}


# ============================================================================ timing helpers

def median_time(fn, repeats: int) -> float:
  ts = []
  for _ in range(repeats):
    t0 = time.perf_counter()
    fn()
    ts.append(time.perf_counter() - t0)
  return statistics.median(ts)


def matmul_peak(sizes=(2048, 4096), repeats=5) -> dict:
  """GFLOP/s of a jitted fp32 n x n @ n x n, per size (median of repeats)."""
  out = {}
  f = jax.jit(lambda a, b: a @ b)
  for n in sizes:
    a = jax.random.normal(jax.random.key(0), (n, n), jnp.float32)
    b = jax.random.normal(jax.random.key(1), (n, n), jnp.float32)
    f(a, b).block_until_ready()
    t = median_time(lambda: f(a, b).block_until_ready(), repeats)
    out[n] = 2 * n ** 3 / t
  return out


# ============================================================================ the JAX side

class EngineBench:
  """The state ``toy.engine.train`` builds before a phase, and a call of its ``run_chunk``.

  Built by ``toy.engine.phase_state`` (``setup`` and ``start_phase``, as ``train_many`` builds
  a phase): one chunk timed in isolation, not a run.
  """

  def __init__(self, cfg, phase: str, n_seeds: int, n_steps: int):
    self.cfg, self.phase = cfg, phase
    # A reference that differs from the policy, as after phase 1.
    self.ph = E.phase_state(cfg.replace(n_seeds=n_seeds), phase,
                            reference=lambda p: jax.tree.map(lambda x: x + 0.01, p))
    self.n_trainable = sum(int(np.prod(x.shape[1:])) for x, lab in
                           zip(jax.tree.leaves(self.ph.params), self.ph.labels)
                           if lab == "train")
    # Never past the phase's end: later steps would be computed but flagged invalid.
    self.n_steps = min(n_steps, self.ph.n_total)

  def chunk(self):
    """One chunk of n_steps steps + its evaluation; the state carries over (it is donated)."""
    out = self.ph.run(0, self.n_steps)
    jax.block_until_ready(out)
    return out

  def compiled(self):
    """The chunk's compiled program (for XLA's cost analysis and HLO text)."""
    ph = self.ph
    return E.run_chunk.lower(
        ph.params, ph.opt_state, ph.ref, ph.ref_neg, ph.state, ph.data, ph.tables, ph.key,
        ph.hyperparams,
        jnp.int32(0), cfg=ph.cfg, graphdef=ph.graphdef, phase=ph.name, n_steps=self.n_steps,
        labels=ph.labels).compile()

  def cost_analysis_flops(self):
    """XLA's own FLOP count of the compiled chunk (None where the backend gives none)."""
    try:
      ca = self.compiled().cost_analysis()
      if isinstance(ca, list):
        ca = ca[0]
      return float(ca.get("flops")) if ca and ca.get("flops") else None
    except Exception:  # noqa: BLE001  (diagnostic only)
      return None


# ============================================================================ the PyTorch side

def torch_dpo_logps(model, pw_NxL, prefix_ids_N, A):
  """Summed log-probs of passwords under [prefix, p_1..p_{L-1}], normalised over the letters."""
  import torch
  inputs = torch.cat([prefix_ids_N[:, None], pw_NxL[:, :-1]], dim=1)
  logits = model(input_ids=inputs).logits[..., :A]
  return torch.log_softmax(logits, dim=-1).gather(-1, pw_NxL[..., None])[..., 0]


def torch_phase_loss(policy, ref, phase, chosen, rejected, useful, random_pw, cfg):
  """The loss of ``toy.phases.phase_loss`` written in eager torch (same batches in). As the
  study (TRL's DPOTrainer) does, the reference runs on both sides of every pair each step."""
  import torch
  import torch.nn.functional as Fnn
  A, B = cfg.alphabet_size, chosen.shape[0]
  reg = data_lib.prefix_token(cfg, data_lib.REGULAR)
  rev = data_lib.prefix_token(cfg, data_lib.REVERSE)
  if phase == "pretrain":
    pre = torch.full((B,), reg, dtype=torch.long)
    return -torch_dpo_logps(policy, chosen, pre, A).mean()
  pws, prefixes = [chosen, rejected], [reg, reg]
  if phase == "mix":
    pws += [useful, random_pw]
    prefixes += [rev, reg]
  pw = torch.cat(pws)
  pre = torch.cat([torch.full((p.shape[0],), t, dtype=torch.long) for p, t in zip(pws, prefixes)])
  logp = torch_dpo_logps(policy, pw, pre, A)
  with torch.no_grad():
    ref_logp = torch_dpo_logps(ref, pw[:2 * B], pre[:2 * B], A).sum(-1)
  seq = logp.sum(-1)
  h = (seq[:B] - ref_logp[:B]) - (seq[B:2 * B] - ref_logp[B:])
  loss = cfg.dpo_weight * -Fnn.logsigmoid(cfg.beta * h).mean()
  if phase == "mix":
    loss = (loss + cfg.ft_weight * -logp[2 * B:3 * B].mean()
            + cfg.random_weight * -logp[3 * B:].mean())
  return loss


def hf_config_for(cfg, attn: str = "sdpa"):
  from transformers import GPTNeoXConfig
  hf = GPTNeoXConfig(vocab_size=data_lib.vocab_size(cfg), hidden_size=cfg.d_model,
                     num_hidden_layers=cfg.n_layers, num_attention_heads=cfg.n_heads,
                     intermediate_size=4 * cfg.d_model, rotary_pct=0.25,
                     use_parallel_residual=True, hidden_act="gelu", hidden_dropout=0.0,
                     attention_dropout=0.0, max_position_embeddings=max(64, cfg.password_len),
                     tie_word_embeddings=False)
  hf._attn_implementation = attn
  return hf


def freeze_phase2_torch(model, cfg):
  """PROTOCOL phase 2: embedding + lower half learn; upper half, final LN, unembedding frozen."""
  if not cfg.freeze_phase2:
    return
  for layer in model.gpt_neox.layers[cfg.n_layers // 2:]:
    layer.requires_grad_(False)
  model.gpt_neox.final_layer_norm.requires_grad_(False)
  model.lm_head.requires_grad_(False)


class TorchBench:
  """One phase of the study's loop in eager torch: a fresh AdamW + schedule, the phase's
  freezing, ``step()`` = sample the batches, loss, backward, clip, update.

  Alone (a random model, its copy as the reference, random negatives) it times single
  steps; ``TorchRun`` passes the run's policy, reference, negatives and generator.
  """

  def __init__(self, cfg, phase: str, attn: str = "sdpa", seed: int = 0, policy=None,
               ref=None, negatives=None, gen=None):
    import torch
    from transformers import GPTNeoXForCausalLM
    self.torch, self.cfg, self.phase = torch, cfg, phase
    if policy is None:
      torch.manual_seed(seed)
      policy = GPTNeoXForCausalLM(hf_config_for(cfg, attn)).float()
      ref = copy.deepcopy(policy).eval().requires_grad_(False)
    self.policy, self.ref = policy.train().requires_grad_(True), ref
    if phase == "dpo":
      freeze_phase2_torch(self.policy, cfg)
    self.trainable = [p for p in self.policy.parameters() if p.requires_grad]
    self.n_trainable = sum(p.numel() for p in self.trainable)
    lr = cfg.mix_lr if phase == "mix" and cfg.mix_lr > 0 else cfg.lr
    self.opt = torch.optim.AdamW(self.trainable, lr=lr, betas=(0.9, 0.999), eps=1e-8,
                                 weight_decay=cfg.weight_decay)
    total, warm = phase_steps(cfg, phase), cfg.warmup_steps

    def lr_lambda(step):
      if step < warm:
        return step / max(warm, 1)
      progress = min(max((step - warm) / max(total - warm, 1), 0.0), 1.0)
      return 0.5 * (1 + math.cos(math.pi * progress))

    self.sched = torch.optim.lr_scheduler.LambdaLR(self.opt, lr_lambda)
    self.gen = gen if gen is not None else torch.Generator().manual_seed(seed)
    self.negatives = negatives if negatives is not None else torch.randint(
        0, cfg.alphabet_size, (cfg.n_negatives, cfg.password_len), generator=self.gen)
    self.useful = self.negatives[: cfg.n_useful]
    self.step_i = 0

  def step(self):
    torch, cfg, B = self.torch, self.cfg, self.cfg.batch_size
    rand = lambda: torch.randint(0, cfg.alphabet_size, (B, cfg.password_len), generator=self.gen)
    rejected = useful = random_pw = None
    if self.phase != "pretrain":
      rejected = self.negatives[torch.randint(0, cfg.n_negatives, (B,), generator=self.gen)]
    if self.phase == "mix":
      useful = self.useful[torch.randint(0, cfg.n_useful, (B,), generator=self.gen)]
      random_pw = rand()
    loss = torch_phase_loss(self.policy, self.ref, self.phase, rand(), rejected, useful,
                            random_pw, cfg)
    self.opt.zero_grad(set_to_none=True)
    loss.backward()
    torch.nn.utils.clip_grad_norm_(self.trainable, cfg.clip_norm)
    self.opt.step()
    self.sched.step()
    self.step_i += 1
    return loss.detach().item()

  def steps(self, n):
    for _ in range(n):
      self.step()


class TorchRun:
  """The study's whole loop in eager torch: a random ``GPTNeoXForCausalLM`` of the config's
  size, the seed's fixed sets (negatives, useful first, and a random control; the config's
  sizes), then phase 1 (SFT), phase 2 (DPO against the frozen phase-1 copy, upper half
  frozen) and phase 3 (the mix), each with its own AdamW and warmup-cosine schedule, and an
  evaluation every ``eval_every`` steps and at each phase's end: the mean per-token
  log-likelihood of the three eval sets, under the prefixes the engine evaluates
  (``toy.phases.eval_prefixes``). The engine's phase-3 law slopes are not computed here.
  """

  def __init__(self, cfg, attn: str = "sdpa", seed: int = 0):
    import torch
    from transformers import GPTNeoXForCausalLM
    self.torch, self.cfg, self.attn = torch, cfg, attn
    torch.manual_seed(seed)
    self.policy = GPTNeoXForCausalLM(hf_config_for(cfg, attn)).float()
    self.gen = torch.Generator().manual_seed(seed)
    rand = lambda n: torch.randint(0, cfg.alphabet_size, (n, cfg.password_len), generator=self.gen)
    self.negatives, control = rand(cfg.n_negatives), rand(cfg.eval_size)
    E = cfg.eval_size
    self.sets = {"control": control, "useful": self.negatives[:cfg.n_useful][:E],
                 "heldout": self.negatives[cfg.n_useful:][:E]}

  def evaluate(self, prefixes) -> dict:
    """One forward pass over the three sets under each prefix, as ``toy.phases.evaluate``."""
    torch, cfg = self.torch, self.cfg
    names = [(p, s) for p in prefixes for s in self.sets]
    pw = torch.cat([self.sets[s] for _, s in names])
    pre = torch.cat([torch.full((self.sets[s].shape[0],), data_lib.prefix_token(cfg, PREFIXES[p]),
                                dtype=torch.long) for p, s in names])
    self.policy.eval()
    with torch.no_grad():
      per_set = torch_dpo_logps(self.policy, pw, pre, cfg.alphabet_size).reshape(len(names), -1)
    self.policy.train()
    return {f"eval/{p}/{s}": float(v) for (p, s), v in zip(names, per_set.mean(-1))}

  def run(self) -> list[dict]:
    cfg, history, ref = self.cfg, [self.evaluate(tuple(PREFIXES))], None
    for phase in PHASES:
      tb = TorchBench(cfg, phase, self.attn, policy=self.policy, ref=ref,
                      negatives=self.negatives, gen=self.gen)
      n_total = phase_steps(cfg, phase)
      for step in range(n_total):
        tb.step()
        if (step + 1) % cfg.eval_every == 0 or step + 1 == n_total:
          history.append({"phase": phase, "step": step + 1,
                          **self.evaluate(eval_prefixes(cfg, phase))})
      if phase == "pretrain":
        ref = copy.deepcopy(self.policy).eval().requires_grad_(False)
    return history


# ============================================================================ profile

def profile_chunk(eb: "EngineBench") -> dict:
  """Where a compiled chunk spends its kernel time: fusions that contain a dot vs the rest.

  Traces one call with jax.profiler (XLA CPU emits one event per kernel when run with
  --xla_cpu_enable_xprof_traceme), and classifies each kernel by the compiled HLO.
  """
  import collections
  import glob
  import gzip
  import json
  import re
  import tempfile
  hlo = eb.compiled().as_text()
  calls = dict(re.findall(r"%([\w.\-]+) = [^\n]*?calls=%([\w.\-]+)", hlo))
  bodies = dict(re.findall(r"\n%([\w.\-]+) \(.*?\n(.*?)\n}\n", hlo, re.S))
  has_dot = lambda name: (" dot(" in bodies.get(calls.get(name, ""), "")
                          or name.startswith("dot"))
  with tempfile.TemporaryDirectory() as d:
    with jax.profiler.trace(d, create_perfetto_trace=True):
      t0 = time.perf_counter()
      eb.chunk()
      wall = time.perf_counter() - t0
    events = json.load(gzip.open(glob.glob(f"{d}/**/*.trace.json.gz", recursive=True)[0]))
  kinds = collections.Counter()
  for e in events["traceEvents"]:
    name = e.get("name", "")
    if e.get("ph") != "X" or name.startswith(("$", "Thunk", "Pjit", "Slinky")):
      continue
    if not re.match(r"[\w\-]+(\.\d+)?$", name):
      continue
    if has_dot(name):
      kinds["matmul (dot fusions)"] += e["dur"] / 1e6
    elif "transpose" in name or "copy" in name:
      kinds["transposes / copies"] += e["dur"] / 1e6
    elif "select" in name:
      kinds["selects (causal mask, padding guard)"] += e["dur"] / 1e6
    else:
      kinds["other elementwise / reductions"] += e["dur"] / 1e6
  return {"wall": wall, "kernel_s": dict(kinds)}


# ============================================================================ the run

def machine_line() -> str:
  model = "?"
  try:
    with open("/proc/cpuinfo") as f:
      model = next(l.split(":", 1)[1].strip() for l in f if l.startswith("model name"))
  except (OSError, StopIteration):
    pass
  return f"{os.cpu_count()} CPU cores ({model}), {platform.system()} {platform.machine()}"


def loadavg() -> str:
  try:
    return " ".join(f"{x:.2f}" for x in os.getloadavg())
  except OSError:
    return "?"


def interleaved(fns: list, repeats: int) -> list[list[float]]:
  """Times each fn once per round, alternating, so outside load hits all of them alike."""
  times = [[] for _ in fns]
  for _ in range(repeats):
    for ts, fn in zip(times, fns):
      t0 = time.perf_counter()
      fn()
      ts.append(time.perf_counter() - t0)
  return times


def parse_args(argv=None):
  p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
  p.add_argument("--preset", default="cpu")
  p.add_argument("--set", action="append", default=[], metavar="FIELD=VALUE",
                 help="override a Config field of the preset, e.g. --set d_model=128")
  p.add_argument("--seeds", type=int, default=8, help="seeds for (c)")
  p.add_argument("--steps", type=int, default=20, help="steps per timed JAX chunk / torch run")
  p.add_argument("--seed-steps", type=int, default=10, help="steps per chunk in (c)")
  p.add_argument("--repeats", type=int, default=5, help="timed repeats (median and best)")
  p.add_argument("--big-batch", type=int, default=512,
                 help="(b) also measured at this batch size (0: skip)")
  p.add_argument("--big-steps", type=int, default=5, help="steps per chunk at --big-batch")
  p.add_argument("--torch-attn", default="sdpa", choices=["sdpa", "eager"],
                 help="transformers attention implementation for the torch side")
  p.add_argument("--threads", type=int, default=os.cpu_count(),
                 help="torch threads; torch is also timed with 1 thread and the faster is used")
  p.add_argument("--torch-steps", type=int, default=0,
                 help="torch steps per timed repeat (0: as many as last about one JAX chunk)")
  p.add_argument("--profile", action="store_true",
                 help="also trace one DPO chunk and split its kernel time by kind")
  p.add_argument("--append", action="store_true", help="append to --out instead of replacing")
  p.add_argument("--skip", default="", help="comma list of sections to skip: torch,peak,seeds")
  p.add_argument("--out", default=os.path.join(os.path.dirname(__file__), "results.md"),
                 help="markdown file for the results ('' = print only)")
  return p.parse_args(argv)


def bench_config(args):
  """The preset with ``--set`` overrides. Both prefixes at every evaluation: the FLOP count
  (6 x eval_size) and the recorded results.md were measured that way; --set
  eval_prefixes=protocol measures the new default."""
  overrides = {"eval_prefixes": "both"}
  for item in args.set:
    key, value = item.split("=", 1)
    kind = type(getattr(make_config(args.preset), key))
    overrides[key] = (value.lower() in ("1", "true", "yes")) if kind is bool else kind(value)
  return make_config(args.preset, **overrides)


def verdict(ratio, target):
  return "met" if ratio >= target else "**missed**"


def med_best(ts, work=1.0):
  return work / statistics.median(ts), work / min(ts)


def chunk_flops(c, n_steps, n_seeds=1):
  """Steps + the evaluation that ends the chunk (3 sets x prefixes x eval_size forward)."""
  f = step_flops(c, "dpo")
  n_eval = 3 * len(eval_prefixes(c, "dpo")) * c.eval_size
  return n_seeds * (n_steps * f["total"] + n_eval * f["fwd_seq"])


def bench_vs_torch(cfg, args, phase: str, with_torch: bool):
  """(a) for one phase: the engine's chunk against torch eager steps, alternating; the
  results row (None without torch)."""
  thread_opts = sorted({args.threads, 1}, reverse=True)
  eb = EngineBench(cfg, phase, 1, args.steps)
  steps = eb.n_steps
  t0 = time.perf_counter()
  eb.chunk()
  compile_s = time.perf_counter() - t0
  eb.chunk()
  fns = [eb.chunk]
  if with_torch:
    import torch
    tb = TorchBench(cfg, phase, attn=args.torch_attn)
    tb.steps(2)
    t0 = time.perf_counter()
    eb.chunk()
    t_chunk = time.perf_counter() - t0
    t0 = time.perf_counter()
    tb.steps(2)
    # torch samples about as long as a JAX chunk, so both see the same outside load
    n_torch = args.torch_steps or int(min(max(2, round(t_chunk / ((time.perf_counter() - t0)
                                                                  / 2))), steps))
    print(f"[{phase}] trainable parameters: JAX {eb.n_trainable}, torch {tb.n_trainable}",
          flush=True)
    assert eb.n_trainable == tb.n_trainable, "freezing differs between the two sides"

    def torch_run(threads):
      def run():
        torch.set_num_threads(threads)
        tb.steps(n_torch)
      return run

    fns += [torch_run(th) for th in thread_opts]
  times = interleaved(fns, args.repeats)
  jm, jb = med_best(times[0], steps)
  print(f"[{phase}] JAX: {jm:.2f} steps/s median, {jb:.2f} best (first call incl. compile "
        f"{compile_s:.1f} s)", flush=True)
  if not with_torch:
    return None
  per_thread = {th: med_best(ts, n_torch) for th, ts in zip(thread_opts, times[1:])}
  for th, (m, b) in per_thread.items():
    print(f"[{phase}] torch eager ({args.torch_attn}, {th} threads): {m:.2f} steps/s "
          f"median, {b:.2f} best", flush=True)
  th = max(per_thread, key=lambda k: per_thread[k][0])  # torch's better setting
  tm, tbst = per_thread[th]
  print(f"[{phase}] -> {jm / tm:.2f}x (median), {jb / tbst:.2f}x (best) against torch with "
        f"{th} thread(s)", flush=True)
  torch.set_num_threads(args.threads)
  return (f"(a) {PHASE_NAMES[phase].replace(' ', '-')} {phase} step: steps/s, JAX vs "
          f"torch eager ({th} thr.)", f"{jm:.2f} ({jb:.2f})", f"{tm:.2f} ({tbst:.2f})",
          f"{jm / tm:.2f}x ({jb / tbst:.2f}x)", f">= {TARGETS['torch']:.0f}x",
          verdict(jm / tm, TARGETS["torch"]))


def bench_vs_peak(cfg, args, rows: list, notes: list):
  """(b) the DPO chunk's FLOP/s against a jitted fp32 matmul, at the preset's batch and at
  --big-batch; with --profile, the kernel-time split of one chunk; XLA's FLOP count."""
  n_peak = 2048
  a_pk = jax.random.normal(jax.random.key(0), (n_peak, n_peak), jnp.float32)
  mm = jax.jit(lambda a, b: a @ b)
  mm(a_pk, a_pk).block_until_ready()
  peak_fn = lambda: mm(a_pk, a_pk).block_until_ready()
  variants = [(cfg, min(args.steps, phase_steps(cfg, "dpo")), f"batch {cfg.batch_size} (preset)")]
  if args.big_batch and args.big_batch != cfg.batch_size:
    big = cfg.replace(batch_size=args.big_batch)
    variants.append((big, min(args.big_steps, phase_steps(big, "dpo")),
                     f"batch {args.big_batch}"))
  big_peak = matmul_peak((4096,), repeats=3)[4096]
  print(f"matmul 4096^3: {big_peak / 1e9:.1f} GFLOP/s (median of 3)", flush=True)
  for c, n_steps, name in variants:
    eb = EngineBench(c, "dpo", 1, n_steps)
    eb.chunk()
    t0 = time.perf_counter()
    eb.chunk()
    t_chunk = time.perf_counter() - t0
    t0 = time.perf_counter()
    peak_fn()
    reps = max(1, round(t_chunk / (time.perf_counter() - t0)))  # samples of equal length

    def peak_many():
      for _ in range(reps):
        peak_fn()

    tj, tp = interleaved([eb.chunk, peak_many], args.repeats)
    work = chunk_flops(c, n_steps)
    am, ab = med_best(tj, work)
    pm, pb = med_best(tp, reps * 2 * n_peak ** 3)
    pm, pb = max(pm, big_peak), max(pb, big_peak)
    print(f"[dpo] {name}: {work / n_steps / 1e9:.3f} GFLOP/step (incl. its share of the "
          f"evaluation) at {am / 1e9:.1f} GFLOP/s median ({ab / 1e9:.1f} best); matmul peak "
          f"{pm / 1e9:.1f} ({pb / 1e9:.1f}) -> {am / pm:.0%} ({ab / pb:.0%})", flush=True)
    rows.append((f"(b) DPO step FLOP/s / fp32 matmul peak, {name}",
                 f"{am / 1e9:.1f} ({ab / 1e9:.1f}) GFLOP/s",
                 f"{pm / 1e9:.1f} ({pb / 1e9:.1f}) GFLOP/s", f"{am / pm:.0%} ({ab / pb:.0%})",
                 f">= {TARGETS['peak']:.0%}", verdict(am / pm, TARGETS["peak"])))
    if c is cfg:
      notes += preset_notes(eb, c, n_steps, args.profile)
    del eb


def preset_notes(eb: EngineBench, c, n_steps: int, profile: bool) -> list[str]:
  """(b)'s notes on the preset's DPO chunk: its kernel-time split (with --profile) and XLA's
  own FLOP count against the analytic one."""
  notes = []
  if profile:
    prof = profile_chunk(eb)
    total = sum(prof["kernel_s"].values())
    line = "; ".join(f"{k} {v / total:.0%}" for k, v in
                     sorted(prof["kernel_s"].items(), key=lambda kv: -kv[1]))
    notes.append(
        f"Profile of one {n_steps}-step DPO chunk ({prof['wall']:.2f} s wall under the "
        f"tracer, {total:.2f} s kernel time summed over threads): {line}.")
    print(notes[-1], flush=True)
  xla = eb.cost_analysis_flops()
  if xla:
    one = chunk_flops(c, 1)
    notes.append(f"Cross-check: XLA's cost_analysis of the compiled chunk counts its scan "
                 f"body once: {xla / 1e9:.2f} GFLOP, against the analytic {one / 1e9:.2f} "
                 "GFLOP of one step plus the evaluation (XLA also counts elementwise "
                 "work; the analytic count is matmuls only).")
  return notes


def bench_seeds(cfg, args):
  """(c) one vmapped chunk over --seeds seeds against as many single-seed chunks in turn."""
  S, n = args.seeds, min(args.seed_steps, phase_steps(cfg, "dpo"))
  one = EngineBench(cfg, "dpo", 1, n)
  many = EngineBench(cfg, "dpo", S, n)
  one.chunk(), many.chunk()

  def sequential():
    for _ in range(S):
      one.chunk()

  t_seq, t_vm = interleaved([sequential, many.chunk], args.repeats)
  sm, sb = med_best(t_seq, S * n)
  vm, vb = med_best(t_vm, S * n)
  print(f"[seeds] {S} seeds: vmapped {vm:.2f} seed-steps/s ({vb:.2f} best), sequential "
        f"{sm:.2f} ({sb:.2f}) -> {vm / sm:.2f}x ({vb / sb:.2f}x)", flush=True)
  return (f"(c) DPO seed-steps/s, {S} seeds vmapped vs {S} sequential runs",
          f"{vm:.2f} ({vb:.2f})", f"{sm:.2f} ({sb:.2f})",
          f"{vm / sm:.2f}x ({vb / sb:.2f}x)", f">= {TARGETS['seeds']:.0f}x",
          verdict(vm / sm, TARGETS["seeds"]))


def method_text(cfg, args) -> str:
  fl = step_flops(cfg, "dpo")
  n_ev = 3 * len(eval_prefixes(cfg, "dpo"))
  ev = n_ev * cfg.eval_size * fl["fwd_seq"]
  return (
      "Numbers are median (best) over the timed repeats; repeats alternate between the two "
      "sides of each ratio. JAX times are whole `run_chunk` calls, i.e. the steps plus the "
      "evaluation that ends every chunk (torch does no evaluation). torch is timed with "
      f"{args.threads} and with 1 thread and compared at its faster setting: on shared cores "
      "its OpenMP threads stall when another process holds a core.\n\n"
      "FLOPs are matmul FLOPs counted analytically (`step_flops` in benchmarks/bench_steps.py):"
      f" a DPO step at batch {cfg.batch_size} is {fl['n_policy']} policy sequences forward "
      f"({fl['fwd_seq'] / 1e6:.2f} MFLOP each) and backward ({fl['bwd_seq'] / 1e6:.2f} MFLOP "
      f"each: frozen weights need no weight gradient) + {fl['n_ref']} reference sequences "
      f"forward = {fl['total'] / 1e9:.3f} GFLOP; a chunk adds its evaluation ({n_ev} x "
      f"{cfg.eval_size} sequences forward = {ev / 1e9:.2f} GFLOP, {ev / fl['total']:.1f} DPO "
      "steps' worth). Layer norms, softmax, GELU, AdamW are not counted. Peak is the better of "
      "a jitted fp32 2048^3 matmul (timed alternately with the step) and a 4096^3 one.")


def results_table(rows: list[tuple]) -> str:
  header = ["measure", "ours (JAX)", "against", "ratio", "target", ""]
  table = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
  table += ["| " + " | ".join(r) + " |" for r in rows]
  return "\n".join(table)


def write_results(args, argv, cfg, skip, text, method, notes, loads, elapsed):
  """The dated entry in --out (appended with --append)."""
  load_before, load_after = loads
  R = args.repeats
  cmd = "python " + " ".join([os.path.relpath(__file__)] + list(argv or sys.argv[1:]))
  versions = f"jax {jax.__version__}"
  if "torch" not in skip:
    import torch as _t
    import transformers as _tf
    versions += (f", torch {_t.__version__}, transformers {_tf.__version__} (torch threads "
                 f"{args.threads} and 1, the faster used; attention `{args.torch_attn}`)")
  with open(args.out, "a" if args.append else "w") as f:
    today = datetime.date.today().isoformat()
    f.write(f"{chr(10) if args.append else ''}# Step benchmark ({today})\n\n")
    f.write(f"- command: `{cmd}`\n- machine: {machine_line()}\n")
    f.write(f"- load average (1, 5, 15 min) before: {load_before}; after: {load_after} "
            f"(other processes shared the cores); {elapsed:.0f} s in all\n")
    f.write(f"- {versions}\n")
    f.write(f"- preset `{cfg.preset}`{' with ' + ', '.join(args.set) if args.set else ''}: "
            f"{cfg.n_layers} layers, width {cfg.d_model}, "
            f"{cfg.n_heads} heads, batch {cfg.batch_size}, {cfg.password_len} tokens; "
            f"{R} repeats of chunks of up to {args.steps} steps ({args.seed_steps} in (c)), "
            "capped at the phase length\n\n")
    f.write(text + "\n\n" + method + "\n")
    for note in notes:
      f.write("\n" + note + "\n")
  print(f"wrote {args.out}")


def main(argv=None):
  args = parse_args(argv)
  skip = set(filter(None, args.skip.split(",")))
  toy.enable_compilation_cache()
  cfg = bench_config(args)
  rows: list[tuple] = []  # (measure, ours, against, ratio, target, verdict)
  notes: list[str] = []
  load_before = loadavg()
  t_start = time.perf_counter()
  print(f"machine: {machine_line()}; load average before: {load_before}", flush=True)
  print(f"preset {cfg.preset}: layers {cfg.n_layers}, width {cfg.d_model}, heads {cfg.n_heads}, "
        f"batch {cfg.batch_size}, T {cfg.password_len}, vocab {data_lib.vocab_size(cfg)}",
        flush=True)
  if "torch" not in skip:
    import torch
    torch.set_num_threads(args.threads)
  for phase in ("dpo", "mix"):  # (a) JAX vs torch
    row = bench_vs_torch(cfg, args, phase, "torch" not in skip)
    rows += [row] if row else []
  if "peak" not in skip:  # (b) FLOP/s vs peak
    bench_vs_peak(cfg, args, rows, notes)
  if "seeds" not in skip and args.seeds > 1:  # (c) seeds vmapped
    rows.append(bench_seeds(cfg, args))
  load_after = loadavg()
  text, method = results_table(rows), method_text(cfg, args)
  elapsed = time.perf_counter() - t_start
  print("\n" + text + "\n\n" + method)
  for note in notes:
    print(note)
  print(f"load average before {load_before}, after {load_after} ({os.cpu_count()} cores, "
        f"shared with other processes); {elapsed:.0f} s")
  if args.out:
    write_results(args, argv, cfg, skip, text, method, notes, (load_before, load_after), elapsed)


if __name__ == "__main__":
  main()
