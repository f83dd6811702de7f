"""Video data: annotation readers, PyAV decoding, frame sampling, transforms, datasets, the datamodule
and the embedded synthetic dataset."""
from .annotations import FORMATS, DatasetError, Sample, read_class_names, read_samples
from .datamodule import VideoDataModule
from .dataset import VideoClipDataset, VideoFolderDataset, collate_videos
from .decode import BadVideoError, VideoReader, read_frames
from .samplers import EpochSampler, EvalSampler, ResumableDataLoader


def __getattr__(name):  # lazy: `python -m pks4_lit.data.synthetic` must not import it twice
    if name == "write_synthetic_dataset":
        from .synthetic import write_synthetic_dataset

        return write_synthetic_dataset
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")

__all__ = [
    "FORMATS", "DatasetError", "Sample", "read_class_names", "read_samples", "VideoDataModule", "EpochSampler",
    "EvalSampler", "ResumableDataLoader",
    "VideoClipDataset", "VideoFolderDataset", "collate_videos", "BadVideoError", "VideoReader", "read_frames",
    "write_synthetic_dataset",
]
