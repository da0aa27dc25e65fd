"""What the command-line tools share, below the entry points and above everything else.

- `startup`: the checks before a run (folders, assets), one line each.
- `asset_report`: `check_assets`, the report behind `python demo.py --check`.
- `training_assets`: the report behind `python train.py --check`.
- `progress`: progress bars on a terminal, plain lines elsewhere.
"""
