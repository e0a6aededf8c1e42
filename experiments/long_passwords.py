"""The study's 16-letter passwords in the acquired-times-node regime (cpu width).

  python experiments/long_passwords.py                 # the probe, resumable
  python experiments/long_passwords.py --stage arms    # the four arms at the chosen steps
  python experiments/long_passwords.py --stage arms --point sham   # one arm: its own program
  python experiments/long_passwords.py --plot-only     # results/long_passwords.md only

At 8 letters the cpu preset learns the useful negatives under "reverse" in phase 3 (PROTOCOL:
useful − chance about +1.1 to +1.8). At 16 letters each password is twice the tokens, and
with the preset's step counts phase 3 at scale 0 leaves them near chance (+0.013 over seeds
0-7, results/partial/, "scale 0, 16-token passwords"). The probe looks for step counts at
which the useful negatives are learned from scratch under PROTOCOL's phase 3 (useful −
chance ≥ +0.3 at the end), on seeds 100-101 (never used elsewhere), each beside its twin at
scale 0 (same phases 1-2). Then the arms of experiments/acquired.py (scratch, sham,
acquired, lever), 8 seeds (0-7), run at the chosen point.

Predictions, written before the probe ran (its outcome is in docs/acquired.md):
- phase 2 stores the suppression at 16 letters as at 8 (phase-2 end about −2.4 nats/token
  for both sets, as in results/partial/); what fails is phase 3's learning of the useful set.
- a longer phase 3 (mix_steps 600) helps both routes: more steps to rewrite the lower half
  (PROTOCOL) and to invert (scale 0); a higher phase-3 rate (1e-2) helps rewriting more than
  inversion, so the scale-0 twin gains less.
Predictions for the arms, written on 2026-12-02 after the acquired arm's result and while the
sham arm trained (so only the sham prediction is blind):
- sham is like scratch: no inversion carried over (held-out − control about 0, within ±0.1 of
  scratch's −0.007); so acquired − sham is about acquired − scratch (+0.09), positive but not
  significant over 8 seeds.
Every point is one JSON in results/long_passwords/ (hash of its config).
"""
from __future__ import annotations

import os
import time

import toy
from toy.config import producing_command, script_parser
from toy.measure import HC_FINAL, HP_FINAL, PC_FINAL, SHARED_NOTE, last_prior_mix_rows, \
    law_record, record_cell, record_values, seed_range
from toy.points import LONG_PASSWORDS_OUT, LONG_PROBE, long_password_arms
from toy.stats import paired_row
from toy.sweep import is_stored, load_point, run_sweep

OUT = LONG_PASSWORDS_OUT
MD = os.path.join("results", "long_passwords.md")
USEFUL_LEARNED = 0.3  # useful − chance at the end of phase 3 under "reverse", nats/token
# The probe's and the arms' configs, and the probe's choice of step counts (LONG_CHOSEN), live
# in toy.points, where experiments/holm.py finds them too.
PROBE, arms = LONG_PROBE, long_password_arms


COLUMNS = [("useful−chance final", "reverse/useful/final"),
           ("held−chance final", "reverse/heldout/final"),
           ("control−chance final", "reverse/control/final"),
           ("held−control final", HC_FINAL),
           ("placebo−control final", PC_FINAL),
           ("held−chance max", "reverse/heldout/max"),
           ("phase-2 end, useful−chance ('regular')", "dpo_end/regular/useful"),
           ("G", "G")]


def table(labelled) -> str:
  lines = ["| point | seeds | " + " | ".join(h for h, _ in COLUMNS) + " |",
           "|---" * (len(COLUMNS) + 2) + "|"]
  for label, r in labelled:
    c = r["config"]
    lines.append(f"| {label} | {seed_range(c)} | "
                 + " | ".join(record_cell(r, k) for _, k in COLUMNS) + " |")
  return "\n".join(lines)


# Arm comparisons, paired per seed (the arms share seeds 0-7 and their data).
PAIRS = (("acquired", "sham"), ("acquired", "scratch"), ("sham", "scratch"), ("lever", "scratch"))


