"""The assets: where each lives and comes from, and whether a file is valid.

- `catalog`: paths, file names, where a user gets each file, `AssetError`.
- `checks`: format checks that read no more of a file than they must.
- `frozen_graph`: reading a frozen TensorFlow graph, refusing one whose ops
  could touch the machine.

What a tool prints about them (`--check`) is in `cli.asset_report`.
"""
