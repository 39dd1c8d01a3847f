#!/usr/bin/env python3
"""mindrec from Python, end to end: prepare a real click log, train MIND, evaluate it beside the
popularity baseline, index the item vectors and recall candidates for a few users.

    pip install .                        # from the repository root (README "Python")
    python examples/python/quickstart.py [--out DIR] [--epochs N] [--batches N]

Uses the bundled Amazon Beauty log (data/amazon-beauty/clicks.csv)."""
import argparse
import time
from pathlib import Path

import mindrec

ROOT = Path(__file__).resolve().parents[2]


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--input", default=str(ROOT / "data" / "amazon-beauty" / "clicks.csv"))
    ap.add_argument("--out", default="output/quickstart")
    ap.add_argument("--epochs", type=int, default=4)
    ap.add_argument("--batches", type=int, default=250, help="batches per epoch")
    args = ap.parse_args()
    out = Path(args.out)

    # 1. A raw `user,item,timestamp` log -> PaddleRec's train/valid/test layout.
    data = mindrec.prepare(args.input, out / "data")
    print(f"prepared {data['clicks_kept']} clicks: {data['items']} items, {data['train_users']} training users, "
          f"{data['valid_users']} valid, {data['test_users']} test")

    # 2. A config (the same YAML `mindrec train` reads), then training.
    cfg = mindrec.parse_config(f"""
runner:
  train_data_dir: {out / 'data' / 'train'}
  test_data_dir: {out / 'data' / 'valid'}
  epochs: {args.epochs}
  batches_per_epoch: {args.batches}
hyper_parameters:
  item_count: {data['item_count']}
  optimizer:
    learning_rate: 0.005
""")
    t0 = time.perf_counter()
    rows = mindrec.train(cfg, out / "model", progress=False,
                         on_epoch=lambda r: print(f"epoch {r['epoch']}: loss {r['loss']:.4f}, "
                                                  f"valid Recall@50 {100 * r['recall@50']:.2f}%"))
    print(f"trained {len(rows)} epochs in {time.perf_counter() - t0:.1f} s")

    # 3. The best epoch on the test users, beside recommending the most popular items.
    model = mindrec.MindModel(out / "model" / "best.safetensors")
    test = mindrec.read_eval_data(str(out / "data" / "test"), model.config.item_count)
    m = mindrec.evaluate(model, test, train=out / "data" / "train")  # with the popularity baseline
    print(f"{'test users: ' + str(int(m['users'])):<22} {'Recall@20':>10} {'Recall@50':>10} {'NDCG@50':>10} {'HitRate@50':>11}")
    for name, p in (("MIND", ""), ("popularity", "popularity_")):
        print(f"{name:<22} {100 * m[p + 'recall@20']:9.2f}% {100 * m[p + 'recall@50']:9.2f}% "
              f"{100 * m[p + 'ndcg@50']:9.2f}% {100 * m[p + 'hitrate@50']:10.2f}%")
    print(f"MIND / popularity, Recall@50: {m['ratio_recall@50']:.2f}x")

    # 4. Candidate generation: an HNSW index of every item vector, then recall for three users.
    store = mindrec.build_item_store(model, "hnsw:M=16,ef_construction=100?ef=128")
    store.save(out / "items.idx")
    histories = [[int(t.split(":")[1]) for t in line.split() if t.startswith("hist_item:")]
                 for line in (out / "data" / "test" / "data.txt").read_text().splitlines()[:3]]
    ids, scores = mindrec.recall_items(model, store, histories, topn=10, exclude_history=True)
    for h, row, sc in zip(histories, ids, scores):
        print(f"history {h[-5:]} -> top items {row[:5].tolist()} (scores {[round(float(x), 3) for x in sc[:5]]})")
    print(f"wrote {out}/: data/, model/ (weights, metrics.csv, metrics.svg), items.idx ({len(store)} items)")


if __name__ == "__main__":
    main()
