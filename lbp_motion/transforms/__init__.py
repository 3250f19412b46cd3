"""What changes training windows on the way to a model: input streams (joints, bones,
motion), augmentations, and class balancing (SMOTE and its variants, oversampling).

Plain numpy and torch on arrays; a DataModule chooses and applies them.
"""
