"""Corpora, feature files, graphs and batches: what the stages read and write."""
