"""``python -m amtoolkit.training CONFIG.yaml [--resume]`` (the same as ``amtool train``),
the entry point for ``torchrun --nproc_per_node=N -m amtoolkit.training CONFIG.yaml``."""

from amtoolkit.train_cli import train

if __name__ == "__main__":
    train(prog_name="python -m amtoolkit.training")
