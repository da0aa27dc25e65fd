"""What every reconstructing tool shares: what a run loads, and batches streamed through it.

- `tools`: `load_tools` (network, decoder, landmark sources, fitter) and the
  step run on each batch (the network, or the network and a fit).
- `pipeline`: `run_folder`, photos read and aligned ahead of the step and
  written behind it, in threads.
"""
