"""A run on disk: its directory layout (`rundir`), the checkpoint and export formats
(`checkpoint`, the one owner of their keys), its logs (`reporting`) and plots."""
