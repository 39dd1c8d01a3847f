#!/usr/bin/env python3
"""Makes tests/fixtures/paddlerec/: a small MIND checkpoint written by PaddleRec itself and
the interests PaddleRec's own forward pass computes from it (the golden numbers that
`mindrec import-paddlerec` is checked against).

Runs in the PaddleRec peer's venv (PaddlePaddle 2.6.2; ../shared/peers/paddlerec/NOTES.md):

    ~/.cache/mindrec-peers/paddle-venv/bin/python tools/reference/paddlerec_fixture.py \\
        --paddlerec ../shared/peers/paddlerec/src --out tests/fixtures/paddlerec

It builds PaddleRec's `net.MindLayer` (release/2.3.0, unchanged) with a small shape, trains it
for 30 steps on random clicks (so that every tensor, the ReLU bias included, moves away from
its initialisation), saves `state_dict()` with `paddle.save` (mind.pdparams, PaddleRec's
checkpoint format), writes the matching PaddleRec config (config.yaml, PaddleRec's keys
including its `capsual` spelling), and runs the model in eval mode, as PaddleRec's infer.py
does, on histories shaped as its infer reader shapes them (last maxlen ids, right-padded with 0,
seq_len = min(len, maxlen)): golden.safetensors holds those inputs and PaddleRec's `user_cap`.
"""
import argparse
import os
import sys

import numpy as np

N, D, H, L, K, NEG = 60, 8, 8, 7, 3, 5


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--paddlerec", required=True, help="PaddleRec's source (the folder holding models/)")
    ap.add_argument("--out", required=True)
    args = ap.parse_args()
    sys.path.insert(0, os.path.join(args.paddlerec, "models", "recall", "mind"))
    sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
    import paddle
    import net
    import mind_reference as ref

    paddle.seed(2026)
    rng = np.random.default_rng(2026)
    model = net.MindLayer(N, D, H, neg_samples=NEG, maxlen=L, pow_p=1.0, capsual_iters=3,
                          capsual_max_k=K, capsual_init_std=1.0)
    opt = paddle.optimizer.Adam(learning_rate=0.05, parameters=model.parameters())
    model.train()
    for _ in range(30):
        B = 16
        lens = rng.integers(1, L + 1, size=B)
        hist = np.zeros((B, L), np.int64)
        for i, n in enumerate(lens):
            hist[i, :n] = rng.integers(1, N, size=n)
        labels = rng.integers(1, N, size=(B, 1)).astype(np.int64)
        (loss, _, _), *_ = model(paddle.to_tensor(hist), paddle.to_tensor(lens.reshape(B, 1).astype(np.int64)),
                                 paddle.to_tensor(labels))
        loss = paddle.mean(loss)
        loss.backward()
        opt.step()
        opt.clear_grad()

    os.makedirs(args.out, exist_ok=True)
    paddle.save(model.state_dict(), os.path.join(args.out, "mind.pdparams"))
    with open(os.path.join(args.out, "config.yaml"), "w") as f:
        f.write(f"""# PaddleRec's config (models/recall/mind/config.yaml keys) of mind.pdparams, made by
# tools/reference/paddlerec_fixture.py with PaddlePaddle {paddle.__version__}.
runner:
  train_data_dir: "data/train"
  train_reader_path: "mind_reader"
  use_gpu: False
  use_auc: False
  train_batch_size: 16
  epochs: 1
  print_interval: 10
  model_save_path: "output_model_mind"
  infer_batch_size: 16
  infer_reader_path: "mind_infer_reader"
  test_data_dir: "data/valid"
  infer_load_path: "output_model_mind"
  infer_start_epoch: 0
  infer_end_epoch: 1
  batches_per_epoch: 30
hyper_parameters:
  optimizer:
    class: Adam
    learning_rate: 0.05
  item_count: {N}
  embedding_dim: {D}
  hidden_size: {H}
  neg_samples: {NEG}
  maxlen: {L}
  pow_p: 1.0
  capsual:
    iters: 3
    max_k: {K}
    init_std: 1.0
""")

    # PaddleRec's inference on histories shaped like its infer reader's
    model.eval()
    histories = [list(rng.integers(1, N, size=n)) for n in (1, 2, 3, 5, 7, 9, 12, 4, 6, 7)]
    hist = np.zeros((len(histories), L), np.int64)
    lens = np.zeros(len(histories), np.int64)
    for i, h in enumerate(histories):
        h = h[-L:]
        hist[i, :len(h)] = h
        lens[i] = min(len(h), L)
    user_cap, _ = model(paddle.to_tensor(hist), paddle.to_tensor(lens.reshape(-1, 1)))
    ref.write_safetensors(os.path.join(args.out, "golden.safetensors"), {
        "input.hist": hist,
        "input.lengths": lens.astype(np.int32),
        "paddlerec.interests": user_cap.numpy().astype(np.float32),
    }, {"generator": "tools/reference/paddlerec_fixture.py", "paddle": paddle.__version__})
    print(f"wrote {args.out}: mind.pdparams, config.yaml, golden.safetensors ({len(histories)} users)")
    for k, v in model.state_dict().items():
        print(f"  {k}: {list(v.shape)} {v.dtype}")


if __name__ == "__main__":
    main()
