"""Datasets: phantoms, class folders, CSV manifests, DICOM, MedMNIST npz — one Item schema."""
from medrep.data.base import ImageDataset, Item, SkipLog, SplitDataset, TensorDataset, collate
from medrep.data.registry import load_dataset

__all__ = ["ImageDataset", "Item", "SkipLog", "SplitDataset", "TensorDataset", "collate", "load_dataset"]
