"""Recall of milvus:// on rows written a moment ago (issue 25 item 4): a catalogue of random
(diffuse) or clustered item vectors indexed through mindrec's milvus:// store, then, SECONDS
later, the merged multi-interest top-50 of USERS random histories, each compared with the exact
top-50 of a flat store of the same vectors. Fresh rows sit in a growing segment that Milvus 2.3
searches with an interim IVF index (queryNode.segcore.interimIndex: nlist 128, nprobe 16 by
default), whatever fetch= asks; benchmarks/milvus_fresh.sh runs this against servers started
with other settings.

  python milvus_fresh.py milvus://HOST:PORT [--items 20000] [--users 20] [--data diffuse|clustered]
                         [--seconds 1] [--fetch 256]
Prints one line: data=... items=... seconds=... overlap=X (mean share of the exact top-50).
"""
import argparse
import json
import os
import time
import urllib.request

import numpy as np

import mindrec


def drop(url, collection, token):
    host = url[len("milvus://"):].split("/")[0]
    req = urllib.request.Request(f"http://{host}/v1/vector/collections/drop", method="POST",
                                 data=json.dumps({"collectionName": collection}).encode(),
                                 headers={"Content-Type": "application/json", "Authorization": f"Bearer {token}"})
    urllib.request.urlopen(req, timeout=30).read()


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("url")
    ap.add_argument("--items", type=int, default=20000)
    ap.add_argument("--users", type=int, default=20)
    ap.add_argument("--data", choices=["diffuse", "clustered"], default="diffuse")
    ap.add_argument("--seconds", type=float, default=1.0)
    ap.add_argument("--fetch", type=int, default=256)
    a = ap.parse_args()
    cfg = mindrec.ModelConfig()
    cfg.item_count, cfg.neg_samples = a.items + 1, 10
    w = mindrec.init_weights(cfg, 7)
    d = mindrec.weights_to_dict(w)
    if a.data == "clustered":  # 200 topics, items near their topic's centre
        rng = np.random.default_rng(3)
        centres = rng.standard_normal((200, cfg.embedding_dim)).astype(np.float32)
        topic = rng.integers(0, 200, a.items + 1)
        d["item_emb.weight"] = (0.1 * (centres[topic] + 0.6 * rng.standard_normal((a.items + 1, cfg.embedding_dim)))).astype(np.float32)
        w = mindrec.weights_from_dict(cfg, d)
    model = mindrec.MindModel(w)
    token = os.environ.get("MINDREC_MILVUS_TOKEN", "")
    collection = f"fresh_{a.data}_{os.getpid()}"
    store = mindrec.VectorStore(f"{a.url}/{collection}?fetch={a.fetch}", cfg.embedding_dim)
    try:
        emb = mindrec.weights_to_dict(w)["item_emb.weight"]
        store.add(emb[1:], np.arange(1, a.items + 1))
        time.sleep(a.seconds)
        rng = np.random.default_rng(11)
        hists = [rng.integers(1, a.items + 1, 5).tolist() for _ in range(a.users)]
        flat = mindrec.build_item_store(model, "flat")
        exact, _ = mindrec.recall_items(model, flat, hists, topn=50)
        got, _ = mindrec.recall_items(model, store, hists, topn=50)
        overlap = np.mean([len(set(e) & set(g)) / 50 for e, g in zip(exact.tolist(), got.tolist())])
        print(f"data={a.data} items={a.items} seconds={a.seconds} fetch={a.fetch} overlap={overlap:.3f}", flush=True)
    finally:
        drop(a.url, collection, token)


if __name__ == "__main__":
    main()
