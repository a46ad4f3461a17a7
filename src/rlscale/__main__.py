"""`python -m rlscale ...`: the CLI as a module, e.g. under
`accelerate launch --config_file configs/accelerate/zero3.yaml -m rlscale train CONFIG backend=trl`."""

from rlscale.cli import app

app(prog_name="rlscale")
