#!/usr/bin/env python3
"""Modelling options against PaddleRec's default MIND on real click logs (issue 16, item 5):
each option trained for the same number of batches from the same seeds, evaluated on the
validation users (exact retrieval, the popularity baseline beside), averaged over seeds.

    .venv/bin/python benchmarks/compare_options.py [--data NAME=clicks.csv ...] [--batches N]
        [--seeds 2021,7] [--options default,pow2,...] [--out DIR]

Defaults: the bundled Amazon Beauty log and, when present, ../shared/data/yelp/clicks.csv;
3,000 batches of 128; seeds 2021 and 7. Prints one markdown row per data set and option (the
means, and Recall@50 / HitRate@50 of each seed), then each option's relative change in
Recall@50 over --baseline (default: `default`) per data set and seed. Options are config
keys only (the PaddleRec-compatible defaults are `default`); configs/recommended.yaml holds the
one that wins on every data set."""
import argparse
import json
import os
import sys
import time
from pathlib import Path

import mindrec

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "benchmarks"))
from dev_logs import development_logs  # noqa: E402
OPTIONS = {
    "default": "",
    "pow2": "  pow_p: 2.0\n",
    "pow3": "  pow_p: 3.0\n",
    "hard_readout": "  readout: hard\n",
    "behaviors": "  capsule: {softmax_axis: behaviors}\n",
    "dynamic_k": "  capsule: {dynamic_k: true}\n",
    "no_relu": "  capsule: {relu_layer: false}\n",
    # the optimiser: lazy Adam (rows a batch touches only) against dense, alone and with pow2
    "lazy": "  optimizer: {lazy: true}\n",
    "pow2_lazy": "  pow_p: 2.0\n  optimizer: {lazy: true}\n",
    # issue 29: the loss (REMI's hard negatives, in-batch negatives), beside today's recommended pow2
    "pow2_beta0.25": "  pow_p: 2.0\n  loss: {hard_negative_beta: 0.25}\n",
    "pow2_beta0.5": "  pow_p: 2.0\n  loss: {hard_negative_beta: 0.5}\n",
    "pow2_beta1": "  pow_p: 2.0\n  loss: {hard_negative_beta: 1.0}\n",
    "pow2_beta2": "  pow_p: 2.0\n  loss: {hard_negative_beta: 2.0}\n",
    "pow2_inbatch": "  pow_p: 2.0\n  loss: {in_batch_negatives: true}\n",
    "pow2_inbatch_beta1": "  pow_p: 2.0\n  loss: {hard_negative_beta: 1.0, in_batch_negatives: true}\n",
    "pow2_inbatch_beta0.5": "  pow_p: 2.0\n  loss: {hard_negative_beta: 0.5, in_batch_negatives: true}\n",
    # ComiRec-DR: per-interest transforms and zero routing logits, without and with MIND's ReLU layer
    "pow2_dr": "  pow_p: 2.0\n  capsule: {per_interest_transform: true, init_std: 0.0, relu_layer: false}\n",
    "pow2_dr_relu": "  pow_p: 2.0\n  capsule: {per_interest_transform: true, init_std: 0.0}\n",
    "pow2_pit": "  pow_p: 2.0\n  capsule: {per_interest_transform: true}\n",
    # ComiRec-SA: as published (no ReLU layer, hard read-out), then with mindrec's soft pow2 read-out,
    # with the recommended loss, and with MIND's ReLU layer kept
    "sa_comirec": "  extractor: self_attention\n  readout: hard\n  capsule: {relu_layer: false}\n",
    "pow2_sa": "  pow_p: 2.0\n  extractor: self_attention\n  capsule: {relu_layer: false}\n",
    "pow2_sa_relu": "  pow_p: 2.0\n  extractor: self_attention\n",
    "pow2_inbatch_beta0.5_sa": "  pow_p: 2.0\n  extractor: self_attention\n  capsule: {relu_layer: false}\n"
                               "  loss: {hard_negative_beta: 0.5, in_batch_negatives: true}\n",
    "pow2_inbatch_beta0.5_sa_relu": "  pow_p: 2.0\n  extractor: self_attention\n"
                                    "  loss: {hard_negative_beta: 0.5, in_batch_negatives: true}\n",
    # ComiRec-SA with a hidden layer of D instead of 4 D (a quarter of its arithmetic), and with
    # REMI's routing regulariser at REMI's published lambda (100)
    "sa_comirec_h64": "  extractor: self_attention\n  self_attention: {hidden: 64}\n  readout: hard\n"
                      "  capsule: {relu_layer: false}\n",
    "sa_comirec_rr100": "  extractor: self_attention\n  readout: hard\n  capsule: {relu_layer: false}\n"
                        "  loss: {routing_regularization: 100}\n",
    "pow2_inbatch_beta0.5_sa_h64": "  pow_p: 2.0\n  extractor: self_attention\n  self_attention: {hidden: 64}\n"
                                   "  capsule: {relu_layer: false}\n  loss: {hard_negative_beta: 0.5, in_batch_negatives: true}\n",
    "pow2_inbatch_beta0.5_sa_rr100": "  pow_p: 2.0\n  extractor: self_attention\n  capsule: {relu_layer: false}\n"
                                     "  loss: {hard_negative_beta: 0.5, in_batch_negatives: true, routing_regularization: 100}\n",
    "sa_comirec_inbatch_beta0.5": "  extractor: self_attention\n  readout: hard\n  capsule: {relu_layer: false}\n"
                                  "  loss: {hard_negative_beta: 0.5, in_batch_negatives: true}\n",
    # REMI's routing regulariser: lambda around REMI's published 100, with ComiRec's hard read-out
    # and with the loss options of today's recommended config
    "sa_comirec_rr10": "  extractor: self_attention\n  readout: hard\n  capsule: {relu_layer: false}\n"
                       "  loss: {routing_regularization: 10}\n",
    "sa_comirec_rr1000": "  extractor: self_attention\n  readout: hard\n  capsule: {relu_layer: false}\n"
                         "  loss: {routing_regularization: 1000}\n",
    "sa_comirec_h64_rr100": "  extractor: self_attention\n  self_attention: {hidden: 64}\n  readout: hard\n"
                            "  capsule: {relu_layer: false}\n  loss: {routing_regularization: 100}\n",
    "sa_comirec_inbatch_beta0.5_rr100": "  extractor: self_attention\n  readout: hard\n  capsule: {relu_layer: false}\n"
                                        "  loss: {hard_negative_beta: 0.5, in_batch_negatives: true, routing_regularization: 100}\n",
    "pow2_sa_rr100": "  pow_p: 2.0\n  extractor: self_attention\n  capsule: {relu_layer: false}\n"
                     "  loss: {routing_regularization: 100}\n",
    # normalised vectors with a temperature (cosine sampled softmax), on MIND and on ComiRec-SA + REMI
    "pow2_inbatch_beta0.5_cos0.1": "  pow_p: 2.0\n  cosine_temperature: 0.1\n"
                                   "  loss: {hard_negative_beta: 0.5, in_batch_negatives: true}\n",
    "sa_comirec_rr100_cos0.05": "  extractor: self_attention\n  readout: hard\n  capsule: {relu_layer: false}\n"
                                "  cosine_temperature: 0.05\n  loss: {routing_regularization: 100}\n",
    "sa_comirec_rr100_cos0.1": "  extractor: self_attention\n  readout: hard\n  capsule: {relu_layer: false}\n"
                               "  cosine_temperature: 0.1\n  loss: {routing_regularization: 100}\n",
    "sa_comirec_rr100_cos0.2": "  extractor: self_attention\n  readout: hard\n  capsule: {relu_layer: false}\n"
                               "  cosine_temperature: 0.2\n  loss: {routing_regularization: 100}\n",
}
# Options that change the runner too (the batch size; the learning rate scaled with its square
# root): the runner lines they add.
RUNNER = {
    "pow2_batch512": "  train_batch_size: 512\n",
    "pow2_batch1024": "  train_batch_size: 1024\n",
}
OPTIONS["pow2_batch512"] = "  pow_p: 2.0\n  optimizer: {learning_rate: 0.002}\n"
OPTIONS["pow2_batch1024"] = "  pow_p: 2.0\n  optimizer: {learning_rate: 0.00283}\n"
RUNNER["sa_comirec_rr100_batch512"] = "  train_batch_size: 512\n"
RUNNER["sa_comirec_rr100_batch1024"] = "  train_batch_size: 1024\n"
OPTIONS["sa_comirec_rr100_batch512"] = OPTIONS["sa_comirec_rr100"] + "  optimizer: {learning_rate: 0.002}\n"
OPTIONS["sa_comirec_rr100_batch1024"] = OPTIONS["sa_comirec_rr100"] + "  optimizer: {learning_rate: 0.00283}\n"


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--data", action="append", default=[], help="NAME=path/to/clicks.csv (repeatable)")
    ap.add_argument("--batches", type=int, default=3000)
    ap.add_argument("--seeds", default="2021,7")
    ap.add_argument("--options", default="default,pow2,pow3,hard_readout,behaviors")
    ap.add_argument("--out", default="output/compare-options")
    ap.add_argument("--baseline", default="default", help="the option the relative changes are against")
    args = ap.parse_args()
    data = development_logs(ROOT, args.data)
    seeds = [int(s) for s in args.seeds.split(",")]
    options = args.options.split(",")
    out = Path(args.out)
    per_epoch = 250
    results = {}
    print(f"{args.batches} batches (of 128 unless the option sets the size) per run (epochs of {per_epoch}), seeds {seeds}; validation users; "
          f"mindrec {mindrec.__version__}, {mindrec.default_threads()} thread(s)")
    print("| data | option | Recall@20 | NDCG@20 | HitRate@20 | Recall@50 | NDCG@50 | HitRate@50 | "
          "popularity Recall@50 | Recall@50 / HitRate@50 per seed | batches | seconds |")
    print("|---|---|---:|---:|---:|---:|---:|---:|---:|---|---:|---:|")
    for name, clicks in data.items():
        prepared = out / name / "data"
        report = mindrec.prepare(clicks, prepared)
        for opt in options:
            runs = []
            for seed in seeds:
                cfg = mindrec.parse_config(f"""
runner:
  train_data_dir: {prepared / 'train'}
  epochs: {max(1, args.batches // per_epoch)}
  batches_per_epoch: {per_epoch}
  seed: {seed}
{RUNNER.get(opt, "")}hyper_parameters:
  item_count: {report['item_count']}
{OPTIONS[opt]}""")
                run_dir = out / name / f"{opt}-{seed}"
                t0 = time.perf_counter()
                mindrec.train(cfg, run_dir, progress=False, evaluate=False)
                seconds = time.perf_counter() - t0
                model = mindrec.MindModel(run_dir / "last.safetensors")
                m = mindrec.evaluate(model, prepared / "valid", train=prepared / "train")
                runs.append((m, seconds))
            mean = {k: sum(r[0][k] for r in runs) / len(runs) for k in runs[0][0] if runs[0][0][k] is not None}
            secs = sum(r[1] for r in runs) / len(runs)
            results[(name, opt)] = mean
            results[(name, opt, "seeds")] = [r[0] for r in runs]
            per_seed = ", ".join(f"{100 * r[0]['recall@50']:.2f}% / {100 * r[0]['hitrate@50']:.2f}%" for r in runs)
            print(f"| {name} | {opt} | " + " | ".join(f"{100 * mean[k]:.2f}%" for k in (
                "recall@20", "ndcg@20", "hitrate@20", "recall@50", "ndcg@50", "hitrate@50", "popularity_recall@50"))
                + f" | {per_seed} | {args.batches} | {secs:.1f} |", flush=True)
    print()
    base_opt = args.baseline if args.baseline in options else options[0]
    for opt in options:
        if opt == base_opt:
            continue
        changes = []
        for name in data:
            base, got = results[(name, base_opt)], results[(name, opt)]
            seeds_b, seeds_g = results[(name, base_opt, "seeds")], results[(name, opt, "seeds")]
            each = "/".join(f"{100 * (g['recall@50'] / b['recall@50'] - 1):+.1f}%" for b, g in zip(seeds_b, seeds_g))
            changes.append(f"{name} {100 * (got['recall@50'] / base['recall@50'] - 1):+.1f}% (seeds {each}; "
                           f"HitRate@50 {100 * (got['hitrate@50'] / base['hitrate@50'] - 1):+.1f}%)")
        print(f"{opt}: Recall@50 against {base_opt}: " + ", ".join(changes))
    json.dump({"/".join(k): v for k, v in results.items()}, open(out / "results.json", "w"), indent=1)


if __name__ == "__main__":
    main()
