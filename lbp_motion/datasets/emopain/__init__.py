"""EmoPain 2020 challenge body-movement data without Lightning: the file format
(:mod:`.format`), PLAAN's segmentation (:mod:`.segments`) and per-frame features
(:mod:`.features`). The DataModule is :class:`lbp_motion.datamodules.EmoPainDataModule`."""

from lbp_motion.datasets.emopain.features import (
    compute_joint_angles,
    compute_joint_energies,
    feature_names,
    frame_features,
)
from lbp_motion.datasets.emopain.format import (
    ANGLE_TRIPLETS,
    EMG_CHANNELS,
    EXERCISES,
    JOINT_EDGES,
    JOINT_NAMES,
    NUM_COLUMNS,
    NUM_JOINTS,
    PAIN_CLASSES,
    PROTECTIVE_CLASSES,
    PROTECTIVE_TYPES,
    EmoPainRecording,
    build_emopain_matrix,
    column_meaning,
    list_emopain_files,
    parse_emopain_name,
    read_emopain,
    read_emopain_matrix,
    validate_emopain_matrix,
    write_emopain_csv,
    write_emopain_mat,
)
from lbp_motion.datasets.emopain.segments import (
    exercise_instances,
    frame_label_shares,
    majority_label,
    segment_starts,
)

__all__ = [
    "ANGLE_TRIPLETS",
    "EMG_CHANNELS",
    "EXERCISES",
    "JOINT_EDGES",
    "JOINT_NAMES",
    "NUM_COLUMNS",
    "NUM_JOINTS",
    "PAIN_CLASSES",
    "PROTECTIVE_CLASSES",
    "PROTECTIVE_TYPES",
    "EmoPainRecording",
    "build_emopain_matrix",
    "column_meaning",
    "compute_joint_angles",
    "compute_joint_energies",
    "exercise_instances",
    "feature_names",
    "frame_features",
    "frame_label_shares",
    "list_emopain_files",
    "majority_label",
    "parse_emopain_name",
    "read_emopain",
    "read_emopain_matrix",
    "segment_starts",
    "validate_emopain_matrix",
    "write_emopain_csv",
    "write_emopain_mat",
]
