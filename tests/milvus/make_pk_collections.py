"""Creates Milvus collections whose Int64 primary key is the item id (auto_id off), the way an
operator would with pymilvus (REST v1 cannot: its collections always get auto ids), so that
tests/milvus runs the contract suite on that layout too.

    python make_pk_collections.py --url HOST:PORT --token USER:PASSWORD --prefix NAME [--dim 16]

Makes NAME_main_IP, NAME_main_L2, NAME_small_IP, NAME_small_L2, NAME_handed_IP, NAME_handed_L2
and NAME_upsert_IP (one per store role of tests/common/store_contract.hpp): each with
fields id (INT64, primary, auto_id off) and vector (FLOAT_VECTOR, dim), an HNSW index of its
metric, loaded. pymilvus 2.3 (PyPI) speaks gRPC to the same port as REST v1.
"""
import argparse

from pymilvus import Collection, CollectionSchema, DataType, FieldSchema, connections

p = argparse.ArgumentParser()
p.add_argument("--url", required=True)
p.add_argument("--token", default="")
p.add_argument("--prefix", required=True)
p.add_argument("--dim", type=int, default=16)
a = p.parse_args()
connections.connect(uri="http://" + a.url, token=a.token)
for role, metric in [("main", "IP"), ("main", "L2"), ("small", "IP"), ("small", "L2"), ("handed", "IP"), ("handed", "L2"),
                     ("upsert", "IP")]:
    name = f"{a.prefix}_{role}_{metric}"
    schema = CollectionSchema([
        FieldSchema("id", DataType.INT64, is_primary=True, auto_id=False),
        FieldSchema("vector", DataType.FLOAT_VECTOR, dim=a.dim),
    ])
    c = Collection(name, schema)
    c.create_index("vector", {"index_type": "HNSW", "metric_type": metric, "params": {"M": 16, "efConstruction": 200}})
    c.load()
    print("created", name)
