"""What every layer uses: one-line errors, safe readers and atomic writers, devices, worker pools, DVCLive curves,
SLURM."""
