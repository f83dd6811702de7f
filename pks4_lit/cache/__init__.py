"""Frozen-feature store (`pks4 cache`): backbone features of the clips a run would see, written once.

    store.py        on-disk format: manifest + memory-mapped .npy shards; writer and reader
    fingerprint.py  what determines the features; refusing a store written for another config
    model.py        VideoClassifier without its backbone; which models may use a store
    write.py        computing and writing a store through the datamodule's own datasets
    dataset.py      training/eval from a store: dataset, rank-sharded sampler, DataLoader
    command.py      `pks4 cache`
"""
from pks4_lit.cache.dataset import FeatureDataset, ShardSampler, feature_loader
from pks4_lit.cache.model import logits_from_features
from pks4_lit.cache.store import FeatureStore, StoreError

__all__ = ["FeatureDataset", "FeatureStore", "ShardSampler", "StoreError", "feature_loader", "logits_from_features"]
