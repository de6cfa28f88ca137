"""Skeleton data: NTU RGB+D readers, preprocessed formats, transforms, graph, synthetic set."""
