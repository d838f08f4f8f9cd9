"""avsbridge: a reproducible experiment DAG for language-bridged audio-visual segmentation."""

__version__ = "0.1.0"