def paired_lines(stored: dict) -> list[str]:
  """Held-out − control, paired per seed between arms and per arm against 0; for an arm with
  prior episodes, the same at the end of its last prior episode; and each arm's held-out −
  placebo (the held-out effect over the spread two random sets show between them)."""
  key = HC_FINAL
  seeds = lambda r: seed_range(r["config"])
  lines = ["| comparison | seeds | difference, mean ± sd (t, p) | k/n > 0 |", "|---|---|---|---|"]
  for a, b in PAIRS:
    if a in stored and b in stored:
      lines.append(paired_row(f"{a} − {b}", seeds(stored[a]),
                              record_values(stored[a], key) - record_values(stored[b], key)))
  for arm, r in stored.items():
    lines.append(paired_row(f"{arm}: held-out − control against 0", seeds(r),
                            record_values(r, key)))
  for arm, r in stored.items():
    if r["config"].get("prior_episodes"):  # did the last prior episode invert?
      ends = [h["eval/reverse/heldout"] - h["eval/reverse/control"]
              for h in last_prior_mix_rows(r)]
      lines.append(paired_row(f"{arm}: its last prior episode's held-out − control", seeds(r),
                              ends))
  for arm, r in stored.items():
    if record_values(r, HP_FINAL) is not None:
      lines.append(paired_row(f"{arm}: held-out − placebo", seeds(r), record_values(r, HP_FINAL)))
  return lines


def main(argv=None):
  parser = script_parser(__doc__)
  parser.add_argument("--stage", choices=("probe", "arms"), action="append")
  parser.add_argument("--plot-only", action="store_true")
  parser.add_argument("--point", action="append",
                      help="train only the points with this label (repeatable): one 8-row "
                           "program each, so that each is stored when it ends")
  parser.add_argument("--out", default=OUT)
  parser.add_argument("--md", default=MD)
  args = parser.parse_args(argv)
  toy.enable_compilation_cache()
  stages = {"probe": PROBE, "arms": arms()}
  labels = {label for pts in stages.values() for label, _ in pts}
  for label in args.point or []:
    if label not in labels:
      parser.error(f"--point: {label!r} is not a point; choose from {sorted(labels)}")
  for name in (args.stage or ["probe"]) if not args.plot_only else []:
    if name == "arms" and not stages["arms"]:
      parser.error("--stage arms: no point chosen yet (toy.points.LONG_CHOSEN is None); run the "
                   "probe first")
    chosen = [c for label, c in stages[name] if not args.point or label in args.point]
    todo = [c for c in chosen if not is_stored(args.out, c)]
    print(f"stage {name}: {len(todo)} points to train", flush=True)
    t0 = time.perf_counter()
    # One program per point under --point: a point is stored as soon as its program ends.
    for group in ([[c] for c in chosen] if args.point else [chosen]):
      run_sweep(group, args.out, on_result=lambda cfg, result: law_record(result))
    print(f"stage {name}: {time.perf_counter() - t0:.0f} s", flush=True)
  parts = [f"# 16-letter passwords\n\nWritten by "
           f"`{producing_command('experiments/long_passwords.py', argv)}`. cpu preset at "
           "password_len 16; nats/token under 'reverse' at the end of phase 3 unless said; "
           f"mean ± sd over seeds, t-test against 0. {SHARED_NOTE}"]
  for name, pts in stages.items():
    stored = [(label, load_point(args.out, c)) for label, c in pts if is_stored(args.out, c)]
    if stored:
      parts.append(f"## {name}\n\n{table(stored)}")
    if name == "arms" and len(stored) > 1:
      parts.append("## arms, paired per seed\n\nheld-out − control at the end of phase 3.\n\n"
                   + "\n".join(paired_lines(dict(stored))))
  with open(args.md, "w") as f:
    f.write("\n\n".join(parts) + "\n")
  print("\n\n".join(parts[1:]))


if __name__ == "__main__":
  main()
