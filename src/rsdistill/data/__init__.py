"""Data layer: dataset specs, discovery in folders and zips, decode-once caching, splits,
batch augmentation and tensor batching."""

from rsdistill.data.augment import AugmentParams, BatchAugment
from rsdistill.data.dataset import (
    SceneDataset, default_cache_dir, default_data_root, load_dataset, load_dataset_sizes, locate,
)
from rsdistill.data.loader import Batch, Normalizer, TensorBatches
from rsdistill.data.module import DataConfig, PreparedData, prepare_data
from rsdistill.data.specs import DATASETS, DatasetSpec, Download
from rsdistill.data.splits import Split, stratified_split

__all__ = [
    "AugmentParams", "BatchAugment", "SceneDataset", "default_cache_dir", "default_data_root",
    "load_dataset", "load_dataset_sizes", "locate", "Batch", "Normalizer", "TensorBatches",
    "DataConfig", "PreparedData", "prepare_data", "DATASETS", "DatasetSpec", "Download", "Split",
    "stratified_split",
]
